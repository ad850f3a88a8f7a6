"""CRC-32 of map keys (zlib / Ethernet polynomial), as :func:`bpfcore.sim.maps.map_key_hash`.

The CRC is affine in the message: ``crc32(m) = raw(m) ^ crc32(bytes(len(m)))`` where ``raw`` is
the CRC register with initial value 0 and no final inversion. ``raw`` is linear and leading zero
bytes leave it at 0, so a key of any length ``L <= n`` is hashed by one fixed XOR network over
``n`` bytes: put the key at the *end* of the ``n``-byte message (``n - L`` zero bytes first) and
XOR the result with the per-length constant ``crc32(bytes(L))`` (descriptor field ``CRC_INIT``).
"""

import functools
import operator
import zlib

from amaranth import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["raw_crc32", "raw_crc32_columns", "Crc32"]


def raw_crc32(message):
    """``raw`` of the module docstring (pure Python)."""
    message = bytes(message)
    return zlib.crc32(message) ^ zlib.crc32(bytes(len(message)))


@functools.cache
def raw_crc32_columns(n_bytes):
    """For each CRC output bit, the message bit positions (``8 * byte + bit``) it XORs."""
    columns = [[] for _ in range(32)]
    for pos in range(8 * n_bytes):
        msg = bytearray(n_bytes)
        msg[pos // 8] = 1 << (pos % 8)
        crc = raw_crc32(msg)
        for out in range(32):
            if crc >> out & 1:
                columns[out].append(pos)
    return columns


class Crc32(wiring.Component):
    """Combinational ``raw`` CRC-32 of an ``n_bytes`` message (byte ``j`` at bits ``8j``).

    Members
    -------
    message : In(8 * n_bytes)
    crc : Out(32)
    """

    def __init__(self, n_bytes):
        if not isinstance(n_bytes, int) or n_bytes < 1:
            raise ValueError(f"n_bytes must be a positive integer, not {n_bytes!r}")
        self.n_bytes = n_bytes
        super().__init__({"message": In(8 * n_bytes), "crc": Out(32)})

    def elaborate(self, platform):
        m = Module()
        for out, column in enumerate(raw_crc32_columns(self.n_bytes)):
            bits = [self.message[pos] for pos in column]
            m.d.comb += self.crc[out].eq(functools.reduce(operator.xor, bits) if bits else 0)
        return m
