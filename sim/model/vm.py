"""The golden eBPF VM: RFC 9669 semantics, the bpfcore address map, and retire records.

Calling convention (stated once): r1-r5 carry arguments, r0 the result; r6-r9 are preserved across
bpf-to-bpf calls (the VM saves and restores them, with the return pc and r10, in a frame stack);
r10 is the read-only frame pointer, moved down by one 512-byte frame per call, at most
``abi.STACK_FRAMES`` frames deep. Helper calls leave r1-r5 unchanged (the ABI says they are
clobbered; programs may not rely on either).

Every run ends in a :class:`RunResult`: a normal ``exit`` from the outermost frame, a helper that
halts the program, or a *fault* (bad memory access, budget exhausted, call too deep, helper fault),
which names pc, cause and, for memory, address and size. Faults are never Python exceptions to the
caller.
"""

from dataclasses import dataclass
from typing import Optional

from bpfcore import abi
from bpfcore.abi import Fault, RetireRecord
from bpfcore.isa import ATOMIC_FETCH, AluOp, AtomicOp, JmpOp, Kind, LddwSource, Source
from bpfcore.sim.load.program import Program, validate

__all__ = ["Vm", "RunResult", "HelperFault", "Halt", "VmFault", "Memory",
           "u32", "s32", "u64", "s64", "sext"]

M32 = 0xffff_ffff
M64 = 0xffff_ffff_ffff_ffff


def u32(x):
    return x & M32


def u64(x):
    return x & M64


def sext(x, bits):
    """Sign-extend the low ``bits`` of ``x`` to a Python int."""
    x &= (1 << bits) - 1
    return x - (1 << bits) if x >> (bits - 1) else x


def s32(x):
    return sext(x, 32)


def s64(x):
    return sext(x, 64)


class VmFault(Exception):
    """Raised inside the VM when an instruction faults; :meth:`Vm.run` turns it into a result."""

    def __init__(self, cause, message, addr=0, size=0):
        super().__init__(message)
        self.cause = cause
        self.message = message
        self.addr = addr
        self.size = size


class HelperFault(Exception):
    """Raised by a helper to stop the program with ``Fault.HELPER``."""


class Halt(Exception):
    """Raised by a helper to end the program normally with ``r0``."""

    def __init__(self, r0):
        super().__init__(r0)
        self.r0 = r0


@dataclass
class RunResult:
    """How a run ended.

    Members
    -------
    r0 : int
        The program's result (0 after a fault).
    fault : Fault
    fault_pc : int or None
    message : str
        Empty after a normal exit; else what went wrong, naming pc (and address and size).
    retired : int
        Instructions retired, the faulting one included.
    """
    r0: int
    fault: Fault
    fault_pc: Optional[int]
    message: str
    retired: int

    @property
    def ok(self):
        return self.fault == Fault.NONE


# --- Operator tables ---------------------------------------------------------------------------
# Each ALU handler takes (a, b, w, off) with a and b already cut to w bits (unsigned) and returns
# an unsigned result of w bits; the 32-bit forms are then zero-extended to 64 bits.

def _div(a, b, w, off):
    if b == 0:
        return 0
    if off == 0:
        return a // b
    sa, sb = sext(a, w), sext(b, w)
    q = abs(sa) // abs(sb)
    return q if (sa < 0) == (sb < 0) else -q


def _mod(a, b, w, off):
    if b == 0:
        return a
    if off == 0:
        return a % b
    sa, sb = sext(a, w), sext(b, w)
    r = abs(sa) % abs(sb)
    return -r if sa < 0 else r


ALU_OPS = {
    AluOp.ADD: lambda a, b, w, off: a + b,
    AluOp.SUB: lambda a, b, w, off: a - b,
    AluOp.MUL: lambda a, b, w, off: a * b,
    AluOp.DIV: _div,
    AluOp.OR: lambda a, b, w, off: a | b,
    AluOp.AND: lambda a, b, w, off: a & b,
    AluOp.LSH: lambda a, b, w, off: a << (b & (w - 1)),
    AluOp.RSH: lambda a, b, w, off: a >> (b & (w - 1)),
    AluOp.NEG: lambda a, b, w, off: -a,
    AluOp.MOD: _mod,
    AluOp.XOR: lambda a, b, w, off: a ^ b,
    AluOp.MOV: lambda a, b, w, off: sext(b, off) if off else b,
    AluOp.ARSH: lambda a, b, w, off: sext(a, w) >> (b & (w - 1)),
}

