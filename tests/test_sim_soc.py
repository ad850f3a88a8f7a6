"""The whole board in simulation (``bpfcore run --engine soc``): frames played into the SoC's
Ethernet ports (GMII, the MACs, the zero-copy datapath, the XDP core with packet slots), every
run in lockstep with the golden VM, every frame out checked for port and bytes, the maps and the
board's counters at the end.

Verilator; packets per program BPFCORE_SOC_PACKETS (default 10), from the traffic generator with
BPFCORE_SEED.
"""

import os
from pathlib import Path

import pytest

from bpfcore.errors import BpfcoreError
from bpfcore.sim.engines import run_packets
from bpfcore.sim.engines.rtl import DEFAULT_CORE
from bpfcore.sim.engines.soc import COUNTER_KEYS, SocEngine
from bpfcore.sim.gen import traffic
from bpfcore.sim.load.elf import compile_c, find_bpf_compiler, load_elf
from bpfcore.sim.load.mapfile import load_map_file
from bpfcore.sim.model.xdp import MAX_PACKET

ROOT = Path(__file__).resolve().parents[1]
FIRMWARE = ROOT / "firmware"
PACKETS = int(os.environ.get("BPFCORE_SOC_PACKETS", "10"))
VERDICT_COUNTERS = ("pass", "tx", "redirect", "drop", "aborted", "rejected", "no_buffer")


def _objects():
    return sorted(p.stem for p in (FIRMWARE / "build").glob("*.o"))


def _subject(name):
    obj = load_elf(str(FIRMWARE / "build" / f"{name}.o"))
    settings, entry = [], None
    map_file = FIRMWARE / f"{name}.frozen.maps.json"
    if not map_file.exists():
        map_file = FIRMWARE / f"{name}.maps.json"
    if map_file.exists():
        settings, entry = load_map_file(str(map_file))
    return obj, obj.find(entry), settings


def _adds_up(counters):
    for where, c in counters.items():
        assert c["received"] == sum(c[k] for k in VERDICT_COUNTERS), (where, c)


@pytest.mark.parametrize("name", _objects() or ["(no firmware built)"])
def test_firmware_through_the_board_agrees_with_the_vm(name, seed):
    if name.startswith("("):
        pytest.skip("firmware/build/*.o not built (make firmware)")
    obj, prog, settings = _subject(name)
    packets = [p.frame for p in traffic.generate(PACKETS, seed=seed)]
    soc = run_packets(obj, prog, packets, engine="soc", map_settings=settings)
    vm = run_packets(obj, prog, packets, engine="vm", map_settings=settings)
    assert soc.verdicts == vm.verdicts, f"seed {seed}"
    assert soc.maps == vm.maps, f"seed {seed}"
    for i, (s, v) in enumerate(zip(soc.packets, vm.packets)):
        if v.data is not None:
            port = {"TX": 0, "PASS": 1}.get(v.action, None if v.port not in (1, 2) else v.port - 1)
            assert soc.ports[i] == port and s.data == v.data, f"packet {i}, seed {seed}"
    _adds_up(soc.counters)
    assert soc.counters["total"]["received"] == len(packets)


def test_both_ports_and_bad_frames_are_counted_and_never_run(seed):
    """A bad FCS, a runt and a frame too long for the XDP buffer: each counted, none run, no
    other frame lost; frames on both ports, PASS leaving on the other one."""
    obj, prog, settings = _subject("pass")
    good = [p.frame for p in traffic.generate_sized(6, 128, seed=seed)]
    runt = good[0][:40]
    long = good[1] + bytes(MAX_PACKET + 30 - len(good[1]))
    packets = [good[0], good[1], runt, good[2], long, good[3], good[4], good[5]]
    engine = SocEngine(obj, prog, map_settings=settings, ports="both", bad_fcs={3})
    report = engine.run(packets)
    assert report.verdicts == ["PASS", "PASS", "REJECTED", "REJECTED", "REJECTED", "PASS",
                               "PASS", "PASS"]
    assert report.ports == [1, 0, None, None, None, 0, 1, 0]
    c = report.counters
    assert (c["port0"]["runt"], c["port1"]["fcs_error"], c["port0"]["oversize"]) == (1, 1, 1)
    assert c["total"]["rejected"] == 3 and c["total"]["pass"] == 5
    assert c["total"]["received"] == len(packets)
    _adds_up(c)


