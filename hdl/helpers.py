"""XDP helper units: the hardware behind the CPU's helper port.

One sequencer answers one :data:`~bpfcore.hdl.layouts.HelperRequest` with one
:data:`~bpfcore.hdl.layouts.HelperResponse`, with the results, faults and side effects of the
golden VM's :class:`bpfcore.sim.model.helpers.XdpEnv` (kernel UAPI helper ids,
:class:`bpfcore.abi.Helper`):

======================  ==================================================================
id                      what the unit does
======================  ==================================================================
1 map_lookup_elem       handle check, key read (mem port), ``LOOKUP`` on the map memory
2 map_update_elem       handle check, key and value read, ``UPDATE`` (an array whose values
                        are wider than the update port: ``LOOKUP``, then a copy through the
                        mem port)
3 map_delete_elem       handle check, key read, ``DELETE``
5 ktime_get_ns          the ``ktime_ns`` register
6 trace_printk          :class:`~bpfcore.hdl.printk.PrintkFormatter` reads the format (and
                        ``%s`` strings) through the mem port and sends the text on
                        ``printk``; not in :data:`DEFAULT_HELPERS` (a debug helper)
7 get_prandom_u32       xorshift32 (13, 17, 5), as :class:`~bpfcore.sim.model.helpers.XorShift32`
8 get_smp_processor_id  the ``cpu_id`` input
12 tail_call            context and prog_array checks, ``PEEK`` of slot r3, ``VALUE_READ`` of
                        where its program lies (first slot | length << 16, written by the
                        loader); answers ``tail`` with them (at most 33 per packet)
23 redirect             sets the redirect target (``ifindex``)
28 csum_diff            both buffers read 8 bytes at a time, ones'-complement sum, 16-bit fold
44 xdp_adjust_head      bounds check, new ``data`` (``ctx_we``)
51 redirect_map         devmap ``LOOKUP`` + ``VALUE_READ`` of the ifindex
65 xdp_adjust_tail      bounds check, zeroes the grown bytes (raw packet writes), new
                        ``data_end`` (``ctx_we``)
======================  ==================================================================


Any other id, or one the build leaves out (``helpers=``; ``trace_printk`` unless asked for),
answers ``fault = Fault.BAD_CALL``, ``r0 = 0``, like the VM's call of an unknown helper.

Buffer arguments (keys, values, csum buffers) are read through the mem port in accesses of
8 bytes, then 4, 2, 1 for the tail, so no access reaches past the buffer. The VM checks a whole
buffer with one ``Memory.locate(addr, n)``; the chunks give the same answer: the regions are
not adjacent except the map windows, so chunks that each pass lie in one region; stack, packet
and context rules are intervals, so every chunk passing means the whole range passes; for map
values every chunk must also report the ``slot`` of the first (two map windows can only share a
slot number across their border if a value were 1 MiB long, which the map memory cannot hold).
A ``Fault.HELPER`` happens before any side effect.

Latency (cycles from the first cycle of ``req.valid`` to the first cycle of ``resp.valid``,
without back-pressure; ``L`` = mem port latency, ``en`` to ``done``, >= 1; ``E`` = map
memory latency, from the first cycle of ``map_req.valid`` to the first cycle of
``map_resp.valid`` (see :mod:`bpfcore.hdl.maps.engine`); ``c(n)`` = accesses for
``n`` bytes = ``n // 8 + popcount(n % 8)``; checked by ``test_documented_latencies``):

==========================================  =============================================
ktime, prandom, smp_processor_id, redirect  1
unknown id, bad map handle or context,      1
csum_diff size error, redirect_map flag
checks
map_lookup_elem, map_delete_elem            2 + c(key) (L + 1) + E
map_update_elem                             2 + (c(key) + c(value)) (L + 1) + E
map_update_elem, array wider than the port  2 + (c(key) + 3 c(value)) (L + 1) + E
redirect_map                                3 + E(lookup) + E(value read); empty slot 2 + E
csum_diff                                   2 + sum over the non-empty buffers of
                                            (c(size) (L + 1) + 1 + folds), folds <= 2
                                            (512 bytes at L = 1: at most 136)
xdp_adjust_head                             2 (1 when r1 is not the context)
xdp_adjust_tail                             2 + c(g) (L + 1) when growing by g bytes, else 2
                                            (1 when r1 is not the context)
trace_printk                                1 + the formatter's (:mod:`bpfcore.hdl.printk`)
==========================================  =============================================
"""

from amaranth import Module, Signal, Cat, Const, Mux, signed
from amaranth.lib import enum, stream, wiring
from amaranth.lib.wiring import In, Out

from bpfcore import abi
from bpfcore.abi import (BPF_F_BROADCAST, BPF_F_EXCLUDE_INGRESS, ETH_HLEN, KERNEL_FRAME_LIMIT,
                         MAX_TAIL_CALL_CNT, XDP_FRAME_SIZE, Errno, Fault, Helper, MapType,
                         XdpAction)
from bpfcore.isa import Size
from .layouts import HelperMemSignature, HelperRequest, HelperResponse, PrintkLayout
from .maps.layouts import OFFSET_BITS, Op, Status, request_layout, response_layout
from .printk import PrintkFormatter
from .unused import rejecting

__all__ = ["HelperUnits", "RedirectKind", "BUILDABLE_HELPERS", "DEFAULT_HELPERS"]

