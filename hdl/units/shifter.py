"""Shifter: lsh, rsh, arsh (RFC 9669 section 4.1) with the amount masked to 6 or 5 bits."""

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from bpfcore.isa import AluOp

__all__ = ["Shifter"]


class Shifter(wiring.Component):
    """Combinational shifter: one right shifter with a fill bit serves lsh, rsh and arsh.

    Members
    -------
    x_op : In(AluOp)
        LSH, RSH or ARSH (the result is meaningless for other values).
    x_a : In(64)
        The value shifted.
    x_b : In(64)
        The amount (masked to ``& 63`` or ``& 31``).
    x_w64 : In(1)
    x_result : Out(64)
        32-bit results are zero-extended.
    """

    x_op: In(AluOp)
    x_a: In(64)
    x_b: In(64)
    x_w64: In(1)
    x_result: Out(64)

    def elaborate(self, platform):
        m = Module()
        w64 = self.x_w64
        left = Signal()
        arith = Signal()
        amount = Signal(6)
        sign = Signal()
        m.d.comb += [
            left.eq(self.x_op == AluOp.LSH),
            arith.eq(self.x_op == AluOp.ARSH),
            amount.eq(Mux(w64, self.x_b[:6], self.x_b[:5])),
            sign.eq(Mux(w64, self.x_a[63], self.x_a[31]) & arith),
        ]
        # One right shifter serves all three: a left shift is a right shift of the bit-reversed
        # operand; a 32-bit right shift shifts the low word with the fill bit above it (the
        # result's low word is then right as it stands).
        value = Signal(64)
        m.d.comb += value.eq(Mux(left, self.x_a[::-1],
                                 Cat(self.x_a[:32], Mux(w64, self.x_a[32:], sign.replicate(32)))))
        # Six explicit 2:1 stages (a 64-bit log shifter), the fill bit entering from the top.
        right = value
        for i in range(6):
            k = 1 << i
            stage = Signal(64, name=f"stage{i}")
            m.d.comb += stage.eq(Mux(amount[i], Cat(right[k:], sign.replicate(k)), right))
            right = stage
        raw = Signal(64)
        m.d.comb += raw.eq(Mux(left, right[::-1], right))
        m.d.comb += self.x_result.eq(Mux(w64, raw, raw[:32]))
        return m