JMP_OPS = {
    JmpOp.JEQ: lambda a, b, w: a == b,
    JmpOp.JGT: lambda a, b, w: a > b,
    JmpOp.JGE: lambda a, b, w: a >= b,
    JmpOp.JSET: lambda a, b, w: (a & b) != 0,
    JmpOp.JNE: lambda a, b, w: a != b,
    JmpOp.JSGT: lambda a, b, w: sext(a, w) > sext(b, w),
    JmpOp.JSGE: lambda a, b, w: sext(a, w) >= sext(b, w),
    JmpOp.JLT: lambda a, b, w: a < b,
    JmpOp.JLE: lambda a, b, w: a <= b,
    JmpOp.JSLT: lambda a, b, w: sext(a, w) < sext(b, w),
    JmpOp.JSLE: lambda a, b, w: sext(a, w) <= sext(b, w),
}

ATOMIC_OPS = {
    AtomicOp.ADD: lambda old, v: old + v,
    AtomicOp.OR: lambda old, v: old | v,
    AtomicOp.AND: lambda old, v: old & v,
    AtomicOp.XOR: lambda old, v: old ^ v,
}


def byte_swap(value, bits):
    return int.from_bytes((value & ((1 << bits) - 1)).to_bytes(bits // 8, "little"), "big")


# --- Memory ------------------------------------------------------------------------------------

class Memory:
    """The VM's 32-bit address space (abi address map), with bounds checks.

    Members
    -------
    ctx : bytearray
        ``struct xdp_md`` (read-only to programs).
    stack : bytearray
        ``abi.STACK_SIZE`` bytes; ``stack[i]`` is at ``abi.STACK_BASE + i``.
    packet : bytearray
        ``abi.PKT_BUF_SIZE`` bytes; ``packet[i]`` is at ``abi.PKT_BASE + i``.
    data, data_end : int
        Addresses bounding the packet; access is allowed in ``[data, data_end)``.
    maps : sequence
        Map objects (``values``, ``value_size``, ``capacity``, ``read_only``); map ``i`` is at
        ``abi.MAP_BASE + i * abi.MAP_WINDOW``.
    fp : int
        The current frame pointer; the stack is accessible in ``[fp - 512, STACK_TOP)``.
    """

    def __init__(self, maps=()):
        self.ctx = bytearray(abi.CTX_SIZE)
        self.stack = bytearray(abi.STACK_SIZE)
        self.packet = bytearray(abi.PKT_BUF_SIZE)
        self.data = abi.PKT_BASE + abi.PKT_HEADROOM
        self.data_end = self.data
        self.maps = list(maps)
        self.fp = abi.STACK_TOP

    def set_packet(self, data, headroom=abi.PKT_HEADROOM):
        if headroom + len(data) > abi.PKT_BUF_SIZE:
            raise ValueError(f"packet of {len(data)} bytes does not fit the "
                             f"{abi.PKT_BUF_SIZE}-byte buffer")
        self.packet[:] = bytes(abi.PKT_BUF_SIZE)
        self.packet[headroom:headroom + len(data)] = data
        self.data = abi.PKT_BASE + headroom
        self.data_end = self.data + len(data)

    def packet_bytes(self):
        return bytes(self.packet[self.data - abi.PKT_BASE:self.data_end - abi.PKT_BASE])

    def locate(self, addr, size, write):
        """(buffer, offset) of ``size`` bytes at ``addr``; raise :class:`VmFault` if not allowed."""
        end = addr + size
        if abi.STACK_BASE <= addr < abi.STACK_TOP:
            if addr >= self.fp - abi.STACK_FRAME_SIZE and end <= abi.STACK_TOP:
                return self.stack, addr - abi.STACK_BASE
        elif abi.PKT_BASE <= addr < abi.PKT_BASE + abi.PKT_BUF_SIZE:
            if addr >= self.data and end <= self.data_end:
                return self.packet, addr - abi.PKT_BASE
        elif abi.CTX_BASE <= addr < abi.CTX_BASE + abi.CTX_SIZE:
            if end <= abi.CTX_BASE + abi.CTX_SIZE:
                if write:
                    raise VmFault(Fault.STORE_RO, f"store of {size} bytes at {addr:#x} into the "
                                  "read-only context", addr, size)
                return self.ctx, addr - abi.CTX_BASE
        elif abi.MAP_BASE <= addr < abi.MAP_BASE + abi.MAX_MAPS * abi.MAP_WINDOW:
            index, offset = divmod(addr - abi.MAP_BASE, abi.MAP_WINDOW)
            if index < len(self.maps):
                m = self.maps[index]
                vs = m.value_size
                if vs and offset < m.capacity * vs and offset // vs == (offset + size - 1) // vs:
                    if write and m.read_only:
                        raise VmFault(Fault.STORE_RO, f"store of {size} bytes at {addr:#x} into "
                                      f"read-only map {index}", addr, size)
                    return m.values, offset
        if write:
            raise VmFault(Fault.STORE_OOB, f"store of {size} bytes at {addr:#x} is out of "
                          "bounds", addr, size)
        raise VmFault(Fault.LOAD_OOB, f"load of {size} bytes at {addr:#x} is out of bounds",
                      addr, size)

    def load(self, addr, size):
        buf, off = self.locate(addr, size, False)
        return int.from_bytes(buf[off:off + size], "little")

    def store(self, addr, size, value):
        buf, off = self.locate(addr, size, True)
        buf[off:off + size] = (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little")

    def read_bytes(self, addr, n):
        if n == 0:
            return b""
        buf, off = self.locate(addr, n, False)
        return bytes(buf[off:off + n])

    def write_bytes(self, addr, data):
        if not data:
            return
        buf, off = self.locate(addr, len(data), True)
        buf[off:off + len(data)] = data


# --- The VM ------------------------------------------------------------------------------------

_MASKS = {1: 0x1, 2: 0x3, 4: 0xf, 8: 0xff}


class Vm:
    """Runs one validated program.

    Parameters
    ----------
    program : Program
    helpers : dict of int to callable, optional
        ``{id: fn(vm, r1, r2, r3, r4, r5) -> int}``. ``fn`` may raise :class:`HelperFault` or
        :class:`Halt`.
    maps : sequence
        Map objects bound to the program (see :class:`Memory`).
    budget : int
        Instructions a run may retire; the next one faults with ``Fault.BUDGET``.
    on_retire : callable, optional
        Called with a :class:`RetireRecord` for every retired instruction.
    validate_program : bool
        Validate at construction (the loader's check); raises :class:`ProgramError`.

    Raises
    ------
    ProgramError
        The program is rejected by validation.
    """

    def __init__(self, program, *, helpers=None, maps=(), budget=abi.DEFAULT_BUDGET,
                 on_retire=None, validate_program=True):
        if not isinstance(program, Program):
            program = Program(program)
        self.helpers = dict(helpers or {})
        self.maps = list(maps)
        if validate_program:
            validate(program, helpers=set(self.helpers), n_maps=len(self.maps))
        self.program = program
        self.budget = budget
        self.on_retire = on_retire
        self.mem = Memory(self.maps)
        self.regs = [0] * 11
        self.frames = []
        self.pc = 0

    def load_program(self, program):
        """Switch to another program (tail call); the next step starts at its pc 0."""
        self.program = program
        self.pc = 0

    def run(self, r1=0, r2=0, ctx=None, packet=None):
        """Run from pc 0 until exit, halt or fault.

        Parameters
        ----------
        r1, r2 : int
            Initial argument registers (r1 is usually the context or memory address).
        ctx : bytes, optional
            Contents of ``struct xdp_md`` (``abi.CTX_SIZE`` bytes).
        packet : bytes, optional
            Packet placed at ``data`` (after ``abi.PKT_HEADROOM`` bytes of headroom).
        """
        mem = self.mem
        mem.stack[:] = bytes(abi.STACK_SIZE)
        if ctx is not None:
            mem.ctx[:] = bytes(ctx).ljust(abi.CTX_SIZE, b"\0")[:abi.CTX_SIZE]
        if packet is not None:
            mem.set_packet(packet)
        self.regs = [0] * 11
        self.regs[1] = u64(r1)
        self.regs[2] = u64(r2)
        self.regs[10] = abi.STACK_TOP
        mem.fp = abi.STACK_TOP
        self.frames = []
        self.pc = 0
        self.retired = 0
        while True:
            outcome = self.step()
            if outcome is not None:
                return outcome

    # One instruction. Returns None to go on, or the RunResult that ends the run.
    def step(self):
        pc = self.pc
        program = self.program
        if not 0 <= pc < len(program.slots):
            return self._fault(pc, 0, 0, VmFault(Fault.PC_RANGE,
                                                 f"control reached pc {pc}, outside the program"))
        insn = program.insns[pc]
        form = program.forms[pc]
        word = program.slots[pc]
        hi = program.slots[pc + 1] if form is not None and form.kind == Kind.LDDW else 0
        if self.retired >= self.budget:
            return self._fault(pc, word, hi, VmFault(
                Fault.BUDGET, f"instruction budget of {self.budget} exhausted"))
        if form is None:
            return self._fault(pc, word, hi, VmFault(Fault.ILLEGAL,
                                                     f"illegal instruction {word:#018x}"))
        rec = {}
        try:
            result = self._execute(pc, insn, form, hi, rec)
        except VmFault as fault:
            return self._fault(pc, word, hi, fault)
        record = None
        if self.on_retire is not None:
            record = RetireRecord(order=self.retired, pc=pc, insn=word, insn_hi=hi, **rec)
        self.retired += 1
        if record is not None:
            self.on_retire(record)
        return result

    def _fault(self, pc, word, hi, fault):
        if self.on_retire is not None:
            self.on_retire(RetireRecord(order=self.retired, pc=pc, insn=word, insn_hi=hi,
                                        fault=fault.cause))
        self.retired += 1
        return RunResult(0, fault.cause, pc, f"pc {pc}: {fault.message}", self.retired)

    def _end(self, r0, rec):
        rec["ret"] = r0
        return RunResult(r0, Fault.NONE, None, "", self.retired + 1)

    def _write(self, rd, value, rec):
        self.regs[rd] = value
        rec["rd"] = rd
        rec["rd_value"] = value

    def _execute(self, pc, insn, form, hi, rec):
        regs = self.regs
        kind = form.kind
        self.pc = pc + 1
        if kind == Kind.ALU:
            w = form.width
            mask = (1 << w) - 1
            a = regs[insn.dst] & mask
            if form.source == Source.X:
                b = regs[insn.src] & mask
            else:
                b = insn.imm & mask
            op = form.alu_op
            off = insn.off if op in (AluOp.DIV, AluOp.MOD, AluOp.MOV) else 0
            self._write(insn.dst, ALU_OPS[op](a, b, w, off) & mask, rec)
        elif kind == Kind.END:
            value = regs[insn.dst]
            bits = insn.imm
            if form.swaps:               # to big endian, or unconditional swap
                value = byte_swap(value, bits)
            else:                        # to little endian: the host order, so only truncate
                value &= (1 << bits) - 1
            self._write(insn.dst, value, rec)
        elif kind in (Kind.LOAD, Kind.LOADSX):
            size = form.width // 8
            addr = u64(regs[insn.src] + insn.off)
            value = self._load(addr, size, rec)
            if kind == Kind.LOADSX:
                value = u64(sext(value, form.width))
            self._write(insn.dst, value, rec)
        elif kind in (Kind.STORE_IMM, Kind.STORE_REG):
            size = form.width // 8
            addr = u64(regs[insn.dst] + insn.off)
            value = insn.imm if kind == Kind.STORE_IMM else regs[insn.src]
            self._store(addr, size, u64(value) & ((1 << form.width) - 1), rec)
        elif kind == Kind.ATOMIC:
            self._atomic(insn, form, rec)
        elif kind == Kind.LDDW:
            imm_hi = (hi >> 32) & M32
            source = LddwSource(insn.src)
            if source == LddwSource.IMM64:
                value = u32(insn.imm) | imm_hi << 32
            else:
                value = abi.MAP_BASE + insn.imm * abi.MAP_WINDOW
                if source.adds_offset:
                    value += imm_hi
            self._write(insn.dst, value, rec)
            self.pc = pc + 2
        elif kind == Kind.JA:
            self.pc = pc + 1 + insn.off
        elif kind == Kind.JA32:
            self.pc = pc + 1 + insn.imm
        elif kind == Kind.JCOND:
            w = form.width
            mask = (1 << w) - 1
            a = regs[insn.dst] & mask
            b = (regs[insn.src] if form.source == Source.X else insn.imm) & mask
            if JMP_OPS[form.jmp_op](a, b, w):
                self.pc = pc + 1 + insn.off
        elif kind in (Kind.CALL, Kind.CALLX):
            helper_id = insn.imm if kind == Kind.CALL else regs[insn.dst]
            return self._call_helper(helper_id, rec)
        elif kind == Kind.CALL_LOCAL:
            if len(self.frames) + 1 >= abi.STACK_FRAMES:
                raise VmFault(Fault.CALL_DEPTH, f"call deeper than {abi.STACK_FRAMES} frames")
            self.frames.append((pc + 1, regs[6:10], regs[10]))
            regs[10] -= abi.STACK_FRAME_SIZE
            self.mem.fp = regs[10]
            self.pc = pc + 1 + insn.imm
        elif kind == Kind.EXIT:
            if not self.frames:
                return self._end(regs[0], rec)
            self.pc, saved, regs[10] = self.frames.pop()
            regs[6:10] = saved
            self.mem.fp = regs[10]
        else:
            raise VmFault(Fault.ILLEGAL, f"{form.mnemonic} cannot be executed")
        return None

    def _load(self, addr, size, rec):
        value = self.mem.load(addr, size)
        rec["mem_addr"] = addr
        rec["mem_rmask"] = _MASKS[size]
        rec["mem_rdata"] = value
        return value

    def _store(self, addr, size, value, rec):
        self.mem.store(addr, size, value)
        rec["mem_addr"] = addr
        rec["mem_wmask"] = _MASKS[size]
        rec["mem_wdata"] = value

    def _atomic(self, insn, form, rec):
        regs = self.regs
        size = form.width // 8
        mask = (1 << form.width) - 1
        addr = u64(regs[insn.dst] + insn.off)
        self.mem.locate(addr, size, True)          # a store's checks come first
        old = self._load(addr, size, rec)
        op = AtomicOp(insn.imm)
        src = regs[insn.src] & mask
        if op == AtomicOp.CMPXCHG:
            if old == regs[0] & mask:
                self._store(addr, size, src, rec)
            self._write(0, old, rec)
        elif op == AtomicOp.XCHG:
            self._store(addr, size, src, rec)
            self._write(insn.src, old, rec)
        else:
            self._store(addr, size, ATOMIC_OPS[AtomicOp(insn.imm & ~ATOMIC_FETCH)](old, src) & mask, rec)
            if op.fetches:
                self._write(insn.src, old, rec)
        rec["mem_addr"] = addr

    def _call_helper(self, helper_id, rec):
        fn = self.helpers.get(helper_id)
        if fn is None:
            raise VmFault(Fault.BAD_CALL, f"call to unknown helper {helper_id}")
        rec["helper_id"] = helper_id
        regs = self.regs
        try:
            r0 = u64(fn(self, regs[1], regs[2], regs[3], regs[4], regs[5]))
        except HelperFault as error:
            raise VmFault(Fault.HELPER, f"helper {helper_id}: {error}") from None
        except VmFault as fault:
            raise VmFault(Fault.HELPER, f"helper {helper_id}: {fault.message}") from None
        except Halt as halt:
            r0 = u64(halt.r0)
            rec["helper_r0"] = r0
            self._write(0, r0, rec)
            return self._end(r0, rec)
        rec["helper_r0"] = r0
        self._write(0, r0, rec)
        return None
