"""GMII receive (125 MHz, the PHY's receive clock): IEEE 802.3 clause 3 framing and 35 (GMII).

Per frame: wait for the SFD (after any number of preamble bytes), pass the bytes through a
4-byte delay line so that the FCS never leaves, run the CRC over everything after the SFD, and
when RX_DV falls write one status entry: :class:`~bpfcore.hdl.eth.layouts.RxStatus` flags for a
bad FCS (the CRC register is not the residue), a runt (< 64 bytes), an oversize frame
(> ``max_length``), RX_ER and a full FIFO. Bytes past ``max_length`` are not written. Nothing
here counts: the core domain counts from the status entries.

If the FIFO is full when a byte is due, the frame is marked ``OVERFLOW`` and its later bytes are
not written; its status entry waits (state ``STATUS``) until there is room. A frame whose SFD
passes while it waits is lost whole, and ``dropped`` pulses once for it.
"""

from amaranth.hdl import Cat, Const, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ._checks import check_domain, check_max_length
from ..unused import rejecting
from .crc import fcs_processor
from .layouts import (DEFAULT_MAX_LENGTH, FCS_BYTES, MIN_FRAME, PREAMBLE, SFD, FifoWriteSignature,
                      GmiiSignature)

__all__ = ["MacRx"]


class MacRx(wiring.Component):
    """GMII receiver writing frames and their status into a FIFO.

    Parameters
    ----------
    domain : str
        Clock domain of the GMII receive side (the PHY's receive clock).
    max_length : int
        Longest good frame in bytes, FCS included (64..16383).

    Members
    -------
    gmii : In(GmiiSignature)
        RXD, RX_DV, RX_ER (registered here before use).
    fifo : Out(FifoWriteSignature)
        Frame bytes (bit 8 clear), then the status entry (bit 8 set).
    dropped : Out(1)
        One-cycle pulse per frame lost whole to a full FIFO.

    Raises
    ------
    ValueError
        On a bad domain name or ``max_length``.
    """

    def __init__(self, *, domain="rx0", max_length=DEFAULT_MAX_LENGTH):
        with rejecting(self):
            check_domain("domain", domain)
            check_max_length(max_length)
        self._domain = domain
        self._max_length = max_length
        super().__init__({"gmii": In(GmiiSignature), "fifo": Out(FifoWriteSignature),
                          "dropped": Out(1)})

    def elaborate(self, platform):
        m = Module()
        sync = m.d[self._domain]
        max_length = self._max_length
        m.submodules.crc = crc = fcs_processor(self._domain)

        data = Signal(8)
        dv = Signal()
        er = Signal()
        sync += [data.eq(self.gmii.data), dv.eq(self.gmii.en), er.eq(self.gmii.er)]

        # Bytes received after the SFD; it stops once the frame is longer than max_length.
        count = Signal(range(max_length + 2))
        too_long = Signal()
        # The last four bytes, oldest in the low byte: the FCS once RX_DV falls.
        delay = Signal(8 * FCS_BYTES)
        # The byte arriving now is to be written (through ``request`` below), decided a byte
        # ahead so that no compare of ``count`` sits in the write path.
        window = Signal()
        rx_error = Signal()
        overflow = Signal()
        # The SFD of the current frame went by (while a status entry waits).
        sfd_seen = Signal()
        sfd_now = dv & (data == SFD)
        sync += self.dropped.eq(0)

        # One write request, registered: the FIFO's write enable comes straight from a
        # flip-flop, so that only the FIFO's own full check stands in front of its write pointer
        # (the receive domain's critical path). A byte request lives one cycle: if the FIFO is
        # full then, the byte is lost and the frame marked; the status entry waits for room.
        request = Signal()
        entry = Signal(9)
        lost = request & ~self.fifo.rdy
        m.d.comb += [crc.data.eq(data), self.fifo.en.eq(request), self.fifo.data.eq(entry)]
        sync += request.eq(0)

        with m.FSM(domain=self._domain):
            with m.State("IDLE"):
                # The CRC register rests at its initial value (``start`` decoded from the state
                # alone: the SFD compare stays out of the CRC's XOR network).
                m.d.comb += crc.start.eq(1)
                with m.If(sfd_now):
                    sync += [count.eq(0), too_long.eq(0), window.eq(0), rx_error.eq(0),
                             overflow.eq(0)]
                    m.next = "FRAME"
                with m.Elif(dv & (data != PREAMBLE)):
                    m.next = "SKIP"          # no SFD after the preamble: not a frame

            with m.State("FRAME"):
                with m.If(dv):
                    m.d.comb += crc.valid.eq(1)
                    sync += [delay.eq(Cat(delay[8:], data)), rx_error.eq(rx_error | er),
                             window.eq((count >= FCS_BYTES - 1) & (count < max_length - 1))]
                    with m.If(count == max_length):
                        sync += too_long.eq(1)
                    with m.If(~too_long):
                        sync += count.eq(count + 1)
                    sync += [request.eq(window & ~overflow & ~lost), entry.eq(Cat(delay[:8], 0)),
                             overflow.eq(overflow | lost)]
                with m.Else():
                    # The CRC register holds the whole frame's CRC now: the residue if good.
                    # RxStatus bits, in their order: FCS, RUNT, OVERSIZE, RX_ERROR, OVERFLOW.
                    sync += [request.eq(1),
                             entry.eq(Cat(~crc.match_detected, count < MIN_FRAME, too_long,
                                          rx_error, overflow | lost, Const(0, 3), 1))]
                    m.next = "STATUS"

            with m.State("STATUS"):
                sync += sfd_seen.eq(dv & (sfd_seen | sfd_now))
                with m.If(sfd_now & ~sfd_seen):
                    sync += self.dropped.eq(1)
                with m.If(self.fifo.rdy):
                    # A frame that started while waiting is lost: skip the rest of it.
                    with m.If(dv):
                        m.next = "LOST"
                    with m.Else():
                        m.next = "IDLE"
                with m.Else():
                    sync += request.eq(1)

            with m.State("LOST"):
                sync += sfd_seen.eq(dv & (sfd_seen | sfd_now))
                with m.If(sfd_now & ~sfd_seen):
                    sync += self.dropped.eq(1)
                with m.If(~dv):
                    m.next = "IDLE"

            with m.State("SKIP"):
                with m.If(~dv):
                    m.next = "IDLE"

        return m
