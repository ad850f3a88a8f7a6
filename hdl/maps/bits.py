"""Small logic builders for the map memory.

Yosys maps every ``<``/``>`` to an ECP5 carry chain, even against a constant; a thermometer
code of a small value costs one carry chain per output that way. These build the comparisons
as plain AND/OR logic instead, which the LUT mapper packs into a few LUTs.
"""

from amaranth import Cat, Const, Value

__all__ = ["gt_const", "thermometer"]


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
