"""XDP helpers on the golden VM: kernel results, bounds-checked pointers, tail calls."""

import struct

import pytest

from bpfcore import abi
from bpfcore.abi import (ETH_HLEN, KERNEL_FRAME_LIMIT, MAX_TAIL_CALL_CNT, XDP_FRAME_SIZE, Errno,
                         Fault, MapType)
from bpfcore.sim.load.asm import assemble
from bpfcore.sim.model.helpers import XdpEnv, XorShift32, csum_diff
from bpfcore.sim.model.maps import BPF_F_NO_PREALLOC, MapSpec, create_map
from bpfcore.sim.load.program import Program
from bpfcore.sim.model.vm import Vm

DATA = abi.PKT_BASE + abi.PKT_HEADROOM


def ctx_bytes(length):
    return struct.pack("<6I", DATA, DATA + length, DATA, 1, 0, 0)


def make_vm(text, maps=(), **env_options):
    env = XdpEnv(maps, **env_options)
    vm = Vm(Program(assemble(text, "test"), "test"), helpers=env.helpers(), maps=env.maps)
    return vm, env


def run(text, packet=bytes(64), maps=(), **env_options):
    vm, env = make_vm(text, maps, **env_options)
    result = vm.run(r1=abi.CTX_BASE, ctx=ctx_bytes(len(packet)), packet=packet)
    return result, vm, env


def signed(x):
    return x - (1 << 64) if x >> 63 else x


def test_csum_diff_kernel_vectors():
    # From the kernel selftest csum_diff_test (push, pull and diff cases; Linux 6.12+ folds).
    word = (0xdeadbeefdeadbeef).to_bytes(8, "little")
    assert csum_diff(b"", word, 0) == 0x3b3b
    assert csum_diff(word, b"", 0) == 0xc4c4
    assert csum_diff(word, word, 0) == 0xffff                # -0, as the kernel computes it
    assert csum_diff(b"", b"", 0x1234) == 0x1234
    # The result is congruent to to - from + seed in ones'-complement arithmetic.
    data = bytes(range(40))
    total = sum(int.from_bytes(data[i:i + 2], "little") for i in range(0, 40, 2))
    folded = total % 0xffff
    assert csum_diff(b"", data, 0) % 0xffff == folded


def test_csum_diff_helper_checks_sizes():
    prog = """
        ldxw %r1, [%r1]
        mov %r2, {from_size}
        mov %r3, %r1
        mov %r4, 8
        mov %r5, 0
        call 28
        exit
    """
    packet = (0xdeadbeefdeadbeef).to_bytes(8, "little") + bytes(56)
    result, _, _ = run(prog.format(from_size=0), packet)
    assert result.ok and result.r0 == 0x3b3b
    result, _, _ = run(prog.format(from_size=3), packet)
    assert signed(result.r0) == -Errno.EINVAL
    result, _, _ = run(prog.format(from_size=512), packet)  # from + to > 512 bytes
    assert signed(result.r0) == -Errno.EINVAL
    result, _, _ = run(prog.format(from_size=128), packet)  # from runs past data_end
    assert result.fault == Fault.HELPER and "out of bounds" in result.message


def map_spec(mtype, key_size=4, value_size=8, max_entries=4, flags=0):
    return MapSpec("m", mtype, key_size, value_size, max_entries, flags)


LOOKUP_UPDATE = """
    stw [%r10-4], 2
    stdw [%r10-16], 77
    lddw.map_fd %r1, 0
    mov %r2, %r10
    add %r2, -4
    mov %r3, %r10
    add %r3, -16
    mov %r4, {flags}
    call 2
    mov %r6, %r0
    lddw.map_fd %r1, 0
    mov %r2, %r10
    add %r2, -4
    call 1
    jeq %r0, 0, +3
    ldxdw %r1, [%r0]
    add %r1, 1
    stxdw [%r0], %r1
    mov %r0, %r6
    exit
"""


def test_map_update_lookup_in_place():
    m = create_map(map_spec(MapType.HASH))
    result, _, _ = run(LOOKUP_UPDATE.format(flags=1), maps=[m])
    assert result.ok and result.r0 == 0
    assert m.get((2).to_bytes(4, "little")) == (78).to_bytes(8, "little")
    result, _, _ = run(LOOKUP_UPDATE.format(flags=1), maps=[m])
    assert signed(result.r0) == -17                        # -Errno.EEXIST, value still bumped
    assert m.get((2).to_bytes(4, "little")) == (79).to_bytes(8, "little")
    result, _, _ = run(LOOKUP_UPDATE.format(flags=7), maps=[m])
    assert signed(result.r0) == -Errno.EINVAL


def test_map_helpers_fault_on_bad_arguments():
    m = create_map(map_spec(MapType.HASH))
    bad_key = """
        lddw.map_fd %r1, 0
        mov %r2, 0x40
        call 1
        exit
    """
    result, _, _ = run(bad_key, maps=[m])
    assert result.fault == Fault.HELPER and "load of 4 bytes at 0x40" in result.message
    not_a_map = "mov %r1, %r10\nmov %r2, %r10\nadd %r2, -8\ncall 1\nexit"
    result, _, _ = run(not_a_map, maps=[m])
    assert result.fault == Fault.HELPER and "is not a map" in result.message
    ro = create_map(MapSpec(".rodata", MapType.ARRAY, 4, 8, 1, initial=bytes(8), read_only=True))
    result, _, _ = run(LOOKUP_UPDATE.format(flags=0), maps=[ro])
    assert result.fault == Fault.HELPER and "read-only" in result.message


