"""Assembler and disassembler: the round trip over random legal instructions, and errors."""

import random

import pytest

from bpfcore.errors import AsmError
from bpfcore.isa import ANY, FORMS, REG, WREG, Kind, encode_slot
from bpfcore.sim.load.asm import assemble, disassemble

FIELD_BITS = {"dst": 4, "src": 4, "off": 16, "imm": 32}


def random_value(rng, rule, field):
    if rule == REG:
        return rng.randrange(11)
    if rule == WREG:
        return rng.randrange(10)
    if rule == ANY:
        bits = FIELD_BITS[field]
        return rng.choice([0, 1, -1, (1 << (bits - 1)) - 1, -(1 << (bits - 1)),
                           rng.randrange(-(1 << (bits - 1)), 1 << (bits - 1))])
    return rng.choice(sorted(rule))


def random_instruction(rng):
    form = rng.choice(FORMS)
    fields = {f: random_value(rng, getattr(form, f), f) for f in FIELD_BITS}
    slots = [encode_slot(form.opcode, **fields)]
    if form.kind == Kind.LDDW:
        slots.append(encode_slot(0, imm=rng.randrange(-(1 << 31), 1 << 31)))
    return slots


def test_round_trip_random_legal_instructions(seed):
    rng = random.Random(seed)
    for _ in range(3000):
        slots = random_instruction(rng)
        text = "\n".join(disassemble(slots))
        assert assemble(text) == slots, text


def test_every_form_round_trips():
    for form in FORMS:
        rng = random.Random(form.opcode)
        fields = {f: random_value(rng, getattr(form, f), f) for f in FIELD_BITS}
        slots = [encode_slot(form.opcode, **fields)]
        if form.kind == Kind.LDDW:
            slots.append(encode_slot(0, imm=0x1234))
        assert assemble("\n".join(disassemble(slots))) == slots, form.mnemonic


def test_syntax_variants():
    assert assemble("add64 %r0, 1") == assemble("add %r0, 1")
    assert assemble("swap16 %r3") == assemble("bswap16 %r3")
    assert assemble("call helper 5") == assemble("call 5")
    assert assemble("ldxw %r0, [%r1 + 0x10]") == assemble("ldxw %r0, [%r1+16]")
    assert assemble("mov %r0 1") == assemble("mov %r0, 1")
    # The first exit defines the label "exit"; labels count lddw as two slots.
    slots = assemble("jne %r0, 1, exit\nlddw %r0, 1\nexit\nexit")
    assert slots[0] >> 16 & 0xffff == 2


ERRORS = [
    ("mov %r0, 1\nmvo %r0, 2", 2, "unknown instruction 'mvo'"),
    ("mov %r11, 1", 1, "expected a register %r0..%r10, got '%r11'"),
    ("mov %r0", 1, "mov takes 2 operand(s), got 1"),
    ("ja nowhere", 1, "unknown label 'nowhere'"),
    ("a:\na:\nexit", 2, "label 'a' is defined twice"),
    ("mov %r0, 0x100000000", 1, "immediate 0x100000000 does not fit in 32 bits"),
    ("ldxw %r0, [%r1+70000]", 1, "memory offset 70000 does not fit in 16 bits"),
    ("ldxw %r0, %r1", 1, "expected a memory operand like [%r1+8], got '%r1'"),
    ("neg %r0, 1", 1, "neg takes 1 operand(s), got 2"),
    ("movsx832 %r0, 5", 1, "movsx832 has no immediate form"),
]


@pytest.mark.parametrize("text,line,message", ERRORS)
def test_errors_name_file_and_line(text, line, message):
    with pytest.raises(AsmError) as info:
        assemble(text, "prog.s")
    assert str(info.value) == f"prog.s:{line}: {message}"
