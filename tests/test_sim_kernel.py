"""bpfcore.sim.load.kernel: the bpf() wrappers against small hand-written programs and maps."""

import errno
import os

import pytest

from bpfcore.isa import encode_slot
from bpfcore.sim.load import kernel
from bpfcore.sim.load.asm import assemble
from bpfcore.sim.load.kernel import KernelError, KernelMap, KernelProgram, XdpMd

AVAILABLE, WHY = kernel.kernel_available()
pytestmark = pytest.mark.skipif(not AVAILABLE, reason=WHY or "bpf() not available")

# r1 = xdp_md: bounds-check 32 bytes of packet, then write 0xab to byte 3 and return byte 0 + 1.
PACKET_PROGRAM = """
    ldxw %r2, [%r1+0]
    ldxw %r3, [%r1+4]
    mov %r4, %r2
    add %r4, 32
    jgt %r4, %r3, fail
    stb [%r2+3], 0xab
    ldxb %r0, [%r2+0]
    add %r0, 1
    exit
fail:
    mov %r0, 0
    exit
"""


def test_kernel_available_reports_a_reason_or_true():
    ok, why = kernel.kernel_available()
    assert ok is True and why == ""


def test_array_map_lookup_update_delete_iterate():
    with KernelMap(kernel.BPF_MAP_TYPE_ARRAY, 4, 8, 3, name="arr") as m:
        assert m.lookup(1) == bytes(8)
        m.update(1, b"\x01\x02\x03\x04\x05\x06\x07\x08")
        assert m.lookup(1) == b"\x01\x02\x03\x04\x05\x06\x07\x08"
        assert m.lookup(3) is None                      # past max_entries
        assert [int.from_bytes(k, "little") for k in m.keys()] == [0, 1, 2]
        with pytest.raises(KernelError) as info:
            m.delete(0)                                 # array elements cannot be deleted
        assert info.value.errno == errno.EINVAL
        with pytest.raises(KernelError) as info:
            m.update(0, bytes(8), flags=kernel.BPF_NOEXIST)
        assert info.value.errno == errno.EEXIST


def test_hash_map_insert_delete_next_key():
    with KernelMap(kernel.BPF_MAP_TYPE_HASH, 2, 4, 16, name="h") as m:
        assert m.next_key() is None
        m.update(b"ab", b"1234")
        m.update(b"cd", b"5678", flags=kernel.BPF_NOEXIST)
        assert sorted(m.keys()) == [b"ab", b"cd"]
        assert m.lookup(b"cd") == b"5678"
        assert m.delete(b"ab") is True
        assert m.delete(b"ab") is False
        assert list(m.keys()) == [b"cd"]
        with pytest.raises(KernelError) as info:
            m.update(b"zz", b"0000", flags=kernel.BPF_EXIST)
        assert info.value.errno == errno.ENOENT


def test_map_errors_name_what_is_wrong():
    with pytest.raises(KernelError, match=r"cannot create map bad \(type 2, key 4, value 0, "
                                          r"1 entries\): EINVAL"):
        KernelMap(kernel.BPF_MAP_TYPE_ARRAY, 4, 0, 1, name="bad")
    with KernelMap(kernel.BPF_MAP_TYPE_ARRAY, 4, 4, 1, name="m") as m:
        with pytest.raises(KernelError, match="key of 2 bytes, the map's keys have 4"):
            m.lookup(b"xy")
        with pytest.raises(KernelError, match="value of 3 bytes, the map's values have 4"):
            m.update(0, b"abc")


def test_close_is_idempotent_and_releases_the_fd():
    m = KernelMap(kernel.BPF_MAP_TYPE_ARRAY, 4, 4, 1)
    fd = m.fd
    os.fstat(fd)
    m.close()
    m.close()
    with pytest.raises(OSError):
        os.fstat(fd)


def test_xdp_program_retval_data_out_and_duration():
    with KernelProgram(assemble(PACKET_PROGRAM), name="pkt") as prog:
        run = prog.test_run(bytes([41]) + bytes(63), repeat=10)
        assert run.retval == 42
        assert run.data_out[3] == 0xab and len(run.data_out) == 64
        assert run.duration >= 0
        run = prog.test_run(bytes(20))                   # too short for the program's check
        assert run.retval == 0


def test_xdp_ctx_in_is_checked_by_the_kernel():
    with KernelProgram(assemble(PACKET_PROGRAM), name="ctx") as prog:
        good = XdpMd(data=0, data_end=64, data_meta=0)
        assert prog.test_run(bytes([1]) + bytes(63), ctx=good).retval == 2
        # data_end shorter than the data: the packet is cut to it (and fails the check).
        assert prog.test_run(bytes([1]) + bytes(63), ctx=XdpMd(data_end=20)).retval == 0
        with pytest.raises(KernelError, match=r"test run of program ctx failed: EINVAL"):
            prog.test_run(bytes(64), ctx=XdpMd(data_end=64, egress_ifindex=1))
        with pytest.raises(KernelError, match=r"test run of program ctx failed: ENODEV"):
            prog.test_run(bytes(64), ctx=XdpMd(data_end=64, ingress_ifindex=0x7fff_fff0))


def test_verifier_rejection_carries_the_log():
    with pytest.raises(KernelError) as info:
        KernelProgram(assemble("mov %r0, %r3\nexit"), name="uninit")
    error = info.value
    assert error.errno == errno.EACCES
    assert "kernel rejected program uninit: EACCES" in str(error)
    assert "R3 !read_ok" in str(error) and "R3 !read_ok" in error.log
    assert "\n" not in str(error)


def test_run_slots_maps_by_index_and_64_bit_result_through_a_map():
    # lddw src 2: map 1's value (index, not fd); store r0's 64 bits there, return the low half.
    program = assemble("""
        lddw %r0, 0x1122334455667788
        exit
    """)
    value = [encode_slot(0x18, dst=1, src=2, imm=1), 0]    # lddw r1, map value of map 1 + 0
    store = [encode_slot(0x7b, dst=1, src=0), encode_slot(0x95)]    # stxdw [r1+0], r0; exit
    slots = program[:2] + value + store
    with KernelMap(kernel.BPF_MAP_TYPE_ARRAY, 4, 4, 1, name="a") as m0, \
            KernelMap(kernel.BPF_MAP_TYPE_ARRAY, 4, 8, 1, name="b") as m1:
        run = kernel.run_slots(slots, maps=[m0, m1])
        assert run.retval == 0x55667788
        assert int.from_bytes(m1.lookup(0), "little") == 0x1122334455667788
        with pytest.raises(KernelError, match="pc 2: lddw refers to map 1, but 1 map"):
            kernel.run_slots(slots, maps=[m0])


def test_socket_filter_program_type():
    run = kernel.run_slots(assemble("mov %r0, 7\nexit"),
                           prog_type=kernel.BPF_PROG_TYPE_SOCKET_FILTER)
    assert run.retval == 7


def test_cpu_pinning_makes_the_processor_id_known():
    slots = assemble("call 8\nexit")
    cpus = sorted(os.sched_getaffinity(0))
    before = os.sched_getaffinity(0)
    for cpu in cpus[:2]:
        assert kernel.run_slots(slots, cpu=cpu).retval == cpu
    assert os.sched_getaffinity(0) == before
