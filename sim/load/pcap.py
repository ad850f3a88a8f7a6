"""Captures: classic pcap and pcapng files of Ethernet frames, read strictly and written
reproducibly.

Every command that takes a capture reads it with :func:`read_pcap` (either format); bad input is
one :class:`~bpfcore.errors.BpfcoreError` naming the file and, for a bad record, the packet index
and byte offset. :func:`write_pcapng` records each packet's action and port (one interface per
port, the action in the packet comment).
"""

import io
import struct
from dataclasses import dataclass

import dpkt

from bpfcore.errors import BpfcoreError, read_input

__all__ = ["PcapRecord", "read_pcap", "read_pcap_records", "write_pcap", "write_pcapng",
           "LINKTYPE_ETHERNET", "READER_MAX_FRAME", "CAPTURE_EPOCH"]

LINKTYPE_ETHERNET = 1

#: Longest frame the reader accepts (the largest pcap snapshot length).
READER_MAX_FRAME = 65535

#: Capture start time written into the file (2024-01-01T00:00:00Z), so files are reproducible.
CAPTURE_EPOCH = 1_704_067_200


def write_pcap(path, packets):
    """Write frames to a classic pcap file (Ethernet, microseconds): objects with ``frame`` and
    ``ts_us`` (:class:`bpfcore.sim.gen.traffic.Packet`), or plain bytes (packet ``i`` at ``i``
    microseconds)."""
    try:
        with open(path, "wb") as f:
            writer = dpkt.pcap.Writer(f, snaplen=READER_MAX_FRAME, linktype=LINKTYPE_ETHERNET)
            for i, packet in enumerate(packets):
                frame, ts_us = (packet.frame, packet.ts_us) if hasattr(packet, "frame") \
                    else (bytes(packet), i)
                sec, usec = divmod(ts_us, 1_000_000)
                writer.writepkt_time(frame, CAPTURE_EPOCH + sec + usec / 1e6)
    except OSError as error:
        raise BpfcoreError(f"cannot write {path}: {error.strerror}") from None


@dataclass(frozen=True)
class PcapRecord:
    """One captured frame: ``ts_ns`` (nanoseconds since the epoch), ``frame`` (bytes)."""
    ts_ns: int
    frame: bytes


_MAGICS = {
    b"\xd4\xc3\xb2\xa1": ("<", 1000), b"\xa1\xb2\xc3\xd4": (">", 1000),
    b"\x4d\x3c\xb2\xa1": ("<", 1), b"\xa1\xb2\x3c\x4d": (">", 1),
}
_PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"


def read_pcap_records(path):
    """Every record of a pcap or pcapng file of Ethernet frames, as :class:`PcapRecord`.

    Classic pcap (either byte order, micro- or nanosecond timestamps) is read here, naming a
    bad record by index and offset; pcapng is read by dpkt.

    Raises
    ------
    BpfcoreError
        One line naming the file and, for a bad record, the 0-based packet index and its byte
        offset: missing file, not a pcap (or a pcapng) file, a link type other than Ethernet,
        a truncated record, a captured length beyond the snapshot length or 65535.
    """
    path = str(path)
    data = read_input(path, what="pcap file")
    if len(data) < 24:
        if data[:4] in _MAGICS or not data:
            raise BpfcoreError(f"{path}: truncated pcap file header ({len(data)} of 24 bytes)")
        raise BpfcoreError(f"{path}: not a pcap or pcapng file (too short: {len(data)} bytes)")
    magic = data[:4]
    if magic == _PCAPNG_MAGIC:
        return _read_pcapng(path, data)
    if magic not in _MAGICS:
        raise BpfcoreError(f"{path}: not a pcap or pcapng file (magic {magic.hex()})")
    order, ns_per_tick = _MAGICS[magic]
    major, minor, _zone, _sigfigs, snaplen, linktype = struct.unpack_from(order + "HHiIII", data, 4)
    if major != 2:
        raise BpfcoreError(f"{path}: unsupported pcap version {major}.{minor}")
    if linktype & 0xffff != LINKTYPE_ETHERNET:
        raise BpfcoreError(f"{path}: link type {linktype} is not Ethernet (1)")
    limit = snaplen if 0 < snaplen <= READER_MAX_FRAME else READER_MAX_FRAME
    records = []
    offset = 24
    while offset < len(data):
        index = len(records)
        where = f"{path}: packet {index} (byte offset {offset})"
        if len(data) - offset < 16:
            raise BpfcoreError(f"{where}: truncated record header "
                               f"({len(data) - offset} of 16 bytes)")
        sec, frac, caplen, origlen = struct.unpack_from(order + "IIII", data, offset)
        if caplen > limit:
            raise BpfcoreError(f"{where}: captured length {caplen} exceeds the snapshot "
                               f"length {limit}")
        if frac * ns_per_tick >= 1_000_000_000:
            raise BpfcoreError(f"{where}: bad timestamp fraction {frac}")
        if caplen > origlen:
            raise BpfcoreError(f"{where}: captured length {caplen} is larger than the "
                               f"original length {origlen}")
        body = data[offset + 16:offset + 16 + caplen]
        if len(body) < caplen:
            raise BpfcoreError(f"{where}: truncated packet data ({len(body)} of {caplen} bytes)")
        records.append(PcapRecord(sec * 1_000_000_000 + frac * ns_per_tick, body))
        offset += 16 + caplen
    return records


