"""Small logic builders for the map memory.

Yosys maps every ``<``/``>`` to an ECP5 carry chain, even against a constant; a thermometer
code of a small value costs one carry chain per output that way. These build the comparisons
as plain AND/OR logic instead, which the LUT mapper packs into a few LUTs.

:func:`registered_read_port` builds a block-RAM read port that Yosys maps without read-during-write
emulation.
"""

from types import SimpleNamespace

from amaranth import Cat, Const, Signal, Value

__all__ = ["gt_const", "thermometer", "registered_read_port", "NO_RW_CHECK"]

#: Memory attributes of a block RAM that no used read meets a write in (see
#: :func:`registered_read_port`).
NO_RW_CHECK = {"no_rw_check": 1}


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


def registered_read_port(m, mem, name):
    """A synchronous read port of ``mem`` (``addr``, ``en``, ``data`` one cycle later, the old
    word if the cycle also writes it) built as an asynchronous read into a register.

    Amaranth emits ``read_port(transparent_for=())`` as a read-first port, which Yosys emulates
    on ECP5 block RAM with a delayed write and a bypass multiplexer. Built this way, Yosys merges
    the register into the block RAM and, with ``no_rw_check`` on the memory, leaves the
    collision undefined. Use it only where no cycle reads and writes the memory at once
    (the simulation still returns the old word).
    """
    rp = mem.read_port(domain="comb")
    en = Signal(init=1, name=f"{name}_ren")
    data = Signal(mem.shape, name=f"{name}_rdata")
    with m.If(en):
        m.d.sync += data.eq(rp.data)
    return SimpleNamespace(addr=rp.addr, en=en, data=data)
