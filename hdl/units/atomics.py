"""Atomic read-modify-write (RFC 9669 section 5.3): the new value from the old one.

Used in the memory stage's second atomic cycle: ``m_old`` is the value read (LSB-aligned,
zero-extended to the access width).
"""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from bpfcore.isa import AtomicOp

__all__ = ["Atomics"]


class Atomics(wiring.Component):
    """Combinational atomic operation.

    Members
    -------
    m_op : In(8)
        The instruction's imm (:class:`bpfcore.isa.AtomicOp`).
    m_w64 : In(1)
        64-bit access (else 32-bit).
    m_old : In(64)
        Memory value before the operation.
    m_src : In(64)
        The src register.
    m_cmp : In(64)
        r0 (cmpxchg compares with it).
    m_store : Out(1)
        Whether memory is written (a cmpxchg that does not match only reads).
    m_new : Out(64)
        The value written (cut to the width).
    """

    m_op: In(8)
    m_w64: In(1)
    m_old: In(64)
    m_src: In(64)
    m_cmp: In(64)
    m_store: Out(1)
    m_new: Out(64)

    def elaborate(self, platform):
        m = Module()
        old, src = self.m_old, self.m_src
        raw = Signal(64)
        m.d.comb += self.m_store.eq(1)
        with m.Switch(self.m_op & 0xfe):
            with m.Case(AtomicOp.ADD.value):
                m.d.comb += raw.eq(old + src)
            with m.Case(AtomicOp.OR.value):
                m.d.comb += raw.eq(old | src)
            with m.Case(AtomicOp.AND.value):
                m.d.comb += raw.eq(old & src)
            with m.Case(AtomicOp.XOR.value):
                m.d.comb += raw.eq(old ^ src)
            with m.Case(AtomicOp.XCHG.value & 0xfe):
                m.d.comb += raw.eq(src)
            with m.Case(AtomicOp.CMPXCHG.value & 0xfe):
                m.d.comb += raw.eq(src)
                equal = Mux(self.m_w64, old == self.m_cmp, old[:32] == self.m_cmp[:32])
                m.d.comb += self.m_store.eq(equal)
        m.d.comb += self.m_new.eq(Mux(self.m_w64, raw, raw[:32]))
        return m
