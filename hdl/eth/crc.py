"""The frame check sequence of IEEE 802.3 (clause 3.2.9): CRC-32, 8 bits per cycle.

``amaranth.lib.crc`` computes it: the Ethernet CRC is the catalogue's ``CRC32_ETHERNET``
(polynomial 0x04C11DB7, initial value and final XOR 0xFFFFFFFF, bits reflected). Fed with the
bytes of a frame in order, the processor's ``crc`` is the FCS, sent least significant byte
first; fed with a frame and its FCS, ``match_detected`` is high (the register holds the residue).
"""

import zlib

from amaranth.hdl import DomainRenamer
from amaranth.lib.crc import catalog

__all__ = ["PARAMETERS", "fcs_processor", "fcs", "with_fcs"]

PARAMETERS = catalog.CRC32_ETHERNET(data_width=8)


def fcs_processor(domain="sync"):
    """A ``amaranth.lib.crc.Processor`` of the Ethernet FCS, clocked by ``domain``."""
    processor = PARAMETERS.create()
    return processor if domain == "sync" else DomainRenamer(domain)(processor)


def fcs(frame):
    """The FCS of ``frame`` (bytes without FCS) as an integer (the reference: ``zlib.crc32``)."""
    return zlib.crc32(bytes(frame))


def with_fcs(frame):
    """``frame`` followed by its FCS, as sent on the line."""
    return bytes(frame) + fcs(frame).to_bytes(4, "little")
