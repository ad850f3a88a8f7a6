"""Payload layouts of the CPU: stage pairs, helper port, retire trace.

The pipeline has four payload registers, named by the stage pair they sit between (STYLE.md
lesson 3):

========  =====================================================================================
``fd``    fetch -> decode: program memory is read synchronously, so the memory's output *is* the
          fetch/decode register; :data:`FdLayout` adds the pc and valid registers beside it.
``dx``    decode -> execute: decoded control, operand register indexes, operand values read in
          decode, the 64-bit immediate, the branch target.
``xm``    execute -> memory: the result computed in execute, the access (address, size, region,
          fault found by the region check), the helper/ret outcome.
``mw``    memory -> writeback: the complete retire record (:data:`RetireLayout`) plus ``valid``;
          writeback writes the register file from it and puts it on the trace port.
========  =====================================================================================
"""

from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from bpfcore.isa import AluOp, JmpOp, Kind, Size

__all__ = ["HelperRequest", "HelperResponse", "HelperMemSignature", "PrintkLayout",
           "RetireLayout", "TraceSignature", "DecodeLayout", "FdLayout", "PredecodeLayout",
           "OperandsLayout", "DxLayout", "XmLayout", "MwLayout", "SlotPortSignature"]


#: Helper call request: the helper id, the argument registers r1-r5, and ``nested`` (the call
#: comes from inside a bpf-to-bpf call, where ``tail_call`` faults).
HelperRequest = data.StructLayout({
    "id": 32, "r1": 64, "r2": 64, "r3": 64, "r4": 64, "r5": 64, "nested": 1,
})

#: Helper call response: r0, a fault cause (``abi.Fault``, 0 = none), ``halt`` (end the
#: program normally with ``r0``), and ``ctx_we`` with the packet bounds ``data``/``data_end``
#: that ``xdp_adjust_head``/``xdp_adjust_tail`` moved (the CPU takes them when ``ctx_we``), and
#: ``tail`` with the program to continue in (``tail_call``): its first slot in program memory
#: and its length in slots; the CPU then runs it from its pc 0.
HelperResponse = data.StructLayout({
    "r0": 64, "fault": 4, "halt": 1, "ctx_we": 1, "data": 32, "data_end": 32,
    "tail": 1, "prog_base": 16, "prog_len": 16,
})

#: The helper units' access to the CPU's data memories (stack, packet, context, map values),
#: as the helper units (the initiator) see it: ``Out`` in the helper units, ``In`` in the CPU.
#: Used only while the CPU waits for a helper response (its pipeline is then drained).
#:
#: * ``en`` (one cycle) starts one access of ``size`` (:class:`~bpfcore.isa.Size`) bytes at the
#:   64-bit ``addr``; with ``we`` it stores the low bytes of ``wdata``. ``raw`` skips the packet
#:   bounds check (the access must still lie in the packet buffer): ``xdp_adjust_tail`` zeroes
#:   the bytes it grows the packet by.
#: * One or more cycles later ``done`` pulses with ``rdata`` (the bytes read, LSB first,
#:   zero-extended), ``fault`` (the CPU's region rule refused the access; nothing was written)
#:   and ``slot`` (for a map value: the value's slot index in its map, else 0; a buffer read in
#:   several accesses lies inside one value only if every access reports the same slot).
#: * One access at a time: ``en`` again only after ``done``.
HelperMemSignature = wiring.Signature({
    "en": Out(1), "addr": Out(64), "size": Out(Size), "we": Out(1), "wdata": Out(64),
    "raw": Out(1),
    "done": In(1), "rdata": In(64), "fault": In(1), "slot": In(21),
})

#: One transfer of the ``trace_printk`` text stream: a byte of a message (``end`` = 0), or the
#: end of a message (``end`` = 1, ``data`` 0). Every message, even an empty one, ends with one
#: ``end`` transfer, so a consumer can split the stream into the VM's ``XdpEnv.log`` strings.
PrintkLayout = data.StructLayout({"data": 8, "end": 1})

#: One retired instruction; field meaning as in :class:`bpfcore.abi.RetireRecord` (``rd_valid``,
#: ``helper_valid`` and ``ret_valid`` stand for "not None").
RetireLayout = data.StructLayout({
    "order": 32,
    "pc": 16,
    "insn": 64,
    "insn_hi": 64,
    "rd_valid": 1,
    "rd": 4,
    "rd_value": 64,
    "mem_addr": 32,
    "mem_rmask": 8,
    "mem_wmask": 8,
    "mem_rdata": 64,
    "mem_wdata": 64,
    "helper_valid": 1,
    "helper_id": 32,
    "helper_r0": 64,
    "fault": 4,
    "ret_valid": 1,
    "ret": 64,
})


#: The trace port: one cycle with ``valid`` per retired instruction, no back-pressure.
TraceSignature = wiring.Signature({
    "valid": Out(1),
    "record": Out(RetireLayout),
})


#: What the decoder derives from one instruction slot (see :mod:`bpfcore.hdl.decoder`).
DecodeLayout = data.StructLayout({
    "legal": 1,          # a form of the ISA table selects it and its legality row holds
    "kind": Kind,
    "alu_op": AluOp,
    "jmp_op": JmpOp,
    "w64": 1,            # 64-bit ALU op / 64-bit compare (else 32-bit)
    "use_x": 1,          # operand B is the src register (else the immediate)
    "size": Size,
    "ra": 4,             # register of operand A
    "use_a": 1,
    "rb": 4,             # register of operand B
    "use_b": 1,
    "use_r0": 1,         # cmpxchg also reads r0
    "rd": 4,             # register written
    "rd_we": 1,
    "fetch": 1,          # atomic returns the old value
    "lddw": 1,           # two slots
    "swap": 1,           # byte order op swaps (be, bswap); else it only truncates (le)
    "a_src": 1,          # operand A is the src register (loads), else dst
})

