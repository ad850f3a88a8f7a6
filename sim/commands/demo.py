"""``bpfcore demo`` (``make demo``): the project end to end, in about two minutes.

1. builds the firmware (``firmware/build.py``) if any object is missing or stale;
2. generates a small mixed capture (``bpfcore gen-traffic``) into ``build/demo/``;
3. runs a firmware program with maps (``firewall``, with its ``firewall.maps.json``) on the golden
   VM and in the Linux kernel, and compares verdicts, packets out and final maps (what
   ``bpfcore run --compare`` does);
4. sends the capture through the simulated board (``--engine soc``: two Ethernet ports, the
   packet datapath and the XDP core, frames entering on both ports) with ``firewall``, checked
   against the VM, and shows the board's counters and the frames out per port;
5. runs every firmware program and the assembly ``l2_filter.s`` on the cycle-accurate CPU in
   lockstep with the VM (those with maps or helper calls on the XDP core: CPU, map memory and
   helper units, with their map files), times them in the kernel, and prints the
   offloaded-vs-host throughput table (``bpfcore throughput``).

Progress lines go to stdout as each step starts. The last line is ``demo: VM, board, RTL and
kernel agree`` (without ``bpf()``, the kernel is left out); the exit status is 1 when any two
engines disagree.
"""

import subprocess
import sys
import time
from pathlib import Path

from bpfcore.errors import BpfcoreError
from bpfcore.sim.gen.traffic import generate
from bpfcore.sim.load.pcap import write_pcap

__all__ = ["add_commands", "FIRMWARE", "MAPS_PROGRAM", "OFFLOAD_PROGRAMS"]

FIRMWARE = Path(__file__).resolve().parents[2] / "firmware"
#: The program with maps that step 3 runs on the VM and in the kernel.
MAPS_PROGRAM = "firewall"
#: The programs of step 4 (relative to ``firmware/``): every firmware program, then assembly.
OFFLOAD_PROGRAMS = ("build/pass.o", "build/drop.o", "build/l3_filter.o", "build/counter.o",
                    "build/firewall.o", "build/echo.o", "build/lb.o", "build/ratelimit.o",
                    "build/calls.o", "build/tailcall.o", "asm/l2_filter.s")
DEMO_PACKETS = 48
DEMO_SEED = 1


def add_commands(subparsers):
    from bpfcore.sim.rtl.runner import SIMULATORS
    p = subparsers.add_parser(
        "demo", help="build firmware, run it on the VM, the kernel and the RTL CPU, and compare "
                     "offloaded with host throughput",
        description="Builds the firmware, generates a capture, compares a program with maps on "
                    "the VM and in the kernel, then runs every program on the cycle-accurate "
                    "CPU (with map memory and helper units) in lockstep with the VM and prints "
                    "the throughput table.")
    p.add_argument("--count", type=int, default=DEMO_PACKETS,
                   help=f"packets in the capture (default {DEMO_PACKETS})")
    p.add_argument("--simulator", choices=SIMULATORS, default="icarus",
                   help="RTL simulator (default icarus: the fastest to build cold)")
    p.add_argument("--clock-mhz", type=float, metavar="F",
                   help="CPU clock for the offload figures (default: from the synthesis cache)")
    p.set_defaults(func=_demo)


class _Steps:
    def __init__(self, total):
        self.total = total
        self.n = 0
        self.t0 = time.perf_counter()

    def __call__(self, text):
        self.n += 1
        print(f"[{self.n}/{self.total}] {text}  (t={time.perf_counter() - self.t0:.0f} s)",
              flush=True)

    def note(self, text):
        print(f"      {text}", flush=True)


def _build_firmware(step):
    step("firmware: building firmware/*.c with firmware/build.py")
    done = subprocess.run([sys.executable, str(FIRMWARE / "build.py"), "--quiet"],
                          capture_output=True, text=True)
    if done.returncode != 0:
        first = (done.stderr.strip().splitlines() or ["no output"])[0]
        raise BpfcoreError(f"firmware build failed: {first}")
    objects = sorted(p.name for p in (FIRMWARE / "build").glob("*.o"))
    step.note(f"{len(objects)} objects in firmware/build: {', '.join(objects)}")


