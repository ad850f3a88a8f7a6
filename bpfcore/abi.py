"""The vocabulary that the golden VM and the RTL share (ARCHITECTURE.md, "One vocabulary").

Software (VM, loader, benches) and hardware (the Amaranth CPU, map memory, helper units) read the
same constants from here; the enums that travel in hardware signals are shaped
``amaranth.lib.enum`` enums (still plain ``IntEnum`` in Python), so traces print their names:

* the 32-bit **address map** (regions, bases, sizes);
* **fault causes**, the reason a program stops with ``XDP_ABORTED``;
* **errno** values that helpers and map operations return negated, and the kernel's XDP limits;
* **helper ids** (kernel UAPI numbering) and **map types** (kernel numbering);
* **XDP actions** and the layout of ``struct xdp_md``;
* the **retire record**, one per retired instruction, produced by the VM step hook and the CPU's
  trace port and compared field by field in lockstep benches.
"""

import enum
from dataclasses import dataclass, fields
from typing import Optional

from amaranth.lib import enum as aenum

__all__ = [
    "CTX_BASE", "CTX_SIZE", "STACK_BASE", "STACK_FRAME_SIZE", "STACK_FRAMES", "STACK_SIZE",
    "STACK_TOP", "PKT_BASE", "PKT_BUF_SIZE", "PKT_HEADROOM", "PKT_SLOT_SIZE", "MAP_BASE", "MAP_WINDOW",
    "MAX_MAPS", "PROGRAM_MAX_SLOTS", "DEFAULT_BUDGET", "Region", "Fault", "Helper", "MapType",
    "XdpAction", "XDP_MD_FIELDS", "RetireRecord", "frame_pointer", "xdp_md_bytes", "Errno",
    "XDP_FRAME_SIZE", "ETH_HLEN", "MAX_TAIL_CALL_CNT", "KERNEL_FRAME_LIMIT", "BPF_F_BROADCAST",
    "BPF_F_EXCLUDE_INGRESS",
]

# --- Address map ------------------------------------------------------------------------------
#
# All addresses fit in 32 bits; 0 is never valid (NULL). Every region is aligned to its own size
# so that the hardware decodes it from the high address bits.

#: ``struct xdp_md``: six 32-bit fields, read-only.
CTX_BASE = 0x0000_1000
CTX_SIZE = 24

#: The stack: ``STACK_FRAMES`` frames of ``STACK_FRAME_SIZE`` bytes. Frame 0 (the entry program)
#: sits at the top; a bpf-to-bpf call moves r10 down by one frame. A program may touch
#: ``[r10_current - 512, STACK_TOP)``: its own frame and its callers' frames.
STACK_BASE = 0x0001_0000
STACK_FRAME_SIZE = 512
STACK_FRAMES = 8
STACK_SIZE = STACK_FRAME_SIZE * STACK_FRAMES
STACK_TOP = STACK_BASE + STACK_SIZE

#: The packet buffer: ``data`` starts ``PKT_HEADROOM`` bytes in (room for ``xdp_adjust_head``),
#: the rest is packet and tailroom. Access is allowed inside ``[data, data_end)``.
PKT_BASE = 0x0004_0000
PKT_BUF_SIZE = 0x4000
PKT_HEADROOM = 256
#: A packet slot of a core built for a datapath (several slots, one per frame in flight): the
#: packet region seen from the program is the same, but only its first ``PKT_SLOT_SIZE`` bytes
#: exist, enough for the XDP buffer (``KERNEL_FRAME_LIMIT``: a packet and its tailroom never
#: reach past it).
PKT_SLOT_SIZE = 0x1000

#: Map value storage: map ``i`` owns the window ``MAP_BASE + i * MAP_WINDOW``; its value slot ``k``
#: starts at ``window + k * value_size``. Access must stay inside one value.
MAP_BASE = 0x0100_0000
MAP_WINDOW = 0x0010_0000
MAX_MAPS = 64

#: Largest program, in 64-bit instruction slots (the kernel's limit for unprivileged programs).
PROGRAM_MAX_SLOTS = 4096

