"""Load/store unit: region check (execute), stack and packet memories, alignment (memory).

Address map and rules are :mod:`bpfcore.abi`'s, as the golden VM's ``Memory.locate`` applies them:

=========  ==========================================  ===========================================
region     allowed                                     fault otherwise
=========  ==========================================  ===========================================
context    loads inside the 24 bytes of ``xdp_md``     stores: ``STORE_RO`` (``STORE_OOB`` if the
                                                       access runs past the end)
stack      ``[r10 - 512, STACK_TOP)``                  ``LOAD_OOB`` / ``STORE_OOB``
packet     ``[data, data_end)``                        ``LOAD_OOB`` / ``STORE_OOB``
map        inside one value of an existing map     ``LOAD_OOB`` / ``STORE_OOB`` (``STORE_RO``
           (decided by the map memory, memory stage)   for a map read-only to programs)
=========  ==========================================  ===========================================

Accesses may be unaligned. Stack and packet are each stored as two banks of 64-bit words (even
and odd word addresses), read together, so any access of up to 8 bytes is one read of the word
pair ``{w, w+1}`` and one shift. The read address is issued from execute (``x_addr``), the data is
aligned in memory (``m_*``), and stores write at the end of the memory stage. A load right behind
a store to the same word pair reads in the cycle of the write: the bytes written then come from
one copy of the store's data, picked byte by byte after the region's banks are chosen (block
RAM ports transparent to the write would each need their own copy and multiplexer).
"""

from types import SimpleNamespace

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from bpfcore import abi
from bpfcore.abi import Fault, Region
from bpfcore.isa import Size
from ..attrs import KEEP
from ..layouts import SlotPortSignature
from ..ram import NO_RW_CHECK, registered_read_port

__all__ = ["RegionCheck", "Lsu", "size_mask"]

STACK_ROWS = abi.STACK_SIZE // 16
PKT_ROWS = abi.PKT_BUF_SIZE // 16
PKT_END = abi.PKT_BASE + abi.PKT_BUF_SIZE
CTX_END = abi.CTX_BASE + abi.CTX_SIZE
MAP_END = abi.MAP_BASE + abi.MAX_MAPS * abi.MAP_WINDOW


#: Bytes of each access size.
SIZE_BYTES = ((Size.B, 1), (Size.H, 2), (Size.W, 4), (Size.DW, 8))


def size_mask(m, size, name="bmask"):
    """Byte mask (0x1, 0x3, 0xf, 0xff) of a :class:`Size` value."""
    mask = Signal(8, name=name)
    with m.Switch(size):
        with m.Case(Size.B):
            m.d.comb += mask.eq(0x1)
        with m.Case(Size.H):
            m.d.comb += mask.eq(0x3)
        with m.Case(Size.W):
            m.d.comb += mask.eq(0xf)
        with m.Case(Size.DW):
            m.d.comb += mask.eq(0xff)
    return mask


