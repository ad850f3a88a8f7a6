"""Compare the VM's retire records with the RTL's, stopping at the first difference.

The report names the retirement, the pc and the differing fields, prints both records and the
disassembly around the pc (``bpfcore.sim.load.asm.disassemble``), so a mismatch can be acted on without
rerunning anything.
"""

from itertools import zip_longest

from bpfcore.isa import Kind, decode_slot, find_form
from bpfcore.sim.load.asm import disassemble

__all__ = ["instruction_starts", "disassembly_around", "first_mismatch"]


def instruction_starts(slots):
    """Slot index of every instruction (an ``lddw`` covers two slots), in the order
    :func:`disassemble` lists them."""
    starts = []
    pc = 0
    while pc < len(slots):
        starts.append(pc)
        insn = decode_slot(slots[pc])
        form = find_form(insn.opcode, insn.src, insn.off, insn.imm)
        pc += 2 if form is not None and form.kind == Kind.LDDW and pc + 1 < len(slots) else 1
    return starts


def disassembly_around(slots, pc, context=3):
    """Lines ``"  pc: text"`` for the instructions around slot ``pc``, the one at ``pc`` marked
    with ``>``."""
    lines = disassemble(slots)
    starts = instruction_starts(slots)
    if not starts:
        return ["  (empty program)"]
    index = max((i for i, start in enumerate(starts) if start <= pc), default=0)
    out = []
    for i in range(max(0, index - context), min(len(lines), index + context + 1)):
        mark = ">" if starts[i] == pc else " "
        out.append(f"  {mark}{starts[i]:5d}: {lines[i]}")
    return out


def first_mismatch(expected, actual, slots, what=("vm", "rtl")):
    """None when the record lists agree, else the report text of the first difference.

    Parameters
    ----------
    expected, actual : sequence of RetireRecord
        The reference's records (the VM's) and the design's.
    slots : list of int
        The program, for the disassembly.
    """
    ref, dut = what
    for index, (want, got) in enumerate(zip_longest(expected, actual)):
        if want == got:
            continue
        if got is None:
            head = (f"lockstep: {dut} stopped after {index} retirements, {ref} retires more "
                    f"(next at pc {want.pc})")
            pc, body = want.pc, [f"  {ref}: {want}", f"  {dut}: (nothing)"]
        elif want is None:
            head = (f"lockstep: {dut} retires more than the {index} of {ref} "
                    f"(extra at pc {got.pc})")
            pc, body = got.pc, [f"  {ref}: (nothing)", f"  {dut}: {got}"]
        else:
            head = (f"lockstep: retirement #{index} at pc {want.pc} differs in "
                    f"{', '.join(want.diff(got))}")
            pc, body = want.pc, [f"  {ref}: {want}", f"  {dut}: {got}"]
        return "\n".join([head] + body + disassembly_around(slots, pc))
    return None
