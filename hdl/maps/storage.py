"""Slot-space and key-index storage of the map memory (the values are in
:class:`~.values.ValueMemory`).

* slot space (``slots`` rows, shared by the maps that have entries; a map's rows start at its
  64-aligned ``SLOT_BASE``): the key memory (one key per row) and the LRU rows
  (:func:`~.layouts.stamp_layout`) in block RAM; the used bits as 32-bit words in LUT RAM;
* LRU clocks: one 32-bit counter per map (LUT RAM);
* key index (``buckets`` rows, a map's table at its ``BUCKET_BASE``): :func:`~.layouts.bucket_layout`
  rows in block RAM.

Every port takes a map-relative row and adds the map's base (one adder per memory, shared by its
read and write port). No state of the engine reads and writes one memory in the same cycle, and
none uses what the cycle after a write reads, so the block RAMs need no read-during-write logic
(:func:`~bpfcore.hdl.ram.registered_read_port`, ``NO_RW_CHECK``).
"""

from amaranth import Module, Signal, Const, Cat, Mux, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..ram import NO_RW_CHECK, registered_read_port
from .bits import add_aligned
from .layouts import stamp_layout, bucket_layout

__all__ = ["SlotStorage", "USED_WORD", "USED_SHIFT"]

#: Used bits per LUT-RAM word (the free-slot scan looks at one word per cycle).
USED_WORD = 32
USED_SHIFT = USED_WORD.bit_length() - 1


