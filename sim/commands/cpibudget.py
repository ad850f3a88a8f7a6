"""``bpfcore cpi-budget``: how many cycles a deeper pipeline could add before the conformance
suite's CPI passes its limits, counted from the programs' own traces.

The CPU's CPI is measured on the RTL (``bpfcore conformance --engine rtl``); this command puts
beside it what a faster pipeline would cost, from the retire records of the same runs:

* **branches**: the conditional branches retired, and those the CPU's predictor gets wrong (the
  last outcome of the branch at the same pc modulo ``BHT_ENTRIES`` in this run, else static:
  backward taken, forward not taken; :func:`mispredictions` models it and checks it against
  the RTL's own cycles: a branch the model calls wrong is followed by a gap of at least 3
  cycles, one it calls right by a gap of 1 unless the next instruction stalls on its own);
  ``first`` counts those wrong on the branch's first run, where no history can help;
* **load_use_1/2**: loads (and atomics that fetch) whose result the next / second-next
  instruction reads;
* **alu_use_1**, **shift_use_1**: ALU results (shifts included) and shift results the next
  instruction reads.

From them, for each CPI limit (all files 1.5, files without div/mod 1.25):

* ``budget``: cycles the pipeline may add to today's measured span, limit x intervals - span;
* ``registered_memory``: the span of a pipeline whose data memory output goes into a register
  before the load alignment (what a 100 MHz clock asks of the ECP5 block RAM, see
  ``hdl/README.md``), with every branch predicted right: today's span - 2 x mispredictions +
  load_use_1 + load_use_2. It is a lower bound: nothing else is slower;
* ``mispredictions_allowed``: how many 2-cycle mispredictions that pipeline could still afford
  within the limit (today's CPU makes ``mispredicted``);
* ``best_static_mispredicted``: the mispredictions of the best predictor that takes a branch's
  first run from its opcode and the sign of its offset (each such class predicted the way most
  of its first runs go in these very programs, so no rule of that kind does better here) and
  later runs from the CPU's history; ``fitted_offset_mispredicted`` the same with the exact
  offset in place of its sign (a table that remembers the suite rather than a rule).
"""

import json
import sys
from collections import Counter
from pathlib import Path

from bpfcore.errors import BpfcoreError
from bpfcore.hdl.units.predictor import BHT_ENTRIES
from bpfcore.hdl.decoder import operand_roles
from bpfcore.isa import AluOp, Kind, decode_slot
from bpfcore.sim.load.conformance import judge, load_cases, uses_div

__all__ = ["LIMITS", "MISPREDICT_CYCLES", "reads", "mispredictions", "hazards",
           "check_predictor", "budget", "collect", "summarise"]

#: Selection -> the CPI limit of the CPU issue.
LIMITS = {"all": 1.5, "nodiv": 1.25}

#: Cycles a mispredicted branch costs today's CPU (execute's registered redirect, then fetch).
MISPREDICT_CYCLES = 2

#: Instructions that stall in execute on their own (multi-cycle units, or calls and returns
#: that wait for older instructions): the gap before them says nothing about a branch.
_SELF_STALLING_ALU = (AluOp.MUL, AluOp.DIV, AluOp.MOD)
_SELF_STALLING_KINDS = (Kind.CALL, Kind.CALLX, Kind.CALL_LOCAL, Kind.EXIT, Kind.ATOMIC)


def _register(role, insn):
    if role is None or isinstance(role, int):
        return role
    return insn.dst if role == "dst" else insn.src


def reads(insn):
    """The registers instruction ``insn`` (:class:`bpfcore.isa.Insn`) reads as operands
    (:func:`bpfcore.hdl.decoder.operand_roles`); an empty set for an unknown slot."""
    form = insn.form
    if form is None:
        return set()
    ra, rb, _, use_r0 = operand_roles(form)
    regs = {_register(ra, insn), _register(rb, insn)} - {None}
    return regs | {0} if use_r0 else regs


def _self_stalling(insn):
    form = insn.form
    if form is None:
        return False
    return form.kind in _SELF_STALLING_KINDS or \
        (form.kind == Kind.ALU and form.alu_op in _SELF_STALLING_ALU)


