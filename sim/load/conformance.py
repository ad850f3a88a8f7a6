"""The conformance suite: ``.data`` files, the conformance profile, and judging outcomes.

A ``.data`` file (format in ``shared/conformance/README.md``) holds a program (``-- asm`` or
``-- raw``), optional input memory (``-- mem``) and the expected ``r0`` (``-- result``) or an
expected failure (``-- error``). The *conformance profile* runs it with the ``mem`` bytes as the
packet: r1 = their address, r2 = their length, and helper 5 is the suite's "unwind" helper.

Engines (:mod:`bpfcore.sim.engines`, ``make_conformance_engine``) run batches of cases: an
engine's ``run_many(cases)`` returns one :class:`Outcome` per case; ``bpfcore conformance``
(:mod:`bpfcore.sim.commands.conformance`) prints them.
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from bpfcore import abi
from bpfcore.errors import AsmError, BpfcoreError, ProgramError
from bpfcore.sim.load.asm import assemble
from bpfcore.sim.load.program import Program
from bpfcore.sim.model.vm import Halt, Vm

__all__ = ["Case", "Outcome", "parse_data", "load_cases", "conformance_helpers",
           "conformance_start", "run_case_vm", "uses_div", "judge", "cpi_summary"]


@dataclass
class Case:
    """One conformance test.

    Members
    -------
    name : str
    program : Program or None
        None when the program text could not be assembled (``error`` says why).
    mem : bytes
    expected : int or None
        Expected r0, or None when the file expects an error.
    expect_error : str or None
        The ``-- error`` text, when the file has one.
    error : str or None
        Why the file itself could not be read (a parse or assembly error).
    """
    name: str
    program: Optional[Program]
    mem: bytes = b""
    expected: Optional[int] = None
    expect_error: Optional[str] = None
    error: Optional[str] = None


@dataclass
class Outcome:
    """What an engine reports for one case.

    ``error`` holds the load or run failure (rejection, fault, lockstep mismatch), else None.
    Cycle figures are None for engines without cycles (the VM). ``retirements`` lists
    ``(cycle, RetireRecord)`` for each retirement, the cycle counted from the start (the RTL
    engine); the first and last retirement cycles follow from it.
    """
    r0: Optional[int] = None
    error: Optional[str] = None
    cycles: Optional[int] = None
    retired: Optional[int] = None
    uses_div: bool = False
    retirements: Optional[list] = None
    extra: dict = field(default_factory=dict)

    @property
    def first_retire_cycle(self):
        return self.retirements[0][0] if self.retirements else None

    @property
    def last_retire_cycle(self):
        return self.retirements[-1][0] if self.retirements else None


def _sections(text):
    sections = {}
    current = None
    for line in text.splitlines():
        if line.startswith("--"):
            current = line[2:].strip()
            sections[current] = []
        elif current is not None:
            sections[current].append(line)
    return sections


def _number(text):
    text = text.strip()
    return int(text, 16) if text.lower().startswith("0x") else int(text, 10)


def parse_data(text, name="<input>"):
    """Parse the text of one ``.data`` file into a :class:`Case` (errors land in ``case.error``)."""
    sections = _sections(text)
    program = None
    try:
        if "raw" in sections:
            slots = [_number(line.split("#", 1)[0]) for line in sections["raw"]
                     if line.split("#", 1)[0].strip()]
            program = Program(slots, name)
        elif "asm" in sections:
            program = Program(assemble("\n".join(sections["asm"]), name), name)
        else:
            return Case(name, None, error=f"{name}: no '-- asm' or '-- raw' section")
        mem = bytes.fromhex(" ".join(line.split("#", 1)[0] for line in sections.get("mem", [])))
        expected = None
        if "result" in sections:
            values = [line.split("#", 1)[0].strip() for line in sections["result"]]
            values = [v for v in values if v]
            if len(values) != 1:
                return Case(name, program, error=f"{name}: '-- result' must hold one number")
            expected = _number(values[0]) & 0xffff_ffff_ffff_ffff
        expect_error = None
        if "error" in sections:
            expect_error = " ".join(line.strip() for line in sections["error"]).strip()
        if expected is None and expect_error is None:
            return Case(name, program, error=f"{name}: no '-- result' or '-- error' section")
        return Case(name, program, mem, expected, expect_error)
    except AsmError as error:
        return Case(name, None, error=str(error))
    except ValueError as error:
        return Case(name, program, error=f"{name}: {error}")


def load_cases(paths):
    """Cases from files and folders (folders: every ``*.data`` inside, sorted by name)."""
    files = []
    for path in paths:
        path = Path(path)
        if path.is_dir():
            files.extend(sorted(path.glob("*.data")))
        elif path.exists():
            files.append(path)
        else:
            raise BpfcoreError(f"{path}: no such file or folder")
    cases = []
    for path in files:
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as error:
            cases.append(Case(path.name, None, error=f"{path}: cannot read: {error}"))
            continue
        cases.append(parse_data(text, str(path.name)))
    return cases


def _unwind(vm, r1, r2, r3, r4, r5):
    if r1 == 0:
        raise Halt(0)
    return r1


def conformance_helpers():
    """Helpers of the conformance profile: id 5 is the suite's "unwind" helper."""
    return {abi.CONFORMANCE_UNWIND_HELPER: _unwind}


def conformance_start(mem):
    """(r1, r2) of the conformance profile for input memory ``mem``."""
    if not mem:
        return 0, 0
    return abi.PKT_BASE + abi.PKT_HEADROOM, len(mem)


def run_case_vm(program, mem, *, on_retire=None, budget=abi.DEFAULT_BUDGET):
    """Run a program in the conformance profile on the VM; return an :class:`Outcome`."""
    try:
        vm = Vm(program, helpers=conformance_helpers(), budget=budget, on_retire=on_retire)
    except ProgramError as error:
        return Outcome(error=f"rejected: {error}")
    r1, r2 = conformance_start(mem)
    result = vm.run(r1=r1, r2=r2, packet=mem)
    if not result.ok:
        return Outcome(error=f"fault {result.fault.name}: {result.message}",
                       retired=result.retired)
    return Outcome(r0=result.r0, retired=result.retired)


def uses_div(program):
    from bpfcore.isa import AluOp, Kind
    for insn in program.insns:
        form = insn.form
        if form is not None and form.kind == Kind.ALU and form.alu_op in (AluOp.DIV, AluOp.MOD):
            return True
    return False


def judge(case, outcome):
    """(passed, reason) for one case and the engine's outcome."""
    if case.error:
        return False, case.error
    if case.expect_error is not None:
        if outcome.error:
            return True, ""
        return False, f"expected an error ({case.expect_error}), got r0={outcome.r0:#x}"
    if outcome.error:
        return False, outcome.error
    if outcome.r0 != case.expected:
        return False, f"r0={outcome.r0:#x}, expected {case.expected:#x}"
    return True, ""


def cpi_summary(rows):
    """``(all, nodiv)`` CPI over rows of (outcome, uses_div); None where nothing counts."""
    def cpi(selected):
        span = sum(o.last_retire_cycle - o.first_retire_cycle for o in selected)
        steps = sum(o.retired - 1 for o in selected)
        return span / steps if steps else None
    timed = [(o, d) for o, d in rows
             if o.first_retire_cycle is not None and o.retired and o.retired > 1]
    return cpi([o for o, _ in timed]), cpi([o for o, d in timed if not d])
