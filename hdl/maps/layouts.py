"""Port signatures, payload layouts, operation codes and errno values of the map memory
(:class:`.engine.MapMemory`) and of the rooms it is built from.

Two request/response stream pairs share one format (:func:`MapPortSignature`): ``req``/``resp``
(the CPU's helper unit) and ``host_req``/``host_resp`` (the control plane,
:mod:`bpfcore.sim.rtl.mapdrv`). Key and value bytes travel LSB-first: key byte ``j`` is bits
``8j..8j+7`` of ``key``; bytes past the map's key size are ignored. The CPU's memory stage
reaches the values through :func:`CpuValueSignature`.
"""

from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.wiring import In, Out

from bpfcore.abi import Errno

__all__ = ["Op", "Status", "Field", "request_layout", "response_layout", "FIELD_WIDTHS",
           "RECIP_SHIFT", "VALUE_SIZE_BITS", "OFFSET_BITS", "cpu_port_bits",
           "MapPortSignature", "CpuValueSignature", "ring_bytes",
           "descriptor_layout", "stamp_layout", "bucket_layout",
           "ERRNOS",
           "E_NONE", "E_INVAL", "E_NOENT", "E_2BIG", "E_EXIST", "E_NOSPC", "errno_word"]

#: The engine keeps the errno of an answer (:class:`bpfcore.abi.Errno`) as a 3-bit code, expanded
#: at the response: ``ERRNOS[code]``.
ERRNOS = [0, Errno.EINVAL, Errno.ENOENT, Errno.E2BIG, Errno.EEXIST, Errno.ENOSPC]
E_NONE, E_INVAL, E_NOENT, E_2BIG, E_EXIST, E_NOSPC = range(6)


def errno_word(errno):
    """The response's ``errno`` field for ``errno``: ``-errno`` as a 32-bit two's complement."""
    return (-errno) & 0xFFFF_FFFF

#: Value sizes are below ``1 << VALUE_SIZE_BITS`` bytes.
VALUE_SIZE_BITS = 12
#: Byte offsets inside one map window (``abi.MAP_WINDOW`` = 1 MiB) plus the 7 bytes an access
#: may reach past its first byte.
OFFSET_BITS = 21
#: ``slot = (offset * recip) >> RECIP_SHIFT`` is exact for every offset below ``1 << OFFSET_BITS``
#: when ``recip = ceil(2**RECIP_SHIFT / value_size)`` (the host computes ``recip``).
RECIP_SHIFT = OFFSET_BITS + VALUE_SIZE_BITS


def cpu_port_bits(vaddr_bits):
    """``(limit_bits, c_bits, c_shift)`` of a map memory whose value memory has
    ``2 ** vaddr_bits`` bytes: limits and slot offsets fit ``limit_bits``; the CPU port checks
    offsets below ``2 ** c_bits`` (any higher one is past every limit), with
    ``slot = (offset * recip') >> c_shift``, where ``recip'`` is the host's reciprocal
    rounded up to ``c_shift + 1`` bits: ``ceil(recip / 2 ** (RECIP_SHIFT - c_shift))``.
    """
    limit_bits = min(OFFSET_BITS - 1, vaddr_bits) + 1
    c_bits = limit_bits - 1
    return limit_bits, c_bits, c_bits + 1 + VALUE_SIZE_BITS


class Op(enum.Enum, shape=4):
    """Operations on the request streams.

    ``LOOKUP``/``UPDATE``/``DELETE`` are the helpers' (``flags`` is ``r4`` of update);
    ``PEEK`` is a lookup without the LRU stamp (host reads). ``NEXT`` finds the first present slot
    ``>= addr`` and returns it with its key (iteration). ``VALUE_READ`` returns the 8-byte
    word of the map's value area that holds byte ``addr`` (the bytes from ``addr & ~7`` on: the
    reader picks its bytes, so the value memory needs no read alignment); ``VALUE_WRITE``
    writes the 8 bytes at byte ``addr`` (``data``; ``flags`` bits 0-7 are the write byte mask).
    ``CONFIG`` writes descriptor field ``addr`` (:class:`Field`) with ``data``.
    ``CLEAR`` empties a configured map: values zero, no entries, LRU clock 0.
    """
    LOOKUP = 0
    UPDATE = 1
    DELETE = 2
    PEEK = 3
    NEXT = 4
    VALUE_READ = 5
    VALUE_WRITE = 6
    CONFIG = 7
    CLEAR = 8


class Status(enum.Enum, shape=2):
    """``OK``: ``found``/``errno``/``slot`` hold the result. ``FAULT``: the operation is not
    allowed (no such map, lookup on a prog_array, a program updating a read-only map): the helper
    unit turns it into ``Fault.HELPER``."""
    OK = 0
    FAULT = 1


class Field(enum.Enum, shape=4):
    """Descriptor fields (written with ``Op.CONFIG``; :mod:`bpfcore.sim.rtl.mapdrv` computes them)."""
    TYPE = 0           #: abi.MapType number, 0 = no map
    READ_ONLY = 1      #: programs may not write values (CPU port ``ro``, update/delete fault)
    KEY_SIZE = 2
    VALUE_SIZE = 3
    MAX_ENTRIES = 4
    VALUE_BASE = 5     #: byte offset of slot 0's value in the value memory (8-aligned)
    SLOT_BASE = 6      #: first slot of the map (keys, used bits, stamps), 64-aligned
    BUCKET_BASE = 7    #: first bucket of the map's key index (8-aligned: tables are >= 8)
    BUCKET_MASK = 8    #: buckets - 1 (buckets a power of two >= 8)
    PROBE_LIMIT = 9
    CRC_INIT = 10      #: zlib.crc32(bytes(key_size)); unused by the engine (hashes bytewise)
    RECIP = 11         #: ceil(2**RECIP_SHIFT / value_size)
    LIMIT = 12         #: max_entries * value_size (bytes a program may touch)


