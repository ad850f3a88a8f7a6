"""``bpfcore throughput``: RTL cycles per packet as the bench counts them, VM/RTL/kernel verdicts
on generated traffic, the kernel timing, the JSON report and one-line errors.

The simulator is BPFCORE_RTL_SIMULATOR (icarus or verilator; default icarus); the random
capture's seed is BPFCORE_SEED."""

import json
import os
import subprocess
import sys

import pytest

from bpfcore import abi
from bpfcore.errors import BpfcoreError
from bpfcore.sim.commands import throughput
from bpfcore.sim.load.kernel import kernel_available
from bpfcore.sim.gen.traffic import generate
from bpfcore.sim.load.pcap import write_pcap
from bpfcore.sim.engines import run_packets

from conftest import ROOT

pytest.importorskip("bpfcore.hdl.cpu", reason="the CPU (hdl/cpu.py) is not there yet")

SIMULATOR = os.environ.get("BPFCORE_RTL_SIMULATOR", "icarus")
FIRMWARE = ROOT / "firmware"
KERNEL_OK, KERNEL_WHY = kernel_available()
OFFLOAD = ("build/pass.o", "build/drop.o", "build/l3_filter.o", "asm/l2_filter.s")


@pytest.fixture(scope="module", autouse=True)
def firmware():
    done = subprocess.run([sys.executable, str(FIRMWARE / "build.py"), "--quiet", "pass", "drop",
                           "l3_filter", "firewall"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    throughput.venv_tools_on_path()


def bpfcore(*args):
    return subprocess.run([sys.executable, "-m", "bpfcore.cli", *args], capture_output=True,
                          text=True, cwd=ROOT)


def test_drop_cycles_are_the_bench_figures():
    from bpfcore.sim.engines.rtl import RtlConformance
    from bpfcore.sim.rtl.runner import BatchItem
    drop = throughput.load_subject(FIRMWARE / "build/drop.o")
    frames = [bytes(14), bytes(60), bytes(range(256)) * 6]
    result, = throughput.run_offload([drop], frames, SIMULATOR)
    assert not result.mismatches
    assert result.retired == [2, 2, 2]              # mov r0, 1; exit
    # The same runs straight through the bench: its start -> done count is the figure.
    bench = RtlConformance(SIMULATOR).bench()
    batch = bench.run([BatchItem(drop.slots, packet=f, r1=abi.CTX_BASE, ingress_ifindex=1)
                       for f in frames])
    assert result.cycles == [run.cycles for run in batch.runs]
    # A two-instruction program takes the same small count whatever the packet size.
    assert len(set(result.cycles)) == 1 and 2 <= result.cycles[0] <= 20
    assert set(result.verdicts.values()) == {"DROP"}


def test_vm_and_rtl_verdicts_agree_on_generated_traffic(seed):
    frames = [p.frame for p in generate(24, seed)]
    frames.append(b"\x01" * 10)                      # a runt: rejected, never run
    subjects = [throughput.load_subject(FIRMWARE / path) for path in OFFLOAD]
    results = throughput.run_offload(subjects, frames, SIMULATOR)
    ran = [i for i, f in enumerate(frames) if throughput.runnable(f)]
    assert len(ran) < len(frames)
    for subject, result in zip(subjects, results):
        assert not result.mismatches, f"seed {seed}: " + "\n".join(result.mismatches[:2])
        assert sorted(result.verdicts) == ran and len(result.cycles) == len(ran)
        # The XDP engine's VM (a separate path: its own context and packet set-up) agrees.
        vm = run_packets(subject.obj, subject.prog, frames, "vm")
        assert [vm.verdicts[i] for i in ran] == [result.verdicts[i] for i in ran], subject.name
    by_name = {s.name: r for s, r in zip(subjects, results)}
    # The filters take different paths: their cycle counts vary, unlike pass/drop.
    assert len(set(by_name["xdp_l3_filter"].cycles)) > 1
    assert min(by_name["xdp_l3_filter"].cycles) > max(by_name["xdp_pass"].cycles)


def test_an_injected_cpu_bug_is_caught():
    subject = throughput.load_subject(FIRMWARE / "asm/l2_filter.s")
    frames = [p.frame for p in generate(4, 5)]
    result, = throughput.run_offload([subject], frames, SIMULATOR,
                                     cpu_kwargs={"inject_bug": "wrong_rd"})
    assert result.mismatches and result.mismatches[0].startswith("l2_filter packet ")
    assert "lockstep: retirement #" in result.mismatches[0]
    assert len(result.cycles) < len(result.verdicts)


@pytest.mark.skipif(not KERNEL_OK, reason=KERNEL_WHY or "bpf() not available")
def test_kernel_measures_every_packet():
    subject = throughput.load_subject(FIRMWARE / "build/l3_filter.o")
    frames = [p.frame for p in generate(12, 3)]
    host = throughput.run_host(subject, frames, repeat=50, rounds=2)
    ran = [i for i, f in enumerate(frames) if throughput.runnable(f)]
    assert len(host.ns) == len(ran) and all(ns >= 0 for ns in host.ns)
    assert 0 < host.ns_per_packet < 100_000
    vm = run_packets(subject.obj, subject.prog, frames, "vm")
    assert [host.verdicts[i] for i in ran] == [vm.verdicts[i] for i in ran]


def test_line_rate_and_clock():
    # 64-byte frames on 1 GbE: the textbook 1,488,095 packets per second.
    assert throughput.line_rate_mpps([60]) == pytest.approx(1.488095, abs=1e-6)
    assert throughput.wire_bytes(10) == throughput.wire_bytes(60) == 84
    assert throughput.wire_bytes(1514) == 1538
    assert throughput.clock_figure(62.5) == (62.5, "given with --clock-mhz")
    mhz, where = throughput.clock_figure()
    assert mhz > 0 and where


def test_clock_is_the_xdp_core_fmax_from_the_synthesis_cache(tmp_path, monkeypatch):
    from bpfcore.boards.synth import cache_folder
    monkeypatch.setenv("BPFCORE_BUILD", str(tmp_path))

    def cache(target, fmax, folder=None):
        folder = tmp_path / "synth" / (folder or cache_folder(target).name)
        folder.mkdir(parents=True)
        (folder / "summary.json").write_text(json.dumps({"fmax_mhz": fmax}))

    assert throughput.clock_figure()[0] == throughput.DEFAULT_CLOCK_MHZ
    cache("xdp_core_board", 41.5, folder="xdp_core_board-0123456789abcdef")
    mhz, where = throughput.clock_figure()
    assert mhz == 41.5 and "earlier design's xdp_core_board" in where
    cache("cpu", 50.1)
    assert throughput.clock_figure()[0] == 50.1
    cache("xdp_core", 39.2)
    folder = cache_folder("xdp_core").name
    assert throughput.clock_figure() == (
        39.2, f"Fmax of this design's xdp_core on LFE5U-25F-6 (build/synth/{folder})")
    cache("xdp_core_board", 40.0)
    assert throughput.clock_figure()[0] == 40.0


def test_programs_with_maps_and_helpers_run_on_the_xdp_core(seed):
    subject = throughput.load_subject(FIRMWARE / "build/firewall.o")
    assert not subject.simple and subject.map_file.endswith("firewall.maps.json")
    assert subject.map_settings, "the firewall's rules come from its map file"
    frames = [p.frame for p in generate(6, seed)]
    (off,) = throughput.run_offload([subject], frames, SIMULATOR)
    assert not off.mismatches, f"seed {seed}: {off.mismatches[0]}"
    assert len(off.cycles) == len(off.verdicts) == sum(map(throughput.runnable, frames))
    if KERNEL_OK:
        host = throughput.run_host(subject, frames, repeat=10, rounds=1)
        assert host.verdicts == off.verdicts, f"seed {seed}"
        assert len(host.ns) == len(off.cycles) and all(ns > 0 for ns in host.ns)


def test_helper_outside_the_core_is_refused(tmp_path):
    from bpfcore.hdl.helpers import DEFAULT_HELPERS
    source = tmp_path / "log.s"
    source.write_text("call 6\nexit\n")           # trace_printk: left out of this build
    subject = throughput.load_subject(source)
    assert not subject.simple
    with pytest.raises(BpfcoreError, match=r"cannot run on the core .*call to unknown helper id 6"):
        throughput.run_offload([subject], [bytes(60)], SIMULATOR,
                               cpu_kwargs={"helpers": sorted(DEFAULT_HELPERS)})


def test_json_report_has_the_documented_fields(tmp_path):
    pcap = tmp_path / "in.pcap"
    write_pcap(pcap, generate(6, 2))
    # Reads the packet without a bounds check: the VM and the CPU run it, the verifier refuses.
    unchecked = tmp_path / "unchecked.s"
    unchecked.write_text("ldxw %r2, [%r1+0]\nldxb %r0, [%r2+13]\nexit\n")
    done = bpfcore("throughput", str(FIRMWARE / "build/drop.o"), str(unchecked),
                   "--pcap", str(pcap),
                   "--simulator", SIMULATOR, "--clock-mhz", "40", "--repeat", "20",
                   "--rounds", "1", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert {"source", "packets", "packets_run", "packets_rejected", "mean_frame_bytes",
            "simulator", "clock_mhz", "clock_source", "line_rate_mpps",
            "line_rate_min_frame_mpps", "host", "programs", "agree", "notes"} <= set(report)
    assert report["packets"] == 6 and report["clock_mhz"] == 40.0 and report["agree"]
    assert {"kernel", "jit_enable", "jit", "repeat", "rounds", "available", "why"} <= \
        set(report["host"])
    entry, other = report["programs"]
    assert {"program", "path", "slots", "verdicts", "rtl", "offload_mpps", "host_ns",
            "host_mpps", "offload_over_host", "board_mpps", "host_error", "mismatches"} <= \
        set(entry)
    assert entry["verdicts"] == {"DROP": report["packets_run"]}
    cycles = entry["rtl"]["cycles_mean"]
    assert entry["offload_mpps"] == pytest.approx(40 / cycles, rel=1e-3)
    assert entry["board_mpps"] == min(entry["offload_mpps"], report["line_rate_mpps"])
    if KERNEL_OK:
        assert report["host"]["available"] and entry["host_ns"] is not None
        assert entry["offload_over_host"] == pytest.approx(
            entry["offload_mpps"] / entry["host_mpps"], rel=1e-2)
        assert other["host_error"].startswith("kernel rejected program unchecked: ")
        assert other["host_ns"] is None and other["offload_mpps"] is not None
    assert any("excludes driver, NIC" in note for note in report["notes"])


@pytest.mark.parametrize("args, message", [
    (["nope.o"], "bpfcore throughput: cannot read nope.o: No such file or directory"),
    (["firmware/build/drop.o", "--pcap", "README.md"], "bpfcore throughput: README.md: not a pcap "
     "or pcapng file"),
    (["firmware/build/drop.o", "--pcap", "x.pcap", "--seed", "1"], "bpfcore throughput: "
     "--count and --seed make generated traffic; they do not go with --pcap"),
])
def test_bad_input_gives_one_line(args, message):
    done = bpfcore("throughput", *args)
    assert done.returncode != 0
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert done.stderr.startswith(message), done.stderr
