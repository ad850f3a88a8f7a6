"""The request side of the map memory: the control plane's (host) stream pair, and the helper
unit's, which share one sequencer.

The sequencer works from the accepted request's payload in place (the stream rules keep it still
until ``ready``), so nothing is copied but what it needs early: this room picks a request (the
helper's first), remembers which stream it came from, presents the fields the sequencer reads
later from that stream's payload, and routes the response back to it, accepting the request in
the cycle its response becomes valid.
"""

from amaranth import Module, Signal, Cat, Const, Mux, Array
from amaranth.lib import wiring, data
from amaranth.lib.wiring import In, Out

from .layouts import Op, MapPortSignature, response_layout

__all__ = ["HostPort"]


class HostPort(wiring.Component):
    """Arbitration and in-place payload access of the two request streams.

    Parameters
    ----------
    map_bits, max_key_size, max_value_size : int
        As :class:`~.engine.MapMemory`'s request layout.

    Members
    -------
    helper : In(MapPortSignature(...))
        The helper unit's requests and responses (served first).
    host : In(MapPortSignature(...))
        The control plane's.
    pick_valid : Out(1)
        A request waits on either stream.
    pick_host : Out(1)
        It is the host's (no helper request waits).
    pick : Out(StructLayout)
        That request's ``op``, ``map``, ``key``, ``flags`` (bits 0..2: ``BPF_NOEXIST``,
        ``BPF_EXIST``, ``BPF_F_LOCK``), ``flags_high`` (``flags >> 3`` is nonzero) and
        ``value_high`` (value bytes 4..7 are nonzero).
    take : In(1)
        The sequencer starts on the picked request: ``src_host`` remembers its stream.
    src_host : Out(1)
        The request being served is the host's.
    addr, data, wmask : Out(24), Out(64), Out(8)
        Its ``addr``, ``data`` and ``flags[:8]`` (the ``VALUE_WRITE`` byte mask), in place.
    value_word : In(range(words))
    value : Out(64)
        Its value's 64-bit word ``value_word`` (zeros past ``max_value_size``), in place.
    idle : In(1)
        The sequencer waits for a request (clears the accepted flag).
    respond : In(1)
        ``resp`` is the response: valid on the request's stream; the request is accepted in the
        first such cycle.
    resp : In(response_layout(max_key_size))
    resp_ready : Out(1)
        The response stream takes the response this cycle.
    """

    def __init__(self, *, map_bits, max_key_size, max_value_size):
        self.map_bits = map_bits
        self.max_key_size = max_key_size
        self.max_value_size = max_value_size
        words = max_value_size // 8
        self.words_p2 = 1 << (words - 1).bit_length()
        port = MapPortSignature(map_bits, max_key_size, max_value_size)
        super().__init__({
            "helper": In(port), "host": In(port),
            "pick_valid": Out(1), "pick_host": Out(1),
            "pick": Out(data.StructLayout({
                "op": Op, "map": map_bits, "key": 8 * max_key_size, "flags": 3,
                "flags_high": 1, "value_high": 1})),
            "take": In(1), "src_host": Out(1),
            "addr": Out(24), "data": Out(64), "wmask": Out(8),
            "value_word": In(range(self.words_p2)), "value": Out(64),
            "idle": In(1), "respond": In(1), "resp": In(response_layout(max_key_size)),
            "resp_ready": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        rq, hq = self.helper.req.payload, self.host.req.payload
        src_host = self.src_host
        pick_host = ~self.helper.req.valid
        m.d.comb += [self.pick_valid.eq(self.helper.req.valid | self.host.req.valid),
                     self.pick_host.eq(pick_host)]
        # The wide flag tests are reduced per stream, then picked: cheaper than picking 64 + 32
        # bits first.
        def picked(test):
            return Mux(pick_host, test(hq), test(rq))
        pick = self.pick
        m.d.comb += [pick.op.eq(picked(lambda p: p.op)), pick.map.eq(picked(lambda p: p.map)),
                     pick.key.eq(picked(lambda p: p.key)),
                     pick.flags.eq(picked(lambda p: p.flags[:3])),
                     pick.flags_high.eq(picked(lambda p: p.flags[3:] != 0)),
                     pick.value_high.eq(picked(lambda p: p.value[32:64] != 0))]
        with m.If(self.take):
            m.d.sync += src_host.eq(pick_host)

        m.d.comb += [self.addr.eq(Mux(src_host, hq.addr, rq.addr)),
                     self.data.eq(Mux(src_host, hq.data, rq.data)),
                     self.wmask.eq(Mux(src_host, hq.flags[:8], rq.flags[:8]))]
        words = self.max_value_size // 8
        value_pad = Const(0, 64 * (self.words_p2 - words))
        # (An Array, not word_select: Yosys maps the $shiftx of word_select to about 140 LUTs
        # more here.)
        m.d.comb += self.value.eq(
            Array(Cat(rq.value, value_pad, hq.value, value_pad).word_select(w, 64)
                  for w in range(2 * self.words_p2))[Cat(self.value_word, src_host)])

        # The request is accepted with its response (its valid is still up: the stream rules).
        accepted = Signal()
        with m.If(self.idle):
            m.d.sync += accepted.eq(0)
        for port in (self.helper, self.host):
            m.d.comb += port.resp.payload.eq(self.resp)
        with m.If(self.respond):
            m.d.comb += [self.helper.resp.valid.eq(~src_host), self.host.resp.valid.eq(src_host),
                         self.helper.req.ready.eq(~src_host & ~accepted),
                         self.host.req.ready.eq(src_host & ~accepted),
                         self.resp_ready.eq(Mux(src_host, self.host.resp.ready,
                                                self.helper.resp.ready))]
            m.d.sync += accepted.eq(1)
        return m