@pytest.fixture(scope="module")
def faulting(tmp_path_factory):
    if find_bpf_compiler() is None:
        pytest.skip("no BPF C compiler (clang or PyPI ziglang)")
    folder = tmp_path_factory.mktemp("faulting")
    source = folder / "fault.c"
    source.write_text(
        '#include <bpf/bpf_helpers.h>\n'
        'SEC("xdp")\n'
        'int fault(struct xdp_md *ctx)\n'
        '{\n'
        '\tunsigned char *p = (unsigned char *)(long)ctx->data;\n'
        '\treturn p[65536] ? XDP_PASS : XDP_TX;   /* 64 KiB past the packet: LOAD_OOB */\n'
        '}\n'
        'BPF_LICENSE("GPL");\n')
    compile_c(source, folder / "fault.o", include_dirs=[FIRMWARE / "include"])
    return load_elf(str(folder / "fault.o"))


def test_a_program_faulting_on_every_packet_costs_only_its_packets(faulting, seed):
    packets = [p.frame for p in traffic.generate_sized(8, 64, seed=seed)]
    report = SocEngine(faulting, faulting.find(None), ports="both").run(packets)
    assert report.verdicts == ["ABORTED"] * 8
    assert report.counters["total"]["aborted"] == 8
    assert report.ports == [None] * 8
    _adds_up(report.counters)


def test_line_rate_on_both_ports_through_pass_loses_nothing(seed):
    obj, prog, settings = _subject("pass")
    packets = [p.frame for p in traffic.generate_sized(120, 64, seed=seed)]
    report = SocEngine(obj, prog, map_settings=settings, ports="both",
                       line_rate=True).run(packets)
    assert report.counters["total"]["no_buffer"] == 0
    assert report.verdicts == ["PASS"] * len(packets)
    assert report.rates["offered_mpps"] == pytest.approx(2 * 1.488, rel=0.01)
    assert report.rates["sustained_mpps"] >= 0.99 * report.rates["offered_mpps"]
    _adds_up(report.counters)


def test_the_comparison_catches_a_cpu_bug_and_a_wrong_port(seed, monkeypatch):
    obj, prog, settings = _subject("counter")
    packets = [p.frame for p in traffic.generate(6, seed=seed)]
    with pytest.raises(BpfcoreError, match="lockstep"):
        SocEngine(obj, prog, map_settings=settings,
                  core=dict(DEFAULT_CORE, inject_bug="wrong_rd")).run(packets)
    # Expecting PASS on the ingress port (a datapath bug's view) must fail the comparison.
    monkeypatch.setattr(SocEngine, "_verdict", staticmethod(
        lambda result, port: port if result.action in ("PASS", "TX") else None))
    obj, prog, settings = _subject("pass")
    with pytest.raises(BpfcoreError, match="sent"):
        SocEngine(obj, prog, map_settings=settings).run(packets)


def test_counter_names_match_the_board():
    from bpfcore.hdl.soc import COUNTER_NAMES
    assert set(COUNTER_KEYS) <= set(COUNTER_NAMES)


def test_cli_run_and_maps_dump_on_the_board(tmp_path, capsys):
    import json
    from bpfcore.cli import main
    from bpfcore.sim.load.pcap import read_pcap, write_pcap
    obj = str(FIRMWARE / "build" / "counter.o")
    maps = str(FIRMWARE / "counter.maps.json")
    dumps = []
    for engine in ("vm", "soc"):
        assert main(["maps", "dump", obj, "--maps", maps, "--engine", engine, "--json"]) == 0
        dumps.append(json.loads(capsys.readouterr().out))
    assert dumps[0] == dumps[1] and dumps[0]
    pcap, out = tmp_path / "in.pcap", tmp_path / "out.pcapng"
    write_pcap(pcap, traffic.generate_sized(6, 100, seed=2))
    assert main(["run", obj, "--maps", maps, "--pcap", str(pcap), "--engine", "soc",
                 "--ports", "both", "--json", "--out", str(out)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["ports"] == [1, 0, 1, 0, 1, 0] and doc["no_buffer"] == 0
    assert len(read_pcap(out)) == 6
    assert main(["run", obj, "--pcap", str(pcap), "--ports", "both"]) == 1
    assert "apply only to --engine soc" in capsys.readouterr().err
