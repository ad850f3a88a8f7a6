"""The map memory: descriptors, block-RAM storage and the lookup engine, reproducing
:mod:`bpfcore.sim.maps` slot for slot (see its module docstring for the allocation rules).

Storage (all block RAM except the used bits and descriptors):

* values: :class:`~bpfcore.hdl.maps.values.ValueMemory`, map ``i``'s slot ``k`` at byte
  ``VALUE_BASE_i + k * value_size``;
* slot space (``slots`` entries, shared by the maps that have entries): key memory (one key per
  row, ``8 * max_key_size`` bits wide), LRU stamps (32 bits), used bits (flip-flops);
* key index: ``buckets`` rows of {valid, slot, home bucket}; storing the home bucket makes the
  backward-shift delete need no rehash.

One sequencer serves both request streams (the helper's ``req`` first). Latency in cycles, from
the request handshake to the response's ``valid`` (``p`` = buckets probed, ``k`` = probes whose
stored home bucket equals the key's, ``n`` = max_entries, ``v = ceil(value_size / 8)``):

=================  ====================================================================
array lookup        3
hash lookup         6 + 2p + k (+1 LRU stamp); p <= probe_limit
hash update (new)   as lookup + ceil(n / 64) (free slot) + 2 + v (+1)
lru update (full)   + n + 2 (oldest stamp) + a delete of the victim + a second probe run
hash delete         as lookup + v + 2 * (cluster length after the entry)
lpm_trie            n + 6 (one entry per cycle), updates + v
=================  ====================================================================
"""

from amaranth import Module, Signal, Cat, Const, Mux, Array, unsigned
from amaranth.lib import wiring, stream, data
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from bpfcore.abi import MapType
from .hash import Crc32
from .layouts import (Op, Status, Field, FIELD_WIDTHS, request_layout, response_layout,
                      OFFSET_BITS, RECIP_SHIFT)
from .values import ValueMemory

__all__ = ["MapMemory", "CpuValueSignature"]

EINVAL, ENOENT, E2BIG, EEXIST, ENOSPC = 22, 2, 7, 17, 28


def _neg(errno):
    return (-errno) & 0xFFFF_FFFF


def CpuValueSignature():
    """The CPU memory stage's port, as the CPU (the initiator) sees it: ``Out(...)`` in the CPU,
    ``In(...)`` in the map memory.

    ``en`` with ``addr`` (``address - abi.MAP_BASE``: map index in bits 20.., byte offset in the
    window below) and ``size`` (log2 of the byte count) starts an access; one cycle later
    ``rdata`` (the bytes from ``addr`` on, LSB first), ``ok`` (inside one value of an existing
    map: the VM's rule) and ``ro`` (the map is read-only to programs) are valid, and ``we`` in
    that cycle (or any later one, until the next ``en``) stores ``wdata``'s ``size`` low bytes
    at that address. The CPU must not assert ``we`` unless ``ok & ~ro``.

    ``slot`` (valid with ``rdata``/``ok``) is the index of the value the access's first byte
    falls in (``offset // value_size``, meaningful when ``ok``): accesses with equal ``slot``
    that are each ``ok`` lie inside one value, so a buffer read in several accesses can be
    proven to stay in one value.
    """
    return wiring.Signature({
        "en": Out(1), "addr": Out(26), "size": Out(2), "we": Out(1), "wdata": Out(64),
        "rdata": In(64), "ok": In(1), "ro": In(1), "slot": In(OFFSET_BITS),
    })


