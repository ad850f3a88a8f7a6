"""Small logic builders for the map memory.

Yosys maps every ``<``/``>`` to an ECP5 carry chain, even against a constant; a thermometer
code of a small value costs one carry chain per output that way. These build the comparisons
as plain AND/OR logic instead, which the LUT mapper packs into a few LUTs.
"""

from amaranth import Cat, Const, Mux, Signal, Value

__all__ = ["gt_const", "thermometer", "add_aligned", "lowest_set"]


def gt_const(x, c):
    """``x > c`` for an unsigned value ``x`` and a constant ``c``, as AND/OR logic."""
    x = Value.cast(x)
    width = len(x)
    if c < 0:
        return Const(1)
    if c >= (1 << width) - 1:
        return Const(0)
    top = x[width - 1]
    if width == 1:
        return top & ~Const(c & 1, 1) if c else top
    half = 1 << (width - 1)
    if c >= half:
        return top & gt_const(x[:width - 1], c - half)
    return top | gt_const(x[:width - 1], c)


def thermometer(x, n):
    """``n`` bits, bit ``i`` = ``x > i``."""
    return Cat(*(gt_const(x, i) for i in range(n)))


def add_aligned(base, x, low):
    """``base + x`` (``len(base)`` bits) for a ``base`` whose ``low`` low bits are zero: an
    adder over the high bits only."""
    width = len(base)
    return Cat(x[:low], (base[low:] + x[low:width])[:width - low])


def lowest_set(m, bits):
    """(any, index of the lowest set bit) of a power-of-two-wide value, as a mux tree (its
    signals are added to module ``m``)."""
    if len(bits) == 1:
        return bits[0], Const(0, 0)
    half = len(bits) // 2
    lo_any, lo_idx = lowest_set(m, bits[:half])
    hi_any, hi_idx = lowest_set(m, bits[half:])
    any_set = Signal(name=f"any{len(bits)}")
    index = Signal(len(lo_idx) + 1, name=f"low{len(bits)}")
    m.d.comb += [any_set.eq(lo_any | hi_any), index.eq(Cat(Mux(lo_any, lo_idx, hi_idx), ~lo_any))]
    return any_set, index
