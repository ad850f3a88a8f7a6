"""Multiplier: the low 64 bits of a 64 x 64 product, in 16 x 16 partial products.

Each partial product is written as a 16 x 16 unsigned multiply so that Yosys maps it onto one
ECP5 ``MULT18X18D``; only the ten products that reach the low 64 bits are built. Latency: the
products are registered in the start cycle, summed in the next; ``x_done`` rises the cycle after.
A 32-bit multiply uses the same unit (the low 32 bits of the product only depend on the low 32
bits of the operands); the caller zero-extends.
"""

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

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
        total = 0
        for (i, j), p in products.items():
            total = total + (p << (16 * (i + j)))
        with m.If(self.x_start):
            m.d.sync += step.eq(1)
        with m.Elif(step == 1):
            m.d.sync += [step.eq(2), self.x_result.eq(total[:64])]
        m.d.comb += self.x_done.eq(step == 2)
        return m
