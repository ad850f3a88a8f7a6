"""Byte order: le16/32/64 (truncate), be16/32/64 and bswap16/32/64 (swap), RFC 9669 section 4.2.

Bits above the width are cleared in every case.
"""

from amaranth.hdl import Cat, Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["ByteSwap"]


class ByteSwap(wiring.Component):
    """Combinational byte-order unit.

    Members
    -------
    x_a : In(64)
    x_bits : In(7)
        Width: 16, 32 or 64 (the instruction's imm).
    x_swap : In(1)
        Reverse the bytes (be on a little-endian machine, bswap); else only truncate (le).
    x_result : Out(64)
    """

    x_a: In(64)
    x_bits: In(7)
    x_swap: In(1)
    x_result: Out(64)

    def elaborate(self, platform):
        m = Module()
        a = self.x_a
        byte = [a[8 * i:8 * i + 8] for i in range(8)]
        with m.Switch(Cat(self.x_swap, self.x_bits)):
            with m.Case(16 << 1):
                m.d.comb += self.x_result.eq(a[:16])
            with m.Case(32 << 1):
                m.d.comb += self.x_result.eq(a[:32])
            with m.Case(64 << 1):
                m.d.comb += self.x_result.eq(a)
            with m.Case(16 << 1 | 1):
                m.d.comb += self.x_result.eq(Cat(byte[1], byte[0]))
            with m.Case(32 << 1 | 1):
                m.d.comb += self.x_result.eq(Cat(*reversed(byte[:4])))
            with m.Case(64 << 1 | 1):
                m.d.comb += self.x_result.eq(Cat(*reversed(byte)))
        return m