def test_lookup_pointer_is_bounded_to_one_value():
    m = create_map(map_spec(MapType.ARRAY, value_size=8, max_entries=2))
    prog = """
        stw [%r10-4], 0
        lddw.map_fd %r1, 0
        mov %r2, %r10
        add %r2, -4
        call 1
        ldxdw %r1, [%r0+{off}]
        mov %r0, 1
        exit
    """
    assert run(prog.format(off=0), maps=[m])[0].ok
    result, _, _ = run(prog.format(off=4), maps=[m])
    assert result.fault == Fault.LOAD_OOB


def test_ktime_prandom_cpu():
    prog = "call 5\nmov %r6, %r0\ncall 7\nmov %r7, %r0\ncall 8\nadd %r0, %r6\nexit"
    result, _, env = run(prog, clock=1000, cpu=3, seed=42)
    expected = XorShift32(42).next()
    assert result.r0 == 1003
    assert env.prandom.state == expected
    ticks = iter(range(10, 100, 10))
    result, _, _ = run("call 5\nmov %r6, %r0\ncall 5\nsub %r0, %r6\nexit",
                       clock=lambda: next(ticks))
    assert result.r0 == 10


def test_xorshift_sequence_and_zero_seed():
    g = XorShift32(1)
    assert [g.next() for _ in range(3)] == [270369, 67634689, 2647435461]
    assert XorShift32(0).state != 0


def printk_program(fmt, fmt_size=None):
    """Store ``fmt`` (up to 24 bytes) and "ok" on the stack; trace_printk(fmt, -5, -1, "ok")."""
    words = fmt.ljust(24, b"\0")
    stores = "\n".join(f"lddw %r1, {int.from_bytes(words[i:i + 8], 'little')}\n"
                       f"stxdw [%r10{i - 32}], %r1" for i in range(0, 24, 8))
    return f"""
        {stores}
        stw [%r10-8], 0x6b6f
        mov %r1, %r10
        add %r1, -32
        mov %r2, {len(fmt) if fmt_size is None else fmt_size}
        mov %r3, -5
        mov %r4, -1
        mov %r5, %r10
        add %r5, -8
        call 6
        exit
    """


def test_trace_printk_formats():
    result, _, env = run(printk_program(b"n=%d %-3c %s %%!\0"))
    assert env.log == ["n=-5 \xff   ok %!"]
    assert result.r0 == len(env.log[0])
    result, _, env = run(printk_program(b"%lld %x %5s|\0"))
    assert env.log == ["-5 ffffffff    ok|"]
    for bad in (b"%d %d %d %d\0", b"%q\0", b"no nul"):
        result, _, env = run(printk_program(bad))
        assert signed(result.r0) == -Errno.EINVAL and env.log == [], bad
    result, _, env = run(printk_program(b"%d\0", fmt_size=0))
    assert signed(result.r0) == -Errno.EINVAL


def test_redirect_and_redirect_map():
    result, _, env = run("mov %r1, 7\nmov %r2, 0\ncall 23\nexit")
    assert result.r0 == 4 and env.redirect == ("ifindex", 7)
    result, _, env = run("mov %r1, 7\nmov %r2, 1\ncall 23\nexit")
    assert result.r0 == 0 and env.redirect is None
    devmap = create_map(map_spec(MapType.DEVMAP, value_size=4))
    devmap.update((1).to_bytes(4, "little"), (9).to_bytes(4, "little"))
    prog = "lddw.map_fd %r1, 0\nmov %r2, {key}\nmov %r3, {flags}\ncall 51\nexit"
    result, _, env = run(prog.format(key=1, flags=0), maps=[devmap])
    assert result.r0 == 4 and env.redirect == ("devmap", 0, 1, 9)
    result, _, env = run(prog.format(key=2, flags=2), maps=[devmap])
    assert result.r0 == 2 and env.redirect is None          # empty slot: flags' low bits
    result, _, _ = run(prog.format(key=9, flags=1), maps=[devmap])
    assert result.r0 == 1
    result, _, _ = run(prog.format(key=1, flags=0x20), maps=[devmap])
    assert result.r0 == 0                                    # unknown flag: XDP_ABORTED


ADJUST = """
    mov %r6, %r1
    mov %r2, {delta}
    call {helper}
    mov32 %r7, %r0
    ldxw %r1, [%r6]
    ldxw %r2, [%r6+4]
    ldxw %r3, [%r6+8]
    sub %r2, %r1
    jne %r1, %r3, +3
    lsh %r2, 32
    or %r7, %r2
    mov %r0, %r7
    exit
    mov %r0, -1
    exit
"""


