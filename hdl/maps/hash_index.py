"""The hash index: hash and lru_hash maps, a room that adds its states to the sequencer
(:mod:`.room`).

The key's home bucket is ``zlib.crc32(key) & bucket_mask`` (:class:`~.hash.KeyHash`, one byte
per cycle from ``DECODE`` on). The key index (:class:`~.storage.SlotStorage`'s buckets, rows
{valid, slot, home}) is probed linearly from there, at most ``probe_limit`` buckets; a bucket
whose stored home equals the key's has its key read and compared. A new key takes the lowest
free slot (the used bits, one 32-bit word per cycle) and the first empty bucket of the probe.
A delete shifts the rest of the cluster back (the stored home buckets make that rehash-free).
A full lru_hash evicts the slot with the oldest stamp: it finds its bucket by probing from the
victim's stored home for its slot, deletes it and probes again for the new key.
"""

from amaranth import Signal, Cat, Const

from bpfcore.abi import MapType
from .bits import lowest_set
from .hash import KeyHash
from .layouts import Op, E_INVAL, E_NOENT, E_2BIG, E_EXIST
from .room import KindRoom, AV_TOUCH, AV_SHIFT
from .storage import USED_SHIFT

__all__ = ["HashIndex"]

#: What a probe run looks for: the request's key, the LRU victim's slot, an empty bucket for
#: the request's key after the victim's removal.
PH_REQ, PH_VICTIM, PH_INSERT = 0, 1, 2


