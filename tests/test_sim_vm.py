"""The golden VM, instruction family by family, on the corner cases the RFC spells out."""

import pytest

from bpfcore import abi
from bpfcore.abi import Fault
from bpfcore.sim.load.asm import assemble
from bpfcore.sim.load.conformance import conformance_helpers, run_case_vm
from bpfcore.sim.load.program import Program
from bpfcore.sim.model.vm import Vm


def run(text, mem=b"", **kwargs):
    program = Program(assemble(text, "test"), "test")
    vm = Vm(program, helpers=conformance_helpers(), **kwargs)
    r1, r2 = (abi.PKT_BASE + abi.PKT_HEADROOM, len(mem)) if mem else (0, 0)
    return vm.run(r1=r1, r2=r2, packet=mem)


def r0(text, mem=b""):
    result = run(text, mem)
    assert result.ok, result.message
    return result.r0


INT64_MIN = 0x8000_0000_0000_0000
ALU_CASES = [
    # 32-bit ops zero-extend, wrap, and mask shifts with 31.
    ("mov %r0, -1\nadd32 %r0, 1", 0),
    ("mov %r0, -1\nmov32 %r0, %r0", 0xffff_ffff),
    ("mov32 %r0, 0x80000000\nneg32 %r0", 0x8000_0000),
    ("mov32 %r0, 0x80000000\nmul32 %r0, -1", 0x8000_0000),
    ("mov %r0, 1\nlsh32 %r0, 60", 1 << 28),
    ("mov %r0, 1\nmov %r1, 63\nlsh %r0, %r1", INT64_MIN),
    ("mov %r0, 1\nmov %r1, 64\nlsh %r0, %r1", 1),
    ("lddw %r0, 0x8000000000000000\nrsh %r0, 68", 0x0800_0000_0000_0000),
    ("lddw %r0, 0x8000000000000000\narsh %r0, 63", 0xffff_ffff_ffff_ffff),
    ("mov32 %r0, 0x80000000\narsh32 %r0, 31", 0xffff_ffff),
    ("mov %r0, 8\nlsh32 %r0, -4", 0x8000_0000),
    # Immediates sign-extend for 64-bit ops, not for 32-bit ones.
    ("mov %r0, 0xffffffff", 0xffff_ffff_ffff_ffff),
    ("mov32 %r0, 0xffffffff", 0xffff_ffff),
    ("mov %r0, 0\nor %r0, -2", 0xffff_ffff_ffff_fffe),
    # Division and modulo: by zero, signed, INT_MIN / -1.
    ("mov %r0, 7\ndiv %r0, 0", 0),
    ("mov %r0, 7\nmov %r1, 0\nmod %r0, %r1", 7),
    ("mov %r0, -1\nmod32 %r0, 0", 0xffff_ffff),
    ("mov %r0, -10\nsmod32 %r0, 0", 0xffff_fff6),
    ("mov %r0, -13\nsmod %r0, 3", (-1) & (2**64 - 1)),
    ("mov %r0, 13\nsmod %r0, -3", 1),
    ("mov %r0, -13\nsdiv %r0, 3", (-4) & (2**64 - 1)),
    ("lddw %r0, 0x8000000000000000\nsdiv %r0, -1", INT64_MIN),
    ("lddw %r0, 0x8000000000000000\nsmod %r0, -1", 0),
    ("mov32 %r0, 0x80000000\nsdiv32 %r0, -1", 0x8000_0000),
    ("mov %r0, -1\ndiv %r0, -10", 1),
    ("mov32 %r0, 100\ndiv32 %r0, -1", 0),
    # movsx and byte order.
    ("mov %r1, 0x80\nmovsx864 %r0, %r1", 0xffff_ffff_ffff_ff80),
    ("mov %r1, 0x80\nmovsx832 %r0, %r1", 0xffff_ff80),
    ("mov %r1, -1\nmovsx3264 %r0, %r1", 0xffff_ffff_ffff_ffff),
    ("lddw %r0, 0x1122334455667788\nbe16 %r0", 0x8877),
    ("lddw %r0, 0x1122334455667788\nle16 %r0", 0x7788),
    ("lddw %r0, 0x1122334455667788\nle64 %r0", 0x1122334455667788),
    ("lddw %r0, 0x1122334455667788\nbswap32 %r0", 0x88776655),
    ("lddw %r0, 0x1122334455667788\nbe64 %r0", 0x8877665544332211),
]


@pytest.mark.parametrize("text,expected", ALU_CASES)
def test_alu(text, expected):
    assert r0(text + "\nexit") == expected


