"""Programs as instruction slots, and their load-time validation.

A :class:`Program` is a list of 64-bit slots (the little-endian view of each 8-byte instruction).
:func:`validate` is the loader's check: every reason a program can be rejected before it runs is
here, and each rejection names the pc and the reason.
"""

from bpfcore import abi
from bpfcore.errors import ProgramError
from bpfcore.isa import (FORMS_BY_OPCODE, OPCODES, REG, SELECTORS, WREG, Kind, decode_slot,
                         find_form)

__all__ = ["Program", "validate", "jump_target"]


class Program:
    """An eBPF program: its instruction slots and a name for messages.

    Parameters
    ----------
    slots : list of int
        64-bit instruction slots, the little-endian view of the encoded bytes.
    name : str
        Where it came from (file name, ELF section), used in messages.
    """

    def __init__(self, slots, name=""):
        self.slots = [int(slot) & 0xffff_ffff_ffff_ffff for slot in slots]
        self.name = name
        self.insns = [decode_slot(slot) for slot in self.slots]
        self.forms = [find_form(i.opcode, i.src, i.off, i.imm) for i in self.insns]

    @classmethod
    def from_bytes(cls, data, name=""):
        if len(data) % 8:
            raise ProgramError(None, f"program is {len(data)} bytes long, not a multiple of 8",
                               name)
        return cls([int.from_bytes(data[i:i + 8], "little") for i in range(0, len(data), 8)],
                   name)

    def to_bytes(self):
        return b"".join(slot.to_bytes(8, "little") for slot in self.slots)

    def __len__(self):
        return len(self.slots)

    def __repr__(self):
        return f"Program({self.name or '<anonymous>'}, {len(self.slots)} slots)"


def jump_target(pc, insn, form):
    """Target slot of a jump or local call at ``pc``, or None for other instructions."""
    if form.kind in (Kind.JA, Kind.JCOND):
        return pc + 1 + insn.off
    if form.kind in (Kind.JA32, Kind.CALL_LOCAL):
        return pc + 1 + insn.imm
    return None


_FIELD_NAMES = {"dst": "dst register", "src": "src register", "off": "offset", "imm": "immediate"}


def _check_field(pc, form, field, value):
    rule = getattr(form, field)
    if form.allows(field, value):
        return
    name = _FIELD_NAMES[field]
    if rule == WREG and value == 10:
        raise ProgramError(pc, f"{form.mnemonic} writes r10, which is read-only")
    if rule in (REG, WREG):
        raise ProgramError(pc, f"{form.mnemonic}: invalid {name} r{value}")
    if rule == frozenset([0]):
        raise ProgramError(pc, f"{form.mnemonic}: reserved {name} field must be 0, is {value}")
    raise ProgramError(pc, f"{form.mnemonic}: invalid {name} {value}, allowed "
                           f"{', '.join(str(v) for v in sorted(rule))}")


def validate(program, helpers=frozenset(), n_maps=0, max_slots=abi.PROGRAM_MAX_SLOTS):
    """Check a program before it runs; raise :class:`ProgramError` on the first problem.

    Parameters
    ----------
    program : Program
    helpers : set of int
        Helper ids the platform provides; a ``call`` to any other id is rejected.
    n_maps : int
        Number of maps bound to the program; ``lddw`` map forms must name one of them.
    max_slots : int
        Size limit in slots.

    Returns
    -------
    list of bool
        For each slot, whether it starts an instruction (False for the second slot of ``lddw``).
    """
    n = len(program.slots)
    if n == 0:
        raise ProgramError(None, "empty program", program.name)
    if n > max_slots:
        raise ProgramError(None, f"program has {n} slots, more than the limit of {max_slots}",
                           program.name)
    try:
        starts = _check_instructions(program, helpers, n_maps)
        _check_targets(program, starts)
    except ProgramError as error:
        if program.name and not error.where:
            raise ProgramError(error.pc, error.reason, program.name) from None
        raise
    return starts


def _check_instructions(program, helpers, n_maps):
    n = len(program.slots)
    starts = [False] * n
    pc = 0
    last_kind = None
    while pc < n:
        insn = program.insns[pc]
        starts[pc] = True
        if insn.opcode not in OPCODES:
            raise ProgramError(pc, f"unknown opcode {insn.opcode:#04x}")
        form = find_form(insn.opcode, insn.src, insn.off, insn.imm)
        if form is None:
            raise ProgramError(pc, _no_form_reason(insn))
        for field in ("dst", "src", "off", "imm"):
            _check_field(pc, form, field, getattr(insn, field))
        if form.kind == Kind.CALL and insn.imm not in helpers:
            raise ProgramError(pc, f"call to unknown helper id {insn.imm}")
        if form.kind == Kind.CALL_BTF:
            raise ProgramError(pc, "helper calls by BTF id (call src 2) are not supported")
        if form.kind == Kind.LDDW:
            if pc + 1 >= n:
                raise ProgramError(pc, "lddw is truncated: its second slot is missing")
            hi = program.insns[pc + 1]
            if hi.opcode or hi.dst or hi.src or hi.off:
                raise ProgramError(pc + 1, "second slot of lddw must have opcode, registers "
                                           "and offset 0")
            if insn.src in (3, 4):
                raise ProgramError(pc, f"{form.mnemonic} (lddw src {insn.src}) is not supported")
            if insn.src != 0 and not 0 <= insn.imm < n_maps:
                raise ProgramError(pc, f"{form.mnemonic} refers to map {insn.imm}, but the "
                                       f"program has {n_maps} map(s)")
            pc += 2
        else:
            pc += 1
        last_kind = form.kind
    if last_kind not in (Kind.EXIT, Kind.JA, Kind.JA32):
        raise ProgramError(n - 1, "the last instruction is not exit or ja: control could fall "
                                  "off the end of the program")
    return starts


def _no_form_reason(insn):
    forms = FORMS_BY_OPCODE[insn.opcode]
    field = SELECTORS[insn.opcode][0]
    allowed = sorted(v for form in forms for v in getattr(form, field))
    value = getattr(insn, field)
    names = "/".join(sorted({form.mnemonic for form in forms}))
    return (f"opcode {insn.opcode:#04x} ({names}) has no form with {_FIELD_NAMES[field]} "
            f"{value}; allowed: {', '.join(str(v) for v in allowed)}")


def _check_targets(program, starts):
    n = len(program.slots)
    for pc, insn in enumerate(program.insns):
        if not starts[pc]:
            continue
        form = find_form(insn.opcode, insn.src, insn.off, insn.imm)
        target = jump_target(pc, insn, form)
        if target is None:
            continue
        what = "call" if form.kind == Kind.CALL_LOCAL else "jump"
        if not 0 <= target < n:
            raise ProgramError(pc, f"{what} target {target} is outside the program "
                                   f"(0..{n - 1})")
        if not starts[target]:
            raise ProgramError(pc, f"{what} target {target} is the second slot of lddw")