class MapMemory(wiring.Component):
    """Map descriptors, storage and lookup engine.

    Parameters
    ----------
    n_maps : int
        Maps (a power of two, 1..64).
    value_bytes : int
        Value memory (a power of two >= 16).
    slots : int
        Slot space for keyed maps (a power of two, >= 64): sum of max_entries of hash,
        lru_hash, lpm_trie, devmap and prog_array maps, each start 64-aligned.
    buckets : int
        Key index rows (a power of two): sum of the hash maps' bucket tables.
    max_key_size : int
        Largest key (bytes); 20 holds IPv6 LPM keys.
    max_value_size : int
        Largest value an update request carries (bytes, a multiple of 8).
    inject_bug : None or str
        ``"lru_newest"`` (a full lru_hash evicts its newest entry) or ``"probe_short"`` (one
        probe fewer than the limit): known bugs the reference comparison must catch.

    Members
    -------
    req : In(stream.Signature(request_layout))
    resp : Out(stream.Signature(response_layout))
        Helper unit operations.
    host_req, host_resp
        The same for the control plane (:mod:`bpfcore.sim.mapdrv`).
    cpu : In(CpuValueSignature())
        Values in the CPU's address space.
    info_map : In(map_bits)
    info_type, info_key_size, info_value_size, info_read_only : Out
        The descriptor of map ``info_map`` (combinational), for the helper unit: it reads
        ``key_size`` (and ``value_size``) bytes from CPU memory before a request, and faults
        like the VM when the map index is out of range (``info_type == 0``).
    """

    def __init__(self, *, n_maps=8, value_bytes=8192, slots=512, buckets=1024, max_key_size=20,
                 max_value_size=64, inject_bug=None):
        def check(name, value, ok, what):
            if not isinstance(value, int) or not ok(value):
                self._MustUse__silence = True          # no "created but never used" warning
                raise ValueError(f"MapMemory {name} must be {what}, not {value!r}")
        pow2 = lambda v: v > 0 and v & (v - 1) == 0
        check("n_maps", n_maps, lambda v: pow2(v) and v <= 64, "a power of two in 1..64")
        check("value_bytes", value_bytes, lambda v: pow2(v) and 16 <= v <= 1 << 24,
              "a power of two in 16..16M")
        check("slots", slots, lambda v: pow2(v) and v >= 64, "a power of two >= 64")
        check("buckets", buckets, lambda v: pow2(v) and v >= 8, "a power of two >= 8")
        check("max_key_size", max_key_size, lambda v: 4 <= v <= 63, "in 4..63")
        check("max_value_size", max_value_size, lambda v: 8 <= v <= 512 and v % 8 == 0,
              "a multiple of 8 in 8..512")
        if inject_bug not in (None, "lru_newest", "probe_short"):
            self._MustUse__silence = True
            raise ValueError(f"MapMemory inject_bug must be None, 'lru_newest' or "
                             f"'probe_short', not {inject_bug!r}")
        self.inject_bug = inject_bug
        self.n_maps = n_maps
        self.value_bytes = value_bytes
        self.slots = slots
        self.buckets = buckets
        self.max_key_size = max_key_size
        self.max_value_size = max_value_size
        self.map_bits = max(1, (n_maps - 1).bit_length())
        self.slot_bits = (slots - 1).bit_length()
        self.bucket_bits = (buckets - 1).bit_length()
        self.vaddr_bits = (value_bytes - 1).bit_length()
        req = request_layout(self.map_bits, max_key_size, max_value_size)
        resp = response_layout(max_key_size)
        super().__init__({
            "req": In(stream.Signature(req)),
            "resp": Out(stream.Signature(resp)),
            "host_req": In(stream.Signature(req)),
            "host_resp": Out(stream.Signature(resp)),
            "cpu": In(CpuValueSignature()),
            "info_map": In(self.map_bits), "info_type": Out(5), "info_key_size": Out(6),
            "info_value_size": Out(13), "info_read_only": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        n, kb = self.n_maps, 8 * self.max_key_size
        m.submodules.values = vm = ValueMemory(self.value_bytes)
        m.submodules.crc = crc = Crc32(self.max_key_size)

        # --- descriptors -------------------------------------------------------------------
        widths = FIELD_WIDTHS(self.slot_bits, self.bucket_bits, self.vaddr_bits)
        desc = {f: Array(Signal(w, name=f"{f.name.lower()}_{i}") for i in range(n))
                for f, w in widths.items()}
        clocks = Array(Signal(32, name=f"lru_clock_{i}") for i in range(n))

        m.d.comb += [self.info_type.eq(desc[Field.TYPE][self.info_map]),
                     self.info_key_size.eq(desc[Field.KEY_SIZE][self.info_map]),
                     self.info_value_size.eq(desc[Field.VALUE_SIZE][self.info_map]),
                     self.info_read_only.eq(desc[Field.READ_ONLY][self.info_map])]

        # --- CPU value port ----------------------------------------------------------------
        cpu = self.cpu
        c_map = cpu.addr[20:26]
        c_off = cpu.addr[:20]
        c_idx = c_map[:self.map_bits]
        c_exists = Signal()
        m.d.comb += c_exists.eq((c_map < n) & (desc[Field.TYPE][c_idx] != 0))
        c_lat_off = Signal(20)
        c_lat_size = Signal(2)
        c_lat_idx = Signal(self.map_bits)
        c_lat_exists = Signal()
        with m.If(cpu.en):
            m.d.sync += [c_lat_off.eq(c_off), c_lat_size.eq(cpu.size), c_lat_idx.eq(c_idx),
                         c_lat_exists.eq(c_exists)]
        recip = desc[Field.RECIP][c_lat_idx]
        prod = Signal(OFFSET_BITS + RECIP_SHIFT + 1)
        m.d.comb += prod.eq(c_lat_off * recip)
        last = Signal(prod.shape())
        m.d.comb += last.eq(prod + Mux(c_lat_size == 0, 0, Mux(c_lat_size == 1, recip,
                            Mux(c_lat_size == 2, (recip << 2) - recip, (recip << 3) - recip))))
        m.d.comb += [
            cpu.ok.eq(c_lat_exists & (c_lat_off < desc[Field.LIMIT][c_lat_idx])
                      & (prod[RECIP_SHIFT:] == last[RECIP_SHIFT:])),
            cpu.ro.eq(desc[Field.READ_ONLY][c_lat_idx]),
            cpu.slot.eq(prod[RECIP_SHIFT:]),
            cpu.rdata.eq(vm.rdata),
            vm.a_en.eq(cpu.en),
            vm.a_addr.eq(desc[Field.VALUE_BASE][c_idx] + c_off),
            vm.a_we.eq(cpu.we),
            vm.a_wdata.eq(cpu.wdata),
            vm.a_wmask.eq(Mux(c_lat_size == 0, 0x01, Mux(c_lat_size == 1, 0x03,
                              Mux(c_lat_size == 2, 0x0f, 0xff)))),
        ]

        # --- slot space and key index ------------------------------------------------------
        kmem = Memory(shape=unsigned(kb), depth=self.slots, init=[])
        smem = Memory(shape=unsigned(32), depth=self.slots, init=[])
        bucket = data.StructLayout({"valid": 1, "slot": self.slot_bits,
                                    "home": self.bucket_bits})
        bmem = Memory(shape=bucket, depth=self.buckets, init=[])
        m.submodules.kmem, m.submodules.smem, m.submodules.bmem = kmem, smem, bmem
        k_r, k_w = kmem.read_port(transparent_for=()), kmem.write_port()
        s_r, s_w = smem.read_port(transparent_for=()), smem.write_port()
        b_r, b_w = bmem.read_port(transparent_for=()), bmem.write_port()
        used = Signal(self.slots)

        # --- request registers -------------------------------------------------------------
        r = Signal(request_layout(self.map_bits, self.max_key_size, self.max_value_size))
        src_host = Signal()
        # The current map's descriptor, copied into registers in LOAD (keeps the descriptor
        # multiplexers out of the sequencer's paths).
        D = {f: Signal(w, name=f"cur_{f.name.lower()}") for f, w in widths.items()}
        mtype = D[Field.TYPE]
        ksize = D[Field.KEY_SIZE]
        vsize = D[Field.VALUE_SIZE]
        maxe = D[Field.MAX_ENTRIES]
        kbase = D[Field.SLOT_BASE]
        bmask = D[Field.BUCKET_MASK]
        is_lru = mtype == MapType.LRU_HASH

        key_mask = Signal(kb)
        for j in range(self.max_key_size):
            m.d.comb += key_mask[8 * j:8 * j + 8].eq(Mux(ksize > j, 0xff, 0))
        key_in = Signal(kb)
        m.d.comb += key_in.eq(r.key & key_mask)

        # response registers
        o_status = Signal(Status)
        o_found = Signal()
        o_errno = Signal(32)
        o_data = Signal(64)
        o_key = Signal(kb)
        slot = Signal(OFFSET_BITS)
        o_offset = Signal(OFFSET_BITS)

        # find loop
        fkey = Signal(kb)
        shifted = Signal(kb)
        home = Signal(self.bucket_bits)
        b = Signal(self.bucket_bits)
        probe = Signal(7)
        cand = Signal(self.slot_bits)
        hit = Signal()
        found_b = Signal(self.bucket_bits)
        found_slot = Signal(self.slot_bits)
        have_empty = Signal()
        empty_b = Signal(self.bucket_bits)
        hole = Signal(self.bucket_bits)
        phase = Signal(range(3))              # 0 request, 1 victim, 2 insert
        PH_REQ, PH_VICTIM, PH_INSERT = 0, 1, 2
        i = Signal(OFFSET_BITS + 1)
        pend = Signal()
        minv = Signal(32)
        have_min = Signal()
        victim = Signal(self.slot_bits)
        # lpm scan
        best_len = Signal(32)
        have_best = Signal()
        best_slot = Signal(self.slot_bits)
        have_free = Signal()
        free_slot = Signal(OFFSET_BITS)
        # value writer
        v_addr = Signal(self.vaddr_bits)
        v_left = Signal(OFFSET_BITS + 1)
        v_word = Signal(range(self.max_value_size // 8))
        v_zero = Signal()
        after_value = Signal(range(4))        # AV_* below: what follows the write
        AV_DONE, AV_TOUCH, AV_SHIFT, AV_CLEAR = 0, 1, 2, 3
        after_remove = Signal()               # 0 respond (delete), 1 re-probe for insert (victim)

        m.d.comb += crc.message.eq(shifted)
        slot_x_vs = Signal(OFFSET_BITS)
        m.d.comb += slot_x_vs.eq(slot * vsize)

        # Used bits: one write (u_we, u_widx, u_wval: map-relative index) and one read
        # (u_ridx) per cycle, so each bit has one small decoder and the read one mux.
        u_we = Signal()
        u_widx = Signal(self.slot_bits)
        u_wval = Signal()
        u_ridx = Signal(self.slot_bits)
        u_rbit = Signal()
        u_abs = Signal(self.slot_bits)
        u_we_q = Signal()
        u_wval_q = Signal()
        # Writes land one cycle late (registered); no state reads a bit it wrote the cycle before.
        m.d.sync += [u_abs.eq(kbase + u_widx), u_we_q.eq(u_we), u_wval_q.eq(u_wval)]
        m.d.comb += u_rbit.eq(used.bit_select((kbase + u_ridx)[:self.slot_bits], 1))
        word_hit = Signal(self.slots // 64)
        bit_hit = Signal(64)
        for w in range(self.slots // 64):
            m.d.comb += word_hit[w].eq(u_abs[6:] == w)
        for bit in range(64):
            m.d.comb += bit_hit[bit].eq(u_abs[:6] == bit)
        for w in range(self.slots // 64):
            for bit in range(64):
                with m.If(u_we_q & word_hit[w] & bit_hit[bit]):
                    m.d.sync += used[64 * w + bit].eq(u_wval_q)
        slot_used = u_rbit
        self._used_read = (u_ridx, u_rbit)

        def set_used(index, value):
            return [u_we.eq(1), u_widx.eq(index), u_wval.eq(value)]

        def fail(errno):
            return [o_errno.eq(_neg(errno))]

        lpm_plen = r.key[:32]
        lpm_max = (ksize - 4) * 8
        flags_bad = (r.flags[2:] != 0) | (r.flags[:2] == 3)        # flags > BPF_EXIST
        index = r.key[:32]

        # LPM entry comparison (data bytes from key byte 4 on, prefix from the MSB of byte 4).
        # The key row is registered first (lpm_row): block RAM clock-to-out is ~6 ns on ECP5.
        lpm_row = Signal(kb)
        lpm_idx = Signal(self.slot_bits)
        lpm_use = Signal()
        lpm_valid = Signal()
        e_plen = Signal(32)
        e_match = Signal()
        m.d.comb += e_plen.eq(lpm_row[:32])
        pmask = Signal(kb - 32)
        e_plen_c = Mux(e_plen[8:] != 0, 255, e_plen[:8])
        for j in range(self.max_key_size - 4):
            for bit in range(8):
                m.d.comb += pmask[8 * j + bit].eq(e_plen_c > 8 * j + 7 - bit)
        m.d.comb += e_match.eq(((lpm_row[32:] ^ r.key[32:]) & pmask) == 0)

        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += self.req.ready.eq(1)
                with m.If(self.req.valid):
                    m.d.sync += [r.eq(self.req.payload), src_host.eq(0)]
                    m.next = "LOAD"
                with m.Else():
                    m.d.comb += self.host_req.ready.eq(1)
                    with m.If(self.host_req.valid):
                        m.d.sync += [r.eq(self.host_req.payload), src_host.eq(1)]
                        m.next = "LOAD"

            with m.State("LOAD"):
                m.d.sync += [D[f].eq(desc[f][r.map]) for f in widths]
                m.next = "DECODE"

            with m.State("DECODE"):
                m.d.sync += [r.key.eq(key_in), fkey.eq(key_in), o_status.eq(Status.OK),
                             o_found.eq(0), o_errno.eq(0), o_data.eq(0), o_key.eq(0),
                             slot.eq(0), phase.eq(PH_REQ), i.eq(0), pend.eq(0),
                             lpm_valid.eq(0),
                             have_min.eq(0), have_best.eq(0), have_free.eq(0), best_len.eq(0),
                             v_zero.eq(0), v_word.eq(0), after_value.eq(AV_DONE)]
                prog_side = ~src_host
                fd_array = (mtype == MapType.PROG_ARRAY) | (mtype == MapType.DEVMAP)
                with m.If(r.op == Op.CONFIG):
                    with m.Switch(r.addr[:4]):
                        for f in Field:
                            with m.Case(f.value):
                                m.d.sync += desc[f][r.map].eq(r.data)
                    m.next = "RESPOND"
                with m.Elif(mtype == 0):
                    m.d.sync += o_status.eq(Status.FAULT)
                    m.next = "RESPOND"
                with m.Elif(r.op == Op.CLEAR):
                    m.d.sync += [v_zero.eq(1), v_addr.eq(D[Field.VALUE_BASE]),
                                 v_left.eq(D[Field.LIMIT]), after_value.eq(AV_CLEAR),
                                 clocks[r.map].eq(0)]
                    m.next = "VALUE_WRITE"
                with m.Elif(r.op == Op.VALUE_READ):
                    m.next = "VREAD"
                with m.Elif(r.op == Op.VALUE_WRITE):
                    m.next = "VWRITE"
                with m.Elif(r.op == Op.NEXT):
                    m.d.sync += i.eq(r.addr)
                    m.next = "NEXT"
                with m.Elif(prog_side & (mtype == MapType.PROG_ARRAY) & (r.op == Op.LOOKUP)):
                    m.d.sync += o_status.eq(Status.FAULT)
                    m.next = "RESPOND"
                with m.Elif(prog_side & ((r.op == Op.UPDATE) | (r.op == Op.DELETE))
                            & (fd_array | D[Field.READ_ONLY])):
                    m.d.sync += o_status.eq(Status.FAULT)
                    m.next = "RESPOND"
                with m.Elif(mtype == MapType.ARRAY):
                    with m.Switch(r.op):
                        with m.Case(Op.LOOKUP, Op.PEEK):
                            m.d.sync += [o_found.eq(index < maxe), slot.eq(index)]
                            m.next = "RESULT"
                        with m.Case(Op.UPDATE):
                            with m.If((r.flags & ~4) > 2):
                                m.d.sync += fail(EINVAL)
                                m.next = "RESPOND"
                            with m.Elif(index >= maxe):
                                m.d.sync += fail(E2BIG)
                                m.next = "RESPOND"
                            with m.Elif(r.flags[0]):
                                m.d.sync += fail(EEXIST)
                                m.next = "RESPOND"
                            with m.Elif(r.flags[2]):
                                m.d.sync += fail(EINVAL)
                                m.next = "RESPOND"
                            with m.Else():
                                m.d.sync += slot.eq(index)
                                m.next = "VALUE_SETUP"
                        with m.Default():
                            m.d.sync += fail(EINVAL)
                            m.next = "RESPOND"
                with m.Elif(fd_array):
                    m.d.comb += u_ridx.eq(index)
                    present = (index < maxe) & u_rbit
                    with m.Switch(r.op):
                        with m.Case(Op.LOOKUP, Op.PEEK):
                            m.d.sync += [o_found.eq(present), slot.eq(index)]
                            m.next = "RESULT"
                        with m.Case(Op.UPDATE):
                            devmap = mtype == MapType.DEVMAP
                            with m.If(devmap & flags_bad):
                                m.d.sync += fail(EINVAL)
                                m.next = "RESPOND"
                            with m.Elif(index >= maxe):
                                m.d.sync += fail(E2BIG)
                                m.next = "RESPOND"
                            with m.Elif(devmap & r.flags[0]):
                                m.d.sync += fail(EEXIST)
                                m.next = "RESPOND"
                            with m.Elif(devmap & (vsize == 8) & (r.value[32:64] != 0)):
                                m.d.sync += fail(EINVAL)
                                m.next = "RESPOND"
                            with m.Else():
                                m.d.sync += slot.eq(index)
                                m.d.comb += set_used(index, 1)
                                m.next = "VALUE_SETUP"
                        with m.Default():
                            with m.If(index >= maxe):
                                m.d.sync += fail(E2BIG)
                                m.next = "RESPOND"
                            with m.Elif(~present):
                                m.d.sync += fail(ENOENT)
                                m.next = "RESPOND"
                            with m.Else():
                                m.d.sync += [slot.eq(index), v_zero.eq(1)]
                                m.d.comb += set_used(index, 0)
                                m.next = "VALUE_SETUP"
                with m.Elif(mtype == MapType.LPM_TRIE):
                    plen_bad = lpm_plen > lpm_max
                    with m.If((r.op == Op.UPDATE) & flags_bad):
                        m.d.sync += fail(EINVAL)
                        m.next = "RESPOND"
                    with m.Elif(plen_bad & ((r.op == Op.UPDATE) | (r.op == Op.DELETE))):
                        m.d.sync += fail(EINVAL)
                        m.next = "RESPOND"
                    with m.Elif(plen_bad):
                        m.next = "RESULT"
                    with m.Else():
                        m.next = "LPM_SCAN"
                with m.Else():                                    # hash, lru_hash
                    with m.If((r.op == Op.UPDATE) & flags_bad):
                        m.d.sync += fail(EINVAL)
                        m.next = "RESPOND"
                    with m.Else():
                        m.next = "HASH_SHIFT"

            # --- hash: home bucket, then probe ---------------------------------------------
            with m.State("HASH_SHIFT"):
                m.d.sync += shifted.eq(fkey << ((self.max_key_size - ksize).as_unsigned()[:6] * 8))
                m.next = "HASH_CRC"
            with m.State("HASH_CRC"):
                h = (crc.crc ^ D[Field.CRC_INIT])[:self.bucket_bits] & bmask
                m.d.sync += [home.eq(h), b.eq(h), probe.eq(0), hit.eq(0), have_empty.eq(0)]
                m.next = "FIND_READ"
            with m.State("FIND_READ"):
                m.d.comb += b_r.addr.eq(D[Field.BUCKET_BASE] + b)
                m.next = "FIND_BUCKET"
            with m.State("FIND_BUCKET"):
                e = b_r.data
                m.d.comb += k_r.addr.eq(kbase + e.slot)
                m.d.sync += cand.eq(e.slot)

                def advance():
                    extra = 1 if self.inject_bug == "probe_short" else 0
                    with m.If(probe + 1 + extra >= D[Field.PROBE_LIMIT]):
                        m.next = "FOUND"
                    with m.Else():
                        m.d.sync += [b.eq((b + 1) & bmask), probe.eq(probe + 1)]
                        m.next = "FIND_READ"
                with m.If(~e.valid):
                    m.d.sync += [have_empty.eq(1), empty_b.eq(b)]
                    m.next = "FOUND"
                with m.Elif(e.home == home):
                    m.next = "FIND_KEY"
                with m.Else():
                    advance()
            with m.State("FIND_KEY"):
                with m.If(k_r.data == fkey):
                    m.d.sync += [hit.eq(1), found_b.eq(b), found_slot.eq(cand)]
                    m.next = "FOUND"
                with m.Else():
                    advance()

            with m.State("FOUND"):
                with m.If(phase == PH_VICTIM):
                    # The victim's bucket: remove it, then probe again for the new key.
                    m.d.comb += set_used(found_slot, 0)
                    m.d.sync += [after_remove.eq(1), slot.eq(found_slot),
                                 v_zero.eq(1), after_value.eq(AV_SHIFT)]
                    m.next = "VALUE_SETUP"
                with m.Elif(phase == PH_INSERT):
                    with m.If(have_empty):
                        m.next = "INSERT"
                    with m.Else():
                        m.d.sync += fail(E2BIG)
                        m.next = "RESPOND"
                with m.Else():
                    with m.Switch(r.op):
                        with m.Case(Op.LOOKUP, Op.PEEK):
                            m.d.sync += [o_found.eq(hit), slot.eq(found_slot)]
                            with m.If(hit & is_lru & (r.op == Op.LOOKUP)):
                                m.next = "TOUCH_RESULT"
                            with m.Else():
                                m.next = "RESULT"
                        with m.Case(Op.DELETE):
                            with m.If(hit):
                                m.d.comb += set_used(found_slot, 0)
                                m.d.sync += [after_remove.eq(0), slot.eq(found_slot), v_zero.eq(1),
                                             after_value.eq(AV_SHIFT)]
                                m.next = "VALUE_SETUP"
                            with m.Else():
                                m.d.sync += fail(ENOENT)
                                m.next = "RESPOND"
                        with m.Default():                          # UPDATE
                            with m.If(hit & r.flags[0]):
                                m.d.sync += fail(EEXIST)
                                m.next = "RESPOND"
                            with m.Elif(hit):
                                m.d.sync += [slot.eq(found_slot), after_value.eq(AV_TOUCH)]
                                m.next = "VALUE_SETUP"
                            with m.Elif(r.flags[1]):
                                m.d.sync += fail(ENOENT)
                                m.next = "RESPOND"
                            with m.Else():
                                m.next = "FREE_SCAN"

            with m.State("FREE_SCAN"):
                # i counts 64-slot words of the used bits; the map's slots start 64-aligned.
                word = Signal(64)
                m.d.comb += word.eq(used.word_select(((kbase >> 6) + i)[:self.slot_bits - 6], 64))
                free = Signal(64)
                left = Signal(OFFSET_BITS + 1)            # slots of the map from this word on
                m.d.comb += left.eq(maxe - (i << 6))
                left_c = Mux(left[6:] != 0, 64, left[:7])
                for bit in range(64):
                    m.d.comb += free[bit].eq(~word[bit] & (left_c > bit))
                low = Signal(6)
                for bit in reversed(range(64)):
                    with m.If(free[bit]):
                        m.d.comb += low.eq(bit)
                with m.If(free != 0):
                    m.d.sync += slot.eq(Cat(low, i))
                    with m.If(have_empty):
                        m.next = "INSERT"
                    with m.Else():
                        m.d.sync += fail(E2BIG)
                        m.next = "RESPOND"
                with m.Elif((i + 1) * 64 >= maxe):
                    with m.If(is_lru):
                        m.d.sync += [i.eq(0), pend.eq(0), have_min.eq(0)]
                        m.next = "STAMP_SCAN"
                    with m.Else():
                        m.d.sync += fail(E2BIG)
                        m.next = "RESPOND"
                with m.Else():
                    m.d.sync += i.eq(i + 1)

            def take_min(stamp, idx):
                older = stamp > minv if self.inject_bug == "lru_newest" else stamp < minv
                with m.If(~have_min | older):
                    m.d.sync += [minv.eq(stamp), victim.eq(idx), have_min.eq(1)]

            with m.State("STAMP_SCAN"):
                m.d.comb += s_r.addr.eq(kbase + i)
                with m.If(pend):
                    take_min(s_r.data, i - 1)
                m.d.sync += [i.eq(i + 1), pend.eq(1)]
                with m.If(i + 1 >= maxe):
                    m.next = "STAMP_LAST"
            with m.State("STAMP_LAST"):
                take_min(s_r.data, i - 1)
                m.next = "VICTIM_READ"
            with m.State("VICTIM_READ"):
                m.d.comb += k_r.addr.eq(kbase + victim)
                m.next = "VICTIM_KEY"
            with m.State("VICTIM_KEY"):
                m.d.sync += [fkey.eq(k_r.data), phase.eq(PH_VICTIM)]
                m.next = "HASH_SHIFT"

            with m.State("INSERT"):
                m.d.comb += [
                    b_w.addr.eq(D[Field.BUCKET_BASE] + empty_b), b_w.en.eq(1),
                    b_w.data.valid.eq(1), b_w.data.slot.eq(slot), b_w.data.home.eq(home),
                    k_w.addr.eq(kbase + slot), k_w.en.eq(1), k_w.data.eq(r.key),
                ]
                m.d.comb += set_used(slot, 1)
                m.d.sync += [after_value.eq(AV_TOUCH),
                             v_zero.eq(0)]
                m.next = "VALUE_SETUP"

            # --- removal by backward shift ---------------------------------------------------
            with m.State("SHIFT_START"):
                m.d.sync += [hole.eq(found_b), b.eq((found_b + 1) & bmask)]
                m.next = "SHIFT_READ"
            with m.State("SHIFT_READ"):
                m.d.comb += b_r.addr.eq(D[Field.BUCKET_BASE] + b)
                m.next = "SHIFT"
            with m.State("SHIFT"):
                e = b_r.data
                m.d.comb += b_w.addr.eq(D[Field.BUCKET_BASE] + hole)
                with m.If(~e.valid):
                    m.d.comb += [b_w.en.eq(1), b_w.data.eq(0)]
                    with m.If(after_remove):
                        m.d.sync += [fkey.eq(r.key), phase.eq(PH_INSERT)]
                        m.next = "HASH_SHIFT"
                    with m.Else():
                        m.next = "RESPOND"
                with m.Else():
                    with m.If(((b - e.home) & bmask) >= ((b - hole) & bmask)):
                        m.d.comb += [b_w.en.eq(1), b_w.data.eq(e)]
                        m.d.sync += hole.eq(b)
                    m.d.sync += b.eq((b + 1) & bmask)
                    m.next = "SHIFT_READ"

            # --- lpm_trie: one entry per cycle -------------------------------------------------
            # Three-stage scan: read row i, register row i - 1 (with its used bit), compare
            # row i - 2.
            def lpm_capture():
                m.d.comb += u_ridx.eq(i - 1)
                m.d.sync += [lpm_row.eq(k_r.data), lpm_idx.eq(i - 1), lpm_use.eq(u_rbit),
                             lpm_valid.eq(pend)]

            def lpm_compare():
                with m.If(lpm_valid):
                    self._lpm_step(m, r, lpm_idx, lpm_use, e_plen, e_match, lpm_plen,
                                   best_len, have_best, best_slot, have_free, free_slot)

            with m.State("LPM_SCAN"):
                m.d.comb += k_r.addr.eq(kbase + i)
                lpm_capture()
                lpm_compare()
                m.d.sync += [i.eq(i + 1), pend.eq(1)]
                with m.If(i + 1 >= maxe):
                    m.next = "LPM_LAST"
            with m.State("LPM_LAST"):
                lpm_capture()
                lpm_compare()
                m.next = "LPM_FLUSH"
            with m.State("LPM_FLUSH"):
                lpm_compare()
                m.d.sync += lpm_valid.eq(0)
                m.next = "LPM_DONE"
            with m.State("LPM_DONE"):
                with m.Switch(r.op):
                    with m.Case(Op.LOOKUP, Op.PEEK):
                        m.d.sync += [o_found.eq(have_best), slot.eq(best_slot)]
                        m.next = "RESULT"
                    with m.Case(Op.DELETE):
                        with m.If(have_best):
                            m.d.comb += set_used(best_slot, 0)
                            m.d.sync += [slot.eq(best_slot), v_zero.eq(1)]
                            m.next = "VALUE_SETUP"
                        with m.Else():
                            m.d.sync += fail(ENOENT)
                            m.next = "RESPOND"
                    with m.Default():
                        with m.If(have_best & r.flags[0]):
                            m.d.sync += fail(EEXIST)
                            m.next = "RESPOND"
                        with m.Elif(have_best):
                            m.d.sync += slot.eq(best_slot)
                            m.next = "LPM_STORE"
                        with m.Elif(r.flags[1]):
                            m.d.sync += fail(ENOENT)
                            m.next = "RESPOND"
                        with m.Elif(~have_free):
                            m.d.sync += fail(ENOSPC)
                            m.next = "RESPOND"
                        with m.Else():
                            m.d.sync += slot.eq(free_slot)
                            m.next = "LPM_STORE"
            with m.State("LPM_STORE"):
                m.d.comb += [k_w.addr.eq(kbase + slot), k_w.en.eq(1), k_w.data.eq(r.key)]
                m.d.comb += set_used(slot, 1)
                m.next = "VALUE_SETUP"

            # --- value writer: v_left bytes from r.value (or zeros) at v_addr, 8 per cycle -------
            with m.State("VALUE_SETUP"):
                m.d.sync += [v_addr.eq(D[Field.VALUE_BASE] + slot_x_vs), v_left.eq(vsize),
                             v_word.eq(0)]
                m.next = "VALUE_WRITE"
            with m.State("VALUE_WRITE"):
                with m.If(v_left == 0):
                    m.next = "VALUE_DONE"
                with m.Else():
                    m.d.comb += [vm.b_we.eq(1), vm.b_addr.eq(v_addr),
                                 vm.b_wdata.eq(Mux(v_zero, 0, r.value.word_select(v_word, 64))),
                                 vm.b_wmask.eq(Mux(v_left >= 8, 0xff,
                                                   (Const(1, 9) << v_left[:3]) - 1))]
                    with m.If(vm.b_wgrant):
                        m.d.sync += [v_addr.eq(v_addr + 8), v_word.eq(v_word + 1),
                                     v_left.eq(Mux(v_left >= 8, v_left - 8, 0))]
            with m.State("VALUE_DONE"):
                with m.Switch(after_value):
                    with m.Case(AV_TOUCH):
                        m.next = "TOUCH"
                    with m.Case(AV_SHIFT):
                        m.next = "SHIFT_START"
                    with m.Case(AV_CLEAR):
                        m.d.sync += i.eq(0)
                        with m.If((mtype == MapType.HASH) | is_lru):
                            m.next = "CLEAR_BUCKETS"
                        with m.Elif(mtype == MapType.ARRAY):
                            m.next = "RESPOND"
                        with m.Else():
                            m.next = "CLEAR_SLOTS"
                    with m.Default():
                        m.next = "RESPOND"

            with m.State("TOUCH"):
                with m.If(is_lru):
                    m.d.comb += [s_w.addr.eq(kbase + slot), s_w.en.eq(1),
                                 s_w.data.eq(clocks[r.map] + 1)]
                    m.d.sync += clocks[r.map].eq(clocks[r.map] + 1)
                m.next = "RESPOND"
            with m.State("TOUCH_RESULT"):
                m.d.comb += [s_w.addr.eq(kbase + slot), s_w.en.eq(1),
                             s_w.data.eq(clocks[r.map] + 1)]
                m.d.sync += clocks[r.map].eq(clocks[r.map] + 1)
                m.next = "RESULT"

            with m.State("CLEAR_BUCKETS"):
                m.d.comb += [b_w.addr.eq(D[Field.BUCKET_BASE] + i), b_w.en.eq(1), b_w.data.eq(0)]
                m.d.sync += i.eq(i + 1)
                with m.If(i == bmask):
                    m.d.sync += i.eq(0)
                    m.next = "CLEAR_SLOTS"
            with m.State("CLEAR_SLOTS"):
                m.d.comb += [s_w.addr.eq(kbase + i), s_w.en.eq(1), s_w.data.eq(0)]
                m.d.comb += set_used(i, 0)
                m.d.sync += i.eq(i + 1)
                with m.If(i + 1 >= maxe):
                    m.next = "RESPOND"

            # --- iteration --------------------------------------------------------------------
            with m.State("NEXT"):
                m.d.comb += u_ridx.eq(i)
                with m.If(i >= maxe):
                    m.next = "RESPOND"
                with m.Elif(mtype == MapType.ARRAY):
                    m.d.sync += [o_found.eq(1), slot.eq(i), o_key.eq(i)]
                    m.next = "RESULT"
                with m.Elif(slot_used):     # u_ridx = i (below)
                    m.d.comb += k_r.addr.eq(kbase + i)
                    m.d.sync += [o_found.eq(1), slot.eq(i)]
                    m.next = "NEXT_KEY"
                with m.Else():
                    m.d.sync += i.eq(i + 1)
            with m.State("NEXT_KEY"):
                with m.If((mtype == MapType.DEVMAP) | (mtype == MapType.PROG_ARRAY)):
                    m.d.sync += o_key.eq(slot)
                with m.Else():
                    m.d.sync += o_key.eq(k_r.data)
                m.next = "RESULT"

            # --- raw value access (host) -------------------------------------------------------
            with m.State("VREAD"):
                m.d.comb += [vm.b_re.eq(1), vm.b_addr.eq(D[Field.VALUE_BASE] + r.addr)]
                with m.If(vm.b_rgrant):
                    m.next = "VREAD_DATA"
            with m.State("VREAD_DATA"):
                m.d.sync += o_data.eq(vm.rdata)
                m.next = "RESPOND"
            with m.State("VWRITE"):
                m.d.comb += [vm.b_we.eq(1), vm.b_addr.eq(D[Field.VALUE_BASE] + r.addr),
                             vm.b_wdata.eq(r.data), vm.b_wmask.eq(r.flags[:8])]
                with m.If(vm.b_wgrant):
                    m.next = "RESPOND"

            with m.State("RESULT"):
                m.d.sync += o_offset.eq(slot_x_vs)
                m.next = "RESPOND"

            with m.State("RESPOND"):
                for port in (self.resp, self.host_resp):
                    p = port.payload
                    m.d.comb += [p.status.eq(o_status), p.found.eq(o_found),
                                 p.slot.eq(Mux(o_found, slot, 0)),
                                 p.offset.eq(Mux(o_found, o_offset, 0)),
                                 p.errno.eq(o_errno), p.data.eq(o_data), p.key.eq(o_key)]
                port = Mux(src_host, 1, 0)
                m.d.comb += [self.resp.valid.eq(~src_host), self.host_resp.valid.eq(src_host)]
                with m.If(Mux(src_host, self.host_resp.ready, self.resp.ready)):
                    m.next = "IDLE"
        return m

    def _lpm_step(self, m, r, idx, in_use, e_plen, e_match, lpm_plen, best_len, have_best,
                  best_slot, have_free, free_slot):
        """One entry of the lpm_trie scan (its registered key row and used bit)."""
        # Updates, deletes and host peeks look for the entry itself (the reference's
        # ``entries[(prefixlen, masked data)]``); lookups for the longest matching prefix.
        exact = (r.op == Op.UPDATE) | (r.op == Op.DELETE) | (r.op == Op.PEEK)
        length_ok = Mux(exact, e_plen == lpm_plen, e_plen <= lpm_plen)
        with m.If(in_use & length_ok & e_match & (~have_best | (e_plen > best_len))):
            m.d.sync += [have_best.eq(1), best_len.eq(e_plen), best_slot.eq(idx)]
        with m.If(~in_use & ~have_free):
            m.d.sync += [have_free.eq(1), free_slot.eq(idx)]
