"""``bpfcore run`` and ``bpfcore maps dump``: XDP programs from ELF objects over pcap traffic.

``bpfcore run PROG.o --pcap IN.pcap`` runs the object's XDP program (``--section`` picks one by
section or function name) over every packet of the capture on an engine (``--engine vm`` or
``kernel``) and prints how many packets got each verdict; ``--json`` prints one JSON object
instead (verdict per packet, counts, final contents of every map); ``--out OUT`` writes the
packets that leave (TX, PASS, REDIRECT). A ``.pcapng`` output records the action and port of
each packet (one interface per port, the action in the packet comment); a ``.pcap`` output
holds the bytes only. ``--compare`` runs the capture on both engines instead and reports whether
they agree (verdicts, packets out, final maps), with the wall time of each; the exit status is 1
when they differ.

``bpfcore maps dump PROG.o [--pcap IN.pcap]`` prints the maps of the object, after running the
packets when a capture is given.
"""

import json
import sys
import time

from bpfcore.errors import BpfcoreError
from bpfcore.sim.engines import SOC_PORTS, SOC_SYNC_MHZ, engine_names, make_engine
from bpfcore.sim.load.elf import load_elf
from bpfcore.sim.load.mapfile import load_map_file, parse_map_setting
from bpfcore.sim.load.pcap import read_pcap, write_pcap, write_pcapng
from bpfcore.sim.model.xdp import VERDICTS, compare_reports

__all__ = ["add_commands"]

def _clock(text):
    if text == "pcap":
        return text
    try:
        return int(text, 0)
    except ValueError:
        raise BpfcoreError(f"--clock {text!r}: give nanoseconds or 'pcap'") from None


def _engine_options(args):
    settings = []
    if args.maps:
        settings, entry = load_map_file(args.maps)
        if args.section is None:
            args.section = entry
    settings += [parse_map_setting(s) for s in args.set or ()]
    clock = _clock(args.clock)
    options = dict(seed=args.seed, clock=0 if clock == "pcap" else clock,
                   ingress_ifindex=args.ifindex, map_settings=settings,
                   simulator=getattr(args, "simulator", None))
    if (args.engine or "vm") == "soc":
        options.update(ports=getattr(args, "ports", None) or "0",
                       line_rate=getattr(args, "line_rate", False),
                       sync_mhz=getattr(args, "clock_mhz", None) or SOC_SYNC_MHZ)
    elif getattr(args, "ports", None) or getattr(args, "line_rate", False) or \
            getattr(args, "clock_mhz", None):
        raise BpfcoreError("--ports, --line-rate and --clock-mhz apply only to --engine soc")
    return options


def _run_report(args, packets, times_ns, engine_name=None):
    if getattr(args, "simulator", None) and (engine_name or args.engine) not in ("rtl", "soc"):
        raise BpfcoreError("--simulator chooses the simulator of --engine rtl or soc; add "
                           "--engine rtl")
    obj = load_elf(args.object)
    options = _engine_options(args)
    prog = obj.find(args.section)
    engine = make_engine(engine_name or args.engine or "vm", obj, prog, **options)
    try:
        return engine.run(packets, times_ns if args.clock == "pcap" else None)
    finally:
        engine.close()


#: Differences ``--compare`` prints (all of them go into ``--json``).
SHOWN_DIFFERENCES = 20


def _compare(args, packets, times):
    if args.engine or args.out:
        raise BpfcoreError(f"--compare runs both engines and writes no packets; drop "
                           f"{'--engine' if args.engine else '--out'}")
    reports, seconds = {}, {}
    for name in ("vm", "kernel"):
        start = time.perf_counter()
        reports[name] = _run_report(args, packets, times, name)
        seconds[name] = time.perf_counter() - start
    vm, kernel = reports["vm"], reports["kernel"]
    differences = compare_reports(vm, kernel)
    if args.json:
        print(json.dumps({
            "program": vm.program, "packets": len(packets), "identical": not differences,
            "engines": {name: {"counts": r.counts, "seconds": round(seconds[name], 3)}
                        for name, r in reports.items()},
            "differences": differences}, indent=1))
        return 1 if differences else 0
    verdict = f"{len(differences)} difference(s)" if differences else \
        "identical verdicts, packets out and maps"
    print(f"{vm.program}: {len(packets)} packets, vm and kernel: {verdict}")
    print(f"  {'':<9} {'vm':>7} {'kernel':>7}")
    for name in VERDICTS:
        if vm.counts[name] or kernel.counts[name] or name in ("PASS", "DROP"):
            print(f"  {name:<9} {vm.counts[name]:>7} {kernel.counts[name]:>7}")
    print(f"  {'seconds':<9} {seconds['vm']:>7.2f} {seconds['kernel']:>7.2f}")
    for line in differences[:SHOWN_DIFFERENCES]:
        print(f"  differs: {line}")
    if len(differences) > SHOWN_DIFFERENCES:
        print(f"  differs: ... and {len(differences) - SHOWN_DIFFERENCES} more")
    return 1 if differences else 0