class RegionCheck(wiring.Component):
    """Execute-stage address generation and region check.

    Parameters
    ----------
    bounds_off_by_one : bool
        Injected bug: the packet end check lets one byte past ``data_end`` through.

    Members
    -------
    x_base : In(64)
        Base register.
    x_off : In(16)
        Signed offset.
    x_size : In(Size)
    x_write : In(1)
        Store or atomic.
    x_data, x_data_end, x_fp : In(32)
        Packet bounds and the current r10.
    x_addr : Out(32)
        The address (its low 32 bits; a higher address faults).
    x_region : Out(3)
        :class:`Region` of an allowed access, ``Region.NONE`` otherwise.
    x_fault : Out(4)
        :class:`bpfcore.abi.Fault` of the access (``NONE`` when allowed).
    """

    x_base: In(64)
    x_off: In(16)
    x_size: In(Size)
    x_write: In(1)
    x_data: In(32)
    x_data_end: In(32)
    x_fp: In(32)
    x_addr: Out(32)
    x_region: Out(3)
    x_fault: Out(4)

    def __init__(self, *, bounds_off_by_one=False):
        self._off_by_one = bounds_off_by_one
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        # The address's upper half is zero ("low") when the base's upper half and the carry out
        # of the 32-bit add make it so: no carry chain through the upper half.
        sum_lo = Signal(33, name="addr_sum")
        m.d.comb += sum_lo.eq(self.x_base[:32] + Cat(self.x_off, self.x_off[15].replicate(16)))
        addr = sum_lo[:32]
        carry = sum_lo[32]
        hi = self.x_base[32:]
        low = Signal(name="addr_low")
        m.d.comb += low.eq(Mux(self.x_off[15], Mux(carry, hi == 0, hi == 1),
                               Mux(carry, hi == 0xffff_ffff, hi == 0)))
        m.d.comb += self.x_addr.eq(addr)
        nbytes = Signal(4)
        with m.Switch(self.x_size):
            for size, n in SIZE_BYTES:
                with m.Case(size):
                    m.d.comb += nbytes.eq(n)
        # The end address comes from its own adder (base + (off + nbytes)), beside the one that
        # gives the address, not behind it. It is taken modulo 2**32: exact whenever the address
        # lies in one of the regions that compare it (all far from 0 and 2**32). off + nbytes
        # is summed first (KEEP), from registers, while the base comes through forwarding.
        off_end = Signal(range(-(1 << 15), (1 << 15) + 8), attrs=KEEP)
        m.d.comb += off_end.eq(self.x_off.as_signed() + nbytes)
        end = Signal(32)
        m.d.comb += end.eq(self.x_base[:32] + off_end)

        in_stack = low & (addr[12:] == abi.STACK_BASE >> 12)
        in_pkt = low & (addr[14:] == abi.PKT_BASE >> 14)
        in_ctx = low & (addr[5:] == abi.CTX_BASE >> 5) & (addr[:5] < abi.CTX_SIZE)
        # Inside a region's window, its constant bounds need only the low address bits: the
        # stack's 4 KiB window holds every frame's lower bound (fp - 512), and an end address
        # past the window's last byte has the window-size bit set and other low bits.
        assert abi.STACK_SIZE == 1 << 12 and abi.STACK_BASE % (1 << 12) == 0
        assert abi.PKT_BUF_SIZE == 1 << 14 and abi.PKT_BASE % (1 << 14) == 0
        assert abi.CTX_BASE % 32 == 0 and abi.CTX_SIZE + 8 <= 32
        frame_low = (self.x_fp - abi.STACK_FRAME_SIZE)[:12]
        ok_stack = (addr[:12] >= frame_low) & (~end[12] | (end[:12] == 0))
        data_end = self.x_data_end + 1 if self._off_by_one else self.x_data_end
        ok_pkt = (addr >= self.x_data) & (end <= data_end) & (~end[14] | (end[:14] == 0))
        ok_ctx = end[:5] <= abi.CTX_SIZE
        # The map region is only decoded here: whether the access lies inside one value of an
        # existing map (and may write it) is the map memory's answer, in the memory stage.
        in_map = low & ((addr >= abi.MAP_BASE) & (addr < MAP_END))

        with m.If(in_stack & ok_stack):
            m.d.comb += self.x_region.eq(Region.STACK)
        with m.Elif(in_pkt & ok_pkt):
            m.d.comb += self.x_region.eq(Region.PACKET)
        with m.Elif(in_map):
            m.d.comb += self.x_region.eq(Region.MAP)
        with m.Elif(in_ctx & ok_ctx & ~self.x_write):
            m.d.comb += self.x_region.eq(Region.CTX)
        with m.Elif(in_ctx & ok_ctx):
            m.d.comb += self.x_fault.eq(Fault.STORE_RO)
        with m.Elif(self.x_write):
            m.d.comb += self.x_fault.eq(Fault.STORE_OOB)
        with m.Else():
            m.d.comb += self.x_fault.eq(Fault.LOAD_OOB)
        return m


