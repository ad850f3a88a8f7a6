"""Branch compare: the eleven conditions of RFC 9669 section 4.3, on 64 or the low 32 bits."""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from bpfcore.isa import JmpOp

__all__ = ["BranchCompare"]


class BranchCompare(wiring.Component):
    """Combinational compare.

    Members
    -------
    x_op : In(JmpOp)
    x_a, x_b : In(64)
        dst and src (or the sign-extended immediate).
    x_w64 : In(1)
        Compare 64 bits (JMP class), else the low 32 bits (JMP32).
    x_taken : Out(1)
    """

    x_op: In(JmpOp)
    x_a: In(64)
    x_b: In(64)
    x_w64: In(1)
    x_taken: Out(1)

    def elaborate(self, platform):
        m = Module()
        w64 = self.x_w64
        a, b = self.x_a, self.x_b
        signed_op = Signal()
        m.d.comb += signed_op.eq(self.x_op.as_value().matches(JmpOp.JSGT, JmpOp.JSGE, JmpOp.JSLT,
                                                   JmpOp.JSLE))
        # Two 32-bit subtractions side by side (two short carry chains, no width mux in front):
        # the low half's borrow is the 32-bit unsigned "less than"; the 64-bit one is the high
        # half's, or the low half's when the high halves are equal. Where the signs differ, the
        # signed order is the sign.
        lo = Signal(33)
        hi = Signal(33)
        m.d.comb += [lo.eq(a[:32] - b[:32]), hi.eq(a[32:] - b[32:])]
        eq_lo = Signal()
        eq_hi = Signal()
        m.d.comb += [eq_lo.eq(a[:32] == b[:32]), eq_hi.eq(a[32:] == b[32:])]
        sign_a = Mux(w64, a[63], a[31])
        sign_b = Mux(w64, b[63], b[31])
        ltu = Mux(w64, hi[32] | (eq_hi & lo[32]), lo[32])
        lt = Signal()
        m.d.comb += lt.eq(Mux(signed_op & (sign_a ^ sign_b), sign_a, ltu))
        eq = Signal()
        m.d.comb += eq.eq(eq_lo & (~w64 | eq_hi))
        both = a & b
        any_set = both[:32].any() | (w64 & both[32:].any())
        with m.Switch(self.x_op):
            with m.Case(JmpOp.JEQ):
                m.d.comb += self.x_taken.eq(eq)
            with m.Case(JmpOp.JNE):
                m.d.comb += self.x_taken.eq(~eq)
            with m.Case(JmpOp.JSET):
                m.d.comb += self.x_taken.eq(any_set)
            with m.Case(JmpOp.JGT, JmpOp.JSGT):
                m.d.comb += self.x_taken.eq(~lt & ~eq)
            with m.Case(JmpOp.JGE, JmpOp.JSGE):
                m.d.comb += self.x_taken.eq(~lt)
            with m.Case(JmpOp.JLT, JmpOp.JSLT):
                m.d.comb += self.x_taken.eq(lt)
            with m.Case(JmpOp.JLE, JmpOp.JSLE):
                m.d.comb += self.x_taken.eq(lt | eq)
        return m