#: Width of every descriptor field given the build sizes.
def FIELD_WIDTHS(slot_bits, bucket_bits, value_addr_bits):
    return {
        Field.TYPE: 5, Field.READ_ONLY: 1, Field.KEY_SIZE: 6, Field.VALUE_SIZE: VALUE_SIZE_BITS + 1,
        Field.MAX_ENTRIES: OFFSET_BITS, Field.VALUE_BASE: value_addr_bits,
        Field.SLOT_BASE: slot_bits, Field.BUCKET_BASE: bucket_bits,
        Field.BUCKET_MASK: bucket_bits, Field.PROBE_LIMIT: 7, Field.CRC_INIT: 32,
        Field.RECIP: RECIP_SHIFT + 1, Field.LIMIT: OFFSET_BITS,
    }


def request_layout(map_bits, max_key_size, max_value_size):
    """Request payload: ``op``, ``map`` index, ``flags`` (64 bits: ``r4`` of update, or the
    byte mask of ``VALUE_WRITE``), ``addr`` (slot, byte offset or field), ``data`` (64),
    ``key``, ``value``."""
    return data.StructLayout({
        "op": Op,
        "map": map_bits,
        "flags": 64,
        "addr": 24,
        "data": 64,
        "key": 8 * max_key_size,
        "value": 8 * max_value_size,
    })


def response_layout(max_key_size):
    """Response payload: ``status``; ``found`` and ``slot``/``offset`` (``slot * value_size``,
    the byte offset of the value in the map's window) for lookups and ``NEXT``; ``errno``
    (0 or a negative errno, 32-bit two's complement) for update/delete; ``data`` for
    ``VALUE_READ``; ``key`` for ``NEXT``."""
    return data.StructLayout({
        "status": Status,
        "found": 1,
        "slot": OFFSET_BITS,
        "offset": OFFSET_BITS,
        "errno": 32,
        "data": 64,
        "key": 8 * max_key_size,
    })


def MapPortSignature(map_bits, max_key_size, max_value_size):
    """A request/response stream pair (the helper unit's or the host's), as the initiator sees
    it: ``req`` (``Out``, :func:`request_layout`) and ``resp`` (``In``, :func:`response_layout`).
    The map memory accepts a request (``ready``) in the cycle its response becomes valid."""
    return wiring.Signature({
        "req": Out(stream.Signature(request_layout(map_bits, max_key_size, max_value_size))),
        "resp": In(stream.Signature(response_layout(max_key_size))),
    })


def CpuValueSignature():
    """The CPU memory stage's port, as the CPU (the initiator) sees it: ``Out(...)`` in the CPU,
    ``In(...)`` in the map memory.

    ``en`` with ``addr`` (``address - abi.MAP_BASE``: map index in bits 20.., byte offset in the
    window below) and ``size`` (log2 of the byte count) starts an access; one cycle later
    ``ring`` and ``rot`` (the value memory's two words and the ring byte where the access
    starts: the bytes from ``addr`` on, LSB first, are ``ring`` rotated right by ``rot``
    bytes, :func:`ring_bytes`), ``ok`` (inside one value of an existing
    map: the VM's rule) and ``ro`` (the map is read-only to programs) are valid, and ``we`` in
    that cycle (or any later one, until the next ``en``) stores ``wdata``'s ``size`` low bytes
    at that address. The CPU must not assert ``we`` unless ``ok & ~ro``.

    ``slot`` (valid with ``ring``/``ok``) is the index of the value the access's first byte
    falls in (``offset // value_size``, meaningful when ``ok``): accesses with equal ``slot``
    that are each ``ok`` lie inside one value, so a buffer read in several accesses can be
    proven to stay in one value.
    """
    return wiring.Signature({
        "en": Out(1), "addr": Out(26), "size": Out(2), "we": Out(1), "wdata": Out(64),
        "ring": In(128), "rot": In(4), "ok": In(1), "ro": In(1), "slot": In(OFFSET_BITS),
    })


def ring_bytes(ring, rot, n=8):
    """The ``n`` bytes (an int, LSB first) that a CPU port answer ``ring``/``rot`` holds."""
    rotated = (ring >> (8 * rot)) | (ring << (128 - 8 * rot))
    return rotated & ((1 << 8 * n) - 1)


def descriptor_layout(widths, fields, *, exists=False):
    """One reader's view of a descriptor: a member per :class:`Field` in ``fields`` (named in
    lower case, ``widths[field]`` bits), and ``exists`` (the map has a type) if asked."""
    members = {f.name.lower(): widths[f] for f in fields}
    if exists:
        members["exists"] = 1
    return data.StructLayout(members)


def stamp_layout(bucket_bits):
    """An LRU row of the slot space: the slot's last-use ``stamp`` and the ``home`` bucket of
    its key (the victim is found in the key index by its slot from there, without a rehash)."""
    return data.StructLayout({"stamp": 32, "home": bucket_bits})


def bucket_layout(slot_bits, bucket_bits):
    """A row of the key index: ``valid``, the entry's ``slot`` and its key's ``home`` bucket
    (the backward-shift delete needs no rehash)."""
    return data.StructLayout({"valid": 1, "slot": slot_bits, "home": bucket_bits})
