"""One Ethernet port: PHY adapter, receiver, transmitter, the FIFOs to the core domain, counters.

Receive: :class:`~bpfcore.hdl.eth.rx.MacRx` (RX domain) writes frame bytes and a status entry
per frame into a block-RAM ``AsyncFIFOBuffered``; in ``sync`` a one-entry look-ahead turns them
into the ``rx`` stream: a byte leaves once the entry after it is known, so the frame's last byte
carries ``last`` and the frame's ``good`` flag. A consumer buffers a frame as it comes and keeps
it only if it ends with ``good``; the port has counted it either way. A status entry with no
bytes before it (a frame of four bytes or fewer) is counted and never shows on ``rx``.

Transmit: ``tx`` bytes go into a block-RAM ``AsyncFIFOBuffered`` to the TX domain, and a token
per whole frame into a small ``AsyncFIFO``; :class:`~bpfcore.hdl.eth.tx.MacTx` starts a frame
only once its token is there. A frame longer than ``max_length`` - 4 bytes is cut there (sent
with that length; the rest of it is taken and dropped) and counted in ``tx_truncated``.

Every counter lives in ``sync``: the receive counters count status entries as they leave the
FIFO, ``frames_tx`` and the whole-frame overflow drops cross from the 125 MHz domains as pulses
(``lib.cdc.PulseSynchronizer``; frames are at least 84 byte times apart, far more than its
limit).
"""

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import cdc, fifo, stream, wiring
from amaranth.lib.wiring import In, Out, connect

from ._checks import check_domain, check_fifo_depth, check_max_length, checking
from .layouts import (DEFAULT_MAX_LENGTH, FCS_BYTES, Counters, GmiiSignature, RgmiiSignature,
                      RxFrame, RxStatus, TxFrame)
from .rgmii import Rgmii
from .rgmii import check_arguments as check_rgmii_arguments
from .rx import MacRx
from .tx import MacTx

__all__ = ["EthPort", "INTERFACES"]