def _run(args):
    packets, times = read_pcap(args.pcap, with_times=True)
    if args.compare:
        return _compare(args, packets, times)
    report = _run_report(args, packets, times)
    if args.out:
        ports = report.ports or [p.port for p in report.packets]
        leaving = [(p.data, p.action, port) for p, port in zip(report.packets, ports)
                   if p.data is not None and port is not None]
        if args.out.endswith(".pcapng"):
            write_pcapng(args.out, leaving)
        else:
            write_pcap(args.out, [data for data, _, _ in leaving])
    cycles = report.cycles
    if args.json:
        out = report.to_json()
        if cycles is not None:
            out["cycles_per_packet"] = cycles
        print(json.dumps(out, indent=1))
        return 0
    print(f"{report.program} on {report.engine}: {len(report.packets)} packets")
    if cycles:
        print(f"  cycles    {sum(cycles)} for {len(cycles)} packets run on the core: "
              f"{sum(cycles) / len(cycles):.1f} per packet (min {min(cycles)}, max "
              f"{max(cycles)}), {sum(report.retired)} instructions, "
              f"{sum(cycles) / max(1, sum(report.retired)):.2f} cycles per instruction")
        if args.per_packet:
            for index, (c, n) in enumerate(zip(cycles, report.retired)):
                print(f"  packet {index}: {c} cycles, {n} instructions")
    for name, count in report.counts.items():
        if count or name in ("PASS", "DROP", "TX"):
            print(f"  {name:<9} {count}")
    if report.counters:
        names = list(report.counters["total"])
        print("  counters  " + " ".join(f"{name:>9}" for name in names))
        for where, counters in report.counters.items():
            print(f"  {where:<9} " + " ".join(f"{counters[name]:>9}" for name in names))
    if report.rates:
        print(f"  offered   {report.rates['offered_mpps']} Mpps, sustained "
              f"{report.rates['sustained_mpps']} Mpps")
    notes = [p.message for p in report.packets if p.message]
    for note in notes[:5]:
        print(f"  note: {note}")
    if len(notes) > 5:
        print(f"  note: ... and {len(notes) - 5} more")
    for line in report.log[:20]:
        print(f"  trace: {line.rstrip()}")
    return 0


def _maps_dump(args):
    if args.pcap:
        packets, times = read_pcap(args.pcap, with_times=True)
        maps = _run_report(args, packets, times).maps
    else:
        obj = load_elf(args.object)
        options = _engine_options(args)
        engine = make_engine(args.engine or "vm", obj, obj.find(args.section), **options)
        try:
            maps = engine.dump_maps()
        finally:
            engine.close()
    if args.json:
        print(json.dumps(maps, indent=1))
        return 0
    for name, m in maps.items():
        print(f"{name}: {m['type']}, key {m['key_size']} B, value {m['value_size']} B, "
              f"{m['max_entries']} entries max, {len(m['entries'])} shown")
        for entry in m["entries"]:
            print(f"  {entry['key']} = {entry['value']}")
    return 0


def _common(p):
    p.add_argument("object", help="BPF ELF object (clang -target bpf -g -c)")
    p.add_argument("--section", help="program to run: section or function name "
                                     "(default: section xdp, else the first program)")
    p.add_argument("--engine", choices=engine_names("xdp"),
                   help="where to run it (default: vm)")
    p.add_argument("--maps", metavar="FILE.json",
                   help="initial map entries (bpfcore-maps/1, e.g. firmware/NAME.maps.json); "
                        "its \"entry\" is the default --section")
    p.add_argument("--set", action="append", metavar="MAP:KEYHEX=VALUEHEX",
                   help="write a map entry before the first packet (repeatable)")
    p.add_argument("--seed", type=int, default=1, help="get_prandom_u32 seed (vm)")
    p.add_argument("--clock", default="0",
                   help="ktime_get_ns value in ns, or 'pcap' for each packet's capture time (vm)")
    p.add_argument("--ifindex", type=int, default=1,
                   help="ingress ifindex in xdp_md (default 1, the kernel test run's loopback)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--simulator", choices=("icarus", "verilator"),
                   help="simulator of --engine rtl (default icarus) or soc (default verilator)")


def add_commands(subparsers):
    p = subparsers.add_parser("run", help="run an XDP program over a pcap",
                              description=f"Verdicts: {', '.join(VERDICTS)}.")
    _common(p)
    p.add_argument("--pcap", required=True, help="input packets (pcap or pcapng, Ethernet)")
    p.add_argument("--out", help="write the packets that leave (.pcapng keeps action and port)")
    p.add_argument("--per-packet", action="store_true",
                   help="with --engine rtl: cycles and instructions of every packet run")
    p.add_argument("--ports", choices=SOC_PORTS,
                   help="--engine soc: the board port(s) the capture enters (default 0; both: "
                        "packet i on port i %% 2)")
    p.add_argument("--line-rate", action="store_true",
                   help="--engine soc: offer the frames back to back at 1 Gb/s (default: one "
                        "at a time) and report offered and sustained packet rates")
    p.add_argument("--clock-mhz", type=float, metavar="F",
                   help=f"--engine soc: the core clock simulated (default {SOC_SYNC_MHZ})")
    p.add_argument("--compare", action="store_true",
                   help="run on both engines (vm, kernel) and report whether verdicts, packets "
                        "out and maps agree, and each engine's time; exit status 1 if not")
    p.set_defaults(func=_run)
    p = subparsers.add_parser("maps", help="inspect the maps of an XDP object")
    sub = p.add_subparsers(dest="maps_command", metavar="ACTION")
    sub.required = True
    d = sub.add_parser("dump", help="print map contents (after running --pcap, if given)")
    _common(d)
    d.add_argument("--pcap", help="run these packets first")
    d.set_defaults(func=_maps_dump)


def main(argv=None):
    from bpfcore.cli import main as cli_main
    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