JUMP_CASES = [
    ("mov %r1, -1\njeq %r1, 0xffffffff, +1\nexit\nmov %r0, 1\nexit", 1),
    ("lddw %r1, 0x100000000\njeq32 %r1, 0, +1\nexit\nmov %r0, 1\nexit", 1),
    ("mov %r1, -1\njsgt %r1, 0, +1\nmov %r0, 1\nexit", 1),
    ("mov32 %r1, 0xffffffff\njslt32 %r1, 0, +1\nexit\nmov %r0, 1\nexit", 1),
    ("mov %r1, 6\njset %r1, 1, +1\nmov %r0, 1\nexit", 1),
    ("ja32 +1\nexit\nmov %r0, 7\nexit", 7),
]


@pytest.mark.parametrize("text,expected", JUMP_CASES)
def test_jumps(text, expected):
    assert r0(text) == expected


def test_memory_and_atomics():
    text = """
        stdw [%r10-8], 0x44332211
        ldxdw %r0, [%r10-8]
        mov %r1, 2
        lock fetch add [%r10-8], %r1
        ldxdw %r2, [%r10-8]
        add %r0, %r1        # old value returned in r1
        add %r0, %r2
        exit
    """
    assert r0(text) == 0x44332211 * 3 + 2


def test_cmpxchg32_zero_extends_old_value():
    text = """
        stdw [%r10-8], -1
        mov %r0, 5
        mov %r1, 9
        lock cmpxchg32 [%r10-8], %r1
        exit
    """
    assert r0(text) == 0xffff_ffff


def test_sign_extending_loads_and_packet():
    assert r0("ldxsb %r0, [%r1+1]\nexit", bytes([1, 0x80])) == 0xffff_ffff_ffff_ff80
    assert r0("ldxh %r0, [%r1+0]\nexit", bytes([0x34, 0x12])) == 0x1234


def test_local_calls_preserve_r6_to_r9_and_get_own_frame():
    text = """
        mov %r6, 6
        stdw [%r10-8], 77
        call local f
        add %r0, %r6
        ldxdw %r1, [%r10-8]
        add %r0, %r1
        exit
    f:
        mov %r6, 100
        stdw [%r10-8], 1000
        mov %r0, %r10
        exit
    """
    assert r0(text) == abi.STACK_TOP - abi.STACK_FRAME_SIZE + 6 + 77


FAULT_CASES = [
    ("ldxw %r0, [%r1+0]\nexit", b"", Fault.LOAD_OOB),              # r1 = NULL
    ("ldxw %r0, [%r1+1]\nexit", b"abcd", Fault.LOAD_OOB),          # crosses data_end
    ("stw [%r1+4], 1\nexit", b"abcd", Fault.STORE_OOB),
    ("ldxdw %r0, [%r10+0]\nexit", b"", Fault.LOAD_OOB),            # above the stack top
    ("ldxdw %r0, [%r10-520]\nexit", b"", Fault.LOAD_OOB),          # below the frame
    ("lddw %r1, 0x1000\nstw [%r1+0], 1\nexit", b"", Fault.STORE_RO),
    ("mov %r1, 0\ncall %r1\nexit", b"", Fault.BAD_CALL),
    ("f:\ncall local f\nexit", b"", Fault.CALL_DEPTH),
    ("ja -1", b"", Fault.BUDGET),
]


@pytest.mark.parametrize("text,mem,cause", FAULT_CASES)
def test_faults_name_pc_and_cause(text, mem, cause):
    result = run(text, mem, budget=10_000)
    assert result.fault == cause
    assert result.message.startswith(f"pc {result.fault_pc}: ")
    assert result.r0 == 0


def test_fault_message_names_address_and_size():
    result = run("ldxw %r0, [%r1+2]\nexit", b"abcd")
    assert result.message == f"pc 0: load of 4 bytes at {abi.PKT_BASE + abi.PKT_HEADROOM + 2:#x} " \
                             "is out of bounds"


def test_budget_stops_at_exactly_the_budget():
    result = run("mov %r0, 0\nadd %r0, 1\nja -2", budget=7)
    assert result.fault == Fault.BUDGET and result.retired == 8


def test_unwind_helper_halts_on_zero():
    assert r0("mov %r1, 0\ncall 5\nmov %r0, 9\nexit") == 0
    assert r0("mov %r1, 4\ncall 5\nexit") == 4


def test_retire_records():
    records = []
    program = Program(assemble("mov %r0, 3\nstxdw [%r10-8], %r0\nldxw %r1, [%r10-8]\nexit"))
    run_case_vm(program, b"", on_retire=records.append)
    assert [r.pc for r in records] == [0, 1, 2, 3]
    assert (records[0].rd, records[0].rd_value) == (0, 3)
    assert (records[1].mem_addr, records[1].mem_wmask, records[1].mem_wdata) == \
        (abi.STACK_TOP - 8, 0xff, 3)
    assert (records[2].rd, records[2].mem_rmask, records[2].mem_rdata) == (1, 0xf, 3)
    assert records[3].ret == 3 and records[3].rd is None
