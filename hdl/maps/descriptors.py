"""The descriptor table of the map memory: one small LUT RAM per field and reader.

A map's descriptor is a row of :class:`~.layouts.Field` values, written by the host with
``Op.CONFIG`` (:func:`bpfcore.sim.rtl.mapdrv.plan` computes them). Three readers each get their own
copy of the fields they read, so that no reader waits for another's address:

* the engine (the sequencer), synchronously, one cycle after ``e_en``;
* the CPU value port, asynchronously (its bounds check runs in the cycle of the access);
* the helper unit's info port, asynchronously (it reads a key before it makes a request).
"""

from amaranth import Module, Cat, Const, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .layouts import (Field, FIELD_WIDTHS, RECIP_SHIFT, VALUE_SIZE_BITS, cpu_port_bits,
                      descriptor_layout)

__all__ = ["Descriptors", "ENGINE_FIELDS", "CPU_FIELDS", "INFO_FIELDS"]

#: Fields each reader gets (CRC_INIT has none: the engine hashes from 0xFFFFFFFF; only the CPU
#: port reads LIMIT, CLEAR works out max_entries * value_size itself).
ENGINE_FIELDS = (Field.TYPE, Field.READ_ONLY, Field.KEY_SIZE, Field.VALUE_SIZE,
                 Field.MAX_ENTRIES, Field.VALUE_BASE, Field.SLOT_BASE, Field.BUCKET_BASE,
                 Field.BUCKET_MASK, Field.PROBE_LIMIT)
CPU_FIELDS = (Field.READ_ONLY, Field.VALUE_BASE, Field.RECIP, Field.LIMIT)
INFO_FIELDS = (Field.TYPE, Field.READ_ONLY, Field.KEY_SIZE, Field.VALUE_SIZE)

#: Low bits plan() always gives these fields (Field docs): constants, not stored. The 64-aligned
#: slot base and the 8-aligned value and bucket bases leave the base adders fewer bits.
_FIXED_LOW = {Field.VALUE_BASE: (3, 0), Field.SLOT_BASE: (6, 0),
              Field.BUCKET_BASE: (3, 0), Field.BUCKET_MASK: (3, 0b111)}


def descriptor_widths(slot_bits, bucket_bits, vaddr_bits):
    """Width of every stored field in a build with these address widths.

    Fields are as narrow as a plan() that fits the build makes them: a map's values lie in the
    value memory, so max_entries and max_entries * value_size are <= value_bytes (and < the
    1 MiB window). The CPU port only needs offsets below value_bytes (anything above is past
    the limit): c_bits of them, whose slot (offset * recip) >> c_shift is exact with the host's
    reciprocal rounded up to c_shift + 1 bits (:func:`~.layouts.cpu_port_bits`; exact for
    offset + 7 < 2 ** (c_bits + 1), value size < 2 ** VALUE_SIZE_BITS:
    test_narrowed_reciprocal_is_exact).
    """
    widths = FIELD_WIDTHS(slot_bits, bucket_bits, vaddr_bits)
    limit_bits, c_bits, c_shift = cpu_port_bits(vaddr_bits)
    widths[Field.MAX_ENTRIES] = widths[Field.LIMIT] = limit_bits
    widths[Field.VALUE_SIZE] = VALUE_SIZE_BITS
    widths[Field.RECIP] = c_shift + 1
    return widths


class Descriptors(wiring.Component):
    """Map descriptors, one LUT RAM per field and reader.

    Parameters
    ----------
    n_maps : int
        Rows (a power of two).
    slot_bits, bucket_bits, vaddr_bits : int
        Address widths of the slot space, the key index and the value memory (they set the
        field widths, :func:`descriptor_widths`).

    Members
    -------
    w_en : In(1)
        Write field ``w_field`` of map ``w_map`` with ``w_data`` (``Op.CONFIG``; ``RECIP`` is
        rounded up to the CPU port's width here).
    w_map : In(map_bits)
    w_field : In(4)
    w_data : In(64)
    e_en : In(1)
        Read map ``e_map``'s row for the engine: ``e`` holds it from the next cycle on, until
        the next ``e_en``.
    e_map : In(map_bits)
    e : Out(descriptor_layout(ENGINE_FIELDS))
    c_map : In(map_bits)
    c : Out(descriptor_layout(CPU_FIELDS, exists=True))
        Map ``c_map``'s row for the CPU port (combinational); ``exists``: it has a type.
    i_map : In(map_bits)
    i : Out(descriptor_layout(INFO_FIELDS))
        Map ``i_map``'s row for the helper unit (combinational).
    """

    def __init__(self, *, n_maps, slot_bits, bucket_bits, vaddr_bits):
        self.n_maps = n_maps
        self.map_bits = max(1, (n_maps - 1).bit_length())
        self.widths = descriptor_widths(slot_bits, bucket_bits, vaddr_bits)
        self.c_shift = cpu_port_bits(vaddr_bits)[2]
        mb = self.map_bits
        super().__init__({
            "w_en": In(1), "w_map": In(mb), "w_field": In(4), "w_data": In(64),
            "e_en": In(1), "e_map": In(mb),
            "e": Out(descriptor_layout(self.widths, ENGINE_FIELDS)),
            "c_map": In(mb), "c": Out(descriptor_layout(self.widths, CPU_FIELDS, exists=True)),
            "i_map": In(mb), "i": Out(descriptor_layout(self.widths, INFO_FIELDS)),
        })

    def elaborate(self, platform):
        m = Module()
        drop = RECIP_SHIFT - self.c_shift     # ceil(ceil(x) / 2**drop) == ceil(x / 2**drop)
        w_data = self.w_data
        recip_data = (w_data[drop:RECIP_SHIFT + 1] + (w_data[:drop] != 0)) if drop else w_data
        write_data = {Field.RECIP: recip_data}

        def field_memory(name, width, data, field):
            mem = Memory(shape=unsigned(width), depth=self.n_maps, init=[])
            m.submodules[name] = mem
            wp = mem.write_port()
            m.d.comb += [wp.addr.eq(self.w_map), wp.data.eq(data[:width]),
                         wp.en.eq(self.w_en & (self.w_field == field.value))]
            return mem

        readers = [(self.e, ENGINE_FIELDS), (self.c, CPU_FIELDS), (self.i, INFO_FIELDS)]
        for f in Field:
            who = [view for view, fields in readers if f in fields]
            if not who:
                continue
            low, fill = _FIXED_LOW.get(f, (0, 0))
            mem = field_memory(f"desc_{f.name.lower()}", self.widths[f] - low,
                               write_data.get(f, w_data)[low:], f)
            for view in who:
                if view is self.e:
                    rp = mem.read_port(transparent_for=())
                    m.d.comb += [rp.addr.eq(self.e_map), rp.en.eq(self.e_en)]
                else:
                    rp = mem.read_port(domain="comb")
                    m.d.comb += rp.addr.eq(self.c_map if view is self.c else self.i_map)
                m.d.comb += getattr(view, f.name.lower()).eq(Cat(Const(fill, low), rp.data))
        # The CPU port asks only whether the map exists: one bit, written with TYPE.
        exists = field_memory("desc_exists", 1, w_data[:self.widths[Field.TYPE]] != 0,
                              Field.TYPE)
        rp = exists.read_port(domain="comb")
        m.d.comb += [rp.addr.eq(self.c_map), self.c.exists.eq(rp.data)]
        return m