INTERFACES = ("rgmii", "gmii")
#: Whole frames the transmit FIFO may hold (tokens).
TX_FRAMES = 16


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
        ports, for benches of the byte MAC).
    primitives : str
        RGMII DDR registers: ``"ecp5"`` or ``"model"`` (simulation).
    rx_delay, tx_delay : int
        ``DELAYG`` taps of the RGMII adapter (0: none).
    max_length : int
        Longest good frame with FCS (default 1518); longer ones are dropped and counted.
    fifo_depth : int
        Bytes of each block-RAM FIFO (a power of two, at least ``max_length``).
    counter_width : int
        Width of each counter.

    Members
    -------
    rx : Out(stream.Signature(RxFrame))
        Received frames, bytes in order, without FCS.
    tx : In(stream.Signature(TxFrame))
        Frames to send, without FCS (padded here to 60 bytes).
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
                 rx_delay=0, tx_delay=0, max_length=DEFAULT_MAX_LENGTH, fifo_depth=2048,
                 counter_width=32):
        with checking(self):
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
            check_fifo_depth(fifo_depth, max_length)
            if not isinstance(counter_width, int) or isinstance(counter_width, bool) or \
                    not 16 <= counter_width <= 64:
                raise ValueError(f"counter_width must be an integer from 16 to 64, "
                                 f"not {counter_width!r}")
        self._rx_domain = rx_domain
        self._tx_domain = tx_domain
        self._interface = interface
        self._max_length = max_length
        self._fifo_depth = fifo_depth
        self._rgmii_arguments = {"primitives": primitives, "rx_delay": rx_delay,
                                 "tx_delay": tx_delay}
        if interface == "rgmii":
            phy = {"rgmii": Out(RgmiiSignature)}
        else:
            phy = {"gmii_rx": In(GmiiSignature), "gmii_tx": Out(GmiiSignature)}
        super().__init__({"rx": Out(stream.Signature(RxFrame)),
                          "tx": In(stream.Signature(TxFrame)),
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

        m.submodules.rx_fifo = rx_fifo = fifo.AsyncFIFOBuffered(
            width=9, depth=self._fifo_depth + 1, w_domain=self._rx_domain, r_domain="sync")
        m.d.comb += [rx_fifo.w_data.eq(mac_rx.fifo.data), rx_fifo.w_en.eq(mac_rx.fifo.en),
                     mac_rx.fifo.rdy.eq(rx_fifo.w_rdy)]
        m.submodules.tx_fifo = tx_fifo = fifo.AsyncFIFOBuffered(
            width=9, depth=self._fifo_depth + 1, w_domain="sync", r_domain=self._tx_domain)
        m.submodules.tx_frames = tx_frames = fifo.AsyncFIFO(
            width=1, depth=TX_FRAMES, w_domain="sync", r_domain=self._tx_domain)
        connect(m, tx_fifo.r_stream, mac_tx.fifo)
        connect(m, tx_frames.r_stream, mac_tx.frames)

        m.submodules.dropped = dropped = cdc.PulseSynchronizer(self._rx_domain, "sync")
        m.submodules.sent = sent = cdc.PulseSynchronizer(self._tx_domain, "sync")
        m.d.comb += [dropped.i.eq(mac_rx.dropped), sent.i.eq(mac_tx.sent)]

        counters = self.counters
        self._receive(m, rx_fifo, dropped.o)
        self._transmit(m, tx_fifo, tx_frames)
        with m.If(sent.o):
            m.d.sync += counters.frames_tx.eq(counters.frames_tx + 1)
        return m

    def _receive(self, m, rx_fifo, dropped):
        """The ``rx`` stream from the FIFO's entries, and the receive counters."""
        counters = self.counters
        entry = rx_fifo.r_data
        is_status = entry[8]
        status = entry[:8]
        held = Signal(8)           # the byte waiting for the entry after it
        held_valid = Signal()
        held_first = Signal()
        in_frame = Signal()        # a byte of the current frame has been taken
        length = Signal(range(self._max_length + 1))

        rx = self.rx
        m.d.comb += [rx.valid.eq(held_valid & rx_fifo.r_rdy),
                     rx.payload.data.eq(held), rx.payload.first.eq(held_first),
                     rx.payload.last.eq(is_status), rx.payload.good.eq(status == 0),
                     rx_fifo.r_en.eq(rx_fifo.r_rdy & (~held_valid | rx.ready))]

        overflow = Signal(2)
        m.d.comb += overflow.eq(dropped)
        with m.If(rx_fifo.r_en):
            with m.If(is_status):
                m.d.sync += [held_valid.eq(0), in_frame.eq(0), length.eq(0)]
                with m.If(status == 0):
                    m.d.sync += [counters.frames_rx.eq(counters.frames_rx + 1),
                                 counters.bytes_rx.eq(counters.bytes_rx + length)]
                # One reason per bad frame, the first in this order.
                with m.Elif(status & RxStatus.OVERFLOW):
                    m.d.comb += overflow.eq(dropped + 1)
                with m.Elif(status & RxStatus.OVERSIZE):
                    m.d.sync += counters.oversize.eq(counters.oversize + 1)
                with m.Elif(status & RxStatus.RUNT):
                    m.d.sync += counters.runt.eq(counters.runt + 1)
                with m.Elif(status & RxStatus.RX_ERROR):
                    m.d.sync += counters.rx_error.eq(counters.rx_error + 1)
                with m.Else():
                    m.d.sync += counters.fcs_error.eq(counters.fcs_error + 1)
            with m.Else():
                m.d.sync += [held.eq(entry[:8]), held_valid.eq(1), held_first.eq(~in_frame),
                             in_frame.eq(1), length.eq(length + 1)]
        m.d.sync += counters.overflow.eq(counters.overflow + overflow)

    def _transmit(self, m, tx_fifo, tx_frames):
        """``tx`` into the transmit FIFO (cutting frames at the maximum length), one token per
        frame, and the transmit byte counters."""
        counters = self.counters
        tx = self.tx
        longest = self._max_length - FCS_BYTES
        length = Signal(range(longest))
        discard = Signal()         # the rest of a cut frame
        cut = Signal()
        end = Signal()
        m.d.comb += [
            cut.eq(~tx.payload.last & (length == longest - 1)),
            end.eq(tx.payload.last | cut),
            tx.ready.eq(discard | (tx_fifo.w_rdy & tx_frames.w_rdy)),
            tx_fifo.w_data.eq(Cat(tx.payload.data, end)),
            tx_fifo.w_en.eq(tx.valid & tx.ready & ~discard),
            tx_frames.w_data.eq(0),
            tx_frames.w_en.eq(tx_fifo.w_en & end),
        ]
        with m.If(tx.valid & tx.ready):
            with m.If(discard):
                m.d.sync += discard.eq(~tx.payload.last)
            with m.Else():
                m.d.sync += [length.eq(length + 1),
                             counters.bytes_tx.eq(counters.bytes_tx + 1)]
                with m.If(end):
                    m.d.sync += length.eq(0)
                with m.If(cut):
                    m.d.sync += [discard.eq(1),
                                 counters.tx_truncated.eq(counters.tx_truncated + 1)]
