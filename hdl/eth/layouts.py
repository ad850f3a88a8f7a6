"""Signatures, payloads and constants shared by the MAC's parts (IEEE 802.3 clause 3 and 35).

The frame as the MAC's users see it is destination address to the end of the payload: no
preamble, no SFD, no FCS. It crosses to and from the core domain in 64-bit words (:data:`RxWord`,
:data:`TxWord`): byte ``i`` of the frame in bits ``8i..8i+7`` of its word, bytes packed from the
start of the frame, only a frame's last word partial.

Inside the receive path, :class:`~bpfcore.hdl.eth.rx.MacRx` writes 9-bit entries: a frame's
bytes (bit 8 clear), then one *status* entry (bit 8 set) whose low byte is the :class:`RxStatus`
of the frame (zero: good); :class:`~bpfcore.hdl.eth.words.RxPacker` turns them into
:data:`RxEntry` words for the block-RAM FIFO, the frame's status (as an :class:`RxReason`) on its
last word.
"""

import enum

from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["PREAMBLE", "SFD", "MIN_FRAME", "MIN_PAYLOAD", "FCS_BYTES", "DEFAULT_MAX_LENGTH",
           "IFG_BYTES", "PREAMBLE_BYTES", "GmiiSignature", "RgmiiSignature", "FifoWriteSignature",
           "RxEntrySignature", "RxStatus", "RxReason", "RxWord", "TxWord", "RxEntry", "Counters",
           "COUNTER_NAMES", "WORD_BYTES", "fifo_entry"]

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
#: Bytes in a word of the core-side streams.
WORD_BYTES = 8

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


class RxReason(enum.IntEnum):
    """The one reason a received frame is bad, as its last FIFO word carries it (the first
    :class:`RxStatus` flag in this order; ``GOOD``: none)."""
    GOOD = 0
    OVERFLOW = 1
    OVERSIZE = 2
    RUNT = 3
    RX_ERROR = 4
    FCS = 5


#: A word of a received frame. ``count`` (1..8) bytes are valid, byte ``i`` at bits
#: ``8i..8i+7`` of ``data``; only the ``last`` word of a frame may have fewer than 8. ``good``
#: is meaningful with ``last`` only: a frame that ends with ``good`` low is bad (the consumer
#: discards what it has buffered of it; the port has counted it already).
RxWord = data.StructLayout({"data": 64, "count": 4, "last": 1, "good": 1})

#: A word of a frame to transmit: ``count`` (1..8) bytes of ``data`` from byte 0 up; frames are
#: delimited by ``last``, and only a frame's last word may have fewer than 8 bytes.
TxWord = data.StructLayout({"data": 64, "count": 4, "last": 1})

#: An entry of the receive FIFO (72 bits: one 512 x 72 block RAM at 512 words). As :data:`RxWord`
#: with the frame's :class:`RxReason` on its last word; a last word with ``count`` 0 ends a frame
#: of which no byte was written (counted, never shown on the ``rx`` stream).
RxEntry = data.StructLayout({"data": 64, "count": 4, "last": 1, "reason": 3})

#: A receive FIFO's write port driven by :class:`~bpfcore.hdl.eth.words.RxPacker`: ``en`` comes
#: from a flip-flop; a word other than a frame's last is lost if ``rdy`` is low (and its frame
#: marked), a last word is held until taken.
RxEntrySignature = wiring.Signature({"data": Out(RxEntry), "en": Out(1), "rdy": In(1)})

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
