"""Value storage of the map memory: two 64-bit banks (even and odd words) so that any access of up
to 8 bytes at any byte address reads or writes in one cycle.

Port ``a`` (the CPU's memory stage) has priority; port ``b`` (the map engine) is granted a read or
write in the cycles where ``a`` does not use the memory at all.

No read that anyone uses meets a write to its word: ``b`` waits for a cycle where ``a`` neither
reads nor writes, and the CPU's access right behind a map store is stalled and issued again
(``hdl/cpu.py``: the read in the store's cycle is discarded). So the banks are read
asynchronously into a register that Yosys folds into the block RAM as a plain read port marked
``no_rw_check`` (a collision reads an undefined word): a synchronous read port that returns the
old word on a collision costs a delayed write and a bypass multiplexer (about 180 flip-flops and
150 LUTs) on ECP5 block RAM.
"""

from amaranth import Cat, Module, Signal, Mux, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..ram import NO_RW_CHECK, registered_read_port
from .bits import thermometer

__all__ = ["ValueMemory"]


class ValueMemory(wiring.Component):
    """Byte-addressed value memory of ``size`` bytes (a multiple of 16).

    Members
    -------
    a_en : In(1)
        Read the 8 bytes at ``a_addr``; ``ring``/``rot`` hold them next cycle.
    a_addr : In(addr_bits)
    a_we : In(1)
        Write ``a_wdata`` under ``a_wmask`` (LSB-aligned: bit ``i`` enables byte ``addr + i``)
        at the address of the most recent ``a_en`` cycle.
    b_re, b_we : In(1)
        Engine read / write request at ``b_addr`` (write: immediate address). ``b_rgrant`` /
        ``b_wgrant`` say it happened this cycle (a read's data is on ``ring`` next cycle).
    ring, rot : Out(128), Out(4)
        Data of the read granted in the previous cycle (port a or b), unaligned: the two
        banks' words (even bank first) and the byte of the ring where the access starts (the
        address's low four bits): the bytes from the address on are ``ring`` rotated right by
        ``rot`` bytes. The CPU's load unit aligns them with its own rotation.
    word : Out(64)
        The 8-aligned word that holds the read's first byte (the bytes from ``address & ~7``
        on), for readers that pick their bytes themselves (the engine's ``VALUE_READ``).
    """

    def __init__(self, size):
        if not isinstance(size, int) or size < 16 or size & (size - 1):
            raise ValueError(f"value memory size must be a power of two >= 16 bytes, not {size!r}")
        self.size = size
        self.addr_bits = (size - 1).bit_length()
        super().__init__({
            "a_en": In(1), "a_addr": In(self.addr_bits), "a_we": In(1), "a_wdata": In(64),
            "a_wmask": In(8),
            "b_re": In(1), "b_we": In(1), "b_addr": In(self.addr_bits), "b_wdata": In(64),
            "b_wmask": In(8), "b_rgrant": Out(1), "b_wgrant": Out(1),
            "ring": Out(128), "rot": Out(4), "word": Out(64),
        })

    def elaborate(self, platform):
        m = Module()
        depth = self.size // 16
        banks = []
        for name in ("even", "odd"):
            mem = Memory(shape=unsigned(64), depth=depth, init=[], attrs=NO_RW_CHECK)
            m.submodules[name] = mem
            banks.append((registered_read_port(m, mem, name), mem.write_port(granularity=8)))
        (even_r, even_w), (odd_r, odd_w) = banks

        # An access at byte address A (word w = A >> 3, byte k = A & 7) touches byte lane
        # L = (k + i) & 7 of word w (lanes L >= k) or w + 1 (lanes L < k). Both words sit in
        # different banks, so every lane has one bank, and both banks see the same lane data:
        # the 8 bytes rotated by k. Bank addresses: the even word of {w, w + 1} is
        # (w + 1) >> 1 in the even bank, the odd one w >> 1 in the odd bank.
        def lane_below(k):
            """Lanes L < k (a byte-lane thermometer of k)."""
            lanes = Signal(8)
            m.d.comb += lanes.eq(thermometer(k, 8))
            return lanes

        # Reads: the word pair on ``ring`` one cycle later. (No rotation here: the CPU's load
        # unit has one, and an 8:1 byte rotation costs about 270 LUT4.)
        a_latched = Signal(self.addr_bits)    # port a's address, for its write
        with m.If(self.a_en):
            m.d.sync += a_latched.eq(self.a_addr)
        raddr = Mux(self.a_en, self.a_addr, self.b_addr)
        m.d.comb += self.b_rgrant.eq(self.b_re & ~self.a_en & ~self.a_we)
        rword = raddr[3:]
        m.d.comb += [even_r.addr.eq((rword + 1) >> 1), odd_r.addr.eq(rword >> 1)]
        r_byte = Signal(3)
        r_odd = Signal()                 # the first word is in the odd bank (ring bytes 8..15)
        m.d.sync += [r_byte.eq(raddr[:3]), r_odd.eq(rword[0])]
        m.d.comb += [self.ring.eq(Cat(even_r.data, odd_r.data)), self.rot.eq(Cat(r_byte, r_odd)),
                     self.word.eq(Mux(r_odd, odd_r.data, even_r.data))]

        # Writes: the data rotated by k into lanes; each lane's byte enable goes to one bank.
        m.d.comb += self.b_wgrant.eq(self.b_we & ~self.a_we & ~self.a_en)
        waddr = Mux(self.a_we, a_latched, self.b_addr)
        wdata = Mux(self.a_we, self.a_wdata, self.b_wdata)
        wmask = Mux(self.a_we, self.a_wmask, self.b_wmask)
        wen = self.a_we | self.b_we
        wword = waddr[3:]
        k = waddr[:3]
        lane_data = Signal(64)
        lane_mask = Signal(8)
        for lane in range(8):                # lane L holds byte (L - k) & 7 of the access
            m.d.comb += [lane_data.word_select(lane, 8).eq(wdata.word_select((lane - k)[:3], 8)),
                         lane_mask[lane].eq(wmask.bit_select((lane - k)[:3], 1))]
        to_odd = Signal(8)
        m.d.comb += to_odd.eq(lane_below(k) ^ Mux(wword[0], 0xff, 0))
        m.d.comb += [
            even_w.addr.eq((wword + 1) >> 1), odd_w.addr.eq(wword >> 1),
            even_w.data.eq(lane_data), odd_w.data.eq(lane_data),
            even_w.en.eq(Mux(wen, lane_mask & ~to_odd, 0)),
            odd_w.en.eq(Mux(wen, lane_mask & to_odd, 0)),
        ]
        return m
