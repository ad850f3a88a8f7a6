"""The CPU value port of the map memory: map values in the CPU's address space, with the VM's
bounds rule (:func:`~.layouts.CpuValueSignature`).

Cycle 1 (``en``): the value memory address; the descriptor fields and the product
``offset * recip`` are registered (the multiplier's output register: the CPU's fault decision in
cycle 2 must not wait for a DSP). Cycle 2: ``slot = (offset * recip) >> c_shift``; the last byte
is in the same value iff adding ``(size - 1) * recip`` to the product carries nothing into the
slot bits. Offsets of ``c_bits`` or more bits are past every limit (``exists`` is cleared).
"""

from amaranth import Module, Signal, Cat, Mux
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .bits import gt_const, add_aligned
from .descriptors import CPU_FIELDS, descriptor_widths
from .layouts import CpuValueSignature, cpu_port_bits, descriptor_layout

__all__ = ["CpuPort"]


class CpuPort(wiring.Component):
    """The CPU's port to the map values: bounds check and value memory port ``a``.

    Parameters
    ----------
    n_maps : int
        Maps (a power of two); higher map indices fail the check.
    slot_bits, bucket_bits, vaddr_bits : int
        Address widths of the map memory (:class:`~.descriptors.Descriptors`).

    Members
    -------
    cpu : In(CpuValueSignature())
        The CPU's memory stage.
    desc_map : Out(map_bits)
    desc : In(descriptor_layout(CPU_FIELDS, exists=True))
        The descriptor of the accessed map (the descriptor table's CPU reader).
    v_en, v_addr, v_we, v_wdata, v_wmask : Out
    v_ring, v_rot : In
        Port ``a`` of the :class:`~.values.ValueMemory`.
    """

    def __init__(self, *, n_maps, slot_bits, bucket_bits, vaddr_bits):
        self.n_maps = n_maps
        self.map_bits = max(1, (n_maps - 1).bit_length())
        self.vaddr_bits = vaddr_bits
        widths = descriptor_widths(slot_bits, bucket_bits, vaddr_bits)
        super().__init__({
            "cpu": In(CpuValueSignature()),
            "desc_map": Out(self.map_bits),
            "desc": In(descriptor_layout(widths, CPU_FIELDS, exists=True)),
            "v_en": Out(1), "v_addr": Out(vaddr_bits), "v_we": Out(1), "v_wdata": Out(64),
            "v_wmask": Out(8), "v_ring": In(128), "v_rot": In(4),
        })

    def elaborate(self, platform):
        m = Module()
        limit_bits, c_bits, c_shift = cpu_port_bits(self.vaddr_bits)
        cpu, desc = self.cpu, self.desc
        c_map = cpu.addr[20:26]
        c_off = cpu.addr[:20]
        m.d.comb += self.desc_map.eq(c_map[:self.map_bits])

        lat_off = Signal(c_bits)
        lat_size = Signal(2)
        lat_exists = Signal()
        lat_ro = Signal()
        recip = Signal(c_shift + 1)
        limit = Signal(limit_bits)
        prod = Signal(c_bits + c_shift + 1)
        with m.If(cpu.en):
            # Two DSP products, the low 18 bits of the first one need no adder.
            p_lo = c_off[:c_bits] * desc.recip[:18]
            p_hi = c_off[:c_bits] * desc.recip[18:]
            m.d.sync += prod.eq(Cat(p_lo[:18], p_lo[18:] + p_hi))
            m.d.sync += [lat_off.eq(c_off), lat_size.eq(cpu.size),
                         lat_exists.eq(~gt_const(c_map, self.n_maps - 1) & desc.exists
                                       & (c_off[c_bits:] == 0)),
                         lat_ro.eq(desc.read_only), recip.eq(desc.recip),
                         limit.eq(desc.limit)]
        addend = Signal(c_shift + 4)
        # (size - 1) * recip for 1, 2, 4, 8 bytes: 0, recip, 3 recip, 7 recip (one subtractor).
        m.d.comb += addend.eq(Mux(lat_size[1],
                                  Mux(lat_size[0], recip << 3, recip << 2) - recip,
                                  Mux(lat_size[0], recip, 0)))
        carry = Signal(c_shift + 1)
        m.d.comb += carry.eq(prod[:c_shift] + addend[:c_shift])
        m.d.comb += [
            cpu.ok.eq(lat_exists & (lat_off < limit) & (addend[c_shift:] == 0)
                      & ~carry[c_shift]),
            cpu.ro.eq(lat_ro),
            cpu.slot.eq(prod[c_shift:]),
            cpu.ring.eq(self.v_ring), cpu.rot.eq(self.v_rot),
            self.v_en.eq(cpu.en),
            self.v_addr.eq(add_aligned(desc.value_base, c_off, 3)),
            self.v_we.eq(cpu.we),
            self.v_wdata.eq(cpu.wdata),
            self.v_wmask.eq(Mux(lat_size == 0, 0x01, Mux(lat_size == 1, 0x03,
                                Mux(lat_size == 2, 0x0f, 0xff)))),
        ]
        return m