#: Instructions a run may retire before it stops with ``Fault.BUDGET``.
DEFAULT_BUDGET = 1_000_000


def xdp_md_bytes(data, data_end, ingress_ifindex=0, rx_queue_index=0):
    """``struct xdp_md`` as VM and CPU present it: data, data_end, data_meta (= data),
    ingress_ifindex, rx_queue_index, egress_ifindex (= 0), little-endian 32-bit words."""
    words = (data, data_end, data, ingress_ifindex, rx_queue_index, 0)
    return b"".join((w & 0xffff_ffff).to_bytes(4, "little") for w in words)


def frame_pointer(depth):
    """r10 of call frame ``depth`` (0 = the entry program)."""
    return STACK_TOP - depth * STACK_FRAME_SIZE


class Region(aenum.IntEnum, shape=3):
    """Address regions, as decoded by VM and RTL (the load/store unit's region codes)."""
    NONE = 0
    CTX = 1
    STACK = 2
    PACKET = 3
    MAP = 4      #: map values: the map memory decides in the memory stage


class Fault(aenum.IntEnum, shape=4):
    """Why a program stopped abnormally (the packet then gets ``XDP_ABORTED``).

    Values are stable: they travel in the retire record and over the hardware trace port.
    """
    NONE = 0
    LOAD_OOB = 1        #: load outside every readable region
    STORE_OOB = 2       #: store or atomic outside every writable region
    STORE_RO = 3        #: store or atomic into a read-only region (the context)
    ILLEGAL = 4         #: undecodable instruction reached (the loader normally rejects it)
    BUDGET = 5          #: the instruction budget ran out
    CALL_DEPTH = 6      #: a bpf-to-bpf call deeper than ``STACK_FRAMES`` frames
    BAD_CALL = 7        #: ``callx`` to an unknown helper, or a helper refused its arguments
    PC_RANGE = 8        #: control left the program (jump or fall-through past the end)
    HELPER = 9          #: a helper faulted (e.g. a pointer argument out of bounds)


class Helper(enum.IntEnum):
    """Helper ids: the Linux kernel UAPI numbering (``enum bpf_func_id``)."""
    MAP_LOOKUP_ELEM = 1
    MAP_UPDATE_ELEM = 2
    MAP_DELETE_ELEM = 3
    KTIME_GET_NS = 5
    TRACE_PRINTK = 6
    GET_PRANDOM_U32 = 7
    GET_SMP_PROCESSOR_ID = 8
    TAIL_CALL = 12
    REDIRECT = 23
    CSUM_DIFF = 28
    XDP_ADJUST_HEAD = 44
    REDIRECT_MAP = 51
    XDP_ADJUST_TAIL = 65


class Errno(enum.IntEnum):
    """Linux errno values (``include/uapi/asm-generic/errno-base.h``) that helpers and map
    operations return negated, as the kernel does."""
    EPERM = 1
    ENOENT = 2
    E2BIG = 7
    EEXIST = 17
    EINVAL = 22
    ENOSPC = 28


#: ``sizeof(struct xdp_frame)`` on 64-bit Linux 6.15+: the head of the headroom that
#: ``xdp_adjust_head`` may not grow into.
XDP_FRAME_SIZE = 40
#: Ethernet header length: the shortest packet ``xdp_adjust_head``/``adjust_tail`` may leave.
ETH_HLEN = 14
#: Tail calls one packet may make (the kernel's ``MAX_TAIL_CALL_CNT``).
MAX_TAIL_CALL_CNT = 33
#: Usable bytes from the start of the headroom in a ``BPF_PROG_TEST_RUN`` XDP buffer: a 4096-byte
#: page minus ``SKB_DATA_ALIGN(sizeof(struct skb_shared_info))`` (320 on x86-64). This bounds
#: ``data_end`` for ``xdp_adjust_tail``.
KERNEL_FRAME_LIMIT = 4096 - 320
#: ``bpf_redirect_map`` flags.
BPF_F_BROADCAST = 1 << 3
BPF_F_EXCLUDE_INGRESS = 1 << 4


