"""One Ethernet port: PHY adapter, receiver, transmitter, the FIFOs to the core domain, counters.

The core side moves 64-bit words (:data:`~bpfcore.hdl.eth.layouts.RxWord`,
:data:`~bpfcore.hdl.eth.layouts.TxWord`), one a cycle: 3.2-4 Gbit/s at 50-62.5 MHz, more than
the line's gigabit, so that a line-rate burst never fills the receive FIFO while ``rx`` is ready.

Receive: :class:`~bpfcore.hdl.eth.rx.MacRx` (RX domain) writes frame bytes and a status entry
per frame; :class:`~bpfcore.hdl.eth.words.RxPacker` packs them into words, the frame's reason
on its last word, for a small ``AsyncFIFO`` to ``sync``, which empties it a word a cycle into a
block-RAM ``SyncFIFOBuffered``. Its entries become the ``rx`` stream as they are: a consumer
buffers a frame as it comes and keeps it only if it ends with ``good``; the port has counted it
either way. A frame of which no byte was written (four bytes or fewer) is counted and never
shows on ``rx``; nor does a frame that comes while a full FIFO still holds back the previous
frame's last word (counted in ``overflow``).

Transmit: ``tx`` words go into a block-RAM ``SyncFIFOBuffered``, which releases them into a
small ``AsyncFIFO`` to the TX domain only while it holds a whole frame (a count of frames, not
words, decides), one word a cycle: four times the line's pace at 62.5 MHz, so a released frame
never runs dry on the line. There :class:`~bpfcore.hdl.eth.words.TxUnpacker` hands
:class:`~bpfcore.hdl.eth.tx.MacTx` the bytes. A frame longer than ``max_length`` - 4 bytes is
cut there (sent with that length; the rest of it is taken and dropped) and counted in
``tx_truncated``.

Both block RAMs sit in ``sync`` and only 8-entry distributed-RAM ``AsyncFIFO`` crossings run at
125 MHz, because a 512-entry ``AsyncFIFO``'s pointer compare, increment and Gray encode (and
block-RAM address) do not fit in 8 ns on the LFE5U-25F-6: 101-116 MHz (read side) and 122-139
MHz (write side) were measured over three placement seeds; with 4-bit pointers they fit.

Every counter lives in ``sync``: the receive counters count the last words as they leave the
FIFO, ``frames_tx`` and the whole-frame overflow drops cross from the 125 MHz domains as pulses
(``lib.cdc.PulseSynchronizer``; frames are at least 84 byte times apart, far more than its
limit).
"""

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import cdc, fifo, stream, wiring
from amaranth.lib.wiring import In, Out, connect

from ._checks import check_domain, check_fifo_words, check_max_length
from ..unused import rejecting
from .layouts import (DEFAULT_MAX_LENGTH, FCS_BYTES, WORD_BYTES, Counters, GmiiSignature,
                      RgmiiSignature, RxEntry, RxReason, RxWord, TxWord)
from .rgmii import Rgmii
from .rgmii import check_arguments as check_rgmii_arguments
from .rx import MacRx
from .tx import MacTx
from .words import RxPacker, TxUnpacker

__all__ = ["EthPort", "INTERFACES"]

INTERFACES = ("rgmii", "gmii")
#: Words of each crossing between a 125 MHz domain and ``sync`` (distributed RAM).
CROSSING = 8


