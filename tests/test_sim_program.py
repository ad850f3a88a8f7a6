"""Load-time validation: one test per rejection reason, pinning its message."""

import pytest

from bpfcore.errors import ProgramError
from bpfcore.isa import encode_slot
from bpfcore.sim.load.asm import assemble
from bpfcore.sim.load.program import Program, validate

EXIT = encode_slot(0x95)


def check(slots, helpers=frozenset({5}), **kwargs):
    validate(Program(slots, "p.bin"), helpers=helpers, **kwargs)


REJECTIONS = [
    ([], "p.bin: empty program"),
    ([encode_slot(0xff), EXIT], "p.bin: pc 0: unknown opcode 0xff"),
    ([encode_slot(0x38), EXIT], "p.bin: pc 0: unknown opcode 0x38"),
    ([encode_slot(0x07, dst=1, off=3), EXIT],
     "p.bin: pc 0: add: reserved offset field must be 0, is 3"),
    ([encode_slot(0x0f, dst=1, src=2, imm=9), EXIT],
     "p.bin: pc 0: add: reserved immediate field must be 0, is 9"),
    ([encode_slot(0x07, src=1), EXIT], "p.bin: pc 0: add: reserved src register field must be "
                                       "0, is 1"),
    ([encode_slot(0xb7, dst=10), EXIT], "p.bin: pc 0: mov writes r10, which is read-only"),
    ([encode_slot(0xbf, dst=1, src=11), EXIT], "p.bin: pc 0: mov: invalid src register r11"),
    ([encode_slot(0x37, dst=1, off=2), EXIT],
     "p.bin: pc 0: opcode 0x37 (div/sdiv) has no form with offset 2; allowed: 0, 1"),
    ([encode_slot(0xdc, dst=1, imm=8), EXIT],
     "p.bin: pc 0: opcode 0xdc (be16/be32/be64) has no form with immediate 8; allowed: 16, 32, 64"),
    ([encode_slot(0x05, off=5), EXIT], "p.bin: pc 0: jump target 6 is outside the program (0..1)"),
    ([encode_slot(0x05, off=-2), EXIT], "p.bin: pc 0: jump target -1 is outside the program (0..1)"),
    ([encode_slot(0x05, off=1), encode_slot(0x18), encode_slot(0), EXIT],
     "p.bin: pc 0: jump target 2 is the second slot of lddw"),
    ([encode_slot(0x85, src=1, imm=5), EXIT],
     "p.bin: pc 0: call target 6 is outside the program (0..1)"),
    ([EXIT, encode_slot(0x18)], "p.bin: pc 1: lddw is truncated: its second slot is missing"),
    ([encode_slot(0x18), encode_slot(0x07), EXIT],
     "p.bin: pc 1: second slot of lddw must have opcode, registers and offset 0"),
    ([encode_slot(0x85, imm=99), EXIT], "p.bin: pc 0: call to unknown helper id 99"),
    ([encode_slot(0x85, src=2, imm=1), EXIT],
     "p.bin: pc 0: helper calls by BTF id (call src 2) are not supported"),
    ([encode_slot(0x18, dst=1, src=1, imm=0), encode_slot(0), EXIT],
     "p.bin: pc 0: lddw.map_fd refers to map 0, but the program has 0 map(s)"),
    ([encode_slot(0x18, dst=1, src=4), encode_slot(0), EXIT],
     "p.bin: pc 0: lddw.code (lddw src 4) is not supported"),
    ([encode_slot(0xb7)], "p.bin: pc 0: the last instruction is not exit or ja: control could "
                          "fall off the end of the program"),
    ([EXIT] * 5, "p.bin: program has 5 slots, more than the limit of 4"),
]


@pytest.mark.parametrize("slots,message", REJECTIONS)
def test_rejections(slots, message):
    with pytest.raises(ProgramError) as info:
        check(slots, max_slots=4)
    assert str(info.value) == message


def test_map_forms_accepted_with_maps():
    check([encode_slot(0x18, dst=1, src=2, imm=0), encode_slot(0, imm=8), EXIT], n_maps=1)


def test_from_bytes_rejects_ragged_length():
    with pytest.raises(ProgramError, match="p.bin: program is 9 bytes long, not a multiple of 8"):
        Program.from_bytes(bytes(9), "p.bin")


def test_every_conformance_style_program_validates():
    check(assemble("lddw %r0, 1\ncall 5\ncall local f\nexit\nf:\nexit"))
