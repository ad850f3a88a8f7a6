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
        # Bring both widths to one 65-bit signed/unsigned compare: the 32-bit form zero- or
        # sign-extends its low halves.
        a = Signal(64)
        b = Signal(64)
        signed_op = Signal()
        m.d.comb += signed_op.eq(self.x_op.as_value().matches(JmpOp.JSGT, JmpOp.JSGE, JmpOp.JSLT,
                                                   JmpOp.JSLE))
        ext_a = signed_op & self.x_a[31]
        ext_b = signed_op & self.x_b[31]
        m.d.comb += [
            a.eq(Mux(w64, self.x_a, self.x_a[:32] | (ext_a.replicate(32) << 32))),
            b.eq(Mux(w64, self.x_b, self.x_b[:32] | (ext_b.replicate(32) << 32))),
        ]
        # One subtraction gives equality and both orderings.
        top_a = signed_op & a[63]
        top_b = signed_op & b[63]
        diff = Signal(66)
        m.d.comb += diff.eq((a | (top_a.replicate(2) << 64)) - (b | (top_b.replicate(2) << 64)))
        lt = diff[65]
        eq = Signal()
        m.d.comb += eq.eq(a == b)
        with m.Switch(self.x_op):
            with m.Case(JmpOp.JEQ):
                m.d.comb += self.x_taken.eq(eq)
            with m.Case(JmpOp.JNE):
                m.d.comb += self.x_taken.eq(~eq)
            with m.Case(JmpOp.JSET):
                m.d.comb += self.x_taken.eq((a & b).any())
            with m.Case(JmpOp.JGT, JmpOp.JSGT):
                m.d.comb += self.x_taken.eq(~lt & ~eq)
            with m.Case(JmpOp.JGE, JmpOp.JSGE):
                m.d.comb += self.x_taken.eq(~lt)
            with m.Case(JmpOp.JLT, JmpOp.JSLT):
                m.d.comb += self.x_taken.eq(lt)
            with m.Case(JmpOp.JLE, JmpOp.JSLE):
                m.d.comb += self.x_taken.eq(lt | eq)
        return m