def read_pcap(path, with_times=False):
    """The frames of a pcap or pcapng file, as a list of bytes (see :func:`read_pcap_records`);
    with ``with_times``, ``(frames, timestamps in ns)``."""
    records = read_pcap_records(path)
    frames = [record.frame for record in records]
    return (frames, [record.ts_ns for record in records]) if with_times else frames


def _read_pcapng(path, data):
    f = io.BytesIO(data)
    try:
        reader = dpkt.pcapng.Reader(f)
        linktype = reader.datalink()
        if linktype != LINKTYPE_ETHERNET:
            raise BpfcoreError(f"{path}: link type {linktype}, only Ethernet (1) is supported")
        records = [PcapRecord(int(round(ts * 1e9)), bytes(buf)) for ts, buf in reader]
        rest = f.read()
    except BpfcoreError:
        raise
    except (ValueError, struct.error, dpkt.UnpackError, EOFError) as error:
        raise BpfcoreError(f"{path}: not a valid pcapng file: "
                           f"{str(error) or 'truncated block'}") from None
    if rest:
        raise BpfcoreError(f"{path}: truncated pcapng block after packet {len(records)}")
    return records


def _block(block_type, body):
    body += b"\0" * (-len(body) % 4)
    length = len(body) + 12
    return struct.pack("<II", block_type, length) + body + struct.pack("<I", length)


def _option(code, value):
    return struct.pack("<HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


def write_pcapng(path, packets):
    """Write (bytes, action, port) tuples as pcapng: one interface per port, action as comment."""
    ports = []
    for _, _, port in packets:
        if port not in ports:
            ports.append(port)
    out = [_block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1) +
                  _option(4, b"bpfcore run") + _option(0, b""))]
    for port in ports:
        name = "unknown" if port is None else str(port) if port == "host" else f"port{port}"
        out.append(_block(1, struct.pack("<HHI", LINKTYPE_ETHERNET, 0, 0) +
                          _option(2, name.encode()) + _option(0, b"")))
    for i, (data, action, port) in enumerate(packets):
        ts = i * 1_000_000
        comment = f"action={action} port={'?' if port is None else port}".encode()
        out.append(_block(6, struct.pack("<IIIII", ports.index(port), ts >> 32,
                                         ts & 0xffff_ffff, len(data), len(data)) +
                          data + b"\0" * (-len(data) % 4) + _option(1, comment) + _option(0, b"")))
    try:
        with open(path, "wb") as f:
            f.write(b"".join(out))
    except OSError as error:
        raise BpfcoreError(f"cannot write {path}: {error.strerror}") from None



