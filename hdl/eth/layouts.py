"""Signatures, payloads and constants shared by the MAC's parts (IEEE 802.3 clause 3 and 35).

The frame as the MAC's users see it is destination address to the end of the payload: no
preamble, no SFD, no FCS. The FIFO from a receiver to the core domain carries 9-bit entries:
a frame's bytes (bit 8 clear), then one *status* entry (bit 8 set) whose low byte is the
:class:`RxStatus` of the frame (zero: good).
"""

import enum

from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["PREAMBLE", "SFD", "MIN_FRAME", "MIN_PAYLOAD", "FCS_BYTES", "DEFAULT_MAX_LENGTH",
           "IFG_BYTES", "PREAMBLE_BYTES", "GmiiSignature", "RgmiiSignature", "FifoWriteSignature",
           "RxStatus", "RxFrame", "TxFrame", "Counters", "COUNTER_NAMES", "fifo_entry"]

#: Preamble byte and start frame delimiter as they appear on GMII (LSB first on the wire).
PREAMBLE = 0x55
SFD = 0xD5
#: Preamble bytes before the SFD on transmit.
PREAMBLE_BYTES = 7
#: Shortest frame on the wire, FCS included; shortest frame before the FCS (padding target).
MIN_FRAME = 64
FCS_BYTES = 4
MIN_PAYLOAD = MIN_FRAME - FCS_BYTES
#: Longest untagged frame with its FCS.
DEFAULT_MAX_LENGTH = 1518
#: Inter-frame gap in byte times (96 bit times).
IFG_BYTES = 12

#: GMII, one direction: ``data`` with ``en`` (TX_EN / RX_DV) and ``er`` (TX_ER / RX_ER). The
#: PHY adapter is the source on receive, the MAC on transmit.
GmiiSignature = wiring.Signature({"data": Out(8), "en": Out(1), "er": Out(1)})

#: RGMII pins of one PHY as the FPGA sees them (named as amaranth-boards' ``eth_rgmii``
#: subsignals). The receive clock is no member: it clocks the port's RX domain.
RgmiiSignature = wiring.Signature({
    "rx_data": In(4), "rx_ctl": In(1),
    "tx_clk": Out(1), "tx_data": Out(4), "tx_ctl": Out(1),
})

#: A FIFO's write port driven by a receiver. Not a stream on purpose: the line cannot wait, so a
#: byte offered with ``en`` while ``rdy`` is low is lost and its frame marked as overflowed (a
#: stream source would have to hold ``valid`` until accepted); only a status entry is held
#: until taken.
FifoWriteSignature = wiring.Signature({"data": Out(9), "en": Out(1), "rdy": In(1)})


def fifo_entry(byte, status=False):
    """The 9-bit FIFO entry of a frame byte, or (``status=True``) of a status byte."""
    return (int(status) << 8) | byte


class RxStatus(enum.IntFlag):
    """Why a received frame is bad (the low byte of its status entry; 0 is a good frame)."""
    FCS = 1 << 0          #: the FCS does not match
    RUNT = 1 << 1         #: shorter than 64 bytes with FCS
    OVERSIZE = 1 << 2     #: longer than the port's ``max_length`` with FCS
    RX_ERROR = 1 << 3     #: RX_ER during the frame
    OVERFLOW = 1 << 4     #: the FIFO to the core domain was full: bytes are missing


#: A received frame byte. ``good`` is meaningful with ``last`` only: a frame that ends with
#: ``good`` low is bad (the consumer discards what it has buffered of it; it has already been
#: counted by the port).
RxFrame = data.StructLayout({"data": 8, "first": 1, "last": 1, "good": 1})

#: A frame byte to transmit. Frames are delimited by ``last``; ``first`` is informational (it
#: lets an :data:`RxFrame` stream be looped back field by field) and not checked.
TxFrame = data.StructLayout({"data": 8, "first": 1, "last": 1})

#: The port's counters, in the order of :data:`Counters`. Every frame that reaches the receive
#: FIFO lands in exactly one of frames_rx, fcs_error, runt, oversize, rx_error, overflow (the
#: first bad reason in the order overflow, oversize, runt, rx_error, fcs_error).
COUNTER_NAMES = ("frames_rx", "bytes_rx", "fcs_error", "runt", "oversize", "rx_error",
                 "overflow", "frames_tx", "bytes_tx", "tx_truncated")


def Counters(width=32):
    """The counters' layout: one ``width``-bit field per name in :data:`COUNTER_NAMES`.

    * ``frames_rx``/``bytes_rx``: good frames delivered, and their bytes (without FCS);
    * ``fcs_error``, ``runt``, ``oversize``, ``rx_error``, ``overflow``: bad frames by reason
      (``overflow`` also counts frames not written at all because the FIFO was full);
    * ``frames_tx``: frames sent on the line; ``bytes_tx``: bytes taken from the transmit
      stream; ``tx_truncated``: transmit frames cut at the port's maximum length.
    """
    return data.StructLayout({name: width for name in COUNTER_NAMES})