#: In the conformance profile, helper 5 is the suite's "unwind" helper instead of ktime_get_ns.
CONFORMANCE_UNWIND_HELPER = 5


class MapType(enum.IntEnum):
    """Map types: the Linux kernel UAPI numbering (``enum bpf_map_type``)."""
    HASH = 1
    ARRAY = 2
    PROG_ARRAY = 3
    LRU_HASH = 9
    LPM_TRIE = 11
    DEVMAP = 14


class XdpAction(enum.IntEnum):
    """XDP verdicts (``enum xdp_action``)."""
    ABORTED = 0
    DROP = 1
    PASS = 2
    TX = 3
    REDIRECT = 4


#: Verdicts whose packet leaves the program (and so is compared and written out).
LEAVING_ACTIONS = (XdpAction.TX, XdpAction.PASS, XdpAction.REDIRECT)


#: ``struct xdp_md`` fields, in order, each a 32-bit word at ``CTX_BASE + 4 * index``.
XDP_MD_FIELDS = ("data", "data_end", "data_meta", "ingress_ifindex", "rx_queue_index",
                 "egress_ifindex")


@dataclass(frozen=True)
class RetireRecord:
    """One retired instruction, as the VM step hook and the CPU trace port report it.

    Members
    -------
    order : int
        0-based count of instructions retired before this one in the run.
    pc : int
        Slot index of the instruction (an ``lddw`` retires once, at its first slot).
    insn : int
        The instruction slot as a little-endian 64-bit number; for ``lddw`` the first slot.
    insn_hi : int
        The second slot of an ``lddw``, else 0.
    rd : int or None
        Register written (0-9), or None. Atomics with fetch report the register that receives the
        old value (src, or r0 for cmpxchg); helper calls report r0.
    rd_value : int
        The 64-bit value written to ``rd`` (0 when ``rd`` is None).
    mem_addr : int
        Address of the access (0 when none).
    mem_rmask, mem_wmask : int
        Byte masks of the bytes read and written, LSB-aligned with ``mem_addr`` (0x1, 0x3, 0xf,
        0xff). An atomic reads and writes; a failed cmpxchg only reads.
    mem_rdata, mem_wdata : int
        Data read and written, LSB-aligned and zero-extended (0 when the mask is 0).
    helper_id : int or None
        Helper called (``call`` with src 0, or ``callx``), else None.
    helper_r0 : int
        The helper's result (0 when none).
    fault : Fault
        ``Fault.NONE``, or why this instruction stopped the program (it then has no effect).
    ret : int or None
        On the outermost ``exit``, the value of r0 (the program's result); else None.
    """
    order: int
    pc: int
    insn: int
    insn_hi: int = 0
    rd: Optional[int] = None
    rd_value: int = 0
    mem_addr: int = 0
    mem_rmask: int = 0
    mem_wmask: int = 0
    mem_rdata: int = 0
    mem_wdata: int = 0
    helper_id: Optional[int] = None
    helper_r0: int = 0
    fault: Fault = Fault.NONE
    ret: Optional[int] = None

    def diff(self, other):
        """Names of the fields in which ``self`` and ``other`` differ."""
        return [f.name for f in fields(self) if getattr(self, f.name) != getattr(other, f.name)]

    def __str__(self):
        parts = [f"#{self.order} pc={self.pc} insn={self.insn:016x}"]
        if self.insn_hi:
            parts.append(f"hi={self.insn_hi:016x}")
        if self.rd is not None:
            parts.append(f"r{self.rd}={self.rd_value:#x}")
        if self.mem_rmask or self.mem_wmask:
            parts.append(f"mem[{self.mem_addr:#x}] r{self.mem_rmask:#x}={self.mem_rdata:#x}"
                         f" w{self.mem_wmask:#x}={self.mem_wdata:#x}")
        if self.helper_id is not None:
            parts.append(f"helper {self.helper_id} -> {self.helper_r0:#x}")
        if self.fault != Fault.NONE:
            parts.append(f"fault={self.fault.name}")
        if self.ret is not None:
            parts.append(f"ret={self.ret:#x}")
        return " ".join(parts)
