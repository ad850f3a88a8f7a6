"""Multiplier: the low 64 bits of a 64 x 64 product, in 16 x 16 partial products.

Each partial product is written as a 16 x 16 unsigned multiply so that Yosys maps it onto one
ECP5 ``MULT18X18D``; only the ten products that reach the low 64 bits are built. Latency: the
products are registered in the start cycle, summed in the next; ``x_done`` rises the cycle after.
A 32-bit multiply uses the same unit (the low 32 bits of the product only depend on the low 32
bits of the operands); the caller zero-extends.
"""

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..attrs import KEEP

__all__ = ["Multiplier", "LATENCY"]

#: Cycles from ``x_start`` to ``x_done``.
LATENCY = 2


class Multiplier(wiring.Component):
    """Two-cycle multiplier.

    Members
    -------
    x_start : In(1)
        Operands are valid; start a product (restarts any product in flight).
    x_a, x_b : In(64)
    x_done : Out(1)
        ``x_result`` holds the product of the last start (stays until the next start).
    x_result : Out(64)
    """

    x_start: In(1)
    x_a: In(64)
    x_b: In(64)
    x_done: Out(1)
    x_result: Out(64)

    def elaborate(self, platform):
        m = Module()
        a = [self.x_a[16 * i:16 * i + 16] for i in range(4)]
        b = [self.x_b[16 * j:16 * j + 16] for j in range(4)]
        products = {}
        for i in range(4):
            for j in range(4 - i):
                p = Signal(32, name=f"p{i}{j}")
                m.d.sync += p.eq(a[i] * b[j])
                products[i, j] = p
        step = Signal(range(LATENCY + 1))
        # The sum, column by column (weights 2**16k), with adders no wider than the bits that
        # reach the low 64, each kept a ripple adder (KEEP): summed in one expression, Yosys
        # builds the ten products' sum from carry-save LUT layers (460 against 237 COMB).
        pr = products
        s16 = Signal(33, attrs=KEEP)            # weight 16
        s32a = Signal(32, attrs=KEEP)
        s32 = Signal(32, attrs=KEEP)            # weight 32
        s48a = Signal(16, attrs=KEEP)
        s48b = Signal(16, attrs=KEEP)
        s48 = Signal(16, attrs=KEEP)            # weight 48
        u = Signal(34, attrs=KEEP)              # bits 16..49
        v = Signal(33, attrs=KEEP)              # bits 32..64
        w = Signal(17, attrs=KEEP)              # bits 48..64
        m.d.comb += [
            s16.eq(pr[0, 1] + pr[1, 0]),
            s32a.eq(pr[0, 2] + pr[1, 1]),
            s32.eq(s32a + pr[2, 0]),
            s48a.eq(pr[0, 3] + pr[1, 2]),
            s48b.eq(pr[2, 1] + pr[3, 0]),
            s48.eq(s48a + s48b),
            u.eq(pr[0, 0][16:] + s16),
            v.eq(u[16:] + s32),
            w.eq(v[16:32] + s48),
        ]
        total = Cat(pr[0, 0][:16], u[:16], v[:16], w[:16])
        with m.If(self.x_start):
            m.d.sync += step.eq(1)
        with m.Elif(step == 1):
            m.d.sync += [step.eq(2), self.x_result.eq(total[:64])]
        m.d.comb += self.x_done.eq(step == 2)
        return m