#: Helper ids the unit can build: every helper of the architecture.
BUILDABLE_HELPERS = frozenset(int(h) for h in (
    Helper.MAP_LOOKUP_ELEM, Helper.MAP_UPDATE_ELEM, Helper.MAP_DELETE_ELEM,
    Helper.KTIME_GET_NS, Helper.TRACE_PRINTK, Helper.GET_PRANDOM_U32,
    Helper.GET_SMP_PROCESSOR_ID, Helper.REDIRECT, Helper.CSUM_DIFF, Helper.XDP_ADJUST_HEAD,
    Helper.REDIRECT_MAP, Helper.XDP_ADJUST_TAIL, Helper.TAIL_CALL))

#: The default ``helpers=``: all but ``trace_printk``, a debug helper whose text stream
#: (``printk``) someone must drain, or a program that prints waits for ever. Simulation
#: builds ask for it (:data:`BUILDABLE_HELPERS`).
DEFAULT_HELPERS = BUILDABLE_HELPERS - {int(Helper.TRACE_PRINTK)}

_MAP_HELPERS = frozenset(int(h) for h in (Helper.MAP_LOOKUP_ELEM, Helper.MAP_UPDATE_ELEM,
                                          Helper.MAP_DELETE_ELEM, Helper.REDIRECT_MAP,
                                          Helper.TAIL_CALL))

_M64 = (1 << 64) - 1
_WINDOW_BITS = abi.MAP_WINDOW.bit_length() - 1          # 20
_MAP_BASE_WINDOW = abi.MAP_BASE >> _WINDOW_BITS          # 16
_PRANDOM_ZERO_SEED = 0x2545_f491
# A buffer's address adds its offset (< 2**15) to the low word only (see elaborate).
assert max(abi.CTX_BASE + abi.CTX_SIZE, abi.STACK_TOP, abi.PKT_BASE + abi.PKT_BUF_SIZE,
           abi.MAP_BASE + abi.MAX_MAPS * abi.MAP_WINDOW) <= (1 << 32) - (1 << 15)


class RedirectKind(enum.Enum, shape=2):
    """The redirect target a run leaves behind (``XdpEnv.redirect``)."""
    NONE = 0        #: None
    IFINDEX = 1     #: ``("ifindex", redirect_ifindex)``
    DEVMAP = 2      #: ``("devmap", redirect_map, redirect_slot, redirect_ifindex)``