class SlotStorage(wiring.Component):
    """Keys, LRU stamps and clocks, used bits and key index of the keyed maps.

    Rows are map-relative: each port adds the map's ``slot_base`` (``bucket_base``).

    Parameters
    ----------
    n_maps, slots, buckets, max_key_size : int
        As :class:`~.engine.MapMemory`'s.
    with_keys : bool
        Key memory and used bits (a build with keyed maps).
    with_stamps : bool
        LRU stamps and clocks (a build with lru_hash).
    with_buckets : bool
        The key index (a build with hash or lru_hash). A memory left out reads as zeros.

    Members
    -------
    map : In(map_bits)
        The map of the operation (LRU clock).
    slot_base : In(slot_bits)
    bucket_base : In(bucket_bits)
        The map's descriptor fields (64- and 8-aligned).
    k_idx : In(slot_bits)
        Key row (map-relative) of both key ports.
    k_ren : In(1)
        Read it: ``k_rdata`` holds it from the next cycle on.
    k_rdata : Out(8 * max_key_size)
    k_we : In(1)
    k_wdata : In(8 * max_key_size)
    s_idx, s_rdata, s_we, s_wdata
        The same for the LRU rows (``stamp_layout``; read every cycle).
    clock : Out(32)
        The map's LRU clock (combinational).
    clock_we : In(1)
    clock_wdata : In(32)
    b_idx, b_rdata, b_we, b_wdata
        The same for the key index (``bucket_layout``; read every cycle).
    u_at : In(slot_bits)
        Used bit (map-relative slot) of ``u_word``/``u_bit`` and of the write.
    u_word : Out(USED_WORD)
        The used-bit word that holds ``u_at`` (combinational).
    u_bit : Out(1)
        Used bit ``u_at``.
    u_we : In(1)
        Write ``u_wval`` to used bit ``u_at``.
    u_wval : In(1)
    """

    def __init__(self, *, n_maps, slots, buckets, max_key_size, with_keys=True,
                 with_stamps=True, with_buckets=True):
        self.n_maps, self.slots, self.buckets = n_maps, slots, buckets
        self.with_keys, self.with_stamps, self.with_buckets = with_keys, with_stamps, with_buckets
        self.map_bits = max(1, (n_maps - 1).bit_length())
        self.slot_bits = sb = (slots - 1).bit_length()
        self.bucket_bits = bb = (buckets - 1).bit_length()
        self.key_bits = kb = 8 * max_key_size
        super().__init__({
            "map": In(self.map_bits), "slot_base": In(sb), "bucket_base": In(bb),
            "k_idx": In(sb), "k_ren": In(1), "k_rdata": Out(kb), "k_we": In(1), "k_wdata": In(kb),
            "s_idx": In(sb), "s_rdata": Out(stamp_layout(bb)), "s_we": In(1),
            "s_wdata": In(stamp_layout(bb)),
            "clock": Out(32), "clock_we": In(1), "clock_wdata": In(32),
            "b_idx": In(bb), "b_rdata": Out(bucket_layout(sb, bb)), "b_we": In(1),
            "b_wdata": In(bucket_layout(sb, bb)),
            "u_at": In(sb), "u_we": In(1), "u_wval": In(1), "u_word": Out(USED_WORD),
            "u_bit": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        if self.with_keys:
            kmem = Memory(shape=unsigned(self.key_bits), depth=self.slots, init=[],
                          attrs=NO_RW_CHECK)
            m.submodules.kmem = kmem
            k_r, k_w = registered_read_port(m, kmem, "kmem"), kmem.write_port()
            k_addr = Signal(self.slot_bits)
            m.d.comb += [k_r.en.eq(self.k_ren), k_addr.eq(add_aligned(self.slot_base, self.k_idx, 6)),
                         k_r.addr.eq(k_addr), k_w.addr.eq(k_addr),
                         self.k_rdata.eq(k_r.data), k_w.en.eq(self.k_we),
                         k_w.data.eq(self.k_wdata)]
        if self.with_stamps:
            smem = Memory(shape=stamp_layout(self.bucket_bits), depth=self.slots, init=[],
                          attrs=NO_RW_CHECK)
            cmem = Memory(shape=unsigned(32), depth=self.n_maps, init=[])
            m.submodules.smem, m.submodules.clocks = smem, cmem
            s_r, s_w = registered_read_port(m, smem, "smem"), smem.write_port()
            s_addr = Signal(self.slot_bits)
            m.d.comb += [s_addr.eq(add_aligned(self.slot_base, self.s_idx, 6)),
                         s_r.addr.eq(s_addr), s_w.addr.eq(s_addr),
                         self.s_rdata.eq(s_r.data), s_w.en.eq(self.s_we),
                         s_w.data.eq(self.s_wdata)]
            c_r, c_w = cmem.read_port(domain="comb"), cmem.write_port()
            m.d.comb += [c_r.addr.eq(self.map), c_w.addr.eq(self.map),
                         self.clock.eq(c_r.data), c_w.en.eq(self.clock_we),
                         c_w.data.eq(self.clock_wdata)]
        if self.with_buckets:
            bmem = Memory(shape=bucket_layout(self.slot_bits, self.bucket_bits),
                          depth=self.buckets, init=[], attrs=NO_RW_CHECK)
            m.submodules.bmem = bmem
            b_r, b_w = registered_read_port(m, bmem, "bmem"), bmem.write_port()
            b_addr = Signal(self.bucket_bits)
            m.d.comb += [b_addr.eq(add_aligned(self.bucket_base, self.b_idx, 3)),
                         b_r.addr.eq(b_addr), b_w.addr.eq(b_addr),
                         self.b_rdata.eq(b_r.data), b_w.en.eq(self.b_we),
                         b_w.data.eq(self.b_wdata)]

        # Used bits: 32-bit words in LUT RAM, read asynchronously. Each 4-bit LUT RAM of a word
        # has its own write enable, so a write rewrites only the nibble of u_at: the new
        # nibble, from the one nibble read, goes to all 8 and the enable picks (no 32-bit
        # read-modify-write). (32, not 64: a 16-deep LUT RAM holds slots // 32 words, so 64-bit
        # words would leave half of every LUT RAM empty.)
        if self.with_keys:
            nibbles = USED_WORD // 4
            u_at = self.u_at
            word_bits = self.slot_bits - USED_SHIFT
            umem = Memory(shape=unsigned(USED_WORD), depth=self.slots // USED_WORD, init=[])
            m.submodules.used = umem
            u_r, u_w = umem.read_port(domain="comb"), umem.write_port(granularity=4)
            u_abs_word = (self.slot_base[USED_SHIFT:] + u_at[USED_SHIFT:])[:word_bits]
            nibble = Signal(4)
            m.d.comb += [u_r.addr.eq(u_abs_word), self.u_word.eq(u_r.data),
                         nibble.eq(self.u_word.word_select(u_at[2:USED_SHIFT], 4)),
                         self.u_bit.eq(nibble.bit_select(u_at[:2], 1)),
                         u_w.addr.eq(u_abs_word),
                         u_w.en.eq(Mux(self.u_we, Const(1, nibbles) << u_at[2:USED_SHIFT], 0)),
                         u_w.data.eq(Cat(*(Mux(u_at[:2] == b, self.u_wval, nibble[b])
                                           for b in range(4))).replicate(nibbles))]
        return m
