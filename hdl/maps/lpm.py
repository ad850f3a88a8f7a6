"""The lpm_trie lookup: a room that adds its states to the sequencer (:mod:`.room`).

Entries live in the slot space (key rows {prefix length, data}, used bits); every operation
scans all ``max_entries`` rows, one per cycle, in a three-stage pipeline: read row ``i``,
register row ``i - 1`` with its used bit, compare row ``i - 2``. Lookups keep the longest
matching prefix, updates, deletes and host peeks the entry with the request's own prefix (the
reference's ``entries[(prefixlen, masked data)]``); the scan also notes the lowest free slot
for an insert.
"""

from amaranth import Signal, Mux

from bpfcore.abi import MapType
from .bits import thermometer
from .layouts import Op, E_INVAL, E_NOENT, E_EXIST, E_NOSPC
from .room import KindRoom

__all__ = ["LpmLookup"]


class LpmLookup(KindRoom):
    """lpm_trie maps: a linear longest-prefix scan.

    States: ``LPM_SCAN``, ``LPM_LAST``, ``LPM_FLUSH`` (the pipeline drains), ``LPM_DONE``,
    ``LPM_STORE``.

    Parameters
    ----------
    seq : :class:`~.engine.Sequencer`
    """

    types = frozenset({MapType.LPM_TRIE})

    def __init__(self, seq):
        super().__init__(seq)
        m, mem = self.m, seq.mem
        kb = 8 * mem.max_key_size
        sb = mem.slot_bits
        self.best_len = Signal(8)
        self.have_best = Signal()
        self.best_slot = Signal(sb)
        self.have_free = Signal()
        self.free_slot = Signal(sb)

        # Entry comparison (data bytes from key byte 4 on, prefix from the MSB of byte 4). The
        # key row is registered first (row): block RAM clock-to-out is ~6 ns on ECP5. Prefix
        # lengths fit 8 bits here: keys with a longer prefix than the data never reach the
        # scan, and stored entries were checked the same way.
        self.row = row = Signal(kb)
        self.row_idx = Signal(sb)
        self.row_use = Signal()
        self.row_valid = Signal()
        self.e_plen = e_plen = Signal(8)
        self.e_match = Signal()
        m.d.comb += e_plen.eq(row[:8])
        pmask = Signal(kb - 32)
        therm = Signal(kb - 32)
        m.d.comb += therm.eq(thermometer(e_plen, kb - 32))
        for j in range(mem.max_key_size - 4):
            for bit in range(8):
                m.d.comb += pmask[8 * j + bit].eq(therm[8 * j + 7 - bit])
        m.d.comb += self.e_match.eq(((row[32:] ^ seq.key_r[32:]) & pmask) == 0)

    def reset(self):
        return [self.have_best.eq(0), self.have_free.eq(0), self.best_len.eq(0),
                self.row_valid.eq(0)]

    def decode(self):
        m, seq = self.m, self.seq
        op = seq.op
        lpm_plen = seq.key[:32]
        lpm_max = (seq.ksize - 4) * 8
        pb = (8 * (seq.mem.max_key_size - 4)).bit_length()   # lpm_max's width
        plen_bad = (lpm_plen[pb:] != 0) | (lpm_plen[:pb] > lpm_max)
        with m.If((op == Op.UPDATE) & seq.f_bad):
            m.d.sync += seq.fail(E_INVAL)
            m.next = "RESPOND"
        with m.Elif(plen_bad & ((op == Op.UPDATE) | (op == Op.DELETE))):
            m.d.sync += seq.fail(E_INVAL)
            m.next = "RESPOND"
        with m.Elif(plen_bad):
            m.next = "RESULT"
        with m.Else():
            m.next = "LPM_SCAN"

    def _capture(self):
        seq, st = self.seq, self.seq.storage
        self.m.d.comb += st.u_at.eq(seq.i - 1)
        self.m.d.sync += [self.row.eq(st.k_rdata), self.row_idx.eq(seq.i - 1),
                          self.row_use.eq(st.u_bit), self.row_valid.eq(seq.pend)]

    def _compare(self):
        m, seq = self.m, self.seq
        op = seq.op
        plen8 = seq.key_r[:8]                 # the registered key: off the scan path
        exact = (op == Op.UPDATE) | (op == Op.DELETE) | (op == Op.PEEK)
        length_ok = Mux(exact, self.e_plen == plen8, self.e_plen <= plen8)
        with m.If(self.row_valid):
            with m.If(self.row_use & length_ok & self.e_match
                      & (~self.have_best | (self.e_plen > self.best_len))):
                m.d.sync += [self.have_best.eq(1), self.best_len.eq(self.e_plen),
                             self.best_slot.eq(self.row_idx)]
            with m.If(~self.row_use & ~self.have_free):
                m.d.sync += [self.have_free.eq(1), self.free_slot.eq(self.row_idx)]

    def states(self):
        m, seq, st = self.m, self.seq, self.seq.storage
        with m.State("LPM_SCAN"):
            m.d.comb += [st.k_idx.eq(seq.i), st.k_ren.eq(1)]
            self._capture()
            self._compare()
            m.d.sync += [seq.i.eq(seq.i + 1), seq.pend.eq(1)]
            with m.If(seq.i_last):
                m.next = "LPM_LAST"
        with m.State("LPM_LAST"):
            self._capture()
            self._compare()
            m.next = "LPM_FLUSH"
        with m.State("LPM_FLUSH"):
            self._compare()
            m.d.sync += self.row_valid.eq(0)
            m.next = "LPM_DONE"
        with m.State("LPM_DONE"):
            with m.Switch(seq.op):
                with m.Case(Op.LOOKUP, Op.PEEK):
                    m.d.sync += [seq.o_found.eq(self.have_best), seq.slot.eq(self.best_slot)]
                    m.next = "RESULT"
                with m.Case(Op.DELETE):
                    with m.If(self.have_best):
                        m.d.comb += seq.set_used(self.best_slot, 0)
                        m.d.sync += [seq.slot.eq(self.best_slot), seq.v_zero.eq(1)]
                        m.next = "VALUE_SETUP"
                    with m.Else():
                        m.d.sync += seq.fail(E_NOENT)
                        m.next = "RESPOND"
                with m.Default():
                    with m.If(self.have_best & seq.f_noexist):
                        m.d.sync += seq.fail(E_EXIST)
                        m.next = "RESPOND"
                    with m.Elif(self.have_best):
                        m.d.sync += seq.slot.eq(self.best_slot)
                        m.next = "LPM_STORE"
                    with m.Elif(seq.f_exist):
                        m.d.sync += seq.fail(E_NOENT)
                        m.next = "RESPOND"
                    with m.Elif(~self.have_free):
                        m.d.sync += seq.fail(E_NOSPC)
                        m.next = "RESPOND"
                    with m.Else():
                        m.d.sync += seq.slot.eq(self.free_slot)
                        m.next = "LPM_STORE"
        with m.State("LPM_STORE"):
            m.d.comb += [st.k_idx.eq(seq.slot), st.k_we.eq(1), st.k_wdata.eq(seq.key_r)]
            m.d.comb += seq.set_used(seq.slot, 1)
            m.next = "VALUE_SETUP"
