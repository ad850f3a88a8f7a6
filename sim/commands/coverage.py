"""``bpfcore coverage``: which instruction forms a corpus executes, and which it never does.

STYLE.md lesson 7: one corpus for every target, and a report of the opcodes no test exercises.
Coverage is dynamic: a form counts when the golden VM retires it while running the corpus.
"""

from collections import Counter

from bpfcore.isa import FORMS, Group, Kind, Source, decode_slot, find_form
from bpfcore.sim.load.conformance import load_cases, run_case_vm

__all__ = ["form_coverage", "add_commands"]


def form_coverage(cases):
    """Counter of executed forms (by ``Form``) over the cases' VM runs."""
    executed = Counter()

    def on_retire(record):
        insn = decode_slot(record.insn)
        executed[find_form(insn.opcode, insn.src, insn.off, insn.imm)] += 1

    for case in cases:
        if case.program is not None and not case.error:
            run_case_vm(case.program, case.mem, on_retire=on_retire)
    return executed


def _name(form):
    register = form.kind in (Kind.ALU, Kind.JCOND) and form.source == Source.X
    return form.mnemonic + (" (register form)" if register else "")


def add_commands(subparsers):
    p = subparsers.add_parser("coverage", help="report the instruction forms a corpus never runs")
    p.add_argument("paths", nargs="+", metavar="PATH", help=".data files or folders")
    p.set_defaults(func=_command)


def _command(args):
    executed = form_coverage(load_cases(args.paths))
    for group in Group:
        forms = [form for form in FORMS if form.group == group]
        hit = [form for form in forms if executed[form]]
        missing = sorted({_name(form) for form in forms if not executed[form]})
        print(f"{group.value:<9} {len(hit):3d}/{len(forms):<3d} forms executed"
              + (f"; never: {', '.join(missing)}" if missing else ""))
    return 0