class HelperUnits(wiring.Component):
    """The XDP helpers behind the CPU's helper port (see the module docstring).

    Parameters
    ----------
    n_maps, max_key_size, max_value_size : int
        The map memory's sizes (:class:`~bpfcore.hdl.maps.engine.MapMemory`), so the map ports
        match it; ignored when ``map_memory`` is given.
    map_memory : MapMemory, optional
        Take the sizes from this instance.
    helpers : iterable of int, optional
        Helper ids to build, out of :data:`BUILDABLE_HELPERS` (default
        :data:`DEFAULT_HELPERS`: all but ``trace_printk``); the others answer
        ``Fault.BAD_CALL``.
    frame_limit : int
        Bytes from the start of the packet buffer that ``data_end`` may reach
        (``xdp_adjust_tail``); default the kernel's test-run buffer, as ``XdpEnv``.
    ns_per_cycle : int
        ``ktime_ns`` advances by this much every cycle (0: frozen until the host sets it, which
        keeps lockstep with the VM's constant clock exact).
    inject_bug : None or str
        ``"slot_check"`` (a buffer across two map values passes), ``"tail_limit"``
        (``xdp_adjust_tail`` lets ``data_end`` one byte past the frame limit) or
        ``"printk_byte"`` (the first byte of every ``trace_printk`` message has its low bit
        flipped): known bugs that the reference comparison must catch.

    Members
    -------
    helper_ids : frozenset of int
        The ids built (the loader rejects programs that call others).
    req : In(stream.Signature(HelperRequest))
        One call: ``id``, ``r1``..``r5``. The request is held (not yet accepted) while the unit
        works on it and accepted in the cycle the response becomes valid.
    resp : Out(stream.Signature(HelperResponse))
        ``r0``, ``fault`` (``Fault.HELPER``, ``Fault.BAD_CALL`` or 0), ``halt`` (always 0),
        ``ctx_we`` with the moved packet bounds ``data``/``data_end``.
    mem : Out(HelperMemSignature)
        Access to stack, packet, context and map values (one access at a time; ``addr``,
        ``size``, ``we``, ``wdata`` and ``raw`` hold from ``en`` until ``done``).
    map_req : Out(stream.Signature(request_layout(...)))
    map_resp : In(stream.Signature(response_layout(...)))
        The map memory's helper-facing streams (``LOOKUP``, ``UPDATE``, ``DELETE``,
        ``VALUE_READ``).
    map_info_map : Out(map_bits)
    map_info_type, map_info_key_size, map_info_value_size, map_info_read_only : In
        The map memory's descriptor port (:meth:`connect_maps` wires all map ports).
    data, data_end : In(32)
        The current packet bounds (held by the CPU while a call is in progress).
    run_start : In(1)
        Pulse at the start of each packet: clears the redirect target.
    redirect_kind : Out(RedirectKind)
    redirect_ifindex : Out(32)
    redirect_map : Out(map_bits)
    redirect_slot : Out(32)
        The redirect target left by ``redirect``/``redirect_map`` (``XdpEnv.redirect``).
    seed : In(32)
    seed_we : In(1)
        Set the ``get_prandom_u32`` state to ``seed`` (0 becomes ``0x2545_f491``, as
        ``XorShift32.seed``); the state after reset is 1 (``XdpEnv(seed=1)``).
    cpu_id : In(32)
        ``get_smp_processor_id`` result.
    time_we : In(1)
    time_value : In(64)
        Set ``ktime_ns`` (the host's clock).
    ktime_ns : Out(64)
        The ``ktime_get_ns`` register.
    printk : Out(stream.Signature(PrintkLayout))
        The ``trace_printk`` text: each message's bytes, then one ``end`` transfer, sent
        before the call's response (:mod:`bpfcore.hdl.printk`). The call waits while
        ``ready`` is low. Never valid when ``trace_printk`` is not built.

    Raises
    ------
    ValueError
        A constructor argument is out of range (the message echoes it).
    """

    def __init__(self, *, n_maps=8, max_key_size=20, max_value_size=64, map_memory=None,
                 helpers=None, frame_limit=KERNEL_FRAME_LIMIT, ns_per_cycle=0,
                 inject_bug=None):
        with rejecting(self):
            if map_memory is not None:
                n_maps = map_memory.n_maps
                max_key_size = map_memory.max_key_size
                max_value_size = map_memory.max_value_size
            ids = self._validate(n_maps, max_key_size, max_value_size, helpers, frame_limit,
                                 ns_per_cycle)
            if inject_bug not in (None, "slot_check", "tail_limit", "printk_byte"):
                raise ValueError(f"HelperUnits inject_bug must be None, 'slot_check', "
                                 f"'tail_limit' or 'printk_byte', not {inject_bug!r}")
        self.n_maps = n_maps
        self.max_key_size = max_key_size
        self.max_value_size = max_value_size
        self.helper_ids = ids
        self.frame_limit = frame_limit
        self.ns_per_cycle = ns_per_cycle
        self.inject_bug = inject_bug
        self.map_bits = max(1, (n_maps - 1).bit_length())
        super().__init__({
            "req": In(stream.Signature(HelperRequest)),
            "resp": Out(stream.Signature(HelperResponse)),
            "mem": Out(HelperMemSignature),
            "map_req": Out(stream.Signature(request_layout(self.map_bits, max_key_size,
                                                           max_value_size))),
            "map_resp": In(stream.Signature(response_layout(max_key_size))),
            "map_info_map": Out(self.map_bits),
            "map_info_type": In(5),
            "map_info_key_size": In(6),
            "map_info_value_size": In(13),
            "map_info_read_only": In(1),
            "data": In(32),
            "data_end": In(32),
            "run_start": In(1),
            "redirect_kind": Out(RedirectKind),
            "redirect_ifindex": Out(32),
            "redirect_map": Out(self.map_bits),
            "redirect_slot": Out(32),
            "seed": In(32),
            "seed_we": In(1),
            "cpu_id": In(32),
            "time_we": In(1),
            "time_value": In(64),
            "ktime_ns": Out(64),
            "printk": Out(stream.Signature(PrintkLayout)),
        })

    @staticmethod
    def _validate(n_maps, max_key_size, max_value_size, helpers, frame_limit, ns_per_cycle):
        def check(name, value, ok, what):
            if not isinstance(value, int) or isinstance(value, bool) or not ok(value):
                raise ValueError(f"HelperUnits {name} must be {what}, not {value!r}")
        check("n_maps", n_maps, lambda v: 0 < v <= 64 and v & (v - 1) == 0,
              "a power of two in 1..64")
        check("max_key_size", max_key_size, lambda v: 4 <= v <= 63, "in 4..63")
        check("max_value_size", max_value_size, lambda v: 8 <= v <= 512 and v % 8 == 0,
              "a multiple of 8 in 8..512")
        check("frame_limit", frame_limit, lambda v: 0 < v <= abi.PKT_BUF_SIZE,
              f"in 1..{abi.PKT_BUF_SIZE}")
        check("ns_per_cycle", ns_per_cycle, lambda v: 0 <= v < 1 << 32, "an int in 0..2**32-1")
        if helpers is None:
            return DEFAULT_HELPERS
        try:
            ids = frozenset(helpers)
        except TypeError:
            raise ValueError(f"HelperUnits helpers must be an iterable of helper ids, not "
                             f"{helpers!r}") from None
        unknown = sorted(ids - BUILDABLE_HELPERS, key=repr)
        if unknown:
            raise ValueError(f"HelperUnits helpers: {unknown!r} cannot be built; buildable ids: "
                             f"{sorted(BUILDABLE_HELPERS)}")
        return frozenset(int(i) for i in ids)

    def connect_maps(self, m, map_memory):
        """Wire the map ports to ``map_memory``'s helper streams and descriptor port."""
        m.d.comb += [
            map_memory.req.valid.eq(self.map_req.valid),
            map_memory.req.payload.eq(self.map_req.payload),
            self.map_req.ready.eq(map_memory.req.ready),
            self.map_resp.valid.eq(map_memory.resp.valid),
            self.map_resp.payload.eq(map_memory.resp.payload),
            map_memory.resp.ready.eq(self.map_resp.ready),
            map_memory.info_map.eq(self.map_info_map),
            self.map_info_type.eq(map_memory.info_type),
            self.map_info_key_size.eq(map_memory.info_key_size),
            self.map_info_value_size.eq(map_memory.info_value_size),
            self.map_info_read_only.eq(map_memory.info_read_only),
        ]

    def elaborate(self, platform):
        m = Module()
        rq = self.req.payload
        r1, r2, r3, r4, r5 = rq.r1, rq.r2, rq.r3, rq.r4, rq.r5
        mem = self.mem
        ids = self.helper_ids
        with_maps = bool(ids & _MAP_HELPERS)

        # --- state kept between calls ------------------------------------------------------
        prandom = Signal(32, init=1)
        ktime = self.ktime_ns
        rkind = self.redirect_kind
        if self.ns_per_cycle:
            m.d.sync += ktime.eq(ktime + self.ns_per_cycle)
        with m.If(self.time_we):
            m.d.sync += ktime.eq(self.time_value)

        if Helper.TRACE_PRINTK in ids:
            m.submodules.printk = printk = PrintkFormatter(
                inject_bug="printk_byte" if self.inject_bug == "printk_byte" else None)
            m.d.comb += [printk.r1.eq(r1), printk.r2.eq(r2), printk.r3.eq(r3),
                         printk.r4.eq(r4), printk.r5.eq(r5),
                         printk.mem.done.eq(mem.done), printk.mem.rdata.eq(mem.rdata),
                         printk.mem.fault.eq(mem.fault), printk.mem.slot.eq(mem.slot)]
            wiring.connect(m, printk.text, wiring.flipped(self.printk))

        # --- sequencer registers -----------------------------------------------------------
        acc = Signal(64)            # r0; key/value word assembly; csum sum; copy data
        o_fault = Signal(4)
        o_ctx_we = Signal()
        o_tail = Signal()           # the bounds moved are data_end (else data)
        o_tcall = Signal()          # tail_call taken: continue in prog_base / prog_len
        tail_calls = Signal(range(MAX_TAIL_CALL_CNT + 1))
        bound = Signal(32)          # new data/data_end; value offset (copy, VALUE_READ)
        pos = Signal(15)            # bytes of the current buffer done
        n = Signal(15)              # bytes of the current buffer
        first_slot = Signal(OFFSET_BITS)
        in_to = Signal()            # csum_diff: summing the "to" buffer
        wr = Signal()               # the mem access is a write
        raw = Signal()
        op = Signal(Op)
        sent = Signal()             # the map request was accepted, its response is due
        copying = Signal()          # map_update_elem's copy of a wide array value
        SRC_R1, SRC_R2, SRC_R3, SRC_DST, SRC_END = range(5)
        src = Signal(range(5))

        m.d.comb += [
            self.resp.payload.r0.eq(acc),
            self.resp.payload.fault.eq(o_fault),
            self.resp.payload.halt.eq(0),
            self.resp.payload.ctx_we.eq(o_ctx_we),
            self.resp.payload.tail.eq(o_tcall),
            self.resp.payload.prog_base.eq(bound[:16]),
            self.resp.payload.prog_len.eq(bound[16:32]),
            # (The CPU takes data/data_end only with ctx_we: the bound that did not move
            # passes through.)
            self.resp.payload.data.eq(Mux(o_tail, self.data, bound)),
            self.resp.payload.data_end.eq(Mux(o_tail, bound, self.data_end)),
        ]

        # --- map ports ------------------------------------------------------------------------
        is_tail_call = rq.id == Helper.TAIL_CALL
        # A map handle is MAP_BASE + index * MAP_WINDOW: window number 16 + index, nothing in
        # the low 20 bits. Each register is checked on its own (no 64-bit mux); only the few
        # window bits that name the map pass through one (tail_call's prog_array is r2).
        win_bits = (_MAP_BASE_WINDOW + self.n_maps - 1).bit_length()
        log2_maps = (self.n_maps - 1).bit_length()

        def window(reg):
            return reg[_WINDOW_BITS:_WINDOW_BITS + win_bits]

        def is_handle(reg):
            w = window(reg)
            if _MAP_BASE_WINDOW % self.n_maps == 0:
                in_range = w[log2_maps:] == _MAP_BASE_WINDOW >> log2_maps
            else:
                in_range = (w >= _MAP_BASE_WINDOW) & (w < _MAP_BASE_WINDOW + self.n_maps)
            return ((reg[:_WINDOW_BITS] == 0) & (reg[_WINDOW_BITS + win_bits:] == 0)
                    & in_range)

        def value_ptr(offset):
            # The address of the value at ``offset`` in map r1's window (r1 passed is_handle,
            # so its bits above the window number are 0).
            return Cat(offset[:_WINDOW_BITS], window(r1))

        handle_window = Mux(is_tail_call, window(r2), window(r1))
        index = Signal(self.map_bits)
        if _MAP_BASE_WINDOW % self.n_maps == 0:
            m.d.comb += index.eq(handle_window)
        else:
            m.d.comb += index.eq(handle_window - _MAP_BASE_WINDOW)
        map_ok = (Mux(is_tail_call, is_handle(r2), is_handle(r1))
                  & (self.map_info_type != 0))
        oversize = self.map_info_value_size > self.max_value_size
        key_words = -(-self.max_key_size // 8)
        key_buf = Signal(64 * key_words) if with_maps else Const(0, 64 * key_words)
        val_buf = Signal(self.max_value_size * 8) if with_maps else Const(0, 8)
        is_redirect_map = rq.id == Helper.REDIRECT_MAP
        mreq = self.map_req.payload
        m.d.comb += [
            self.map_info_map.eq(index),
            mreq.op.eq(op), mreq.map.eq(index), mreq.flags.eq(r4), mreq.addr.eq(bound),
            mreq.data.eq(0),
            mreq.key.eq(Cat(Mux(is_redirect_map, r2[:32],
                                Mux(is_tail_call, r3[:32], key_buf[:32])),
                            key_buf[32:8 * self.max_key_size])),
            mreq.value.eq(val_buf),
        ]
        mresp = self.map_resp.payload
        # A VALUE_READ answers the 8-byte word that holds byte ``bound``; the u32 values read
        # (prog_array, devmap: value sizes 4 or 8) start 4-aligned.
        value_u32 = Mux(bound[2], mresp.data[32:], mresp.data[:32])
        # errno is 0 or a negative errno (-4095..-1): bits 12-31 repeat its sign.
        errno64 = Signal(64)
        m.d.comb += errno64.eq(Cat(mresp.errno[:12], mresp.errno[31].replicate(52)))

        # --- one mem access: size from the bytes left, address = base + pos ----------------
        left = Signal(15)
        m.d.comb += left.eq(n - pos)
        csize = Signal(4)           # bytes of this access: 8, then 4, 2, 1 at the tail
        c8 = left[3:] != 0
        c4 = c8 | left[2]
        c2 = c4 | left[1]
        with m.If(c8):
            m.d.comb += [csize.eq(8), mem.size.eq(Size.DW)]
        with m.Elif(c4):
            m.d.comb += [csize.eq(4), mem.size.eq(Size.W)]
        with m.Elif(c2):
            m.d.comb += [csize.eq(2), mem.size.eq(Size.H)]
        with m.Else():
            m.d.comb += [csize.eq(1), mem.size.eq(Size.B)]
        last = left == csize
        base = Signal(64)
        with m.Switch(src):
            with m.Case(SRC_R1):
                m.d.comb += base.eq(r1)
            with m.Case(SRC_R2):
                m.d.comb += base.eq(r2)
            with m.Case(SRC_R3):
                m.d.comb += base.eq(r3)
            with m.Case(SRC_DST):
                m.d.comb += base.eq(value_ptr(bound))
            with m.Case(SRC_END):
                m.d.comb += base.eq(self.data_end)
        # Only the low word adds pos: every region lies below 2**32 - 2**15, so a buffer whose
        # first access (pos = 0, the exact base) passes never carries into the high word, and
        # one whose first access faults has no second.
        m.d.comb += [mem.addr.eq(Cat((base[:32] + pos)[:32], base[32:])), mem.we.eq(wr),
                     mem.raw.eq(raw), mem.wdata.eq(acc)]
        # A buffer lies in one region (and one map value) if every access passes and reports
        # the first access's slot.
        bad = mem.fault | ((pos != 0) & (mem.slot != first_slot))
        if self.inject_bug == "slot_check":
            bad = mem.fault
        # rdata is zero-extended by the CPU; masked again so a wide word never leaks bytes.
        # Accesses are 8 bytes while 8 are left, then 4, 2, 1: a tail access sits at byte
        # offset 0 of its word (any size), 2 (1 byte), 4 (2 or 1 bytes) or 6 (1 byte), so
        # each byte of the word being assembled has at most two candidates.
        rb = [mem.rdata[8 * i:8 * i + 8] for i in range(8)]
        at = [Signal(name=f"at{2 * k}") for k in range(4)]     # byte offset in the word
        m.d.comb += [at[k].eq(pos[1:3] == k) for k in range(4)]
        at0 = at[0] | copying        # a copy writes each chunk back as read, unshifted
        chunk = Signal(64)           # the chunk placed at its offset in the word
        m.d.comb += chunk.eq(Cat(
            rb[0] & at0.replicate(8),
            rb[1] & (at0 & c2).replicate(8),
            (rb[2] & (at0 & c4).replicate(8)) | (rb[0] & (at[1] & ~copying).replicate(8)),
            rb[3] & (at0 & c4).replicate(8),
            (rb[4] & (at0 & c8).replicate(8)) | (rb[0] & (at[2] & ~copying).replicate(8)),
            (rb[5] & (at0 & c8).replicate(8)) | (rb[1] & (at[2] & ~copying & c2).replicate(8)),
            (rb[6] & (at0 & c8).replicate(8)) | (rb[0] & (at[3] & ~copying).replicate(8)),
            rb[7] & (at0 & c8).replicate(8)))
        merged = Signal(64)
        m.d.comb += merged.eq(acc | chunk)
        # csum_diff reads 8 or 4 bytes at a time.
        rdata_lo = mem.rdata[:32]
        rdata_hi = mem.rdata[32:] & c8.replicate(32)
        # A word is complete after an 8-byte access only: the tail (4, 2, 1 bytes) starts at a
        # word boundary and its bytes, fewer than 8, never fill the word.
        word_done = c8
        widx = pos[3:]

        # --- csum_diff -----------------------------------------------------------------------
        from_size = r2[:32]
        to_size = r4[:32]
        seed32 = r5[:32]
        # Sizes not multiples of 4, or more than 512 bytes together (in words: above 128).
        csum_words = Signal(9)
        m.d.comb += csum_words.eq(from_size[2:10] + to_size[2:10])
        csum_sizes_bad = (((from_size | to_size)[:2] != 0) | (from_size[10:] != 0)
                          | (to_size[10:] != 0) | (csum_words > 128))
        # (Past that check the sizes are below 1024: their bits 2-9 tell them apart from 0.)
        has_from = from_size[2:10] != 0
        has_to = to_size[2:10] != 0
        # After the "from" sum: seed + ~sum when a "to" buffer follows, else ~sum.
        seed_not_acc = Signal(33)
        m.d.comb += seed_not_acc.eq((seed32 & has_to.replicate(32)) + ~acc[:32])
        # At most 512 bytes (128 words) plus a 33-bit start: 40 bits hold any sum.
        csum_add = Signal(40)
        m.d.comb += csum_add.eq(acc[:40] + (rdata_lo + rdata_hi))
        fold = Signal(33)
        m.d.comb += fold.eq(acc[:32] + acc[32:40])
        f16a = Signal(17)
        f16b = Signal(17)
        m.d.comb += [f16a.eq(acc[:16] + acc[16:32]), f16b.eq(f16a[:16] + f16a[16])]

        # --- xdp_adjust_head / tail ------------------------------------------------------------
        # Two cycles. The request's cycle registers the bound that moves (data for head,
        # data_end for tail) plus the offset, and the other bound plus the gap they must keep
        # (ETH_HLEN); the next cycle compares the new bound with a constant (head: the frame
        # start, tail: the frame limit) and with that sum. Each cycle has one carry chain
        # (worked out in one, the add, the subtract and the compares were a row of four).
        off = r2[:32].as_signed()
        is_adjust_tail = rq.id == Helper.XDP_ADJUST_TAIL
        adj_new = Signal(signed(34))       # the moving bound + off
        adj_close = Signal(signed(35))     # new < adj_close: the bounds are too close
        m.d.sync += [adj_new.eq(Mux(is_adjust_tail, self.data_end, self.data) + off),
                     adj_close.eq(Mux(is_adjust_tail, self.data + ETH_HLEN,
                                      self.data_end - (ETH_HLEN - 1)))]
        limit = self.frame_limit + (self.inject_bug == "tail_limit")
        # head: new < PKT_BASE + XDP_FRAME_SIZE or new > data_end - ETH_HLEN;
        # tail: new > PKT_BASE + limit or new < data + ETH_HLEN.
        below = adj_new < Mux(is_adjust_tail, abi.PKT_BASE + limit + 1,
                              abi.PKT_BASE + XDP_FRAME_SIZE)
        close = adj_new < adj_close
        adjust_bad = (below ^ is_adjust_tail) | (close ^ ~is_adjust_tail)
        is_ctx = r1 == abi.CTX_BASE

        x = prandom ^ (prandom << 13)[:32]
        x = x ^ (x >> 17)
        x = x ^ (x << 5)[:32]
        prandom_next = Signal(32)
        m.d.comb += prandom_next.eq(x)

        def finish(r0):
            m.d.sync += acc.eq(r0)
            m.next = "DONE"

        def fail(cause):
            m.d.sync += [acc.eq(0), o_fault.eq(cause)]
            m.next = "DONE"

        def start_buffer(state, source, length, acc_init=0, write=0):
            m.d.sync += [src.eq(source), n.eq(length), pos.eq(0), acc.eq(acc_init),
                         wr.eq(write)]
            m.next = state

        def read_states(name, consume, at_end):
            """ISSUE/WAIT states reading a buffer chunk by chunk."""
            with m.State(f"{name}_ISSUE"):
                m.d.comb += mem.en.eq(1)
                m.next = f"{name}_WAIT"
            with m.State(f"{name}_WAIT"):
                with m.If(mem.done):
                    with m.If(bad):
                        fail(Fault.HELPER)
                    with m.Else():
                        m.d.sync += pos.eq(pos + csize)
                        with m.If(pos == 0):
                            m.d.sync += first_slot.eq(mem.slot)
                        consume()
                        with m.If(last):
                            at_end()
                        with m.Else():
                            m.next = f"{name}_ISSUE"

        def assemble(buf):
            def consume():
                m.d.sync += [buf.word_select(widx, 64).eq(merged),
                             acc.eq(Mux(word_done, 0, merged))]
            return consume

        def map_request(operation):
            m.d.sync += [op.eq(operation), sent.eq(0)]
            m.next = "MAP"

        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.req.valid):
                    m.d.sync += [o_fault.eq(0), o_ctx_we.eq(0), o_tail.eq(0), o_tcall.eq(0),
                                 raw.eq(0), copying.eq(0),
                                 wr.eq(0), in_to.eq(0)]
                    with m.Switch(rq.id):
                        if Helper.KTIME_GET_NS in ids:
                            with m.Case(int(Helper.KTIME_GET_NS)):
                                finish(ktime)
                        if Helper.GET_PRANDOM_U32 in ids:
                            with m.Case(int(Helper.GET_PRANDOM_U32)):
                                m.d.sync += prandom.eq(prandom_next)
                                finish(prandom_next)
                        if Helper.GET_SMP_PROCESSOR_ID in ids:
                            with m.Case(int(Helper.GET_SMP_PROCESSOR_ID)):
                                finish(self.cpu_id)
                        if Helper.TRACE_PRINTK in ids:
                            with m.Case(int(Helper.TRACE_PRINTK)):
                                m.d.comb += printk.start.eq(1)
                                m.next = "PRINTK"
                        if Helper.REDIRECT in ids:
                            with m.Case(int(Helper.REDIRECT)):
                                with m.If(r2 != 0):
                                    m.d.sync += rkind.eq(RedirectKind.NONE)
                                    finish(XdpAction.ABORTED)
                                with m.Else():
                                    m.d.sync += [rkind.eq(RedirectKind.IFINDEX),
                                                 self.redirect_ifindex.eq(r1[:32])]
                                    finish(XdpAction.REDIRECT)
                        if Helper.CSUM_DIFF in ids:
                            with m.Case(int(Helper.CSUM_DIFF)):
                                with m.If(csum_sizes_bad):
                                    finish(-Errno.EINVAL & _M64)
                                with m.Elif(has_from):
                                    start_buffer("SUM_ISSUE", SRC_R1, from_size[:10],
                                                 Mux(has_to, 0, ~seed32))
                                with m.Elif(has_to):
                                    m.d.sync += in_to.eq(1)
                                    start_buffer("SUM_ISSUE", SRC_R3, to_size[:10], seed32)
                                with m.Else():
                                    m.d.sync += acc.eq(seed32)
                                    m.next = "FOLD16"
                        for h in (Helper.XDP_ADJUST_HEAD, Helper.XDP_ADJUST_TAIL):
                            if h not in ids:
                                continue
                            with m.Case(int(h)):
                                if h == Helper.XDP_ADJUST_TAIL:
                                    m.d.sync += o_tail.eq(1)
                                with m.If(~is_ctx):
                                    fail(Fault.HELPER)
                                with m.Else():
                                    m.next = "ADJUST"
                        for h, operation in ((Helper.MAP_LOOKUP_ELEM, Op.LOOKUP),
                                             (Helper.MAP_UPDATE_ELEM, Op.UPDATE),
                                             (Helper.MAP_DELETE_ELEM, Op.DELETE)):
                            if h not in ids:
                                continue
                            with m.Case(int(h)):
                                refused = ~map_ok
                                if h == Helper.MAP_UPDATE_ELEM:
                                    # Too wide for the update port: only arrays (the map
                                    # plan refuses other keyed maps), copied in place below.
                                    refused |= oversize & ((self.map_info_type != MapType.ARRAY)
                                                           | self.map_info_read_only)
                                with m.If(refused):
                                    fail(Fault.HELPER)
                                with m.Else():
                                    m.d.sync += op.eq(operation)
                                    start_buffer("KEY_ISSUE", SRC_R2, self.map_info_key_size)
                        if Helper.REDIRECT_MAP in ids:
                            with m.Case(int(Helper.REDIRECT_MAP)):
                                allowed = 0x3 | BPF_F_BROADCAST | BPF_F_EXCLUDE_INGRESS
                                with m.If(~map_ok | (self.map_info_type != MapType.DEVMAP)):
                                    fail(Fault.HELPER)
                                with m.Elif((r3 & ~allowed & _M64) != 0):
                                    m.d.sync += rkind.eq(RedirectKind.NONE)
                                    finish(XdpAction.ABORTED)
                                with m.Elif(r3 & BPF_F_BROADCAST):
                                    fail(Fault.HELPER)
                                with m.Else():
                                    map_request(Op.LOOKUP)
                        if Helper.TAIL_CALL in ids:
                            with m.Case(int(Helper.TAIL_CALL)):
                                # XdpEnv.tail_call's order: context, map, map type, nesting,
                                # then slot and count (-ENOENT).
                                with m.If(~is_ctx | ~map_ok
                                          | (self.map_info_type != MapType.PROG_ARRAY)
                                          | rq.nested):
                                    fail(Fault.HELPER)
                                with m.Elif(tail_calls >= MAX_TAIL_CALL_CNT):
                                    finish(-Errno.ENOENT & _M64)
                                with m.Else():
                                    map_request(Op.PEEK)
                        with m.Default():
                            fail(Fault.BAD_CALL)

            with m.State("ADJUST"):                # adj_new, adj_close registered
                with m.If(adjust_bad):
                    finish(-Errno.EINVAL & _M64)
                with m.Elif(is_adjust_tail & (off > 0)):
                    m.d.sync += [bound.eq(adj_new), raw.eq(1)]
                    start_buffer("ZERO_ISSUE", SRC_END, off, write=1)
                with m.Else():
                    m.d.sync += [bound.eq(adj_new), o_ctx_we.eq(1)]
                    finish(0)

            # --- csum_diff ---------------------------------------------------------------------
            def csum_consume():
                m.d.sync += acc.eq(csum_add)

            def csum_end():
                m.next = "FOLD"

            read_states("SUM", csum_consume, csum_end)     # "from", then "to" (in_to)
            with m.State("FOLD"):
                with m.If(acc[32:40] != 0):
                    m.d.sync += acc.eq(fold)
                with m.Elif(in_to):
                    m.next = "FOLD16"
                with m.Elif(has_to):
                    # to - from + seed: the "to" sum starts from seed + ~from_sum.
                    m.d.sync += in_to.eq(1)
                    start_buffer("SUM_ISSUE", SRC_R3, to_size[:10], seed_not_acc)
                with m.Else():
                    m.d.sync += acc.eq(seed_not_acc)
                    m.next = "FOLD16"
            with m.State("FOLD16"):
                finish(f16b[:16])

            # --- trace_printk: the formatter drives the mem port until it is done ------------
            if Helper.TRACE_PRINTK in ids:
                with m.State("PRINTK"):
                    m.d.comb += [mem.en.eq(printk.mem.en), mem.addr.eq(printk.mem.addr),
                                 mem.size.eq(printk.mem.size), mem.we.eq(printk.mem.we),
                                 mem.raw.eq(printk.mem.raw), mem.wdata.eq(printk.mem.wdata)]
                    with m.If(printk.done):
                        with m.If(printk.fault):
                            fail(Fault.HELPER)
                        with m.Else():
                            finish(printk.r0)

            # --- xdp_adjust_tail: zero the grown bytes -----------------------------------------
            with m.State("ZERO_ISSUE"):
                m.d.comb += mem.en.eq(1)
                m.next = "ZERO_WAIT"
            with m.State("ZERO_WAIT"):
                with m.If(mem.done):
                    with m.If(mem.fault):
                        fail(Fault.HELPER)
                    with m.Elif(last):
                        m.d.sync += o_ctx_we.eq(1)
                        finish(0)
                    with m.Else():
                        m.d.sync += pos.eq(pos + csize)
                        m.next = "ZERO_ISSUE"

            # --- map helpers --------------------------------------------------------------------
            if with_maps:
                def key_end():
                    with m.If(op == Op.UPDATE):
                        start_buffer("VALUE_ISSUE", SRC_R3, self.map_info_value_size)
                    with m.Else():
                        m.d.sync += sent.eq(0)
                        m.next = "MAP"

                read_states("KEY", assemble(key_buf), key_end)
                # An array value wider than the update port: read the whole value first (no
                # effect before a fault; the words past the buffer are not kept), then LOOKUP,
                # then copy.
                read_states("VALUE", assemble(val_buf),
                            lambda: map_request(Mux(oversize, Op.LOOKUP, Op.UPDATE)))

                with m.State("MAP"):
                    # Ready for the response from the start: a map memory may accept the
                    # request only as its response appears (it reads the payload in place).
                    m.d.comb += [self.map_req.valid.eq(~sent), self.map_resp.ready.eq(1)]
                    with m.If(self.map_req.valid & self.map_req.ready):
                        m.d.sync += sent.eq(1)
                    with m.If(self.map_resp.valid):
                        with m.If(mresp.status == Status.FAULT):
                            fail(Fault.HELPER)
                        with m.Elif(is_redirect_map):
                            with m.If(op == Op.VALUE_READ):
                                m.d.sync += [rkind.eq(RedirectKind.DEVMAP),
                                             self.redirect_ifindex.eq(value_u32),
                                             self.redirect_map.eq(index),
                                             self.redirect_slot.eq(r2[:32])]
                                finish(XdpAction.REDIRECT)
                            with m.Elif(mresp.found):
                                m.d.sync += bound.eq(mresp.offset)
                                map_request(Op.VALUE_READ)
                            with m.Else():
                                m.d.sync += rkind.eq(RedirectKind.NONE)
                                finish(r3[:2])
                        with m.Elif(is_tail_call):
                            # A prog_array value: the program's first slot (bits 0-15) and
                            # length (16-31) in program memory.
                            with m.If(op == Op.VALUE_READ):
                                m.d.sync += [bound.eq(value_u32), o_tcall.eq(1),
                                             tail_calls.eq(tail_calls + 1)]
                                finish(0)
                            with m.Elif(mresp.found):
                                m.d.sync += bound.eq(mresp.offset)
                                map_request(Op.VALUE_READ)
                            with m.Else():
                                finish(-Errno.ENOENT & _M64)
                        with m.Elif(rq.id == Helper.MAP_LOOKUP_ELEM):
                            finish(Mux(mresp.found, value_ptr(mresp.offset), 0))
                        with m.Elif((rq.id == Helper.MAP_UPDATE_ELEM) & oversize):
                            # ArrayMap.update's order of checks.
                            with m.If((r4[3:] != 0) | (r4[0] & r4[1])):     # (r4 & ~4) > 2
                                finish(-Errno.EINVAL & _M64)
                            with m.Elif(~mresp.found):
                                finish(-Errno.E2BIG & _M64)
                            with m.Elif(r4[0]):
                                finish(-Errno.EEXIST & _M64)
                            with m.Elif(r4[2]):
                                finish(-Errno.EINVAL & _M64)
                            with m.Else():
                                m.d.sync += [bound.eq(mresp.offset), copying.eq(1)]
                                start_buffer("COPY_RD_ISSUE", SRC_R3,
                                             self.map_info_value_size)
                        with m.Else():
                            finish(errno64)

                with m.State("COPY_RD_ISSUE"):
                    m.d.comb += mem.en.eq(1)
                    m.next = "COPY_RD_WAIT"
                with m.State("COPY_RD_WAIT"):
                    with m.If(mem.done):
                        with m.If(mem.fault):
                            fail(Fault.HELPER)
                        with m.Else():
                            m.d.sync += [acc.eq(merged), src.eq(SRC_DST), wr.eq(1)]
                            m.next = "COPY_WR_ISSUE"
                with m.State("COPY_WR_ISSUE"):
                    m.d.comb += mem.en.eq(1)
                    m.next = "COPY_WR_WAIT"
                with m.State("COPY_WR_WAIT"):
                    with m.If(mem.done):
                        with m.If(mem.fault):
                            fail(Fault.HELPER)
                        with m.Elif(last):
                            m.d.sync += wr.eq(0)
                            finish(0)
                        with m.Else():
                            m.d.sync += [pos.eq(pos + csize), src.eq(SRC_R3), wr.eq(0),
                                         acc.eq(0)]
                            m.next = "COPY_RD_ISSUE"

            with m.State("DONE"):
                # The request is accepted as the response appears (its payload held still
                # until now, so the unit keeps no copy of r1..r5).
                m.d.comb += [self.req.ready.eq(1), self.resp.valid.eq(1)]
                with m.If(~self.resp.ready):
                    m.next = "RESPOND"
                with m.Else():
                    m.next = "IDLE"
            with m.State("RESPOND"):
                m.d.comb += self.resp.valid.eq(1)
                with m.If(self.resp.ready):
                    m.next = "IDLE"

        # Host controls win over a call in the same cycle.
        with m.If(self.seed_we):
            m.d.sync += prandom.eq(Mux(self.seed == 0, _PRANDOM_ZERO_SEED, self.seed))
        with m.If(self.run_start):
            m.d.sync += [rkind.eq(RedirectKind.NONE), tail_calls.eq(0)]
        return m