def _maps_program(step, frames):
    from bpfcore.sim.load.elf import load_elf
    from bpfcore.sim.load.kernel import kernel_available
    from bpfcore.sim.model.xdp import compare_reports
    from bpfcore.sim.load.mapfile import load_map_file
    from bpfcore.sim.engines import run_packets
    name = MAPS_PROGRAM
    step(f"maps: {name}.o with firmware/{name}.maps.json on the golden VM and in the kernel")
    obj = load_elf(FIRMWARE / "build" / f"{name}.o")
    settings, entry = load_map_file(FIRMWARE / f"{name}.maps.json")
    prog = obj.find(entry)
    vm = run_packets(obj, prog, frames, "vm", map_settings=settings)
    counts = ", ".join(f"{k} {v}" for k, v in vm.counts.items() if v)
    ok, why = kernel_available()
    if not ok:
        step.note(f"vm: {counts}; kernel skipped: {why}")
        return True
    kernel = run_packets(obj, prog, frames, "kernel", map_settings=settings)
    differences = compare_reports(vm, kernel)
    entries = sum(len(m["entries"]) for m in vm.maps.values())
    if differences:
        step.note(f"vm: {counts}; vm and kernel: {len(differences)} difference(s)")
        for line in differences[:5]:
            step.note(f"differs: {line}")
        return False
    step.note(f"vm and kernel agree on {len(frames)} verdicts ({counts}), the packets out and "
              f"{len(vm.maps)} maps ({entries} entries)")
    return True


def _board(step, frames):
    """Step 4: the capture through the simulated board; True when it agrees with the VM."""
    from bpfcore.sim.engines import run_packets
    from bpfcore.sim.load.elf import load_elf
    from bpfcore.sim.load.mapfile import load_map_file
    name = MAPS_PROGRAM
    step(f"board: {name}.o on the simulated SoC (Verilator; frames on both ports, in lockstep "
         f"with the VM)")
    obj = load_elf(FIRMWARE / "build" / f"{name}.o")
    settings, entry = load_map_file(FIRMWARE / f"{name}.maps.json")
    try:
        report = run_packets(obj, obj.find(entry), frames, "soc", map_settings=settings,
                             ports="both")
    except BpfcoreError as error:
        step.note(f"the board and the VM disagree: {error}")
        return False
    counters = report.counters
    names = ("received", "pass", "tx", "redirect", "drop", "aborted", "rejected", "no_buffer")
    step.note("counters " + " ".join(f"{n:>9}" for n in names))
    for where in ("port0", "port1", "total"):
        step.note(f"{where:<8} " + " ".join(f"{counters[where][n]:>9}" for n in names))
    out = [sum(1 for p in report.ports if p == port) for port in (0, 1)]
    step.note(f"frames out: port 0 {out[0]}, port 1 {out[1]}; every run, frame and map "
              f"agrees with the VM")
    return True


def _demo(args):
    from bpfcore.sim.commands.throughput import (format_table, load_subject, measure,
                                                 venv_tools_on_path)
    if args.count < 1:
        raise BpfcoreError(f"--count must be at least 1, not {args.count}")
    venv_tools_on_path()
    step = _Steps(5)
    _build_firmware(step)

    from bpfcore.sim.rtl.verilog import build_root
    folder = build_root() / "demo"
    folder.mkdir(parents=True, exist_ok=True)
    pcap = folder / "traffic.pcap"
    step(f"traffic: {args.count} mixed frames (seed {DEMO_SEED}) -> {pcap}")
    packets = generate(args.count, DEMO_SEED)
    write_pcap(pcap, packets)
    frames = [p.frame for p in packets]
    kinds = sorted({p.kind.split("+")[0] for p in packets})
    step.note(f"{sum(len(f) for f in frames)} bytes; kinds: {', '.join(kinds)}")

    maps_ok = _maps_program(step, frames)
    board_ok = _board(step, frames)

    subjects = [load_subject(FIRMWARE / path) for path in OFFLOAD_PROGRAMS]
    step(f"offload: {', '.join(s.name for s in subjects)} on the cycle-accurate CPU "
         f"({args.simulator}) in lockstep with the VM, and in the kernel")
    report = measure(subjects, frames, simulator=args.simulator, clock_mhz=args.clock_mhz,
                     source=str(pcap), progress=step.note)
    print()
    print("\n".join(format_table(report)))
    print()
    agree = maps_ok and board_ok and report["agree"]
    engines = "VM, board, RTL and kernel" if report["host"]["available"] else "VM, board and RTL"
    print(f"demo: {engines} agree" if agree else f"demo: {engines} DISAGREE (see above)")
    return 0 if agree else 1