def mispredictions(records):
    """``[(index, mispredicted, first)]`` for each conditional branch in ``records`` (retire
    records of one run) that has a successor, as the CPU's predictor sees them."""
    history = {}
    seen = set()
    result = []
    for index, (record, after) in enumerate(zip(records, records[1:])):
        insn = decode_slot(record.insn)
        if insn.form is None or insn.form.kind != Kind.JCOND:
            continue
        taken = after.pc != record.pc + 1
        slot = record.pc % BHT_ENTRIES
        predicted = history.get(slot, insn.off < 0)
        result.append((index, predicted != taken, record.pc not in seen))
        seen.add(record.pc)
        history[slot] = taken
    return result


def hazards(records):
    """A :class:`Counter` of the quantities in this module's docstring for one run."""
    counts = Counter()
    decoded = [decode_slot(record.insn) for record in records]
    for index, mispredicted, first in mispredictions(records):
        counts["branches"] += 1
        counts["mispredicted"] += mispredicted
        counts["mispredicted_first"] += mispredicted and first
        if first:
            insn = decoded[index]
            taken = records[index + 1].pc != records[index].pc + 1
            counts[("first_run", insn.opcode, insn.off < 0, taken)] += 1
            counts[("first_run_offset", insn.opcode, insn.off, taken)] += 1
    for index, (record, insn) in enumerate(zip(records, decoded)):
        form = insn.form
        if record.rd is None or form is None:
            continue
        for distance, reader in enumerate(decoded[index + 1:index + 3], 1):
            if record.rd not in reads(reader):
                continue
            if form.kind in (Kind.LOAD, Kind.LOADSX, Kind.ATOMIC):
                counts[f"load_use_{distance}"] += 1
            elif form.kind == Kind.ALU and distance == 1:
                counts["alu_use_1"] += 1
                if form.alu_op in (AluOp.LSH, AluOp.RSH, AluOp.ARSH):
                    counts["shift_use_1"] += 1
            break
    return counts


def check_predictor(records, retire_cycles):
    """``(checked, disagreements)``: the branches whose gap on the RTL says whether the CPU
    mispredicted them, and a message for each where :func:`mispredictions` says otherwise."""
    checked = 0
    disagreements = []
    for index, mispredicted, _ in mispredictions(records):
        gap = retire_cycles[index + 1] - retire_cycles[index]
        if _self_stalling(decode_slot(records[index + 1].insn)):
            continue
        checked += 1
        if mispredicted != (gap >= 1 + MISPREDICT_CYCLES):
            disagreements.append(f"branch at pc {records[index].pc}: the model says "
                                 f"{'mis' if mispredicted else ''}predicted, the RTL's next "
                                 f"retirement came {gap} cycles later")
    return checked, disagreements


def _fitted(total, name):
    """First runs mispredicted by the best rule over the classes counted as ``name``: each
    class predicted the way most of its first runs went in these very programs."""
    classes = {key[1:3] for key in total if isinstance(key, tuple) and key[0] == name}
    return sum(min(total[(name, *c, True)], total[(name, *c, False)]) for c in classes)


