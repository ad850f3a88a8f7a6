"""The map memory: descriptors, block-RAM storage and the lookup engine, reproducing
:mod:`bpfcore.sim.maps` slot for slot (see its module docstring for the allocation rules).

Storage:

* values: :class:`~bpfcore.hdl.maps.values.ValueMemory` (block RAM), map ``i``'s slot ``k`` at
  byte ``VALUE_BASE_i + k * value_size``;
* slot space (``slots`` entries, shared by the maps that have entries): key memory (one key per
  row, ``8 * max_key_size`` bits wide) and LRU {stamp, home bucket} rows in block RAM; used bits
  as 32-bit words in LUT RAM;
* key index: ``buckets`` rows of {valid, slot, home bucket} in block RAM; storing the home
  bucket makes the backward-shift delete need no rehash, and the LRU victim is found from its
  stored home bucket by its slot (no key read, no rehash);
* descriptors: one small LUT RAM per field and reader (engine, CPU port, helper info port;
  CLEAR works out max_entries * value_size, so only the CPU port reads LIMIT).

The request payload is read in place (the stream rules keep it still until ``ready``): a request
is accepted in the cycle its response becomes valid. One sequencer serves both request streams
(the helper's ``req`` first). Latency in cycles, from the request's first ``valid`` cycle to the
response's ``valid`` (``p`` = buckets probed, ``k`` = probes whose stored home bucket equals the
key's, ``n`` = max_entries, ``v = ceil(value_size / 8)``; the key is hashed one byte per cycle):

=================  ====================================================================
array lookup        3
hash lookup         key_size + 4 + 2p + k (+1 LRU stamp); p <= probe_limit (measured
                    exactly by tests/test_hdl_maps.py::test_latency_bounds)
hash update (new)   as lookup + ceil(n / 32) (free slot) + v + 5 (+1)
lru update (full)   + n + 2 (oldest stamp) + a probe for the victim's slot + its delete + a
                    second probe run
hash delete         as lookup + v + 6 + 2 * (cluster length after the entry)
lpm_trie            n + 6 (one entry per cycle), updates + v + 4
=================  ====================================================================
"""

from amaranth import Module, Signal, Cat, Const, Mux, Array
from amaranth.lib import wiring, stream
from amaranth.lib.wiring import In, Out

from bpfcore.abi import MapType
from .bits import thermometer, add_aligned, lowest_set
from .cpu_port import CpuPort
from .host_port import HostPort
from .descriptors import Descriptors, ENGINE_FIELDS
from .hash import KeyHash
from .layouts import (Op, Status, Field, request_layout, response_layout,
                      cpu_port_bits, CpuValueSignature,
                      ring_bytes, ERRNOS, errno_word, E_NONE, E_INVAL, E_NOENT, E_2BIG, E_EXIST,
                      E_NOSPC)
from .storage import SlotStorage, USED_WORD, USED_SHIFT
from .values import ValueMemory

__all__ = ["MapMemory", "CpuValueSignature", "ring_bytes", "ALL_MAP_TYPES"]

