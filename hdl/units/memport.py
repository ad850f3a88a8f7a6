"""The memory stage's data paths, shared between the pipeline and the helper units.

While the CPU waits for a helper, the pipeline is drained and the helper units read and write
stack, packet, context and map values through the CPU's own memories and region rules
(:data:`~bpfcore.hdl.layouts.HelperMemSignature`): an access is checked in the cycle of its
``en`` (as execute checks a load or store), uses the memory stage's paths in the next cycle, and
is answered one cycle later again: the answer is registered, so the helper units' use of the data
(sums, compares) starts at a flip-flop, not behind the block-RAM read and the alignment.

Map values are requested from the map memory as the access enters the memory stage: the
pipeline's request comes from execute (whether or not execute fires: a stalled instruction issues
it again, and the memory stage only looks at the answer after an access that fired; not waiting
for ``fire`` keeps the map check of the instruction in memory, whose fault stops execute, off the
path into the map memory's address).
"""

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from bpfcore import abi
from bpfcore.abi import Region
from bpfcore.isa import Size
from ..layouts import HelperMemSignature
from .lsu import RegionCheck, size_mask

__all__ = ["MemoryPort"]


def _log2_size(m, size, name):
    """log2 of the byte count of a :class:`Size` (the map memory's ``size``)."""
    out = Signal(2, name=name)
    with m.Switch(size):
        for value, log2 in ((Size.B, 0), (Size.H, 1), (Size.W, 2), (Size.DW, 3)):
            with m.Case(value):
                m.d.comb += out.eq(log2)
    return out


def _map_offset(addr):
    """``addr - abi.MAP_BASE`` for an address of the map region (26 bits: map, offset)."""
    assert abi.MAP_BASE == 1 << 24 and abi.MAX_MAPS * abi.MAP_WINDOW == 4 << 24
    return Cat(addr[:24], (addr[24:27] - 1)[:2])


class MemoryPort(wiring.Component):
    """Access selection between the pipeline and the helper units' ``hmem`` port.

    Members
    -------
    hmem : In(HelperMemSignature)
        The helper units' access (the CPU's ``hmem`` port).
    fp, pkt_data, pkt_data_end : In(32)
        r10 and the packet bounds, for the helper access's region check.
    x_map : In(1)
        Execute requests a map value access at ``x_addr`` of ``x_size`` bytes.
    x_addr : In(32)
    x_size : In(Size)
    m_addr, m_region, m_size, m_sext : In
        The access of the instruction in the memory stage.
    m_we, m_wdata, m_map : In
        Its write this cycle, and whether it goes to a map value.
    m_rdata : In(64)
        The bytes the load/store unit read (the helper access's answer).
    lsu_x_addr, lsu_m_addr, lsu_m_region, lsu_m_size, lsu_m_sext, lsu_m_we, lsu_m_wdata : Out
        The access the load/store unit makes (the helper's while one is pending).
    m_mask : Out(8)
        Its byte mask.
    map_en, map_addr, map_size, map_we, map_wdata : Out
        The request to the map memory's CPU port.
    map_ok, map_ro, map_slot : In
        Its answer.
    """

    hmem: In(HelperMemSignature)
    fp: In(32)
    pkt_data: In(32)
    pkt_data_end: In(32)
    x_map: In(1)
    x_addr: In(32)
    x_size: In(Size)
    m_addr: In(32)
    m_region: In(3)
    m_size: In(Size)
    m_sext: In(1)
    m_we: In(1)
    m_wdata: In(64)
    m_map: In(1)
    m_rdata: In(64)
    lsu_x_addr: Out(32)
    lsu_m_addr: Out(32)
    lsu_m_region: Out(3)
    lsu_m_size: Out(Size)
    lsu_m_sext: Out(1)
    lsu_m_we: Out(1)
    lsu_m_wdata: Out(64)
    m_mask: Out(8)
    map_en: Out(1)
    map_addr: Out(26)
    map_size: Out(2)
    map_we: Out(1)
    map_wdata: Out(64)
    map_ok: In(1)
    map_ro: In(1)
    map_slot: In(21)

    def elaborate(self, platform):
        m = Module()
        hmem = self.hmem
        m.submodules.hregion = hregion = RegionCheck()
        m.d.comb += [
            hregion.x_base.eq(hmem.addr), hregion.x_off.eq(0), hregion.x_size.eq(hmem.size),
            hregion.x_write.eq(hmem.we), hregion.x_fp.eq(self.fp),
            hregion.x_data.eq(Mux(hmem.raw, abi.PKT_BASE, self.pkt_data)),
            hregion.x_data_end.eq(Mux(hmem.raw, abi.PKT_BASE + abi.PKT_BUF_SIZE,
                                      self.pkt_data_end)),
        ]
        x_log2 = _log2_size(m, self.x_size, "x_log2_size")
        h_log2 = _log2_size(m, hmem.size, "h_log2_size")
        with m.If(hmem.en):
            m.d.comb += [self.map_en.eq(hregion.x_region == Region.MAP),
                         self.map_addr.eq(_map_offset(hmem.addr)), self.map_size.eq(h_log2)]
        with m.Else():
            m.d.comb += [self.map_en.eq(self.x_map),
                         self.map_addr.eq(_map_offset(self.x_addr)), self.map_size.eq(x_log2)]

        h_pending = Signal()
        h_addr = Signal(32)
        h_size = Signal(Size)
        h_we = Signal()
        h_wdata = Signal(64)
        h_region = Signal(3)
        h_fault = Signal(4)
        m.d.sync += h_pending.eq(hmem.en)
        with m.If(hmem.en):
            m.d.sync += [h_addr.eq(hregion.x_addr), h_size.eq(hmem.size), h_we.eq(hmem.we),
                         h_wdata.eq(hmem.wdata), h_region.eq(hregion.x_region),
                         h_fault.eq(hregion.x_fault)]
        a_size = Signal(Size)
        m.d.comb += [self.lsu_m_region.eq(Mux(h_pending, h_region, self.m_region)),
                     a_size.eq(Mux(h_pending, h_size, self.m_size))]
        m.d.comb += [self.lsu_m_size.eq(a_size), self.m_mask.eq(size_mask(m, a_size, "m_bmask"))]

        h_map = h_region == Region.MAP
        m.d.sync += [
            hmem.done.eq(h_pending),
            hmem.rdata.eq(self.m_rdata),
            hmem.fault.eq((h_fault != 0) | (h_map & (~self.map_ok | (h_we & self.map_ro)))),
            hmem.slot.eq(Mux(h_map, self.map_slot, 0)),
        ]
        m.d.comb += [
            self.lsu_x_addr.eq(Mux(hmem.en, hregion.x_addr, self.x_addr)),
            self.lsu_m_addr.eq(Mux(h_pending, h_addr, self.m_addr)),
            self.lsu_m_sext.eq(self.m_sext & ~h_pending),
        ]
        m_we = self.lsu_m_we
        m_wdata = self.lsu_m_wdata
        with m.If(h_pending):
            m.d.comb += [m_we.eq(h_we & (h_fault == 0)), m_wdata.eq(h_wdata),
                         self.map_we.eq(h_we & h_map & self.map_ok & ~self.map_ro)]
        with m.Else():
            m.d.comb += [m_we.eq(self.m_we), m_wdata.eq(self.m_wdata),
                         self.map_we.eq(self.m_we & self.m_map)]
        m.d.comb += self.map_wdata.eq(m_wdata)
        return m
