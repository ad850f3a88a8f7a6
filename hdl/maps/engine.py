"""The map memory: descriptors, block-RAM storage and the lookup engine, reproducing
:mod:`bpfcore.sim.model.maps` slot for slot (see its module docstring for the allocation rules).

This file holds the top (:class:`MapMemory`, which only wires the rooms) and the sequencer
(:class:`Sequencer`: the state machine every operation runs through). The rooms:
:mod:`.descriptors`, :mod:`.cpu_port`, :mod:`.host_port`, :mod:`.storage`, :mod:`.values`
(components), and the map-kind rooms that add their states to the sequencer
(:mod:`.room`): :mod:`.arrays` (array, devmap, prog_array), :mod:`.hash_index` (hash,
lru_hash), :mod:`.lpm` (lpm_trie).

Storage:

* values (:mod:`.values`): block RAM, map ``i``'s slot ``k`` at byte
  ``VALUE_BASE_i + k * value_size``;
* slot space (:mod:`.storage`; ``slots`` entries, shared by the maps that have entries): key
  memory (one key per row, ``8 * max_key_size`` bits wide) and LRU {stamp, home bucket} rows in
  block RAM; used bits as 32-bit words in LUT RAM;
* key index (:mod:`.storage`): ``buckets`` rows of {valid, slot, home bucket} in block RAM;
  storing the home bucket makes the backward-shift delete need no rehash, and the LRU victim is
  found from its stored home bucket by its slot (no key read, no rehash);
* descriptors (:mod:`.descriptors`): one small LUT RAM per field and reader (engine, CPU port,
  helper info port; CLEAR works out max_entries * value_size, so only the CPU port reads LIMIT).

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
from .arrays import ArrayKind, FdArrayKind
from .bits import thermometer, add_aligned
from .cpu_port import CpuPort
from .descriptors import Descriptors
from .hash_index import HashIndex
from .host_port import HostPort
from ..unused import rejecting
from .layouts import (Op, Status, request_layout, response_layout, cpu_port_bits,
                      CpuValueSignature, ring_bytes, ERRNOS, errno_word, E_NONE)
from .lpm import LpmLookup
from .room import AV_DONE, AV_TOUCH, AV_SHIFT, AV_CLEAR
from .storage import SlotStorage, USED_WORD, USED_SHIFT
from .values import ValueMemory

# CpuValueSignature and ring_bytes are defined in layouts.py; they stay importable from here.
__all__ = ["MapMemory", "Sequencer", "CpuValueSignature", "ring_bytes", "ALL_MAP_TYPES"]

#: The map types a default build supports.
ALL_MAP_TYPES = frozenset(MapType)

#: The map-kind rooms, in ``DECODE``'s order (their types are disjoint: the order sets only the
#: state encoding).
KIND_ROOMS = (ArrayKind, FdArrayKind, HashIndex, LpmLookup)


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
        :func:`bpfcore.sim.rtl.mapdrv.plan` refuses it.
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
        The same for the control plane (:mod:`bpfcore.sim.rtl.mapdrv`).
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
                raise ValueError(f"MapMemory {name} must be {what}, not {value!r}")
        pow2 = lambda v: v > 0 and v & (v - 1) == 0
        with rejecting(self):
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
                raise ValueError(f"MapMemory map_types must be a non-empty set of abi.MapType, "
                                 f"not {map_types!r}")
            if inject_bug not in (None, "lru_newest", "probe_short"):
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
        types = self.map_types
        sizes = dict(n_maps=self.n_maps, slot_bits=self.slot_bits, bucket_bits=self.bucket_bits,
                     vaddr_bits=self.vaddr_bits)
        m.submodules.values = vm = ValueMemory(self.value_bytes)
        m.submodules.ports = ports = HostPort(map_bits=self.map_bits,
                                              max_key_size=self.max_key_size,
                                              max_value_size=self.max_value_size)
        for outer, inner in ((self.req, ports.helper.req), (self.resp, ports.helper.resp),
                             (self.host_req, ports.host.req), (self.host_resp, ports.host.resp)):
            wiring.connect(m, wiring.flipped(outer), inner)

        m.submodules.descriptors = desc = Descriptors(**sizes)
        m.d.comb += [desc.i_map.eq(self.info_map), self.info_type.eq(desc.i.type),
                     self.info_key_size.eq(desc.i.key_size),
                     self.info_value_size.eq(desc.i.value_size),
                     self.info_read_only.eq(desc.i.read_only)]

        m.submodules.cpu_port = cpu = CpuPort(**sizes)
        wiring.connect(m, wiring.flipped(self.cpu), cpu.cpu)
        m.d.comb += [desc.c_map.eq(cpu.desc_map), cpu.desc.eq(desc.c),
                     vm.a_en.eq(cpu.v_en), vm.a_addr.eq(cpu.v_addr), vm.a_we.eq(cpu.v_we),
                     vm.a_wdata.eq(cpu.v_wdata), vm.a_wmask.eq(cpu.v_wmask),
                     cpu.v_ring.eq(vm.ring), cpu.v_rot.eq(vm.rot)]

        m.submodules.storage = storage = SlotStorage(
            n_maps=self.n_maps, slots=self.slots, buckets=self.buckets,
            max_key_size=self.max_key_size,
            with_keys=bool(types & {MapType.HASH, MapType.LRU_HASH, MapType.LPM_TRIE,
                                    MapType.DEVMAP, MapType.PROG_ARRAY}),
            with_stamps=MapType.LRU_HASH in types,
            with_buckets=bool(types & {MapType.HASH, MapType.LRU_HASH}))

        seq = Sequencer(self, m, ports, desc, storage, vm)
        seq.run([room(seq) for room in KIND_ROOMS if room.serves(types)])
        return m


class Sequencer:
    """The map memory's state machine: one operation at a time, from either request stream.

    It picks a request (``IDLE``), reads the map's descriptor and masks the key to its size,
    checks what every map kind shares (``DECODE``: CONFIG, no map, CLEAR, raw value access,
    NEXT, the program-side faults), hands the operation to the room of the map's kind
    (:mod:`.room`), and finishes it with its own states: the value writer (``VALUE_*``: the
    request value or zeros at a slot), CLEAR, NEXT, the host's raw value access, the
    response.

    Parameters
    ----------
    mem : MapMemory
        The build options.
    m : Module
        The module the state machine goes into.
    ports : :class:`~.host_port.HostPort`
    desc : :class:`~.descriptors.Descriptors`
    storage : :class:`~.storage.SlotStorage`
    values : :class:`~.values.ValueMemory`

    Members
    -------
    What the map-kind rooms share (attributes; with :meth:`fail`, :meth:`set_used`,
    :meth:`built`):

    m : Module
    mem : MapMemory
    types : frozenset of abi.MapType
        The build's map types.
    storage, ports, vm
        The rooms' components (``SlotStorage``, ``HostPort``, ``ValueMemory``).
    op : Signal(Op)
    f_noexist, f_exist, f_lock : Signal
        The request's flag bits 0..2.
    f_bad, f_array_bad, f_dev_high : Signal
        ``flags > BPF_EXIST``, ``(flags & ~BPF_F_LOCK) > BPF_EXIST``, value bytes 4..7 nonzero.
    src_host : Signal
        The request is the host's.
    d : View
        The map's descriptor (``Descriptors.e``), valid from ``DECODE`` on.
    mtype, ksize, vsize, maxe, bmask : Value
        Its type, key size, value size, max_entries, bucket mask.
    is_lru : Value
        The map is an lru_hash.
    key_r : Signal
        The request key; from ``DECODE`` on, masked to the key size.
    key : Signal
        ``key_r`` masked now (for ``DECODE``).
    index, in_range : Value
        The key as an index, and whether it is below max_entries.
    slot, sprod : Signal
        The result's (or the value write's) slot; ``slot * value_size``, one cycle behind.
    i : Signal
        Scan counter (entries, used-bit words, buckets), 0 from ``DECODE`` on.
    i_past, i_last : Signal
        ``i >= max_entries``; ``i + 1 >= max_entries``.
    pend : Signal
        A scan's pipeline holds a row (0 from ``DECODE`` on).
    o_found : Signal
    v_zero : Signal
        The value writer writes zeros.
    after_value : Signal
        What follows the value writer (``room.AV_*``).
    hash : HashIndex or None
        The hash room (the LRU stamp write of ``TOUCH``), set by :meth:`run`.
    """

    def __init__(self, mem, m, ports, desc, storage, values):
        self.mem, self.m = mem, m
        self.ports, self.storage, self.vm = ports, storage, values
        self.types = types = mem.map_types
        self.keyed = storage.with_keys
        self.has_lru = MapType.LRU_HASH in types
        self.has_hash = storage.with_buckets
        limit_bits = cpu_port_bits(mem.vaddr_bits)[0]
        kb = 8 * mem.max_key_size

        # --- request: the accepted stream's payload (read in place, HostPort) ----------------
        self.src_host = ports.src_host
        self.op = Signal(Op)
        self.mapi = Signal(mem.map_bits)
        self.f_noexist, self.f_exist, self.f_lock = Signal(), Signal(), Signal()
        self.f_bad = Signal()                 # flags > BPF_EXIST
        self.f_array_bad = Signal()           # (flags & ~BPF_F_LOCK) > BPF_EXIST
        self.f_dev_high = Signal()            # value bytes 4..7 nonzero (devmap)

        # --- descriptor: read in IDLE, valid from DECODE on ----------------------------------
        self.desc = desc
        self.d = d = desc.e
        self.mtype, self.ksize, self.vsize = d.type, d.key_size, d.value_size
        self.maxe, self.bmask = d.max_entries, d.bucket_mask
        self.is_lru = self.mtype == MapType.LRU_HASH
        m.d.comb += [desc.w_map.eq(self.mapi), desc.w_field.eq(ports.addr[:4]),
                     desc.w_data.eq(ports.data)]
        m.d.comb += [storage.map.eq(self.mapi), storage.slot_base.eq(d.slot_base),
                     storage.bucket_base.eq(d.bucket_base)]

        # --- the request key, masked to key_size bytes ---------------------------------------
        # key_r takes the picked request's key in IDLE, as it is; DECODE reads it through the
        # key-size mask (``key``) and clears the bytes past key_size, so every state after
        # IDLE (array index, used bits, key compare, LPM scan, key store, CRC) starts from a
        # flip-flop, not from the request multiplexer behind the helper units.
        self.key_r = key_r = Signal(kb)
        self.key = key = Signal(kb)
        self.key_mask = key_mask = Signal(mem.max_key_size)
        m.d.comb += key_mask.eq(thermometer(self.ksize, mem.max_key_size))
        for j in range(mem.max_key_size):
            byte = slice(8 * j, 8 * j + 8)
            m.d.comb += key[byte].eq(key_r[byte] & key_mask[j].replicate(8))
        self.index = index = key[:32]
        self.in_range = Signal()              # index < max_entries (<= value_bytes)
        m.d.comb += self.in_range.eq((index[limit_bits:] == 0)
                                     & (index[:limit_bits] < self.maxe))

        # --- response registers --------------------------------------------------------------
        self.o_status = Signal(Status)
        self.o_found = Signal()
        self.o_err = Signal(3)
        self.o_data = Signal(64)
        self.o_keylo = Signal(32)
        self.key_from_mem = Signal()
        # Slots and byte offsets of a map's values stay below value_bytes (limit_bits).
        self.slot = Signal(limit_bits)
        self.sprod = Signal(limit_bits)       # slot * value_size, one cycle behind slot
        m.d.sync += self.sprod.eq(self.slot * self.vsize)

        # --- scans: i counts entries, used-bit words or buckets ------------------------------
        self.i = i = Signal(max(limit_bits, mem.bucket_bits, mem.slot_bits) + 1)
        self.i_past = Signal()                # i >= max_entries
        self.i_last = Signal()                # i + 1 >= max_entries (one comparator for both)
        m.d.comb += [self.i_past.eq(i >= self.maxe),
                     self.i_last.eq(self.i_past | (i + 1 == self.maxe))]
        self.pend = Signal()                  # a scan's pipeline holds a row

        # --- value writer: v_left bytes from the request value (or zeros) at v_addr ----------
        self.v_addr = Signal(mem.vaddr_bits)
        self.v_left = Signal(limit_bits)
        self.v_word = Signal.like(ports.value_word)
        self.v_zero = Signal()
        self.after_value = Signal(range(4))   # AV_*: what follows the write
        m.d.comb += ports.value_word.eq(self.v_word)

    def fail(self, code):
        """Sync statements: the operation answers errno ``code`` (``layouts.E_*``)."""
        return [self.o_err.eq(code)]

    def set_used(self, at, value):
        """Comb statements: write used bit ``at`` (None: the one ``u_at`` already selects)."""
        st = self.storage
        return [st.u_we.eq(1), st.u_wval.eq(value)] + ([] if at is None else [st.u_at.eq(at)])

    def built(self, *which):
        """The map is of one of ``which`` that this build has."""
        return Cat(*(self.mtype == t for t in which if t in self.types)).any()

    def run(self, rooms):
        """The state machine, with the states of the map-kind ``rooms`` (in ``DECODE``'s
        order)."""
        self.hash = next((r for r in rooms if isinstance(r, HashIndex)), None)
        with self.m.FSM():
            self._idle(rooms)
            self._decode(rooms)
            for room in rooms:
                room.states()
            self._value_writer()
            self._clear_and_next()
            self._host_values()
            self._respond()

    def _idle(self, rooms):
        m, ports = self.m, self.ports
        with m.State("IDLE"):
            pick = ports.pick
            m.d.comb += [self.desc.e_en.eq(1), self.desc.e_map.eq(pick.map), ports.idle.eq(1)]
            for room in rooms:
                room.idle()
            with m.If(ports.pick_valid):
                flags = pick.flags
                m.d.comb += ports.take.eq(1)
                m.d.sync += [self.op.eq(pick.op), self.mapi.eq(pick.map), self.key_r.eq(pick.key),
                             self.f_noexist.eq(flags[0]), self.f_exist.eq(flags[1]),
                             self.f_lock.eq(flags[2]),
                             self.f_bad.eq(pick.flags_high | flags[2] | (flags[:2] == 3)),
                             self.f_array_bad.eq(pick.flags_high | (flags[:2] == 3)),
                             self.f_dev_high.eq(pick.value_high)]
                m.next = "DECODE"

    def _decode(self, rooms):
        m, op, mtype = self.m, self.op, self.mtype
        with m.State("DECODE"):
            # (The bytes past key_size are cleared, not the whole key rewritten with the
            # masked one: a clear is the flip-flops' synchronous reset, a rewrite a
            # multiplexer per bit.)
            for j in range(self.mem.max_key_size):
                with m.If(~self.key_mask[j]):
                    m.d.sync += self.key_r[8 * j:8 * j + 8].eq(0)
            m.d.sync += [self.o_status.eq(Status.OK), self.o_found.eq(0), self.o_err.eq(E_NONE),
                         self.key_from_mem.eq(0), self.slot.eq(0), self.i.eq(0),
                         self.pend.eq(0), self.v_zero.eq(0), self.v_word.eq(0),
                         self.after_value.eq(AV_DONE)]
            for room in rooms:
                m.d.sync += room.reset()
            prog_side = ~self.src_host
            fd_array = (mtype == MapType.PROG_ARRAY) | (mtype == MapType.DEVMAP)
            p_addr = self.ports.addr
            with m.If(op == Op.CONFIG):
                m.d.comb += self.desc.w_en.eq(1)
                m.next = "RESPOND"
            with m.Elif(mtype == 0):
                m.d.sync += self.o_status.eq(Status.FAULT)
                m.next = "RESPOND"
            with m.Elif(op == Op.CLEAR):
                # The values' length is max_entries * value_size: sprod, two cycles on.
                m.d.sync += [self.v_zero.eq(1), self.v_addr.eq(self.d.value_base),
                             self.slot.eq(self.maxe), self.after_value.eq(AV_CLEAR)]
                if self.has_lru:
                    m.d.comb += [self.storage.clock_we.eq(1), self.storage.clock_wdata.eq(0)]
                m.next = "CLEAR_SETUP"
            with m.Elif(op == Op.VALUE_READ):
                m.next = "VREAD"
            with m.Elif(op == Op.VALUE_WRITE):
                m.next = "VWRITE"
            with m.Elif(op == Op.NEXT):
                m.d.sync += self.i.eq(p_addr)
                with m.If(p_addr[len(self.i):] != 0):  # past every map's max_entries
                    m.next = "RESPOND"
                with m.Else():
                    m.next = "NEXT"
            with m.Elif(prog_side & (mtype == MapType.PROG_ARRAY) & (op == Op.LOOKUP)):
                m.d.sync += self.o_status.eq(Status.FAULT)
                m.next = "RESPOND"
            with m.Elif(prog_side & ((op == Op.UPDATE) | (op == Op.DELETE))
                        & (fd_array | self.d.read_only)):
                m.d.sync += self.o_status.eq(Status.FAULT)
                m.next = "RESPOND"
            for room in rooms:
                with m.Elif(self.built(*room.types)):
                    room.decode()
            with m.Else():                        # a type this build leaves out
                m.d.sync += self.o_status.eq(Status.FAULT)
                m.next = "RESPOND"

    def _value_writer(self):
        m, vm = self.m, self.vm
        v_addr, v_left = self.v_addr, self.v_left
        with m.State("CLEAR_SETUP"):              # sprod catches up with slot
            m.next = "CLEAR_LENGTH"
        with m.State("CLEAR_LENGTH"):             # (zeros: v_word does not matter)
            m.d.sync += v_left.eq(self.sprod)
            m.next = "VALUE_WRITE"
        with m.State("VALUE_SETUP"):              # sprod catches up with slot
            m.next = "VALUE_ADDR"
        with m.State("VALUE_ADDR"):
            m.d.sync += [v_addr.eq(add_aligned(self.d.value_base, self.sprod, 3)),
                         v_left.eq(self.vsize),
                         self.v_word.eq(0)]
            m.next = "VALUE_WRITE"
        with m.State("VALUE_WRITE"):
            v_whole = v_left[3:] != 0             # 8 bytes or more left
            with m.If(v_left == 0):
                m.next = "VALUE_DONE"
            with m.Else():
                m.d.comb += [vm.b_we.eq(1), vm.b_addr.eq(v_addr),
                             vm.b_wdata.eq(Mux(self.v_zero, 0, self.ports.value)),
                             vm.b_wmask.eq(Mux(v_whole, 0xff, thermometer(v_left[:3], 8)))]
                with m.If(vm.b_wgrant):
                    m.d.sync += [v_addr.eq(Cat(v_addr[:3], v_addr[3:] + 1)),
                                 self.v_word.eq(self.v_word + 1),
                                 v_left.eq(Mux(v_whole, Cat(v_left[:3], v_left[3:] - 1), 0))]
        with m.State("VALUE_DONE"):
            with m.Switch(self.after_value):
                with m.Case(AV_TOUCH):
                    m.next = "TOUCH"
                if self.has_hash:
                    with m.Case(AV_SHIFT):
                        m.next = "SHIFT_START"
                with m.Case(AV_CLEAR):
                    m.d.sync += self.i.eq(0)
                    if self.keyed:
                        with m.If(((self.mtype == MapType.HASH) | self.is_lru) & self.has_hash):
                            m.next = "CLEAR_BUCKETS" if self.has_hash else "CLEAR_SLOTS"
                        with m.Elif(self.mtype == MapType.ARRAY):
                            m.next = "RESPOND"
                        with m.Else():
                            m.next = "CLEAR_SLOTS"
                    else:
                        m.next = "RESPOND"
                with m.Default():
                    m.next = "RESPOND"

        with m.State("TOUCH"):
            if self.has_lru:
                with m.If(self.is_lru):
                    self.hash.touch()
            m.next = "RESPOND"

    def _clear_and_next(self):
        m, st, i = self.m, self.storage, self.i
        if not self.keyed:
            with m.State("NEXT"):
                with m.If(self.i_past):
                    m.next = "RESPOND"
                with m.Else():
                    m.d.sync += [self.o_found.eq(1), self.slot.eq(i), self.o_keylo.eq(i)]
                    m.next = "RESULT"
            return
        with m.State("CLEAR_SLOTS"):
            # Up to the end of the map's last used-bit word: slots past max_entries stay
            # marked used, so the free-slot scan needs no bound per bit.
            beyond = self.i_past
            if self.has_lru:
                m.d.comb += [st.s_idx.eq(i), st.s_we.eq(~beyond), st.s_wdata.eq(0)]
            m.d.comb += self.set_used(i, beyond)
            m.d.sync += i.eq(i + 1)
            with m.If((i[:USED_SHIFT] == USED_WORD - 1) & self.i_last):
                m.next = "RESPOND"

        # --- iteration -----------------------------------------------------------------------
        with m.State("NEXT"):
            m.d.comb += st.u_at.eq(i)
            with m.If(self.i_past):
                m.next = "RESPOND"
            with m.Elif(self.mtype == MapType.ARRAY):
                m.d.sync += [self.o_found.eq(1), self.slot.eq(i), self.o_keylo.eq(i)]
                m.next = "RESULT"
            with m.Elif(st.u_bit):
                m.d.comb += [st.k_idx.eq(i), st.k_ren.eq(1)]
                m.d.sync += [self.o_found.eq(1), self.slot.eq(i), self.o_keylo.eq(i)]
                m.next = "NEXT_KEY"
            with m.Else():
                m.d.sync += i.eq(i + 1)
        with m.State("NEXT_KEY"):
            m.d.sync += self.key_from_mem.eq(~((self.mtype == MapType.DEVMAP)
                                               | (self.mtype == MapType.PROG_ARRAY)))
            m.next = "RESULT"

    def _host_values(self):
        """The host's raw value access (``VALUE_READ``/``VALUE_WRITE``)."""
        m, vm, ports = self.m, self.vm, self.ports
        host_vaddr = add_aligned(self.d.value_base, ports.addr, 3)
        with m.State("VREAD"):
            m.d.comb += [vm.b_re.eq(1), vm.b_addr.eq(host_vaddr)]
            with m.If(vm.b_rgrant):
                m.next = "VREAD_DATA"
        with m.State("VREAD_DATA"):
            m.d.sync += self.o_data.eq(vm.word)
            m.next = "RESPOND"
        with m.State("VWRITE"):
            m.d.comb += [vm.b_we.eq(1), vm.b_addr.eq(host_vaddr),
                         vm.b_wdata.eq(ports.data), vm.b_wmask.eq(ports.wmask)]
            with m.If(vm.b_wgrant):
                m.next = "RESPOND"

    def _respond(self):
        m, ports = self.m, self.ports
        with m.State("RESULT"):                   # sprod catches up with slot
            m.next = "RESPOND"

        with m.State("RESPOND"):
            k_rdata = self.storage.k_rdata
            key_out = Cat(Mux(self.key_from_mem, k_rdata[:32], self.o_keylo), k_rdata[32:]) \
                if self.keyed else self.o_keylo
            errno = Array(Const(errno_word(e), 32) for e in ERRNOS + [0, 0])[self.o_err]
            p = ports.resp
            m.d.comb += [p.status.eq(self.o_status), p.found.eq(self.o_found),
                         p.slot.eq(Mux(self.o_found, self.slot, 0)),
                         p.offset.eq(Mux(self.o_found, self.sprod, 0)),
                         p.errno.eq(errno), p.data.eq(self.o_data), p.key.eq(key_out),
                         ports.respond.eq(1)]
            with m.If(ports.resp_ready):
                m.next = "IDLE"
