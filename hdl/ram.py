"""Block-RAM read ports that Yosys maps without read-during-write emulation.

Amaranth emits ``read_port(transparent_for=())`` as a read-first port; on ECP5 block RAM Yosys
emulates that with a delayed copy of the write data and a bypass multiplexer, as wide as the
memory. Where no cycle reads the row that it writes (or the design mends such a read itself,
as the load/store unit's bypass does), :func:`registered_read_port` and :data:`NO_RW_CHECK`
leave that collision undefined and cost nothing beside the RAM.
"""

from types import SimpleNamespace

from amaranth import Signal

__all__ = ["registered_read_port", "NO_RW_CHECK"]

#: Memory attributes of a block RAM that no used read meets a write in (see
#: :func:`registered_read_port`).
NO_RW_CHECK = {"no_rw_check": 1}


def registered_read_port(m, mem, name):
    """A synchronous read port of ``mem`` (``addr``, ``en``, ``data`` one cycle later, the old
    word if the cycle also writes it) built as an asynchronous read into a register.

    Amaranth emits ``read_port(transparent_for=())`` as a read-first port, which Yosys emulates
    on ECP5 block RAM with a delayed write and a bypass multiplexer. Built this way, Yosys merges
    the register into the block RAM and, with ``no_rw_check`` on the memory, leaves the
    collision undefined. Use it only where no cycle reads the row it writes, or where the
    design replaces the bytes such a read gets (the simulation still returns the old word).
    """
    rp = mem.read_port(domain="comb")
    en = Signal(init=1, name=f"{name}_ren")
    data = Signal(mem.shape, name=f"{name}_rdata")
    with m.If(en):
        m.d.sync += data.eq(rp.data)
    return SimpleNamespace(addr=rp.addr, en=en, data=data)