class HashIndex(KindRoom):
    """Hash and lru_hash maps: key hash, probe, insert, backward-shift delete, LRU eviction.

    States: ``HASH``, ``FIND_READ``/``FIND_BUCKET``/``FIND_KEY`` (the probe), ``FOUND``,
    ``FREE_SCAN``, ``INSERT``, ``SHIFT_START``/``SHIFT_READ``/``SHIFT`` (after the value
    writer's ``AV_SHIFT``), ``CLEAR_BUCKETS`` (CLEAR, then the sequencer's ``CLEAR_SLOTS``),
    and with lru_hash ``STAMP_SCAN``/``STAMP_LAST``/``VICTIM`` and ``TOUCH_RESULT``.

    Parameters
    ----------
    seq : :class:`~.engine.Sequencer`
    """

    types = frozenset({MapType.HASH, MapType.LRU_HASH})

    def __init__(self, seq):
        super().__init__(seq)
        m, mem = self.m, seq.mem
        self.has_lru = MapType.LRU_HASH in seq.types
        bb, sb = mem.bucket_bits, mem.slot_bits
        m.submodules.key_hash = self.key_hash = kh = KeyHash(mem.max_key_size)
        m.d.comb += [kh.size.eq(seq.ksize), kh.first.eq(seq.key[:8]), kh.key.eq(seq.key_r)]
        self.home = Signal(bb)
        self.b = Signal(bb)                   # bucket being probed
        self.probe = Signal(7)
        self.cand = Signal(sb)                # slot of the probed bucket
        self.hit = Signal()
        self.found_b = Signal(bb)
        self.found_slot = Signal(sb)
        self.have_empty = Signal()
        self.empty_b = Signal(bb)
        self.hole = Signal(bb)                # backward shift: the bucket to fill
        self.phase = Signal(range(3))         # PH_*
        self.after_remove = Signal()          # 0 respond (delete), 1 re-probe for insert (victim)
        self.minv = Signal(32)                # LRU: oldest stamp so far
        self.have_min = Signal()
        self.victim = Signal(sb)
        self.victim_home = Signal(bb)

    def idle(self):
        self.m.d.comb += self.key_hash.start.eq(1)

    def reset(self):
        return [self.phase.eq(PH_REQ), self.have_min.eq(0)]

    def decode(self):
        m, seq = self.m, self.seq
        with m.If((seq.op == Op.UPDATE) & seq.f_bad):
            m.d.sync += seq.fail(E_INVAL)
            m.next = "RESPOND"
        with m.Else():
            m.next = "HASH"

    def touch(self):
        """Comb statements of an LRU stamp write: slot ``slot`` used now."""
        seq, st = self.seq, self.seq.storage
        self.m.d.comb += [st.s_idx.eq(seq.slot), st.s_we.eq(1),
                          st.s_wdata.stamp.eq(st.clock + 1), st.s_wdata.home.eq(self.home),
                          st.clock_we.eq(1), st.clock_wdata.eq(st.clock + 1)]

    def _probe_from(self, bucket, phase=None):
        """Sync statements: a probe run from ``bucket``."""
        return [self.b.eq(bucket), self.probe.eq(0), self.hit.eq(0), self.have_empty.eq(0)] + \
            ([] if phase is None else [self.phase.eq(phase)])

    def states(self):
        self._probe_states()
        self._found_state()
        if self.has_lru:
            self._victim_states()
        self._insert_and_shift_states()
        self._free_scan_state()

    def _probe_states(self):
        m, seq, st = self.m, self.seq, self.seq.storage
        bmask = seq.bmask
        with m.State("HASH"):
            with m.If(self.key_hash.done):
                h = self.key_hash.crc[:len(self.home)] & bmask
                m.d.sync += [self.home.eq(h)] + self._probe_from(h)
                m.next = "FIND_READ"
        with m.State("FIND_READ"):
            m.d.comb += st.b_idx.eq(self.b)
            m.next = "FIND_BUCKET"
        with m.State("FIND_BUCKET"):
            e = st.b_rdata
            m.d.comb += [st.k_idx.eq(e.slot), st.k_ren.eq(1)]
            m.d.sync += self.cand.eq(e.slot)
            with m.If(~e.valid):
                m.d.sync += [self.have_empty.eq(1), self.empty_b.eq(self.b)]
                m.next = "FOUND"
            with m.Elif(self.phase == PH_VICTIM):
                # The victim is known by its slot: no key compare, no rehash.
                with m.If(e.slot == self.victim):
                    m.d.sync += [self.hit.eq(1), self.found_b.eq(self.b),
                                 self.found_slot.eq(e.slot)]
                    m.next = "FOUND"
                with m.Else():
                    self._advance()
            with m.Elif(e.home == self.home):
                m.next = "FIND_KEY"
            with m.Else():
                self._advance()
        with m.State("FIND_KEY"):
            with m.If(st.k_rdata == seq.key_r):
                m.d.sync += [self.hit.eq(1), self.found_b.eq(self.b),
                             self.found_slot.eq(self.cand)]
                m.next = "FOUND"
            with m.Else():
                self._advance()

    def _advance(self):
        m, seq = self.m, self.seq
        extra = 1 if seq.mem.inject_bug == "probe_short" else 0
        with m.If(self.probe + 1 + extra >= seq.d.probe_limit):
            m.next = "FOUND"
        with m.Else():
            m.d.sync += [self.b.eq((self.b + 1) & seq.bmask), self.probe.eq(self.probe + 1)]
            m.next = "FIND_READ"

    def _found_state(self):
        m, seq = self.m, self.seq
        op, hit, found_slot = seq.op, self.hit, self.found_slot
        with m.State("FOUND"):
            with m.If(self.phase == PH_VICTIM):
                # The victim's bucket: remove it, then probe again for the new key.
                m.d.comb += seq.set_used(found_slot, 0)
                m.d.sync += [self.after_remove.eq(1), seq.slot.eq(found_slot),
                             seq.v_zero.eq(1), seq.after_value.eq(AV_SHIFT)]
                m.next = "VALUE_SETUP"
            with m.Elif(self.phase == PH_INSERT):
                with m.If(self.have_empty):
                    m.next = "INSERT"
                with m.Else():
                    m.d.sync += seq.fail(E_2BIG)
                    m.next = "RESPOND"
            with m.Else():
                with m.Switch(op):
                    with m.Case(Op.LOOKUP, Op.PEEK):
                        m.d.sync += [seq.o_found.eq(hit), seq.slot.eq(found_slot)]
                        with m.If(hit & seq.is_lru & (op == Op.LOOKUP)):
                            m.next = "TOUCH_RESULT" if self.has_lru else "RESULT"
                        with m.Else():
                            m.next = "RESULT"
                    with m.Case(Op.DELETE):
                        with m.If(hit):
                            m.d.comb += seq.set_used(found_slot, 0)
                            m.d.sync += [self.after_remove.eq(0), seq.slot.eq(found_slot),
                                         seq.v_zero.eq(1), seq.after_value.eq(AV_SHIFT)]
                            m.next = "VALUE_SETUP"
                        with m.Else():
                            m.d.sync += seq.fail(E_NOENT)
                            m.next = "RESPOND"
                    with m.Default():                          # UPDATE
                        with m.If(hit & seq.f_noexist):
                            m.d.sync += seq.fail(E_EXIST)
                            m.next = "RESPOND"
                        with m.Elif(hit):
                            m.d.sync += [seq.slot.eq(found_slot), seq.after_value.eq(AV_TOUCH)]
                            m.next = "VALUE_SETUP"
                        with m.Elif(seq.f_exist):
                            m.d.sync += seq.fail(E_NOENT)
                            m.next = "RESPOND"
                        with m.Else():
                            m.next = "FREE_SCAN"

    def _victim_states(self):
        m, seq, st, i = self.m, self.seq, self.seq.storage, self.seq.i

        def take_min(entry, idx):
            older = entry.stamp > self.minv if seq.mem.inject_bug == "lru_newest" \
                else entry.stamp < self.minv
            with m.If(~self.have_min | older):
                m.d.sync += [self.minv.eq(entry.stamp), self.victim.eq(idx),
                             self.victim_home.eq(entry.home), self.have_min.eq(1)]

        with m.State("STAMP_SCAN"):
            m.d.comb += st.s_idx.eq(i)
            with m.If(seq.pend):
                take_min(st.s_rdata, i - 1)
            m.d.sync += [i.eq(i + 1), seq.pend.eq(1)]
            with m.If(seq.i_last):
                m.next = "STAMP_LAST"
        with m.State("STAMP_LAST"):
            take_min(st.s_rdata, i - 1)
            m.next = "VICTIM"
        with m.State("VICTIM"):
            # Probe from the victim's stored home bucket for its slot.
            m.d.sync += self._probe_from(self.victim_home, PH_VICTIM)
            m.next = "FIND_READ"

    def _insert_and_shift_states(self):
        m, seq, st = self.m, self.seq, self.seq.storage
        b, hole, bmask = self.b, self.hole, seq.bmask
        with m.State("INSERT"):
            m.d.comb += [
                st.b_idx.eq(self.empty_b), st.b_we.eq(1),
                st.b_wdata.valid.eq(1), st.b_wdata.slot.eq(seq.slot),
                st.b_wdata.home.eq(self.home),
                st.k_idx.eq(seq.slot), st.k_we.eq(1), st.k_wdata.eq(seq.key_r),
            ]
            m.d.comb += seq.set_used(seq.slot, 1)
            m.d.sync += [seq.after_value.eq(AV_TOUCH), seq.v_zero.eq(0)]
            m.next = "VALUE_SETUP"

        # --- removal by backward shift -------------------------------------------------------
        with m.State("SHIFT_START"):
            m.d.sync += [hole.eq(self.found_b), b.eq((self.found_b + 1) & bmask)]
            m.next = "SHIFT_READ"
        with m.State("SHIFT_READ"):
            m.d.comb += st.b_idx.eq(b)
            m.next = "SHIFT"
        with m.State("SHIFT"):
            e = st.b_rdata
            m.d.comb += st.b_idx.eq(hole)
            with m.If(~e.valid):
                m.d.comb += [st.b_we.eq(1), st.b_wdata.eq(0)]
                with m.If(self.after_remove):
                    m.d.sync += self._probe_from(self.home, PH_INSERT)
                    m.next = "FIND_READ"
                with m.Else():
                    m.next = "RESPOND"
            with m.Else():
                with m.If(((b - e.home) & bmask) >= ((b - hole) & bmask)):
                    m.d.comb += [st.b_we.eq(1), st.b_wdata.eq(e)]
                    m.d.sync += hole.eq(b)
                m.d.sync += b.eq((b + 1) & bmask)
                m.next = "SHIFT_READ"

        if self.has_lru:
            with m.State("TOUCH_RESULT"):
                self.touch()
                m.next = "RESULT"

        with m.State("CLEAR_BUCKETS"):
            i = seq.i
            m.d.comb += [st.b_idx.eq(i), st.b_we.eq(1), st.b_wdata.eq(0)]
            m.d.sync += i.eq(i + 1)
            with m.If(i == bmask):
                m.d.sync += i.eq(0)
                m.next = "CLEAR_SLOTS"

    def _free_scan_state(self):
        m, seq, st, i = self.m, self.seq, self.seq.storage, self.seq.i
        word_bits = seq.mem.slot_bits - USED_SHIFT
        with m.State("FREE_SCAN"):
            # i counts 32-slot words of the used bits; the map's slots start 64-aligned and
            # CLEAR marks the slots past max_entries in its last word used.
            m.d.comb += st.u_at.eq(Cat(Const(0, USED_SHIFT), i))
            any_free, low = lowest_set(m, ~st.u_word)
            with m.If(any_free):
                m.d.sync += seq.slot.eq(Cat(low, i))
                with m.If(self.have_empty):
                    m.next = "INSERT"
                with m.Else():
                    m.d.sync += seq.fail(E_2BIG)
                    m.next = "RESPOND"
            with m.Elif(Cat(Const(0, USED_SHIFT), i[:word_bits] + 1)
                        >= seq.maxe[:seq.mem.slot_bits + 1]):
                if self.has_lru:
                    with m.If(seq.is_lru):
                        m.d.sync += [i.eq(0), seq.pend.eq(0), self.have_min.eq(0)]
                        m.next = "STAMP_SCAN"
                    with m.Else():
                        m.d.sync += seq.fail(E_2BIG)
                        m.next = "RESPOND"
                else:
                    m.d.sync += seq.fail(E_2BIG)
                    m.next = "RESPOND"
            with m.Else():
                m.d.sync += i.eq(i + 1)
