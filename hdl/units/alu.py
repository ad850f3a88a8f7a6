"""ALU: add, sub, or, and, xor, mov/movsx, neg (RFC 9669 section 4.1), 64- or 32-bit.

32-bit results are zero-extended to 64 bits.
"""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from bpfcore.isa import AluOp

__all__ = ["Alu"]


class Alu(wiring.Component):
    """Combinational ALU.

    Members
    -------
    x_op : In(AluOp)
    x_a, x_b : In(64)
        Operand A (dst) and B (src or immediate, already sign-extended).
    x_w64 : In(1)
        64-bit operation (else 32-bit, result zero-extended).
    x_off : In(16)
        The offset field: source width of ``movsx`` (8, 16, 32), 0 for plain ``mov``.
    x_result : Out(64)
    """

    x_op: In(AluOp)
    x_a: In(64)
    x_b: In(64)
    x_w64: In(1)
    x_off: In(16)
    x_result: Out(64)

    def elaborate(self, platform):
        m = Module()
        a, b = self.x_a, self.x_b
        op = self.x_op
        # add, sub and neg share one adder: a + b, a + ~b + 1, 0 + ~a + 1.
        neg = op == AluOp.NEG
        invert = op.as_value().matches(AluOp.SUB, AluOp.NEG)
        sum_ = Signal(64)
        m.d.comb += sum_.eq(Mux(neg, 0, a) + (Mux(neg, a, b) ^ invert.replicate(64)) + invert)
        raw = Signal(64)
        with m.Switch(op):
            with m.Case(AluOp.ADD, AluOp.SUB, AluOp.NEG):
                m.d.comb += raw.eq(sum_)
            with m.Case(AluOp.OR):
                m.d.comb += raw.eq(a | b)
            with m.Case(AluOp.AND):
                m.d.comb += raw.eq(a & b)
            with m.Case(AluOp.XOR):
                m.d.comb += raw.eq(a ^ b)
            with m.Case(AluOp.MOV):
                with m.Switch(self.x_off):
                    with m.Case(8):
                        m.d.comb += raw.eq(b[:8].as_signed())
                    with m.Case(16):
                        m.d.comb += raw.eq(b[:16].as_signed())
                    with m.Case(32):
                        m.d.comb += raw.eq(b[:32].as_signed())
                    with m.Default():
                        m.d.comb += raw.eq(b)
        m.d.comb += self.x_result.eq(Mux(self.x_w64, raw, raw[:32]))
        return m
