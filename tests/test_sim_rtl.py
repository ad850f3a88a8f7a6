"""The CPU's Verilog in lockstep with the VM: the whole conformance suite in one simulator run,
injected bugs that the lockstep check must catch, and seeded random programs.

The simulator is BPFCORE_RTL_SIMULATOR (icarus or verilator; default icarus)."""

import os
import random

import pytest

from bpfcore import abi
from bpfcore.sim.load.asm import assemble
from bpfcore.sim.load.conformance import Case, cpi_summary, judge, load_cases, uses_div
from bpfcore.sim.load.program import Program

from conftest import CONFORMANCE

cpu = pytest.importorskip("bpfcore.hdl.cpu", reason="the CPU (hdl/cpu.py) is not there yet")

from bpfcore.sim.engines.rtl import RtlConformance  # noqa: E402

SIMULATOR = os.environ.get("BPFCORE_RTL_SIMULATOR", "icarus")


def test_conformance_suite_in_one_batch():
    cases = load_cases([CONFORMANCE])
    assert len(cases) == 313
    engine = RtlConformance(SIMULATOR)
    outcomes = engine.run_many(cases)
    failures = []
    for case, outcome in zip(cases, outcomes):
        ok, reason = judge(case, outcome)
        if not ok:
            failures.append(f"{case.name}: {reason}")
        else:
            assert outcome.retired >= 1 and outcome.cycles >= outcome.last_retire_cycle
    assert not failures, f"{len(failures)} failed:\n" + "\n".join(failures[:5])
    all_cpi, nodiv_cpi = cpi_summary([(o, uses_div(c.program)) for c, o in zip(cases, outcomes)])
    print(f"{SIMULATOR}: CPI all={all_cpi:.3f} nodiv={nodiv_cpi:.3f}")
    assert 1.0 <= nodiv_cpi < 10


# Programs at the edges that a wrong destination register or an off-by-one bounds check changes:
# loads and stores of the last byte in a region and of the first byte past it.
_EDGE_PROGRAMS = [
    ("last_packet_byte", "ldxb %r0, [%r1+7]\nexit", bytes(range(1, 9))),
    ("past_packet_end", "ldxb %r0, [%r1+8]\nexit", bytes(range(1, 9))),
    ("packet_word_at_end", "ldxw %r0, [%r1+4]\nexit", bytes(range(1, 9))),
    ("packet_word_past_end", "ldxw %r0, [%r1+5]\nexit", bytes(range(1, 9))),
    ("stack_top_byte", "stb [%r10-1], 7\nldxb %r0, [%r10-1]\nexit", b""),
    ("stack_past_top", "stb [%r10], 7\nmov %r0, 1\nexit", b""),
    ("stack_frame_bottom", "stdw [%r10-512], 9\nldxdw %r0, [%r10-512]\nexit", b""),
    ("stack_below_frame", "stdw [%r10-513], 9\nmov %r0, 1\nexit", b""),
    ("alu_chain", "mov %r3, 5\nadd %r3, 6\nmov %r0, %r3\nmul %r0, 3\nexit", b""),
]


def _edge_cases():
    return [Case(name, Program(assemble(text, name), name), mem, expected=0)
            for name, text, mem in _EDGE_PROGRAMS]


@pytest.mark.parametrize("bug", ["wrong_rd", "bounds_off_by_one"])
def test_lockstep_catches_an_injected_bug(bug):
    cases = _edge_cases()
    clean = RtlConformance(SIMULATOR).run_many(cases)
    assert [o.error for o in clean if o.error and "lockstep" in o.error] == []
    buggy = RtlConformance(SIMULATOR, inject_bug=bug).run_many(cases)
    caught = [(c.name, o.error) for c, o in zip(cases, buggy)
              if o.error and o.error.startswith("lockstep:")]
    assert caught, f"inject_bug={bug!r} went unnoticed"
    name, text = caught[0]
    assert "  vm: " in text and "  rtl: " in text and ">" in text


def test_random_programs_in_lockstep(seed):
    progen = pytest.importorskip("bpfcore.sim.gen.progen",
                                 reason="the program generator is not there yet")
    rng = random.Random(seed)
    cases = []
    for n in range(int(os.environ.get("BPFCORE_RTL_RANDOM", "45"))):
        # Hostile programs (faults of every kind, the unwind helper) and self-contained
        # verifier-style ones (loops, local calls, the stack).
        if n % 3:
            program = progen.generate(rng, profile="hostile", seed=(seed, n))
        else:
            program = progen.generate(rng, profile="kernel", ctx=False, seed=(seed, n))
        cases.append(Case(f"random-{seed}-{n}", program, program.packet, expected=0))
    outcomes = RtlConformance(SIMULATOR).run_many(cases)
    mismatches = [(c.name, o.error) for c, o in zip(cases, outcomes)
                  if o.error and (o.error.startswith("lockstep:") or o.error.startswith("rtl"))]
    assert not mismatches, (f"seed {seed}: {mismatches[0][0]}\n{mismatches[0][1]}\n"
                            f"program:\n" + "\n".join(
                                _disassembly(cases, mismatches[0][0])))


def _disassembly(cases, name):
    from bpfcore.sim.load.asm import disassemble
    case = next(c for c in cases if c.name == name)
    return disassemble(case.program.slots)


def test_budget_fault_matches():
    case = Case("loop", Program(assemble("mov %r0, 0\nloop:\nadd %r0, 1\nja loop\nexit")),
                b"", expected=0)
    outcome = RtlConformance(SIMULATOR, budget=50).run_many([case])[0]
    assert outcome.error is not None and outcome.error.startswith("fault BUDGET"), outcome.error
    assert outcome.retired == 51
    assert abi.DEFAULT_BUDGET > 50