class Lsu(wiring.Component):
    """Stack and packet memories with unaligned access, the context words, the host packet port.

    Members
    -------
    x_addr : In(32)
        Address of the access entering the memory stage (read issued at the end of every
        cycle: the memory stage uses the data only in the cycle after the instruction came).
    m_addr : In(32)
        Address of the access in the memory stage.
    m_region : In(3)
    m_size : In(Size)
    m_sext : In(1)
        The load sign-extends (``m_loaded``).
    m_rdata : Out(64)
        The bytes read, LSB-aligned, zero-extended from the access size.
    m_loaded : Out(64)
        The same, sign-extended from the access size when ``m_sext``.
    map_ring : In(128)
    map_rot : In(4)
        A map value access's answer (``Region.MAP``), from the map memory: its value memory's
        two words and the byte of them where the access starts (``CpuValueSignature``).
    m_we : In(1)
        Write ``m_wdata`` (LSB-aligned) at ``m_addr`` (stack or packet region) this cycle.
    m_wdata : In(64)
    ctx : In(ArrayLayout(32, 6))
        The ``xdp_md`` fields, in ``abi.XDP_MD_FIELDS`` order.
    clear : In(1)
        Zero the stack (only the rows written since the last clear); ``clearing`` while it runs.
    clearing : Out(1)
    host : In(1)
        The CPU is idle: the host owns the packet buffer port (one slot), or the datapath may
        use the CPU's slot too (several slots).
    pkt_we : In(8)
    pkt_addr : In(range(PKT_BUF_SIZE // 8))
    pkt_wdata : In(64)
    pkt_rdata : Out(64)
        With one slot: the word at ``pkt_addr`` of the previous cycle (undefined if that cycle
        also wrote it).
    slot : In(range(pkt_slots))
        With several slots: the slot the CPU runs on (held while it runs).
    dp : In(SlotPortSignature(slots=pkt_slots, slot_bytes=abi.PKT_SLOT_SIZE))
        With several slots: the datapath's port, to any slot but the one the CPU runs on.

    Parameters
    ----------
    pkt_slots : int
        1: one packet buffer of ``abi.PKT_BUF_SIZE`` bytes, written and read through the host
        port while the CPU is idle. More: that many slots of ``abi.PKT_SLOT_SIZE`` bytes, each in
        its own block RAMs, the CPU on one (``slot``) while the datapath fills and empties the
        others (``dp``); the CPU's packet accesses stay inside the slot (``[data, data_end)``
        never passes ``PKT_BASE + KERNEL_FRAME_LIMIT``).
    """

    def __init__(self, *, pkt_slots=1):
        self.pkt_slots = pkt_slots
        members = {
            "x_addr": In(32), "m_addr": In(32), "m_region": In(3), "m_size": In(Size),
            "m_sext": In(1), "m_rdata": Out(64), "m_loaded": Out(64), "map_ring": In(128),
            "map_rot": In(4), "m_we": In(1), "m_wdata": In(64),
            "ctx": In(data.ArrayLayout(32, 6)), "clear": In(1), "clearing": Out(1),
            "host": In(1),
        }
        if pkt_slots == 1:
            members.update({"pkt_we": In(8), "pkt_addr": In(range(abi.PKT_BUF_SIZE // 8)),
                            "pkt_wdata": In(64), "pkt_rdata": Out(64)})
        else:
            members.update({"slot": In(range(pkt_slots)),
                            "dp": In(SlotPortSignature(slots=pkt_slots,
                                                       slot_bytes=abi.PKT_SLOT_SIZE))})
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()

        def banks(name, rows):
            ports = []
            for parity in ("even", "odd"):
                # A read of the row that a CPU store writes is mended by the bypass below:
                # the bytes written come from the bypass, the others from the RAM (what Yosys
                # builds for a transparent port: the same use of the RAM, one copy for all
                # four banks). The host reads and writes the packet port one at a time.
                mem = memory.Memory(shape=64, depth=rows, init=[], attrs=NO_RW_CHECK)
                m.submodules[f"{name}_{parity}"] = mem
                wp = mem.write_port(granularity=8)
                rp = registered_read_port(m, mem, f"{name}_{parity}")
                ports.append((rp, wp))
            return ports

        slots = self.pkt_slots
        pkt_rows = PKT_ROWS if slots == 1 else abi.PKT_SLOT_SIZE // 16
        (s_ev_r, s_ev_w), (s_od_r, s_od_w) = banks("stack", STACK_ROWS)
        if slots == 1:
            (p_ev_r, p_ev_w), (p_od_r, p_od_w) = banks("packet", pkt_rows)
        else:
            slot_banks = [banks(f"slot{s}", pkt_rows) for s in range(slots)]
            # The CPU's view of the packet: the banks of its slot. Only the CPU's ports are
            # picked here; each slot's own ports are driven below (CPU or datapath).
            p_ev_r = SimpleNamespace(data=Signal(64, name="p_ev_rdata"))
            p_od_r = SimpleNamespace(data=Signal(64, name="p_od_rdata"))
            cpu_slot = Signal(range(slots))
            m.d.sync += cpu_slot.eq(self.slot)      # the read data is one cycle behind

            with m.Switch(cpu_slot):
                for s, ((ev_r, _), (od_r, _)) in enumerate(slot_banks):
                    with m.Case(s):
                        m.d.comb += [p_ev_r.data.eq(ev_r.data), p_od_r.data.eq(od_r.data)]

        def rows(addr, bits):
            word = addr[3:3 + bits + 1]
            return ((word + 1) >> 1)[:bits], (word >> 1)[:bits]

        s_bits = (STACK_ROWS - 1).bit_length()
        p_bits = (pkt_rows - 1).bit_length()

        # Reads, issued from execute.
        x_s_even, x_s_odd = rows(self.x_addr, s_bits)
        x_p_even, x_p_odd = rows(self.x_addr, p_bits)
        m.d.comb += [s_ev_r.addr.eq(x_s_even), s_od_r.addr.eq(x_s_odd)]
        if slots == 1:
            host_row = self.pkt_addr[1:]
            m.d.comb += [
                p_ev_r.addr.eq(Mux(self.host, host_row, x_p_even)),
                p_od_r.addr.eq(Mux(self.host, host_row, x_p_odd)),
            ]
            host_odd = Signal()
            m.d.sync += host_odd.eq(self.pkt_addr[0])
            m.d.comb += self.pkt_rdata.eq(Mux(host_odd, p_od_r.data, p_ev_r.data))
        else:
            # A slot belongs to the CPU while it runs on it, else to the datapath.
            cpu_owns = [~self.host & (self.slot == s) for s in range(slots)]
            dp = self.dp
            dp_row = dp.raddr[1:]
            dp_rslot = Signal.like(dp.rslot)
            dp_odd = Signal()
            m.d.sync += [dp_rslot.eq(dp.rslot), dp_odd.eq(dp.raddr[0])]
            with m.Switch(dp_rslot):
                for s, ((ev_r, _), (od_r, _)) in enumerate(slot_banks):
                    with m.Case(s):
                        m.d.comb += dp.rdata.eq(Mux(dp_odd, od_r.data, ev_r.data))
            for s, ((ev_r, _), (od_r, _)) in enumerate(slot_banks):
                m.d.comb += [ev_r.addr.eq(Mux(cpu_owns[s], x_p_even, dp_row)),
                             od_r.addr.eq(Mux(cpu_owns[s], x_p_odd, dp_row))]

        # Read data, aligned in the memory stage. The region's even and odd words of the row
        # pair make a 16-byte ring (even word first); the access starts at byte
        # ``m_addr[:4]`` of it (the odd word when ``m_addr[3]``), so one rotation by 0-15
        # bytes, trimmed at each step to the bytes that can still reach the 8 kept, aligns
        # every region. A map value's ring is the map memory's two banks, started at the byte
        # it names (``map_rot``).
        ctx = self.ctx
        assert len(ctx) == 6 and abi.CTX_SIZE == 24
        # The context's words: 0 and 2 in the even bank (rows 0, 1), 1 (and 3, zero) in the odd.
        ctx_even = Mux(self.m_addr[3] | self.m_addr[4], Cat(ctx[4], ctx[5]), Cat(ctx[0], ctx[1]))
        ctx_odd = Mux(self.m_addr[4], 0, Cat(ctx[2], ctx[3]))
        # Stack or packet: the word pair read, with the bytes that the memory stage wrote in the
        # cycle of the read taken from the bypass (see the writes below).
        bypass = Signal(64)
        hit = {name: Signal(8, name=f"hit_{name}") for name in ("s_ev", "s_od", "p_ev", "p_od")}
        banked = Signal(128)
        banked_hit = Signal(16)
        with m.If(self.m_region == Region.STACK):
            m.d.comb += [banked.eq(Cat(s_ev_r.data, s_od_r.data)),
                         banked_hit.eq(Cat(hit["s_ev"], hit["s_od"]))]
        with m.Else():
            m.d.comb += [banked.eq(Cat(p_ev_r.data, p_od_r.data)),
                         banked_hit.eq(Cat(hit["p_ev"], hit["p_od"]))]
        mended = Cat(*(Mux(banked_hit[i], bypass.word_select(i % 8, 8), banked.word_select(i, 8))
                       for i in range(16)))
        even = Signal(64)
        odd = Signal(64)
        is_map = self.m_region == Region.MAP
        with m.Switch(self.m_region):
            with m.Case(Region.CTX):
                m.d.comb += [even.eq(ctx_even), odd.eq(ctx_odd)]
            with m.Case(Region.MAP):
                m.d.comb += [even.eq(self.map_ring[:64]), odd.eq(self.map_ring[64:])]
            with m.Default():
                m.d.comb += [even.eq(mended[:64]), odd.eq(mended[64:])]
        start = Mux(is_map, self.map_rot, self.m_addr[:4])
        ring = Cat(even, odd)
        window = ring
        for i, keep in ((3, 120), (2, 88), (1, 72), (0, 64)):
            k = 8 << i
            stage = Signal(keep, name=f"align{i}")
            rotated = Cat(window[k:], window[:k])
            m.d.comb += stage.eq(Mux(start[i], rotated[:keep], window[:keep]))
            window = stage
        bmask = size_mask(m, self.m_size)
        mask64 = Cat(*(bmask[i].replicate(8) for i in range(8)))
        m.d.comb += self.m_rdata.eq(window & mask64)

        # Sign extension beside the alignment: the sign bit is bit 7 of the access's last byte,
        # ring byte ``start + bytes - 1``, picked by a one-hot select worked out from the
        # registered address and size while the block RAMs answer; each loaded bit is then one
        # LUT: its byte's mask bit picks the data or the fill.
        extra = Signal(3)                     # bytes - 1
        with m.Switch(self.m_size):
            for size, n in SIZE_BYTES:
                with m.Case(size):
                    m.d.comb += extra.eq(n - 1)
        last_hot = Signal(16)
        m.d.comb += last_hot.eq(1 << (start + extra)[:4])
        sign = Signal()
        m.d.comb += sign.eq(Cat(*(ring[8 * j + 7] & last_hot[j] for j in range(16))).any())
        fill = Signal()
        m.d.comb += fill.eq(self.m_sext & sign)
        m.d.comb += self.m_loaded.eq(Cat(*(Mux(bmask[j], window.word_select(j, 8),
                                               fill.replicate(8)) for j in range(8))))

        # Writes, at the end of the memory stage.
        offset = self.m_addr[:3]
        odd_word = self.m_addr[3]
        # Both banks get the data rotated left by the offset (byte j of the word pair is data
        # byte j - offset mod 8); the byte masks pick which bytes each bank writes.
        wmask = Signal(16)
        m.d.comb += wmask.eq(bmask << offset)
        rotated = self.m_wdata
        for i in range(3):
            k = 8 << i
            stage = Signal(64, name=f"rotate{i}")
            m.d.comb += stage.eq(Mux(offset[i], Cat(rotated[64 - k:], rotated[:64 - k]), rotated))
            rotated = stage
        even_mask = Mux(odd_word, wmask[8:], wmask[:8])
        odd_mask = Mux(odd_word, wmask[:8], wmask[8:])
        even_data = rotated
        odd_data = rotated
        m_s_even, m_s_odd = rows(self.m_addr, s_bits)
        m_p_even, m_p_odd = rows(self.m_addr, p_bits)
        to_stack = self.m_we & (self.m_region == Region.STACK)
        to_pkt = self.m_we & (self.m_region == Region.PACKET)
        # The bypass: the write data (the same word for both banks) and, per bank, the bytes
        # written in the row that the read of this cycle names.
        m.d.sync += bypass.eq(even_data)
        for name, go, mask, w_row, r_row in (("s_ev", to_stack, even_mask, m_s_even, x_s_even),
                                             ("s_od", to_stack, odd_mask, m_s_odd, x_s_odd),
                                             ("p_ev", to_pkt, even_mask, m_p_even, x_p_even),
                                             ("p_od", to_pkt, odd_mask, m_p_odd, x_p_odd)):
            m.d.sync += hit[name].eq(Mux(go & (w_row == r_row), mask, 0))

        # Stack clearing at start: only rows at or above the lowest row written since.
        low = Signal(range(STACK_ROWS + 1), init=STACK_ROWS)
        row = Signal(range(STACK_ROWS))
        with m.If(self.clearing):
            m.d.comb += [
                s_ev_w.addr.eq(row), s_od_w.addr.eq(row),
                s_ev_w.en.eq(0xff), s_od_w.en.eq(0xff),
                s_ev_w.data.eq(0), s_od_w.data.eq(0),
            ]
            m.d.sync += row.eq(row - 1)
            with m.If(row == low):
                m.d.sync += [self.clearing.eq(0), low.eq(STACK_ROWS)]
        with m.Else():
            m.d.comb += [
                s_ev_w.addr.eq(m_s_even), s_od_w.addr.eq(m_s_odd),
                s_ev_w.en.eq(Mux(to_stack, even_mask, 0)),
                s_od_w.en.eq(Mux(to_stack, odd_mask, 0)),
                s_ev_w.data.eq(even_data), s_od_w.data.eq(odd_data),
            ]
            with m.If(to_stack & (m_s_odd < low)):
                m.d.sync += low.eq(m_s_odd)
            with m.If(self.clear & (low != STACK_ROWS)):
                m.d.sync += [self.clearing.eq(1), row.eq(STACK_ROWS - 1)]

        if slots == 1:
            with m.If(self.host):
                m.d.comb += [
                    p_ev_w.addr.eq(host_row), p_od_w.addr.eq(host_row),
                    p_ev_w.en.eq(Mux(self.pkt_addr[0], 0, self.pkt_we)),
                    p_od_w.en.eq(Mux(self.pkt_addr[0], self.pkt_we, 0)),
                    p_ev_w.data.eq(self.pkt_wdata), p_od_w.data.eq(self.pkt_wdata),
                ]
            with m.Else():
                m.d.comb += [
                    p_ev_w.addr.eq(m_p_even), p_od_w.addr.eq(m_p_odd),
                    p_ev_w.en.eq(Mux(to_pkt, even_mask, 0)),
                    p_od_w.en.eq(Mux(to_pkt, odd_mask, 0)),
                    p_ev_w.data.eq(even_data), p_od_w.data.eq(odd_data),
                ]
        else:
            dp_wrow = dp.waddr[1:]
            for s, ((_, ev_w), (_, od_w)) in enumerate(slot_banks):
                dp_here = dp.wslot == s
                with m.If(cpu_owns[s]):
                    m.d.comb += [
                        ev_w.addr.eq(m_p_even), od_w.addr.eq(m_p_odd),
                        ev_w.en.eq(Mux(to_pkt, even_mask, 0)),
                        od_w.en.eq(Mux(to_pkt, odd_mask, 0)),
                        ev_w.data.eq(even_data), od_w.data.eq(odd_data),
                    ]
                with m.Else():
                    m.d.comb += [
                        ev_w.addr.eq(dp_wrow), od_w.addr.eq(dp_wrow),
                        ev_w.en.eq(Mux(dp_here & ~dp.waddr[0], dp.we, 0)),
                        od_w.en.eq(Mux(dp_here & dp.waddr[0], dp.we, 0)),
                        ev_w.data.eq(dp.wdata), od_w.data.eq(dp.wdata),
                    ]
        return m
