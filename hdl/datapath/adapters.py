"""Adapters between the MAC's byte streams and the datapath's word streams (sync domain)."""

from amaranth import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .layouts import RxByte, RxWord, TxByte, TxWord

__all__ = ["RxBytesToWords", "TxWordsToBytes"]


class RxBytesToWords(wiring.Component):
    """Packs a receive byte stream into words of up to 8 bytes (byte ``i`` at bits ``8i..``).

    A word is sent when it holds 8 bytes or the frame's last byte; ``good`` comes with the last
    byte. The byte stream must keep frames whole (``first`` only after ``last``); ``first`` is
    not otherwise used. Up to one byte per cycle, with no bubble.

    Members
    -------
    i : In(stream.Signature(RxByte))
    o : Out(stream.Signature(RxWord))
    """

    def __init__(self):
        super().__init__({"i": In(stream.Signature(RxByte)), "o": Out(stream.Signature(RxWord))})

    def elaborate(self, platform):
        m = Module()
        acc = Signal(64)
        count = Signal(range(8))
        byte = self.i.payload
        o = self.o.payload
        ends = (count == 7) | byte.last
        m.d.comb += self.i.ready.eq(~ends | ~self.o.valid | self.o.ready)
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(self.i.valid & self.i.ready):
            word = Signal(64)
            m.d.comb += word.eq(acc | (byte.data << (count * 8)))
            with m.If(ends):
                m.d.sync += [self.o.valid.eq(1), o.data.eq(word), o.count.eq(count + 1),
                             o.last.eq(byte.last), o.good.eq(byte.last & byte.good),
                             acc.eq(0), count.eq(0)]
            with m.Else():
                m.d.sync += [acc.eq(word), count.eq(count + 1)]
        return m


class TxWordsToBytes(wiring.Component):
    """Unpacks a transmit word stream into bytes, marking the frame's first and last byte.

    Up to one byte per cycle, with no bubble between words.

    Members
    -------
    i : In(stream.Signature(TxWord))
    o : Out(stream.Signature(TxByte))
    """

    def __init__(self):
        super().__init__({"i": In(stream.Signature(TxWord)), "o": Out(stream.Signature(TxByte))})

    def elaborate(self, platform):
        m = Module()
        word = self.i.payload
        index = Signal(range(8))
        in_frame = Signal()         # a byte of this frame was sent: the next is not its first
        at_end = index + 1 >= word.count
        m.d.comb += [
            self.o.valid.eq(self.i.valid),
            self.o.payload.data.eq(word.data.word_select(index, 8)),
            self.o.payload.first.eq(~in_frame),
            self.o.payload.last.eq(word.last & at_end),
            self.i.ready.eq(self.o.ready & at_end),
        ]
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += [index.eq(index + 1), in_frame.eq(1)]
            with m.If(at_end):
                m.d.sync += [index.eq(0), in_frame.eq(~word.last)]
        return m
