"""CRC-32 of map keys (zlib / Ethernet polynomial), as :func:`bpfcore.sim.model.maps.map_key_hash`,
one key byte per cycle.

The reflected CRC register update for one byte is linear over GF(2) in (register, byte), so each
of the 32 next-register bits is the XOR of a fixed set of register and byte bits
(:func:`crc32_step_columns`, derived from zlib itself). :class:`KeyHash` starts from
``0xFFFFFFFF``, steps over the key's ``key_size`` bytes and inverts the result:
``zlib.crc32(key)``.
"""

import functools
import operator
import zlib

from amaranth import Module, Signal, Mux
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["crc32_step", "crc32_step_columns", "Crc32Step", "KeyHash"]


def crc32_step(register, byte):
    """One byte of the reflected CRC-32 register update (pure Python, no inversions)."""
    # zlib.crc32(data, value) inverts on the way in and out: undo both.
    return zlib.crc32(bytes([byte]), register ^ 0xFFFF_FFFF) ^ 0xFFFF_FFFF


@functools.cache
def crc32_step_columns():
    """For each next-register bit, the input bits it XORs: ``("r", i)`` register bit ``i``,
    ``("b", i)`` byte bit ``i``."""
    columns = [[] for _ in range(32)]
    inputs = [("r", i, 1 << i, 0) for i in range(32)] + [("b", i, 0, 1 << i) for i in range(8)]
    for kind, i, register, byte in inputs:
        out = crc32_step(register, byte)
        for bit in range(32):
            if out >> bit & 1:
                columns[bit].append((kind, i))
    return columns


class Crc32Step(wiring.Component):
    """Combinational CRC-32 register update by one byte.

    Members
    -------
    register : In(32)
    byte : In(8)
    next : Out(32)
    """

    register: In(32)
    byte: In(8)
    next: Out(32)

    def elaborate(self, platform):
        m = Module()
        source = {"r": self.register, "b": self.byte}
        for out, column in enumerate(crc32_step_columns()):
            bits = [source[kind][i] for kind, i in column]
            m.d.comb += self.next[out].eq(functools.reduce(operator.xor, bits))
        return m


class KeyHash(wiring.Component):
    """``zlib.crc32`` of a key, one byte per cycle.

    Parameters
    ----------
    max_key_size : int
        Key bytes the ``key`` port holds.

    Members
    -------
    start : In(1)
        Start over (the register goes to ``0xFFFFFFFF``, the byte count to 0).
    size : In(6)
        Key bytes to hash; the hash steps over one byte per cycle after ``start`` until
        ``done``.
    first : In(8)
        Key byte 0 (the first step's byte: the key register may not be masked yet then).
    key : In(8 * max_key_size)
        The key (bytes 1.. are read from here).
    done : Out(1)
        ``size`` bytes are hashed; ``crc`` holds ``zlib.crc32(key[:size])``.
    crc : Out(32)
    """

    def __init__(self, max_key_size):
        self.max_key_size = max_key_size
        super().__init__({
            "start": In(1), "size": In(6), "first": In(8), "key": In(8 * max_key_size),
            "done": Out(1), "crc": Out(32),
        })

    def elaborate(self, platform):
        m = Module()
        register = Signal(32)
        count = Signal(6)
        m.submodules.step = step = Crc32Step()
        m.d.comb += [step.register.eq(register),
                     step.byte.eq(Mux(count == 0, self.first, self.key.word_select(count, 8))),
                     self.done.eq(count == self.size), self.crc.eq(~register)]
        with m.If(count != self.size):
            m.d.sync += [register.eq(step.next), count.eq(count + 1)]
        with m.If(self.start):
            m.d.sync += [register.eq(0xFFFF_FFFF), count.eq(0)]
        return m
