"""``bpfcore conformance``: run ``.data`` files or folders on an engine and print one line per file,
then the totals (and, on the RTL, cycles and CPI)."""

import sys

from bpfcore.errors import BpfcoreError
from bpfcore.sim.engines import engine_names, make_conformance_engine
from bpfcore.sim.load.conformance import Outcome, cpi_summary, judge, load_cases, uses_div

__all__ = ["run_conformance", "add_commands"]


def run_conformance(paths, engine_name="vm", simulator=None, out=None):
    """Run files and folders on an engine; print one line per file and the totals. Returns the
    number of failures."""
    out = out or sys.stdout
    cases = load_cases(paths)
    if not cases:
        raise BpfcoreError("no .data files found in " + ", ".join(map(str, paths)))
    engine = make_conformance_engine(engine_name, simulator)
    runnable = [case for case in cases if case.program is not None and not case.error]
    outcomes = dict(zip((id(c) for c in runnable), engine.run_many(runnable)))
    passed = failed = 0
    rows = []
    for case in cases:
        outcome = outcomes.get(id(case), Outcome())
        ok, reason = judge(case, outcome)
        timing = ""
        if outcome.cycles is not None:
            cpi = "-"
            if outcome.retired and outcome.retired > 1 and outcome.first_retire_cycle is not None:
                cpi = f"{(outcome.last_retire_cycle - outcome.first_retire_cycle) / (outcome.retired - 1):.3f}"
            timing = f" [cycles={outcome.cycles} retired={outcome.retired} cpi={cpi}]"
            rows.append((outcome, uses_div(case.program)))
        if ok:
            passed += 1
            print(f"PASS {case.name}{timing}", file=out)
        else:
            failed += 1
            print(f"FAIL {case.name}: {reason}{timing}", file=out)
    if rows:
        total_cycles = sum(o.cycles for o, _ in rows)
        total_retired = sum(o.retired or 0 for o, _ in rows)
        all_cpi, nodiv_cpi = cpi_summary(rows)
        fmt = lambda v: "n/a" if v is None else f"{v:.3f}"
        print(f"cycles={total_cycles} retired={total_retired}", file=out)
        print(f"CPI all={fmt(all_cpi)} nodiv={fmt(nodiv_cpi)}", file=out)
    print(f"{passed} passed, {failed} failed", file=out)
    return failed


def add_commands(subparsers):
    p = subparsers.add_parser("conformance", help="run conformance .data files on an engine")
    p.add_argument("paths", nargs="+", metavar="PATH", help=".data files or folders")
    p.add_argument("--engine", choices=engine_names("conformance"), default="vm",
                   help="where the cases run (default vm)")
    p.add_argument("--simulator", choices=("icarus", "verilator"), default=None,
                   help="RTL simulator (engine rtl)")
    p.set_defaults(func=_command)


def _command(args):
    if args.simulator and args.engine != "rtl":
        raise BpfcoreError("--simulator applies only to --engine rtl")
    failed = run_conformance(args.paths, args.engine, args.simulator)
    return 1 if failed else 0