@pytest.mark.parametrize("helper,delta,ok", [
    (44, -(abi.PKT_HEADROOM - XDP_FRAME_SIZE), True),
    (44, -(abi.PKT_HEADROOM - XDP_FRAME_SIZE) - 1, False),
    (44, 64 - ETH_HLEN, True),
    (44, 64 - ETH_HLEN + 1, False),
    (65, -(64 - ETH_HLEN), True),
    (65, -(64 - ETH_HLEN) - 1, False),
    (65, KERNEL_FRAME_LIMIT - abi.PKT_HEADROOM - 64, True),
    (65, KERNEL_FRAME_LIMIT - abi.PKT_HEADROOM - 64 + 1, False),
])
def test_adjust_head_and_tail_bounds(helper, delta, ok):
    packet = bytes(range(64))
    result, vm, _ = run(ADJUST.format(delta=delta, helper=helper), packet)
    assert result.ok
    status = ((result.r0 & 0xffff_ffff) ^ 0x8000_0000) - 0x8000_0000
    length = result.r0 >> 32
    if ok:
        assert status == 0 and length == 64 - delta if helper == 44 else 64 + delta
        out = vm.mem.packet_bytes()
        if helper == 44 and delta > 0:
            assert out == packet[delta:]
        if helper == 65 and delta > 0:
            assert out == packet + bytes(delta)               # grown tail reads as zeros
    else:
        assert status == -Errno.EINVAL and length == 64


def tail_program(n):
    return Program(assemble(f"mov %r0, {n}\nexit", f"t{n}"), f"t{n}")


def test_tail_call_switches_program_and_falls_through_on_empty_slot():
    progs = create_map(MapSpec("jumps", MapType.PROG_ARRAY, 4, 4, 4))
    progs.set_program(1, tail_program(3), 1)
    prog = "mov %r6, 5\nlddw.map_fd %r2, 0\nmov %r3, {slot}\ncall 12\nmov %r0, %r6\nexit"
    result, _, env = run(prog.format(slot=1), maps=[progs])
    assert result.ok and result.r0 == 3 and env.tail_calls == 1
    result, _, env = run(prog.format(slot=2), maps=[progs])
    assert result.r0 == 5 and env.tail_calls == 0
    result, _, _ = run(prog.format(slot=9), maps=[progs])
    assert result.r0 == 5


def test_tail_call_limit():
    progs = create_map(MapSpec("jumps", MapType.PROG_ARRAY, 4, 4, 1))
    loop = Program(assemble("""
        mov %r6, %r1
        lddw.map_idx_value %r7, 1, 0
        ldxdw %r0, [%r7]
        add %r0, 1
        stxdw [%r7], %r0
        lddw.map_fd %r2, 0
        mov %r3, 0
        call 12
        mov %r0, 2
        exit
    """.replace("lddw.map_idx_value %r7, 1, 0", "lddw.map_value %r7, 1, 0"), "loop"), "loop")
    counter = create_map(MapSpec(".bss", MapType.ARRAY, 4, 8, 1, initial=bytes(8)))
    progs.set_program(0, loop, 1)
    env = XdpEnv([progs, counter])
    vm = Vm(loop, helpers=env.helpers(), maps=env.maps)
    result = vm.run(r1=abi.CTX_BASE, ctx=ctx_bytes(64), packet=bytes(64))
    assert result.ok and result.r0 == 2
    assert int.from_bytes(counter.values, "little") == MAX_TAIL_CALL_CNT + 1


def test_tail_call_needs_context_and_prog_array():
    progs = create_map(MapSpec("jumps", MapType.PROG_ARRAY, 4, 4, 1))
    result, _, _ = run("mov %r1, 0\nlddw.map_fd %r2, 0\nmov %r3, 0\ncall 12\nexit", maps=[progs])
    assert result.fault == Fault.HELPER and "not the context" in result.message
    arr = create_map(map_spec(MapType.ARRAY))
    result, _, _ = run("lddw.map_fd %r2, 0\nmov %r3, 0\ncall 12\nexit", maps=[arr])
    assert result.fault == Fault.HELPER and "not a prog_array" in result.message


def test_lpm_lookup_from_program():
    trie = create_map(MapSpec("routes", MapType.LPM_TRIE, 8, 4, 4, BPF_F_NO_PREALLOC))
    trie.update((16).to_bytes(4, "little") + bytes([10, 1, 0, 0]), (5).to_bytes(4, "little"))
    prog = """
        stw [%r10-8], 32
        ldxw %r1, [%r1]
        ldxw %r1, [%r1]
        stxw [%r10-4], %r1
        lddw.map_fd %r1, 0
        mov %r2, %r10
        add %r2, -8
        call 1
        jeq %r0, 0, +2
        ldxw %r0, [%r0]
        exit
        mov %r0, 99
        exit
    """
    assert run(prog, bytes([10, 1, 7, 7]) + bytes(60), maps=[trie])[0].r0 == 5
    assert run(prog, bytes([10, 2, 7, 7]) + bytes(60), maps=[trie])[0].r0 == 99
    assert trie.delete((16).to_bytes(4, "little") + bytes(4)) == -Errno.ENOENT