#: One program memory slot: the instruction and what decoding it gives, computed when the host
#: writes the slot (so nothing decodes between the program memory and the pipeline).
PredecodeLayout = data.StructLayout({
    "insn": 64,
    "ctrl": DecodeLayout,    # ``legal`` also folds in the build options (divider, atomics)
    "ja": 1,                 # fetch follows ``target`` at once: ja, ja32
    "jcond": 1,              # a conditional branch
    "bt": 1,                 # a conditional branch predicted taken when it has no history
    "target": 16,            # slot + 1 + offset (imm for ja32 and local calls), 16 bits
    "target_even": 16,       # (target + 1) >> 1: the target's even-bank row
})

#: Fetch -> decode: the program memory's output (both banks, picked by the pc's parity) and the
#: registers beside it (see :class:`~bpfcore.hdl.units.fetch.Fetch`).
FdLayout = data.StructLayout({
    "valid": 1,
    "pc": 16,
    "bad": 1,                # redirected to a target outside the program (the pc wrapped)
    "slot": PredecodeLayout,     # the slot at pc
    "insn_hi": 64,           # the slot after it (lddw's second half)
})

#: Execute's operands as decode hands them over (see
#: :class:`~bpfcore.hdl.units.regfile.RegisterFile`).
OperandsLayout = data.StructLayout({
    "a": 64,             # value of register ra (refreshed by forwarding while execute stalls)
    "b": 64,             # value of register rb
    "m_a": 1,            # ra is the rd of the instruction in memory (when that one is valid)
    "m_b": 1,            # rb likewise
    "w_a": 1,            # ra is the rd of the instruction in writeback (when that one is valid)
    "w_b": 1,            # rb likewise
})

DxLayout = data.StructLayout({
    "valid": 1,
    "pc": 16,
    "insn": 64,
    "insn_hi": 64,       # second slot of lddw, else 0
    "fault": 4,          # PC_RANGE / ILLEGAL found in decode
    "ctrl": DecodeLayout,
    "ops": OperandsLayout,
    "imm": 64,           # imm sign-extended; for lddw the 64-bit constant
    "off": 16,
    "target": 16,        # pc + 1 + offset/imm of jumps and local calls (16 bits)
    "target_even": 16,   # (target + 1) >> 1
    "bt": 1,             # conditional branch predicted taken in decode (fetch followed it)
})

XmLayout = data.StructLayout({
    "valid": 1,
    "order": 32,
    "pc": 16,
    "insn": 64,
    "insn_hi": 64,
    "fault": 4,
    "rd_valid": 1,
    "rd": 4,
    "result": 64,        # value for rd (ALU, lddw, helper), or the store value
    "late": 1,           # rd's value is produced in memory (load, atomic fetch)
    "load": 1,
    "store": 1,
    "atomic": 1,
    "sext": 1,
    "size": Size,
    "addr": 32,
    "region": 3,
    "aop": 8,            # atomic operation (imm)
    "helper_valid": 1,
    "helper_id": 32,
    "helper_r0": 64,
    "ret_valid": 1,
    "ret": 64,
})

MwLayout = data.StructLayout({
    "valid": 1,
    "rec": RetireLayout,
})


class SlotPortSignature(wiring.Signature):
    """A datapath's port into a core's packet slots (seen from the datapath, which drives it).

    Each slot has its own block RAMs: this port reaches any slot the CPU is not running, while
    the CPU uses another one (or any slot while the CPU is idle).

    Parameters
    ----------
    slots : int
        Number of packet slots.
    slot_bytes : int
        Bytes per slot (a multiple of 16).

    Members
    -------
    wslot : Out(range(slots))
        The slot written.
    waddr : Out(range(slot_bytes // 8))
        The 64-bit word written, an index within the slot (byte offset / 8).
    we : Out(8)
        Byte enables (bit ``i``: byte ``i`` of the word, bits ``8i .. 8i+7`` of ``wdata``);
        nothing is written while ``we`` is 0.
    wdata : Out(64)
        The word written.
    rslot : Out(range(slots))
        The slot read.
    raddr : Out(range(slot_bytes // 8))
        The 64-bit word read.
    rdata : In(64)
        The word at ``rslot``/``raddr`` of the previous cycle (a registered block-RAM read).
    """

    def __init__(self, *, slots, slot_bytes):
        self.slots, self.slot_bytes = slots, slot_bytes
        words = slot_bytes // 8
        super().__init__({
            "wslot": Out(range(slots)), "waddr": Out(range(words)), "we": Out(8),
            "wdata": Out(64),
            "rslot": Out(range(slots)), "raddr": Out(range(words)), "rdata": In(64),
        })

    def __eq__(self, other):
        return (isinstance(other, SlotPortSignature) and self.slots == other.slots
                and self.slot_bytes == other.slot_bytes)

    def __repr__(self):
        return f"SlotPortSignature(slots={self.slots}, slot_bytes={self.slot_bytes})"
