"""Bytes to words and back, at 125 MHz next to the FIFOs to the core domain.

The MAC's receive and transmit paths move a byte per 125 MHz cycle; the core domain (50-62.5
MHz) moves a 64-bit word per cycle, so that it keeps up with the line. Each side here is a
byte-lane register and a count, nothing more:

* :class:`RxPacker` gathers the receiver's bytes into words and writes a word to the receive
  FIFO once the byte after it (or the frame's status) arrives, so that a frame's last word, full
  or not, carries the frame's :class:`~bpfcore.hdl.eth.layouts.RxReason`.
* :class:`TxUnpacker` hands the transmitter the bytes of the transmit FIFO's words one at a
  time, taking the next word in the cycle the last byte of the current one leaves.
"""

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ._checks import check_domain
from ..unused import rejecting
from .layouts import (WORD_BYTES, FifoWriteSignature, RxEntry, RxEntrySignature, RxReason,
                      RxStatus, TxWord)

__all__ = ["RxPacker", "TxUnpacker", "reason_of"]

#: RxStatus flags in the order their reason wins.
_PRIORITY = ((RxStatus.OVERFLOW, RxReason.OVERFLOW), (RxStatus.OVERSIZE, RxReason.OVERSIZE),
             (RxStatus.RUNT, RxReason.RUNT), (RxStatus.RX_ERROR, RxReason.RX_ERROR),
             (RxStatus.FCS, RxReason.FCS))


def reason_of(status):
    """The :class:`~bpfcore.hdl.eth.layouts.RxReason` of :class:`RxStatus` flags (reference)."""
    for flag, reason in _PRIORITY:
        if status & flag:
            return reason
    return RxReason.GOOD


class RxPacker(wiring.Component):
    """Receiver bytes and status entries into receive FIFO words (receive domain).

    Parameters
    ----------
    domain : str
        The receive clock domain.

    Members
    -------
    bytes : In(FifoWriteSignature)
        From :class:`~bpfcore.hdl.eth.rx.MacRx`. Bytes are always taken (a byte offered while
        ``rdy`` is low belongs to a frame the receiver marks as overflowed anyway); ``rdy`` is
        low while a frame's last word waits for room in the FIFO (or is being written), which
        holds a status entry.
    fifo : Out(RxEntrySignature)
        The FIFO's write port; ``en`` comes from a flip-flop. A word refused by a full FIFO is
        lost and its frame ends with reason ``OVERFLOW``.

    Raises
    ------
    ValueError
        On a bad domain name.
    """

    def __init__(self, *, domain="rx0"):
        with rejecting(self):
            check_domain("domain", domain)
        self._domain = domain
        super().__init__({"bytes": In(FifoWriteSignature), "fifo": Out(RxEntrySignature)})

    def elaborate(self, platform):
        m = Module()
        sync = m.d[self._domain]
        entry = self.bytes.data
        out = Signal(RxEntry)
        lanes = Signal(8 * WORD_BYTES)
        count = Signal(range(WORD_BYTES + 1))     # bytes in lanes
        reason = Signal(3)
        # A word of this frame was refused by the full FIFO. It may be refused in the cycle the
        # frame's status comes, so the flag joins the last word's reason as it is written (the
        # FIFO's ``rdy`` reaches no register but this flag and ``en``).
        lost = Signal()

        # The FIFO's ``rdy`` decides only ``en`` and ``lost``: the word registers load on
        # conditions of flip-flops alone, and ``busy`` (a last word waiting or being written)
        # holds the next status entry for a cycle more than strictly needed.
        busy = self.fifo.en & out.last
        refused = self.fifo.en & ~out.last & ~self.fifo.rdy
        m.d.comb += [self.bytes.rdy.eq(~busy),
                     self.fifo.data.eq(Cat(out.data, out.count, out.last,
                                             Mux(lost & out.last, RxReason.OVERFLOW,
                                                 out.reason)))]
        with m.If(entry[:8] == 0):
            m.d.comb += reason.eq(RxReason.GOOD)
        for flag, why in _PRIORITY:
            with m.Elif(entry[:8] & flag):
                m.d.comb += reason.eq(why)

        sync += self.fifo.en.eq(busy & ~self.fifo.rdy)
        with m.If(refused):
            sync += lost.eq(1)
        with m.If(busy & self.fifo.rdy):
            sync += lost.eq(0)
        with m.If(self.bytes.en):
            with m.If(~entry[8]):
                # A full word goes out once the byte after it comes: only then is it known not
                # to be the frame's last. The new byte lands in lane 0 (count[:3] is 0 at 8).
                sync += [lanes.word_select(count[:3], 8).eq(entry[:8]), count.eq(count + 1)]
                with m.If(count == WORD_BYTES):
                    sync += [out.data.eq(lanes), out.count.eq(WORD_BYTES), out.last.eq(0),
                             self.fifo.en.eq(1), count.eq(1)]
            with m.Elif(~busy):
                sync += [out.data.eq(lanes), out.count.eq(count), out.last.eq(1),
                         out.reason.eq(Mux(lost, RxReason.OVERFLOW, reason)),
                         self.fifo.en.eq(1), count.eq(0)]
        return m


class TxUnpacker(wiring.Component):
    """Transmit FIFO words into a byte stream for :class:`~bpfcore.hdl.eth.tx.MacTx` (transmit
    domain).

    Parameters
    ----------
    domain : str
        The transmit clock domain.

    Members
    -------
    words : In(stream.Signature(TxWord))
        From the FIFO; ``count`` 1..8 (the core side clamps it).
    bytes : Out(stream.Signature(9))
        Frame bytes, bit 8 on a frame's last byte. ``ready`` is taken to come from a flip-flop
        (``words.ready`` is one gate of it and of this side's registers).

    Raises
    ------
    ValueError
        On a bad domain name.
    """

    def __init__(self, *, domain="tx"):
        with rejecting(self):
            check_domain("domain", domain)
        self._domain = domain
        super().__init__({"words": In(stream.Signature(TxWord)),
                          "bytes": Out(stream.Signature(9))})

    def elaborate(self, platform):
        m = Module()
        sync = m.d[self._domain]
        lanes = Signal(8 * WORD_BYTES)
        valid = Signal(WORD_BYTES)      # one bit per byte left in lanes, from bit 0 up
        last = Signal()
        # The next word, read ahead: the FIFO's read enable is one flip-flop, away from the
        # read pointer's increment (the transmit domain's critical path).
        ahead = Signal(8 * WORD_BYTES)
        ahead_valid = Signal(WORD_BYTES)
        ahead_last = Signal()
        ahead_full = Signal()
        word = self.words.payload
        out = self.bytes
        load = ahead_full & (~valid[0] | (out.ready & ~valid[1]))
        m.d.comb += [out.valid.eq(valid[0]), out.payload.eq(Cat(lanes[:8], last & ~valid[1])),
                     self.words.ready.eq(~ahead_full)]
        with m.If(self.words.valid & ~ahead_full):
            sync += [ahead.eq(word.data), ahead_last.eq(word.last), ahead_full.eq(1),
                     ahead_valid.eq(Cat(word.count > i for i in range(WORD_BYTES)))]
        with m.If(out.valid & out.ready):
            sync += [lanes.eq(lanes >> 8), valid.eq(valid >> 1)]
        with m.If(load):
            sync += [lanes.eq(ahead), valid.eq(ahead_valid), last.eq(ahead_last),
                     ahead_full.eq(0)]
        return m
