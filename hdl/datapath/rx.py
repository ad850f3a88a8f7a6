"""The receive side of one port: frames from the MAC's word stream into packet slots."""

from amaranth import Module, Signal, Mux
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from bpfcore import abi
from bpfcore.abi import ETH_HLEN

from .layouts import RxWord

__all__ = ["RxWriter"]


class RxWriter(wiring.Component):
    """Writes each frame of one receive stream into a free slot, from byte ``abi.PKT_HEADROOM`` on.

    At the first word of a frame it takes the slot the pool offers; with none offered the whole
    frame is consumed and discarded (``no_buffer``). Accepted words wait in a one-word skid
    register for the shared write port, so ``rx.ready`` is low only while that word waits for
    its grant (at most one cycle per other writer with round-robin arbitration). A frame ends
    when its last word is written (``finish``): ``finish_ok`` when it ended good and is
    ``ETH_HLEN .. max_frame`` bytes long (queued for the core), else it is rejected and its slot
    must be freed. Words past ``max_frame`` are not written (byte enables 0).

    Parameters
    ----------
    slots : int
        Number of packet slots.
    slot_bytes : int
        Bytes per slot.
    max_frame : int
        Longest frame taken, in bytes (the XDP buffer after the headroom).

    Members
    -------
    rx : In(stream.Signature(RxWord))
        The frames received.
    offer_valid, offer_slot : In(1), In(range(slots))
        The slot the pool offers; ``take`` takes it.
    take : Out(1)
    wvalid : Out(1)
        A word waits for the write port (``wslot``, ``waddr``, ``we``, ``wdata``).
    wslot, waddr, we, wdata : Out
    wgrant : In(1)
        The word is written this cycle.
    finish : Out(1)
        A frame ended this cycle (its last word is written): ``finish_slot``, ``finish_length``
        (bytes, meaningful with ``finish_ok``) and ``finish_ok``.
    finish_ok : Out(1)
    finish_slot : Out(range(slots))
    finish_length : Out(16)
    no_buffer : Out(1)
        A frame that found no free slot ended this cycle.
    discarding : Out(1)
        The frame in progress (or the last one) found no slot.
    """

    def __init__(self, *, slots, slot_bytes, max_frame):
        self.slots, self.slot_bytes, self.max_frame = slots, slot_bytes, max_frame
        super().__init__({
            "rx": In(stream.Signature(RxWord)),
            "offer_valid": In(1), "offer_slot": In(range(slots)), "take": Out(1),
            "wvalid": Out(1), "wslot": Out(range(slots)), "waddr": Out(range(slot_bytes // 8)),
            "we": Out(8), "wdata": Out(64), "wgrant": In(1),
            "finish": Out(1), "finish_ok": Out(1), "finish_slot": Out(range(slots)),
            "finish_length": Out(16), "no_buffer": Out(1), "discarding": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        head = abi.PKT_HEADROOM // 8
        word = self.rx.payload

        in_frame = Signal()         # the next word is not the first of a frame
        slot = Signal(range(self.slots))
        length = Signal(16)
        too_long = Signal()
        index = Signal(range(self.slot_bytes // 8 + 1))
        skid_last = Signal()
        skid_ok = Signal()

        accept = Signal()
        m.d.comb += [self.rx.ready.eq(~self.wvalid | self.wgrant),
                     accept.eq(self.rx.valid & self.rx.ready)]

        first = ~in_frame
        owned = Mux(first, self.offer_valid, ~self.discarding)
        new_length = Signal(17)
        over = Signal()
        m.d.comb += [
            new_length.eq(Mux(first, 0, length) + word.count),
            over.eq((~first & too_long) | (new_length > self.max_frame)),
        ]
        mask = Signal(8)
        for n in range(1, 9):
            with m.If(word.count == n):
                m.d.comb += mask.eq((1 << n) - 1)

        with m.If(self.wvalid & self.wgrant):
            m.d.sync += self.wvalid.eq(0)
            m.d.comb += [self.finish.eq(skid_last), self.finish_ok.eq(skid_ok),
                         self.finish_slot.eq(self.wslot), self.finish_length.eq(length)]

        with m.If(accept):
            m.d.sync += [in_frame.eq(~word.last), too_long.eq(over),
                         length.eq(new_length), index.eq(Mux(first, 0, index) + 1)]
            with m.If(first):
                m.d.comb += self.take.eq(self.offer_valid)
                m.d.sync += [slot.eq(self.offer_slot), self.discarding.eq(~self.offer_valid)]
            with m.If(owned):
                m.d.sync += [
                    self.wvalid.eq(1),
                    self.wslot.eq(Mux(first, self.offer_slot, slot)),
                    self.waddr.eq(head + Mux(first, 0, index)),
                    self.we.eq(Mux(over, 0, mask)),
                    self.wdata.eq(word.data),
                    skid_last.eq(word.last),
                    skid_ok.eq(word.good & ~over & (new_length >= ETH_HLEN)),
                ]
            with m.Else():
                m.d.comb += self.no_buffer.eq(word.last)
        return m