#: The map types a default build supports.
ALL_MAP_TYPES = frozenset(MapType)


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
    map_types : None or set of abi.MapType
        The map types the engine handles (default: all six); leaving types out leaves their
        logic out. A descriptor of another type faults like a missing map, and
        :func:`bpfcore.sim.mapdrv.plan` refuses it.
    inject_bug : None or str
        ``"lru_newest"`` (a full lru_hash evicts its newest entry) or ``"probe_short"`` (one
        probe fewer than the limit): known bugs the reference comparison must catch.

    Members
    -------
    req : In(stream.Signature(request_layout))
    resp : Out(stream.Signature(response_layout))
        Helper unit operations. A request is accepted (``ready``) when its response becomes
        valid: the engine reads the payload in place while it works (the stream rules keep it
        still), so it needs no copy of the key and value.
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
                 max_value_size=64, map_types=None, inject_bug=None):
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
        if map_types is None:
            map_types = ALL_MAP_TYPES
        if not isinstance(map_types, (set, frozenset)) or not map_types or \
                not all(isinstance(t, MapType) for t in map_types):
            self._MustUse__silence = True
            raise ValueError(f"MapMemory map_types must be a non-empty set of abi.MapType, "
                             f"not {map_types!r}")
        if inject_bug not in (None, "lru_newest", "probe_short"):
            self._MustUse__silence = True
            raise ValueError(f"MapMemory inject_bug must be None, 'lru_newest' or "
                             f"'probe_short', not {inject_bug!r}")
        self.inject_bug = inject_bug
        self.map_types = frozenset(map_types)
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
        kb = 8 * self.max_key_size
        types = self.map_types
        has_array = MapType.ARRAY in types
        has_hash = bool(types & {MapType.HASH, MapType.LRU_HASH})
        has_lru = MapType.LRU_HASH in types
        has_lpm = MapType.LPM_TRIE in types
        has_fd = bool(types & {MapType.DEVMAP, MapType.PROG_ARRAY})
        keyed = has_hash or has_lpm or has_fd
        m.submodules.values = vm = ValueMemory(self.value_bytes)

        # --- request: the accepted stream's payload, read in place ----------------------------
        m.submodules.ports = ports = HostPort(map_bits=self.map_bits,
                                              max_key_size=self.max_key_size,
                                              max_value_size=self.max_value_size)
        for outer, inner in ((self.req, ports.helper.req), (self.resp, ports.helper.resp),
                             (self.host_req, ports.host.req), (self.host_resp, ports.host.resp)):
            wiring.connect(m, wiring.flipped(outer), inner)
        src_host = ports.src_host
        op = Signal(Op)
        mapi = Signal(self.map_bits)
        f_noexist, f_exist, f_lock = Signal(), Signal(), Signal()
        f_bad = Signal()                      # flags > BPF_EXIST
        f_array_bad = Signal()                # (flags & ~BPF_F_LOCK) > BPF_EXIST
        f_dev_high = Signal()                 # value bytes 4..7 nonzero (devmap)
        p_addr, p_data, p_wmask = ports.addr, ports.data, ports.wmask

        # --- descriptors: one small memory per field (LUT RAM), a copy per reader ---------------
        limit_bits = cpu_port_bits(self.vaddr_bits)[0]
        m.submodules.descriptors = desc = Descriptors(
            n_maps=self.n_maps, slot_bits=self.slot_bits, bucket_bits=self.bucket_bits,
            vaddr_bits=self.vaddr_bits)
        cfg_we = desc.w_en
        d_en, d_addr = desc.e_en, desc.e_map
        m.d.comb += [desc.w_map.eq(mapi), desc.w_field.eq(p_addr[:4]), desc.w_data.eq(p_data),
                     desc.i_map.eq(self.info_map)]
        D = {f: getattr(desc.e, f.name.lower()) for f in ENGINE_FIELDS}
        m.d.comb += [self.info_type.eq(desc.i.type), self.info_key_size.eq(desc.i.key_size),
                     self.info_value_size.eq(desc.i.value_size),
                     self.info_read_only.eq(desc.i.read_only)]
        mtype = D[Field.TYPE]
        ksize = D[Field.KEY_SIZE]
        vsize = D[Field.VALUE_SIZE]
        maxe = D[Field.MAX_ENTRIES]
        kbase = D[Field.SLOT_BASE]
        bmask = D[Field.BUCKET_MASK]
        is_lru = mtype == MapType.LRU_HASH

        # --- CPU value port ------------------------------------------------------------------
        m.submodules.cpu_port = cpu_port = CpuPort(
            n_maps=self.n_maps, slot_bits=self.slot_bits, bucket_bits=self.bucket_bits,
            vaddr_bits=self.vaddr_bits)
        wiring.connect(m, wiring.flipped(self.cpu), cpu_port.cpu)
        m.d.comb += [desc.c_map.eq(cpu_port.desc_map), cpu_port.desc.eq(desc.c),
                     vm.a_en.eq(cpu_port.v_en), vm.a_addr.eq(cpu_port.v_addr),
                     vm.a_we.eq(cpu_port.v_we), vm.a_wdata.eq(cpu_port.v_wdata),
                     vm.a_wmask.eq(cpu_port.v_wmask),
                     cpu_port.v_ring.eq(vm.ring), cpu_port.v_rot.eq(vm.rot)]

        # --- the request key, masked to key_size bytes ------------------------------------------
        # key_r takes the picked request's key in IDLE, as it is; DECODE reads it through the
        # key-size mask (``key``) and clears the bytes past key_size, so every state after
        # IDLE (array index, used bits, key compare, LPM scan, key store, CRC) starts from a
        # flip-flop, not from the request multiplexer behind the helper units.
        key_r = Signal(kb)
        key = Signal(kb)
        key_mask = Signal(self.max_key_size)
        m.d.comb += key_mask.eq(thermometer(ksize, self.max_key_size))
        for j in range(self.max_key_size):
            byte = slice(8 * j, 8 * j + 8)
            m.d.comb += key[byte].eq(key_r[byte] & key_mask[j].replicate(8))
        index = key[:32]
        in_range = Signal()                   # index < max_entries (<= value_bytes)
        m.d.comb += in_range.eq((index[limit_bits:] == 0) & (index[:limit_bits] < maxe))

        # --- slot space, key index, used bits ------------------------------------------------
        m.submodules.storage = st = SlotStorage(
            n_maps=self.n_maps, slots=self.slots, buckets=self.buckets,
            max_key_size=self.max_key_size, with_keys=keyed, with_stamps=has_lru,
            with_buckets=has_hash)
        m.d.comb += [st.map.eq(mapi), st.slot_base.eq(kbase),
                     st.bucket_base.eq(D[Field.BUCKET_BASE])]
        k_idx, s_idx, b_idx = st.k_idx, st.s_idx, st.b_idx
        u_at, u_we, u_wval, u_word, u_bit = st.u_at, st.u_we, st.u_wval, st.u_word, st.u_bit
        lru_clock = st.clock
        word_bits = self.slot_bits - USED_SHIFT

        def set_used(at, value):
            """Write used bit ``at`` (None: the one u_at already selects)."""
            return [u_we.eq(1), u_wval.eq(value)] + ([] if at is None else [u_at.eq(at)])

        # --- hash: zlib CRC-32 of the key, one byte per cycle from DECODE on ---------------------
        if has_hash:
            m.submodules.crc = crc = KeyHash(self.max_key_size)
            m.d.comb += [crc.size.eq(ksize), crc.first.eq(key[:8]), crc.key.eq(key_r)]

        # --- response registers ----------------------------------------------------------------
        o_status = Signal(Status)
        o_found = Signal()
        o_err = Signal(3)
        o_data = Signal(64)
        o_keylo = Signal(32)
        key_from_mem = Signal()
        # Slots and byte offsets of a map's values stay below value_bytes (limit_bits).
        slot = Signal(limit_bits)
        sprod = Signal(limit_bits)            # slot * value_size, one cycle behind slot
        m.d.sync += sprod.eq(slot * vsize)

        # find loop
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
        i = Signal(max(limit_bits, self.bucket_bits, self.slot_bits) + 1)
        i_past = Signal()                     # i >= max_entries
        i_last = Signal()                     # i + 1 >= max_entries (one comparator for both)
        m.d.comb += [i_past.eq(i >= maxe), i_last.eq(i_past | (i + 1 == maxe))]
        pend = Signal()
        minv = Signal(32)
        have_min = Signal()
        victim = Signal(self.slot_bits)
        victim_home = Signal(self.bucket_bits)
        # lpm scan
        best_len = Signal(8)
        have_best = Signal()
        best_slot = Signal(self.slot_bits)
        have_free = Signal()
        free_slot = Signal(self.slot_bits)
        # value writer
        v_addr = Signal(self.vaddr_bits)
        v_left = Signal(limit_bits)
        v_word = Signal.like(ports.value_word)
        m.d.comb += ports.value_word.eq(v_word)
        v_zero = Signal()
        after_value = Signal(range(4))        # AV_* below: what follows the write
        AV_DONE, AV_TOUCH, AV_SHIFT, AV_CLEAR = 0, 1, 2, 3
        after_remove = Signal()               # 0 respond (delete), 1 re-probe for insert (victim)
        v_data = ports.value

        def fail(code):
            return [o_err.eq(code)]

        # LPM entry comparison (data bytes from key byte 4 on, prefix from the MSB of byte 4).
        # The key row is registered first (lpm_row): block RAM clock-to-out is ~6 ns on ECP5.
        # Prefix lengths fit 8 bits here: keys with a longer prefix than the data never reach
        # the scan, and stored entries were checked the same way.
        lpm_plen = key[:32]
        lpm_max = (ksize - 4) * 8
        if has_lpm:
            lpm_row = Signal(kb)
            lpm_idx = Signal(self.slot_bits)
            lpm_use = Signal()
            lpm_valid = Signal()
            e_plen = Signal(8)
            e_match = Signal()
            m.d.comb += e_plen.eq(lpm_row[:8])
            pmask = Signal(kb - 32)
            therm = Signal(kb - 32)
            m.d.comb += therm.eq(thermometer(e_plen, kb - 32))
            for j in range(self.max_key_size - 4):
                for bit in range(8):
                    m.d.comb += pmask[8 * j + bit].eq(therm[8 * j + 7 - bit])
            m.d.comb += e_match.eq(((lpm_row[32:] ^ key_r[32:]) & pmask) == 0)

        with m.FSM():
            with m.State("IDLE"):
                pick = ports.pick
                m.d.comb += [d_en.eq(1), d_addr.eq(pick.map), ports.idle.eq(1)]
                if has_hash:
                    m.d.comb += crc.start.eq(1)
                with m.If(ports.pick_valid):
                    flags = pick.flags
                    m.d.comb += ports.take.eq(1)
                    m.d.sync += [op.eq(pick.op), mapi.eq(pick.map), key_r.eq(pick.key),
                                 f_noexist.eq(flags[0]), f_exist.eq(flags[1]),
                                 f_lock.eq(flags[2]),
                                 f_bad.eq(pick.flags_high | flags[2] | (flags[:2] == 3)),
                                 f_array_bad.eq(pick.flags_high | (flags[:2] == 3)),
                                 f_dev_high.eq(pick.value_high)]
                    m.next = "DECODE"

            with m.State("DECODE"):
                # (The bytes past key_size are cleared, not the whole key rewritten with the
                # masked one: a clear is the flip-flops' synchronous reset, a rewrite a
                # multiplexer per bit.)
                for j in range(self.max_key_size):
                    with m.If(~key_mask[j]):
                        m.d.sync += key_r[8 * j:8 * j + 8].eq(0)
                m.d.sync += [o_status.eq(Status.OK), o_found.eq(0), o_err.eq(E_NONE),
                             key_from_mem.eq(0), slot.eq(0), phase.eq(PH_REQ), i.eq(0),
                             pend.eq(0), have_min.eq(0), have_best.eq(0), have_free.eq(0),
                             best_len.eq(0), v_zero.eq(0), v_word.eq(0),
                             after_value.eq(AV_DONE)]
                if has_lpm:
                    m.d.sync += lpm_valid.eq(0)
                prog_side = ~src_host
                fd_array = (mtype == MapType.PROG_ARRAY) | (mtype == MapType.DEVMAP)

                def built(*which):
                    """The map is of one of ``which`` that this build has."""
                    return Cat(*(mtype == t for t in which if t in types)).any()
                with m.If(op == Op.CONFIG):
                    m.d.comb += cfg_we.eq(1)
                    m.next = "RESPOND"
                with m.Elif(mtype == 0):
                    m.d.sync += o_status.eq(Status.FAULT)
                    m.next = "RESPOND"
                with m.Elif(op == Op.CLEAR):
                    # The values' length is max_entries * value_size: sprod, two cycles on.
                    m.d.sync += [v_zero.eq(1), v_addr.eq(D[Field.VALUE_BASE]), slot.eq(maxe),
                                 after_value.eq(AV_CLEAR)]
                    if has_lru:
                        m.d.comb += [st.clock_we.eq(1), st.clock_wdata.eq(0)]
                    m.next = "CLEAR_SETUP"
                with m.Elif(op == Op.VALUE_READ):
                    m.next = "VREAD"
                with m.Elif(op == Op.VALUE_WRITE):
                    m.next = "VWRITE"
                with m.Elif(op == Op.NEXT):
                    m.d.sync += i.eq(p_addr)
                    with m.If(p_addr[len(i):] != 0):  # past every map's max_entries
                        m.next = "RESPOND"
                    with m.Else():
                        m.next = "NEXT"
                with m.Elif(prog_side & (mtype == MapType.PROG_ARRAY) & (op == Op.LOOKUP)):
                    m.d.sync += o_status.eq(Status.FAULT)
                    m.next = "RESPOND"
                with m.Elif(prog_side & ((op == Op.UPDATE) | (op == Op.DELETE))
                            & (fd_array | D[Field.READ_ONLY])):
                    m.d.sync += o_status.eq(Status.FAULT)
                    m.next = "RESPOND"
                if has_array:
                    with m.Elif(mtype == MapType.ARRAY):
                        self._array_decode(m, op, index, in_range, slot, o_found, fail,
                                           f_array_bad, f_noexist, f_lock)
                if has_fd:
                    with m.Elif(built(MapType.PROG_ARRAY, MapType.DEVMAP)):
                        m.d.comb += u_at.eq(index)
                        present = in_range & u_bit
                        with m.Switch(op):
                            with m.Case(Op.LOOKUP, Op.PEEK):
                                m.d.sync += [o_found.eq(present), slot.eq(index)]
                                m.next = "RESULT"
                            with m.Case(Op.UPDATE):
                                devmap = mtype == MapType.DEVMAP
                                with m.If(devmap & f_bad):
                                    m.d.sync += fail(E_INVAL)
                                    m.next = "RESPOND"
                                with m.Elif(~in_range):
                                    m.d.sync += fail(E_2BIG)
                                    m.next = "RESPOND"
                                with m.Elif(devmap & f_noexist):
                                    m.d.sync += fail(E_EXIST)
                                    m.next = "RESPOND"
                                with m.Elif(devmap & (vsize == 8) & f_dev_high):
                                    m.d.sync += fail(E_INVAL)
                                    m.next = "RESPOND"
                                with m.Else():
                                    m.d.sync += slot.eq(index)
                                    m.d.comb += set_used(None, 1)
                                    m.next = "VALUE_SETUP"
                            with m.Default():
                                with m.If(~in_range):
                                    m.d.sync += fail(E_2BIG)
                                    m.next = "RESPOND"
                                with m.Elif(~present):
                                    m.d.sync += fail(E_NOENT)
                                    m.next = "RESPOND"
                                with m.Else():
                                    m.d.sync += [slot.eq(index), v_zero.eq(1)]
                                    m.d.comb += set_used(None, 0)
                                    m.next = "VALUE_SETUP"
                if has_lpm:
                    with m.Elif(mtype == MapType.LPM_TRIE):
                        pb = (8 * (self.max_key_size - 4)).bit_length()   # lpm_max's width
                        plen_bad = (lpm_plen[pb:] != 0) | (lpm_plen[:pb] > lpm_max)
                        with m.If((op == Op.UPDATE) & f_bad):
                            m.d.sync += fail(E_INVAL)
                            m.next = "RESPOND"
                        with m.Elif(plen_bad & ((op == Op.UPDATE) | (op == Op.DELETE))):
                            m.d.sync += fail(E_INVAL)
                            m.next = "RESPOND"
                        with m.Elif(plen_bad):
                            m.next = "RESULT"
                        with m.Else():
                            m.next = "LPM_SCAN"
                if has_hash:
                    with m.Elif(built(MapType.HASH, MapType.LRU_HASH)):
                        with m.If((op == Op.UPDATE) & f_bad):
                            m.d.sync += fail(E_INVAL)
                            m.next = "RESPOND"
                        with m.Else():
                            m.next = "HASH"
                with m.Else():                    # a type this build leaves out
                    m.d.sync += o_status.eq(Status.FAULT)
                    m.next = "RESPOND"

            if has_hash:
                # --- hash: home bucket, then probe ---------------------------------------------
                with m.State("HASH"):
                    with m.If(crc.done):
                        h = crc.crc[:self.bucket_bits] & bmask
                        m.d.sync += [home.eq(h), b.eq(h), probe.eq(0), hit.eq(0),
                                     have_empty.eq(0)]
                        m.next = "FIND_READ"
                with m.State("FIND_READ"):
                    m.d.comb += b_idx.eq(b)
                    m.next = "FIND_BUCKET"
                with m.State("FIND_BUCKET"):
                    e = st.b_rdata
                    m.d.comb += [k_idx.eq(e.slot), st.k_ren.eq(1)]
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
                    with m.Elif(phase == PH_VICTIM):
                        # The victim is known by its slot: no key compare, no rehash.
                        with m.If(e.slot == victim):
                            m.d.sync += [hit.eq(1), found_b.eq(b), found_slot.eq(e.slot)]
                            m.next = "FOUND"
                        with m.Else():
                            advance()
                    with m.Elif(e.home == home):
                        m.next = "FIND_KEY"
                    with m.Else():
                        advance()
                with m.State("FIND_KEY"):
                    with m.If(st.k_rdata == key_r):
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
                            m.d.sync += fail(E_2BIG)
                            m.next = "RESPOND"
                    with m.Else():
                        with m.Switch(op):
                            with m.Case(Op.LOOKUP, Op.PEEK):
                                m.d.sync += [o_found.eq(hit), slot.eq(found_slot)]
                                with m.If(hit & is_lru & (op == Op.LOOKUP)):
                                    m.next = "TOUCH_RESULT" if has_lru else "RESULT"
                                with m.Else():
                                    m.next = "RESULT"
                            with m.Case(Op.DELETE):
                                with m.If(hit):
                                    m.d.comb += set_used(found_slot, 0)
                                    m.d.sync += [after_remove.eq(0), slot.eq(found_slot),
                                                 v_zero.eq(1), after_value.eq(AV_SHIFT)]
                                    m.next = "VALUE_SETUP"
                                with m.Else():
                                    m.d.sync += fail(E_NOENT)
                                    m.next = "RESPOND"
                            with m.Default():                          # UPDATE
                                with m.If(hit & f_noexist):
                                    m.d.sync += fail(E_EXIST)
                                    m.next = "RESPOND"
                                with m.Elif(hit):
                                    m.d.sync += [slot.eq(found_slot), after_value.eq(AV_TOUCH)]
                                    m.next = "VALUE_SETUP"
                                with m.Elif(f_exist):
                                    m.d.sync += fail(E_NOENT)
                                    m.next = "RESPOND"
                                with m.Else():
                                    m.next = "FREE_SCAN"

                if has_lru:
                    def take_min(entry, idx):
                        older = entry.stamp > minv if self.inject_bug == "lru_newest" \
                            else entry.stamp < minv
                        with m.If(~have_min | older):
                            m.d.sync += [minv.eq(entry.stamp), victim.eq(idx),
                                         victim_home.eq(entry.home), have_min.eq(1)]

                    with m.State("STAMP_SCAN"):
                        m.d.comb += s_idx.eq(i)
                        with m.If(pend):
                            take_min(st.s_rdata, i - 1)
                        m.d.sync += [i.eq(i + 1), pend.eq(1)]
                        with m.If(i_last):
                            m.next = "STAMP_LAST"
                    with m.State("STAMP_LAST"):
                        take_min(st.s_rdata, i - 1)
                        m.next = "VICTIM"
                    with m.State("VICTIM"):
                        # Probe from the victim's stored home bucket for its slot.
                        m.d.sync += [b.eq(victim_home), probe.eq(0), hit.eq(0),
                                     have_empty.eq(0), phase.eq(PH_VICTIM)]
                        m.next = "FIND_READ"

                with m.State("INSERT"):
                    m.d.comb += [
                        b_idx.eq(empty_b), st.b_we.eq(1),
                        st.b_wdata.valid.eq(1), st.b_wdata.slot.eq(slot), st.b_wdata.home.eq(home),
                        k_idx.eq(slot), st.k_we.eq(1), st.k_wdata.eq(key_r),
                    ]
                    m.d.comb += set_used(slot, 1)
                    m.d.sync += [after_value.eq(AV_TOUCH), v_zero.eq(0)]
                    m.next = "VALUE_SETUP"

                # --- removal by backward shift ---------------------------------------------------
                with m.State("SHIFT_START"):
                    m.d.sync += [hole.eq(found_b), b.eq((found_b + 1) & bmask)]
                    m.next = "SHIFT_READ"
                with m.State("SHIFT_READ"):
                    m.d.comb += b_idx.eq(b)
                    m.next = "SHIFT"
                with m.State("SHIFT"):
                    e = st.b_rdata
                    m.d.comb += b_idx.eq(hole)
                    with m.If(~e.valid):
                        m.d.comb += [st.b_we.eq(1), st.b_wdata.eq(0)]
                        with m.If(after_remove):
                            m.d.sync += [b.eq(home), probe.eq(0), hit.eq(0), have_empty.eq(0),
                                         phase.eq(PH_INSERT)]
                            m.next = "FIND_READ"
                        with m.Else():
                            m.next = "RESPOND"
                    with m.Else():
                        with m.If(((b - e.home) & bmask) >= ((b - hole) & bmask)):
                            m.d.comb += [st.b_we.eq(1), st.b_wdata.eq(e)]
                            m.d.sync += hole.eq(b)
                        m.d.sync += b.eq((b + 1) & bmask)
                        m.next = "SHIFT_READ"

                if has_lru:
                    with m.State("TOUCH_RESULT"):
                        m.d.comb += [s_idx.eq(slot), st.s_we.eq(1),
                                     st.s_wdata.stamp.eq(lru_clock + 1), st.s_wdata.home.eq(home),
                                     st.clock_we.eq(1), st.clock_wdata.eq(lru_clock + 1)]
                        m.next = "RESULT"

                with m.State("CLEAR_BUCKETS"):
                    m.d.comb += [b_idx.eq(i), st.b_we.eq(1),
                                 st.b_wdata.eq(0)]
                    m.d.sync += i.eq(i + 1)
                    with m.If(i == bmask):
                        m.d.sync += i.eq(0)
                        m.next = "CLEAR_SLOTS"

            if has_lpm:
                # --- lpm_trie: one entry per cycle ---------------------------------------------
                # Three-stage scan: read row i, register row i - 1 (with its used bit), compare
                # row i - 2.
                plen8 = key_r[:8]                 # the registered key: off the scan path
                exact = (op == Op.UPDATE) | (op == Op.DELETE) | (op == Op.PEEK)

                def lpm_capture():
                    m.d.comb += u_at.eq(i - 1)
                    m.d.sync += [lpm_row.eq(st.k_rdata), lpm_idx.eq(i - 1), lpm_use.eq(u_bit),
                                 lpm_valid.eq(pend)]

                def lpm_compare():
                    # Updates, deletes and host peeks look for the entry itself (the
                    # reference's ``entries[(prefixlen, masked data)]``); lookups for the
                    # longest matching prefix.
                    length_ok = Mux(exact, e_plen == plen8, e_plen <= plen8)
                    with m.If(lpm_valid):
                        with m.If(lpm_use & length_ok & e_match
                                  & (~have_best | (e_plen > best_len))):
                            m.d.sync += [have_best.eq(1), best_len.eq(e_plen),
                                         best_slot.eq(lpm_idx)]
                        with m.If(~lpm_use & ~have_free):
                            m.d.sync += [have_free.eq(1), free_slot.eq(lpm_idx)]

                with m.State("LPM_SCAN"):
                    m.d.comb += [k_idx.eq(i), st.k_ren.eq(1)]
                    lpm_capture()
                    lpm_compare()
                    m.d.sync += [i.eq(i + 1), pend.eq(1)]
                    with m.If(i_last):
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
                    with m.Switch(op):
                        with m.Case(Op.LOOKUP, Op.PEEK):
                            m.d.sync += [o_found.eq(have_best), slot.eq(best_slot)]
                            m.next = "RESULT"
                        with m.Case(Op.DELETE):
                            with m.If(have_best):
                                m.d.comb += set_used(best_slot, 0)
                                m.d.sync += [slot.eq(best_slot), v_zero.eq(1)]
                                m.next = "VALUE_SETUP"
                            with m.Else():
                                m.d.sync += fail(E_NOENT)
                                m.next = "RESPOND"
                        with m.Default():
                            with m.If(have_best & f_noexist):
                                m.d.sync += fail(E_EXIST)
                                m.next = "RESPOND"
                            with m.Elif(have_best):
                                m.d.sync += slot.eq(best_slot)
                                m.next = "LPM_STORE"
                            with m.Elif(f_exist):
                                m.d.sync += fail(E_NOENT)
                                m.next = "RESPOND"
                            with m.Elif(~have_free):
                                m.d.sync += fail(E_NOSPC)
                                m.next = "RESPOND"
                            with m.Else():
                                m.d.sync += slot.eq(free_slot)
                                m.next = "LPM_STORE"
                with m.State("LPM_STORE"):
                    m.d.comb += [k_idx.eq(slot), st.k_we.eq(1), st.k_wdata.eq(key_r)]
                    m.d.comb += set_used(slot, 1)
                    m.next = "VALUE_SETUP"

            if has_hash:
                with m.State("FREE_SCAN"):
                    # i counts 32-slot words of the used bits; the map's slots start 64-aligned
                    # and CLEAR marks the slots past max_entries in its last word used.
                    m.d.comb += u_at.eq(Cat(Const(0, USED_SHIFT), i))
                    any_free, low = lowest_set(m, ~u_word)
                    with m.If(any_free):
                        m.d.sync += slot.eq(Cat(low, i))
                        with m.If(have_empty):
                            m.next = "INSERT"
                        with m.Else():
                            m.d.sync += fail(E_2BIG)
                            m.next = "RESPOND"
                    with m.Elif(Cat(Const(0, USED_SHIFT), i[:word_bits] + 1)
                                >= maxe[:self.slot_bits + 1]):
                        if has_lru:
                            with m.If(is_lru):
                                m.d.sync += [i.eq(0), pend.eq(0), have_min.eq(0)]
                                m.next = "STAMP_SCAN"
                            with m.Else():
                                m.d.sync += fail(E_2BIG)
                                m.next = "RESPOND"
                        else:
                            m.d.sync += fail(E_2BIG)
                            m.next = "RESPOND"
                    with m.Else():
                        m.d.sync += i.eq(i + 1)

            # --- value writer: v_left bytes from the request value (or zeros) at v_addr ----------
            with m.State("CLEAR_SETUP"):              # sprod catches up with slot
                m.next = "CLEAR_LENGTH"
            with m.State("CLEAR_LENGTH"):             # (zeros: v_word does not matter)
                m.d.sync += v_left.eq(sprod)
                m.next = "VALUE_WRITE"
            with m.State("VALUE_SETUP"):              # sprod catches up with slot
                m.next = "VALUE_ADDR"
            with m.State("VALUE_ADDR"):
                m.d.sync += [v_addr.eq(add_aligned(D[Field.VALUE_BASE], sprod, 3)),
                             v_left.eq(vsize),
                             v_word.eq(0)]
                m.next = "VALUE_WRITE"
            with m.State("VALUE_WRITE"):
                v_whole = v_left[3:] != 0             # 8 bytes or more left
                with m.If(v_left == 0):
                    m.next = "VALUE_DONE"
                with m.Else():
                    m.d.comb += [vm.b_we.eq(1), vm.b_addr.eq(v_addr),
                                 vm.b_wdata.eq(Mux(v_zero, 0, v_data)),
                                 vm.b_wmask.eq(Mux(v_whole, 0xff, thermometer(v_left[:3], 8)))]
                    with m.If(vm.b_wgrant):
                        m.d.sync += [v_addr.eq(Cat(v_addr[:3], v_addr[3:] + 1)),
                                     v_word.eq(v_word + 1),
                                     v_left.eq(Mux(v_whole, Cat(v_left[:3], v_left[3:] - 1), 0))]
            with m.State("VALUE_DONE"):
                with m.Switch(after_value):
                    with m.Case(AV_TOUCH):
                        m.next = "TOUCH"
                    if has_hash:
                        with m.Case(AV_SHIFT):
                            m.next = "SHIFT_START"
                    with m.Case(AV_CLEAR):
                        m.d.sync += i.eq(0)
                        if keyed:
                            with m.If(((mtype == MapType.HASH) | is_lru) & has_hash):
                                m.next = "CLEAR_BUCKETS" if has_hash else "CLEAR_SLOTS"
                            with m.Elif(mtype == MapType.ARRAY):
                                m.next = "RESPOND"
                            with m.Else():
                                m.next = "CLEAR_SLOTS"
                        else:
                            m.next = "RESPOND"
                    with m.Default():
                        m.next = "RESPOND"

            with m.State("TOUCH"):
                if has_lru:
                    with m.If(is_lru):
                        m.d.comb += [s_idx.eq(slot), st.s_we.eq(1),
                                     st.s_wdata.stamp.eq(lru_clock + 1), st.s_wdata.home.eq(home),
                                     st.clock_we.eq(1), st.clock_wdata.eq(lru_clock + 1)]
                m.next = "RESPOND"

            if keyed:
                with m.State("CLEAR_SLOTS"):
                    # Up to the end of the map's last used-bit word: slots past max_entries
                    # stay marked used, so the free-slot scan needs no bound per bit.
                    beyond = i_past
                    if has_lru:
                        m.d.comb += [s_idx.eq(i), st.s_we.eq(~beyond),
                                     st.s_wdata.eq(0)]
                    m.d.comb += set_used(i, beyond)
                    m.d.sync += i.eq(i + 1)
                    with m.If((i[:USED_SHIFT] == USED_WORD - 1) & i_last):
                        m.next = "RESPOND"

                # --- iteration --------------------------------------------------------------------
                with m.State("NEXT"):
                    m.d.comb += u_at.eq(i)
                    with m.If(i_past):
                        m.next = "RESPOND"
                    with m.Elif(mtype == MapType.ARRAY):
                        m.d.sync += [o_found.eq(1), slot.eq(i), o_keylo.eq(i)]
                        m.next = "RESULT"
                    with m.Elif(u_bit):
                        m.d.comb += [k_idx.eq(i), st.k_ren.eq(1)]
                        m.d.sync += [o_found.eq(1), slot.eq(i), o_keylo.eq(i)]
                        m.next = "NEXT_KEY"
                    with m.Else():
                        m.d.sync += i.eq(i + 1)
                with m.State("NEXT_KEY"):
                    m.d.sync += key_from_mem.eq(~((mtype == MapType.DEVMAP)
                                                  | (mtype == MapType.PROG_ARRAY)))
                    m.next = "RESULT"
            else:
                with m.State("NEXT"):
                    with m.If(i_past):
                        m.next = "RESPOND"
                    with m.Else():
                        m.d.sync += [o_found.eq(1), slot.eq(i), o_keylo.eq(i)]
                        m.next = "RESULT"

            # --- raw value access (host) -------------------------------------------------------
            host_vaddr = add_aligned(D[Field.VALUE_BASE], p_addr, 3)
            with m.State("VREAD"):
                m.d.comb += [vm.b_re.eq(1), vm.b_addr.eq(host_vaddr)]
                with m.If(vm.b_rgrant):
                    m.next = "VREAD_DATA"
            with m.State("VREAD_DATA"):
                m.d.sync += o_data.eq(vm.word)
                m.next = "RESPOND"
            with m.State("VWRITE"):
                m.d.comb += [vm.b_we.eq(1), vm.b_addr.eq(host_vaddr),
                             vm.b_wdata.eq(p_data), vm.b_wmask.eq(p_wmask)]
                with m.If(vm.b_wgrant):
                    m.next = "RESPOND"

            with m.State("RESULT"):                   # sprod catches up with slot
                m.next = "RESPOND"

            with m.State("RESPOND"):
                key_out = Cat(Mux(key_from_mem, st.k_rdata[:32], o_keylo), st.k_rdata[32:]) \
                    if keyed else o_keylo
                errno = Array(Const(errno_word(e), 32) for e in ERRNOS + [0, 0])[o_err]
                p = ports.resp
                m.d.comb += [p.status.eq(o_status), p.found.eq(o_found),
                             p.slot.eq(Mux(o_found, slot, 0)),
                             p.offset.eq(Mux(o_found, sprod, 0)),
                             p.errno.eq(errno), p.data.eq(o_data), p.key.eq(key_out),
                             ports.respond.eq(1)]
                with m.If(ports.resp_ready):
                    m.next = "IDLE"
        return m

    def _array_decode(self, m, op, index, in_range, slot, o_found, fail, f_array_bad, f_noexist,
                      f_lock):
        with m.Switch(op):
            with m.Case(Op.LOOKUP, Op.PEEK):
                m.d.sync += [o_found.eq(in_range), slot.eq(index)]
                m.next = "RESULT"
            with m.Case(Op.UPDATE):
                with m.If(f_array_bad):
                    m.d.sync += fail(E_INVAL)
                    m.next = "RESPOND"
                with m.Elif(~in_range):
                    m.d.sync += fail(E_2BIG)
                    m.next = "RESPOND"
                with m.Elif(f_noexist):
                    m.d.sync += fail(E_EXIST)
                    m.next = "RESPOND"
                with m.Elif(f_lock):
                    m.d.sync += fail(E_INVAL)
                    m.next = "RESPOND"
                with m.Else():
                    m.d.sync += slot.eq(index)
                    m.next = "VALUE_SETUP"
            with m.Default():
                m.d.sync += fail(E_INVAL)
                m.next = "RESPOND"