class EthPort(wiring.Component):
    """An Ethernet MAC port with streams and counters in the core domain (``sync``).

    Parameters
    ----------
    rx_domain : str
        Receive clock domain (the PHY's RXC), e.g. ``"rx0"``.
    tx_domain : str
        Transmit clock domain (125 MHz from the board PLL).
    interface : str
        ``"rgmii"`` (pins through :class:`~bpfcore.hdl.eth.rgmii.Rgmii`) or ``"gmii"`` (GMII
        ports, for benches of the MAC without the adapter).
    primitives : str
        RGMII DDR registers: ``"ecp5"`` or ``"model"`` (simulation).
    rx_delay, tx_delay : int
        ``DELAYG`` taps of the RGMII adapter (0: none).
    max_length : int
        Longest good frame with FCS (default 1518); longer ones are dropped and counted.
    fifo_words : int
        64-bit words of each block-RAM FIFO (a power of two of at least 16 whose bytes hold a
        frame of ``max_length``; 512: one 512 x 72 block RAM each).
    counter_width : int
        Width of each counter.

    Members
    -------
    rx : Out(stream.Signature(RxWord))
        Received frames in words, without FCS.
    tx : In(stream.Signature(TxWord))
        Frames to send in words, without FCS (padded here to 60 bytes). A ``count`` outside
        1..8 is taken as 8.
    counters : Out(Counters(counter_width))
        See :func:`~bpfcore.hdl.eth.layouts.Counters`.
    rgmii : Out(RgmiiSignature)
        With ``interface="rgmii"``.
    gmii_rx : In(GmiiSignature), gmii_tx : Out(GmiiSignature)
        With ``interface="gmii"`` (in ``rx_domain`` and ``tx_domain``).

    Raises
    ------
    ValueError
        On any argument out of its range (the message echoes the value).
    """

    def __init__(self, *, rx_domain="rx0", tx_domain="tx", interface="rgmii", primitives="ecp5",
                 rx_delay=0, tx_delay=0, max_length=DEFAULT_MAX_LENGTH, fifo_words=512,
                 counter_width=32):
        with rejecting(self):
            check_domain("rx_domain", rx_domain)
            check_domain("tx_domain", tx_domain)
            if len({rx_domain, tx_domain, "sync"}) != 3:
                raise ValueError(f"rx_domain ({rx_domain!r}), tx_domain ({tx_domain!r}) and "
                                 "'sync' must differ")
            if interface not in INTERFACES:
                raise ValueError(f"interface must be one of {', '.join(INTERFACES)}, "
                                 f"not {interface!r}")
            check_rgmii_arguments(primitives, rx_delay, tx_delay)
            check_max_length(max_length)
            check_fifo_words(fifo_words, max_length)
            if not isinstance(counter_width, int) or isinstance(counter_width, bool) or \
                    not 16 <= counter_width <= 64:
                raise ValueError(f"counter_width must be an integer from 16 to 64, "
                                 f"not {counter_width!r}")
        self._rx_domain = rx_domain
        self._tx_domain = tx_domain
        self._interface = interface
        self._max_length = max_length
        self._fifo_words = fifo_words
        self._rgmii_arguments = {"primitives": primitives, "rx_delay": rx_delay,
                                 "tx_delay": tx_delay}
        if interface == "rgmii":
            phy = {"rgmii": Out(RgmiiSignature)}
        else:
            phy = {"gmii_rx": In(GmiiSignature), "gmii_tx": Out(GmiiSignature)}
        super().__init__({"rx": Out(stream.Signature(RxWord)),
                          "tx": In(stream.Signature(TxWord)),
                          "counters": Out(Counters(counter_width)), **phy})

    def elaborate(self, platform):
        m = Module()
        m.submodules.mac_rx = mac_rx = MacRx(domain=self._rx_domain, max_length=self._max_length)
        m.submodules.mac_tx = mac_tx = MacTx(domain=self._tx_domain)
        if self._interface == "rgmii":
            m.submodules.rgmii = rgmii = Rgmii(rx_domain=self._rx_domain,
                                               tx_domain=self._tx_domain,
                                               **self._rgmii_arguments)
            wiring.connect(m, wiring.flipped(self.rgmii), rgmii.pins)
            connect(m, rgmii.rx, mac_rx.gmii)
            connect(m, mac_tx.gmii, rgmii.tx)
        else:
            connect(m, wiring.flipped(self.gmii_rx), mac_rx.gmii)
            connect(m, mac_tx.gmii, wiring.flipped(self.gmii_tx))

        m.submodules.rx_packer = rx_packer = RxPacker(domain=self._rx_domain)
        connect(m, mac_rx.fifo, rx_packer.bytes)
        m.submodules.rx_crossing = rx_crossing = fifo.AsyncFIFO(
            width=RxEntry.size, depth=CROSSING, w_domain=self._rx_domain, r_domain="sync")
        m.d.comb += [rx_crossing.w_data.eq(rx_packer.fifo.data),
                     rx_crossing.w_en.eq(rx_packer.fifo.en),
                     rx_packer.fifo.rdy.eq(rx_crossing.w_rdy)]
        m.submodules.rx_fifo = rx_fifo = fifo.SyncFIFOBuffered(
            width=RxEntry.size, depth=self._fifo_words + 1)
        connect(m, rx_crossing.r_stream, rx_fifo.w_stream)

        m.submodules.tx_fifo = tx_fifo = fifo.SyncFIFOBuffered(
            width=TxWord.size, depth=self._fifo_words + 1)
        m.submodules.tx_crossing = tx_crossing = fifo.AsyncFIFO(
            width=TxWord.size, depth=CROSSING, w_domain="sync", r_domain=self._tx_domain)
        m.submodules.tx_unpacker = tx_unpacker = TxUnpacker(domain=self._tx_domain)
        m.d.comb += [tx_unpacker.words.payload.eq(tx_crossing.r_data),
                     tx_unpacker.words.valid.eq(tx_crossing.r_rdy),
                     tx_crossing.r_en.eq(tx_unpacker.words.ready)]
        connect(m, tx_unpacker.bytes, mac_tx.fifo)

        m.submodules.dropped = dropped = cdc.PulseSynchronizer(self._rx_domain, "sync")
        m.submodules.sent = sent = cdc.PulseSynchronizer(self._tx_domain, "sync")
        m.d.comb += [dropped.i.eq(mac_rx.dropped), sent.i.eq(mac_tx.sent)]

        counters = self.counters
        self._receive(m, rx_fifo, dropped.o)
        self._transmit(m, tx_fifo, tx_crossing)
        with m.If(sent.o):
            m.d.sync += counters.frames_tx.eq(counters.frames_tx + 1)
        return m

    def _receive(self, m, rx_fifo, dropped):
        """The ``rx`` stream from the FIFO's entries, and the receive counters."""
        counters = self.counters
        # The head entry, registered (the block RAM's output is slow: 5.8 ns).
        entry = Signal(RxEntry)
        full = Signal()
        # Bytes of the current frame in words already taken.
        length = Signal(range(self._max_length + 2 * WORD_BYTES))
        empty = entry.last & (entry.count == 0)   # a frame with no byte written
        taken = Signal()
        rx = self.rx
        m.d.comb += [rx.valid.eq(full & ~empty),
                     rx.payload.data.eq(entry.data), rx.payload.count.eq(entry.count),
                     rx.payload.last.eq(entry.last),
                     rx.payload.good.eq(entry.reason == RxReason.GOOD),
                     taken.eq(full & (rx.ready | empty)),
                     rx_fifo.r_en.eq(~full | taken)]
        with m.If(rx_fifo.r_en):
            m.d.sync += [entry.eq(rx_fifo.r_data), full.eq(rx_fifo.r_rdy)]

        overflow = Signal(2)
        m.d.comb += overflow.eq(dropped)
        with m.If(taken):
            m.d.sync += length.eq(length + entry.count)
            with m.If(entry.last):
                m.d.sync += length.eq(0)
                with m.Switch(entry.reason):
                    with m.Case(RxReason.GOOD):
                        m.d.sync += [counters.frames_rx.eq(counters.frames_rx + 1),
                                     counters.bytes_rx.eq(counters.bytes_rx + length +
                                                          entry.count)]
                    with m.Case(RxReason.OVERFLOW):
                        m.d.comb += overflow.eq(dropped + 1)
                    with m.Case(RxReason.OVERSIZE):
                        m.d.sync += counters.oversize.eq(counters.oversize + 1)
                    with m.Case(RxReason.RUNT):
                        m.d.sync += counters.runt.eq(counters.runt + 1)
                    with m.Case(RxReason.RX_ERROR):
                        m.d.sync += counters.rx_error.eq(counters.rx_error + 1)
                    with m.Default():
                        m.d.sync += counters.fcs_error.eq(counters.fcs_error + 1)
        m.d.sync += counters.overflow.eq(counters.overflow + overflow)

    def _transmit(self, m, tx_fifo, tx_crossing):
        """``tx`` into the transmit FIFO (cutting frames at the maximum length), whole frames on
        into the crossing, and the transmit byte counters."""
        counters = self.counters
        tx = self.tx
        word = tx.payload
        longest = self._max_length - FCS_BYTES
        length = Signal(range(longest))     # bytes of the current frame written so far
        discard = Signal()                  # the rest of a cut frame
        count = Signal(range(WORD_BYTES + 1))
        total = Signal(range(longest + WORD_BYTES))
        cut = Signal()
        kept = Signal(range(WORD_BYTES + 1))
        end = Signal()
        m.d.comb += [
            count.eq(Mux((word.count == 0) | (word.count > WORD_BYTES), WORD_BYTES, word.count)),
            total.eq(length + count),
            # The frame goes past its longest: this word ends it, with the bytes that fit.
            cut.eq((total > longest) | ((total == longest) & ~word.last)),
            kept.eq(Mux(cut, longest - length, count)),
            end.eq(word.last | cut),
            tx.ready.eq(discard | tx_fifo.w_rdy),
            tx_fifo.w_data.eq(Cat(word.data, kept, end)),
            tx_fifo.w_en.eq(tx.valid & tx.ready & ~discard),
        ]
        with m.If(tx.valid & tx.ready):
            with m.If(discard):
                m.d.sync += discard.eq(~word.last)
            with m.Else():
                m.d.sync += [length.eq(Mux(end, 0, total)),
                             counters.bytes_tx.eq(counters.bytes_tx + kept)]
                with m.If(cut):
                    m.d.sync += [discard.eq(~word.last),
                                 counters.tx_truncated.eq(counters.tx_truncated + 1)]

        # Whole frames in the FIFO: words move on only while there is one (the word at the head
        # belongs to the oldest frame).
        frames = Signal(range(self._fifo_words + 2))
        stored = tx_fifo.w_en & end
        head = Signal(TxWord)
        moved = Signal()
        m.d.comb += [head.eq(tx_fifo.r_data),
                     tx_crossing.w_data.eq(tx_fifo.r_data),
                     tx_crossing.w_en.eq(tx_fifo.r_rdy & (frames != 0)),
                     tx_fifo.r_en.eq(tx_crossing.w_rdy & (frames != 0)),
                     moved.eq(tx_crossing.w_en & tx_crossing.w_rdy & head.last)]
        with m.If(stored & ~moved):
            m.d.sync += frames.eq(frames + 1)
        with m.Elif(moved & ~stored):
            m.d.sync += frames.eq(frames - 1)
