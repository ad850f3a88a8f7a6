"""Clang-built XDP programs on the cycle-accurate core (CPU + map memory + helper units), in
lockstep with the golden VM: every retire record, every verdict, every packet that leaves, and
every map at the end (``bpfcore run --engine rtl``).

The simulator is BPFCORE_RTL_SIMULATOR (icarus or verilator; default icarus); packets per
program BPFCORE_RTL_XDP_PACKETS (default 12), from the traffic generator with BPFCORE_SEED.
"""

import json
import os
from pathlib import Path

import pytest

from bpfcore.errors import BpfcoreError
from bpfcore.sim import traffic
from bpfcore.sim.elf import load_elf
from bpfcore.sim.xdp import load_map_file

pytest.importorskip("bpfcore.hdl.xdpcore", reason="the XDP core (hdl/xdpcore.py) is not there")

from bpfcore.sim.rtl.xdp_engine import XdpRtlEngine  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FIRMWARE = ROOT / "firmware"
SIMULATOR = os.environ.get("BPFCORE_RTL_SIMULATOR", "icarus")
PACKETS = int(os.environ.get("BPFCORE_RTL_XDP_PACKETS", "12"))


def _objects():
    return sorted(p.stem for p in (FIRMWARE / "build").glob("*.o"))


def _engine(name, **options):
    obj = load_elf(str(FIRMWARE / "build" / f"{name}.o"))
    settings, entry = [], None
    map_file = FIRMWARE / f"{name}.frozen.maps.json"
    if not map_file.exists():
        map_file = FIRMWARE / f"{name}.maps.json"
    if map_file.exists():
        settings, entry = load_map_file(str(map_file))
    return XdpRtlEngine(obj, obj.find(entry), map_settings=settings, simulator=SIMULATOR,
                        **options)


def _packets(seed, count=PACKETS):
    return [p.frame for p in traffic.generate(count, seed=seed)]


@pytest.mark.parametrize("name", _objects() or ["(no firmware built)"])
def test_firmware_in_lockstep(name, seed):
    if name.startswith("("):
        pytest.skip("firmware/build/*.o not built (make firmware)")
    engine = _engine(name)
    report = engine.run(_packets(seed))          # raises at the first difference
    ran = [p for p in report.packets if p.action != "REJECTED"]
    assert len(report.cycles) == len(ran) > 0, f"seed {seed}"
    assert all(c > 0 for c in report.cycles)
    print(f"{name}: {sum(report.cycles) / len(report.cycles):.1f} cycles/packet "
          f"({SIMULATOR}, seed {seed})")


def test_helper_outside_the_build_is_rejected_at_load():
    with pytest.raises(BpfcoreError, match="cannot run on the core"):
        _engine("ratelimit", core={"helpers": [1, 2, 3]})


def test_lockstep_catches_an_injected_cpu_bug(seed):
    engine = _engine("counter", core={"inject_bug": "wrong_rd"})
    with pytest.raises(BpfcoreError, match="lockstep"):
        engine.run(_packets(seed, 4))


def test_cli_run_engine_rtl_json(capsys, tmp_path, seed):
    from bpfcore.cli import main
    pcap = tmp_path / "in.pcap"
    traffic.write_pcap(str(pcap), traffic.generate(6, seed=seed))
    assert main(["run", str(FIRMWARE / "build" / "counter.o"), "--pcap", str(pcap),
                 "--maps", str(FIRMWARE / "counter.maps.json"), "--engine", "rtl",
                 "--simulator", SIMULATOR, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["engine"] == "rtl" and len(out["cycles_per_packet"]) == out["packets"] == 6
    assert main(["run", str(FIRMWARE / "build" / "counter.o"), "--pcap", str(pcap),
                 "--maps", str(FIRMWARE / "counter.maps.json"), "--json"]) == 0
    vm = json.loads(capsys.readouterr().out)
    assert (vm["verdicts"], vm["maps"]) == (out["verdicts"], out["maps"])
    assert main(["run", str(FIRMWARE / "build" / "counter.o"), "--pcap", str(pcap),
                 "--simulator", SIMULATOR]) != 0
    assert "--simulator chooses the simulator of --engine rtl" in capsys.readouterr().err
