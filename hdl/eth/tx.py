"""GMII transmit (125 MHz, from the board PLL): IEEE 802.3 clause 3 framing and 35 (GMII).

A frame starts once its first byte is there: the port releases a frame towards this domain
only when it is whole, and at several times the line's pace, so its bytes stay ahead of the
line. Then: seven preamble bytes and the SFD, the frame's bytes,
zeros up to 60 bytes, the FCS (least significant byte first), and at least 12 idle byte times
before the next preamble. Should the bytes ever run dry inside a frame the byte goes out with
TX_ER, so that the frame is received as bad rather than short.
"""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ._checks import check_domain
from ..unused import rejecting
from .crc import fcs_processor
from .layouts import FCS_BYTES, IFG_BYTES, MIN_PAYLOAD, PREAMBLE, PREAMBLE_BYTES, SFD, GmiiSignature

__all__ = ["MacTx"]


class MacTx(wiring.Component):
    """GMII transmitter reading frames from a byte stream.

    Parameters
    ----------
    domain : str
        Clock domain of the GMII transmit side.

    Members
    -------
    fifo : In(stream.Signature(9))
        Frame bytes (bit 8: the frame's last byte), without padding or FCS; a frame's bytes
        must follow each other without a pause once its first one is valid. ``ready`` comes
        from a flip-flop.
    gmii : Out(GmiiSignature)
        TXD, TX_EN, TX_ER, registered.
    sent : Out(1)
        One-cycle pulse per frame sent.

    Raises
    ------
    ValueError
        On a bad domain name.
    """

    def __init__(self, *, domain="tx"):
        with rejecting(self):
            check_domain("domain", domain)
        self._domain = domain
        super().__init__({"fifo": In(stream.Signature(9)),
                          "gmii": Out(GmiiSignature), "sent": Out(1)})

    def elaborate(self, platform):
        m = Module()
        sync = m.d[self._domain]
        m.submodules.crc = crc = fcs_processor(self._domain)

        # Bytes of the frame sent so far, saturating at the padded length.
        count = Signal(range(MIN_PAYLOAD + 1))
        # Preamble, FCS and gap byte index.
        index = Signal(range(max(IFG_BYTES, PREAMBLE_BYTES + 1)))
        # In DATA: registered rather than decoded from the state, as it enables the FIFO's read
        # (whose pointer logic is the transmit domain's critical path).
        reading = Signal()
        gmii = self.gmii
        sync += [gmii.en.eq(0), gmii.er.eq(0), gmii.data.eq(0), self.sent.eq(0)]
        byte = self.fifo.payload[:8]
        last = self.fifo.payload[8]
        # Padding bytes are zeros: the CRC sees zeros outside the frame's bytes. ``reading`` is
        # high in DATA only; the read takes no state decode.
        m.d.comb += [crc.data.eq(Mux(reading, byte, 0)), self.fifo.ready.eq(reading)]

        with m.FSM(domain=self._domain):
            with m.State("IDLE"):
                m.d.comb += crc.start.eq(1)
                with m.If(self.fifo.valid):
                    sync += [index.eq(0), count.eq(0)]
                    m.next = "PREAMBLE"

            with m.State("PREAMBLE"):
                m.d.comb += crc.start.eq(1)
                sync += [gmii.en.eq(1), gmii.data.eq(Mux(index == PREAMBLE_BYTES, SFD, PREAMBLE)),
                         index.eq(index + 1)]
                with m.If(index == PREAMBLE_BYTES):
                    sync += reading.eq(1)
                    m.next = "DATA"

            with m.State("DATA"):
                sync += gmii.en.eq(1)
                with m.If(self.fifo.valid):
                    m.d.comb += crc.valid.eq(1)
                    sync += [gmii.data.eq(byte), count.eq(Mux(count == MIN_PAYLOAD, count,
                                                              count + 1))]
                    with m.If(last):
                        sync += [index.eq(0), reading.eq(0)]
                        with m.If(count >= MIN_PAYLOAD - 1):
                            m.next = "FCS"
                        with m.Else():
                            m.next = "PAD"
                with m.Else():
                    sync += gmii.er.eq(1)

            with m.State("PAD"):
                m.d.comb += crc.valid.eq(1)
                sync += [gmii.en.eq(1), count.eq(count + 1)]
                with m.If(count == MIN_PAYLOAD - 1):
                    m.next = "FCS"

            with m.State("FCS"):
                sync += [gmii.en.eq(1), gmii.data.eq(crc.crc.word_select(index[:2], 8)),
                         index.eq(index + 1)]
                with m.If(index == FCS_BYTES - 1):
                    sync += [index.eq(0), self.sent.eq(1)]
                    m.next = "GAP"

            with m.State("GAP"):
                # IDLE adds one more idle byte time before the next preamble.
                sync += index.eq(index + 1)
                with m.If(index == IFG_BYTES - 2):
                    m.next = "IDLE"

        return m