def budget(rows):
    """Totals per selection from ``rows`` of ``(hazard Counter, span, intervals, uses_div)``:
    ``{"all": {...}, "nodiv": {...}}`` with the counters, ``span``, ``intervals``, ``cpi``,
    ``limit``, ``budget``, ``registered_memory``, its ``registered_memory_cpi`` and
    ``mispredictions_allowed``."""
    out = {}
    for selection, limit in LIMITS.items():
        total = Counter()
        for counts, span, intervals, div in rows:
            if selection == "nodiv" and div:
                continue
            total.update(counts)
            total["span"] += span
            total["intervals"] += intervals
        figures = {key: total[key] for key in
                   ("intervals", "span", "branches", "mispredicted", "mispredicted_first",
                    "load_use_1", "load_use_2", "shift_use_1", "alu_use_1")}
        intervals = figures["intervals"] or 1
        ceiling = limit * figures["intervals"]
        registered = (figures["span"] - MISPREDICT_CYCLES * figures["mispredicted"]
                      + figures["load_use_1"] + figures["load_use_2"])
        figures.update(
            best_static_mispredicted=_fitted(total, "first_run") + figures["mispredicted"]
            - figures["mispredicted_first"],
            fitted_offset_mispredicted=_fitted(total, "first_run_offset")
            + figures["mispredicted"]
            - figures["mispredicted_first"],
            cpi=figures["span"] / intervals, limit=limit,
            budget=int(ceiling - figures["span"]),
            registered_memory=registered,
            registered_memory_cpi=registered / intervals,
            mispredictions_allowed=max(0, int((ceiling - registered) // MISPREDICT_CYCLES)))
        out[selection] = figures
    return out


def collect(paths, simulator="icarus"):
    """Run the conformance files under ``paths`` on the RTL (in lockstep with the VM); return
    ``[(name, records, retire_cycles, uses_div)]`` for each run with two retirements or more.
    Raises :class:`BpfcoreError` for a file that does not parse or a case that fails: the
    budget of a partial suite means nothing."""
    from bpfcore.sim.engines.rtl import RtlConformance
    cases = load_cases(paths)
    for case in cases:
        if case.error or case.program is None:
            raise BpfcoreError(case.error or f"{case.name}: no program")
    if not cases:
        raise BpfcoreError("no .data files found in " + ", ".join(map(str, paths)))
    runs = []
    for case, outcome in zip(cases, RtlConformance(simulator=simulator).run_many(cases)):
        passed, reason = judge(case, outcome)
        if not passed:
            raise BpfcoreError(f"{case.name}: {reason}")
        if outcome.retirements and len(outcome.retirements) > 1:
            cycles, records = zip(*outcome.retirements)
            runs.append((case.name, list(records), list(cycles), uses_div(case.program)))
    return runs


def summarise(runs):
    """``(budget(...), predictor_checked, disagreements)`` over :func:`collect`'s runs."""
    rows = []
    checked = 0
    disagreements = []
    for name, records, cycles, div in runs:
        rows.append((hazards(records), cycles[-1] - cycles[0], len(records) - 1, div))
        n, found = check_predictor(records, cycles)
        checked += n
        disagreements += [f"{name}: {message}" for message in found]
    return budget(rows), checked, disagreements


def add_commands(subparsers):
    p = subparsers.add_parser(
        "cpi-budget", help="the cycles a deeper pipeline may add before the conformance CPI "
                           "passes its limits (RTL and VM traces)")
    p.add_argument("paths", nargs="+", type=Path, help=".data files or folders")
    p.add_argument("--simulator", choices=("icarus", "verilator"), default="icarus")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_command)


def _command(args):
    figures, checked, disagreements = summarise(collect(args.paths, args.simulator))
    if args.json:
        print(json.dumps({"predictor_checked": checked,
                          "predictor_disagreements": len(disagreements), **figures}))
    else:
        for selection, row in figures.items():
            print(f"{selection}: CPI {row['cpi']:.3f} (limit {row['limit']}), span "
                  f"{row['span']} cycles over {row['intervals']} intervals; budget "
                  f"{row['budget']} cycles")
            print(f"  branches {row['branches']}, mispredicted {row['mispredicted']} "
                  f"({row['mispredicted_first']} on a first run); load result used at distance "
                  f"1: {row['load_use_1']}, 2: {row['load_use_2']}; shift result used next: "
                  f"{row['shift_use_1']}; ALU result used next: {row['alu_use_1']}")
            print(f"  registered memory output, every branch right: span "
                  f"{row['registered_memory']} (CPI {row['registered_memory_cpi']:.3f}); "
                  f"2-cycle mispredictions it can afford: {row['mispredictions_allowed']}; "
                  f"the best opcode-and-direction rule for first runs, fitted to these "
                  f"programs, mispredicts {row['best_static_mispredicted']} (by opcode and "
                  f"exact offset: {row['fitted_offset_mispredicted']})")
        print(f"predictor model against the RTL: {checked} branches checked, "
              f"{len(disagreements)} disagree")
    for message in disagreements[:10]:
        print(message, file=sys.stderr)
    return 1 if disagreements else 0
