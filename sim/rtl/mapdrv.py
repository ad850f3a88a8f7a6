"""Python driver of the map memory's host port (:class:`bpfcore.hdl.maps.engine.MapMemory`).

:func:`plan` lays a program's maps out in the map memory (value bytes, slot space, buckets) and
computes every descriptor field; :class:`MapDriver` loads them and runs map operations through
a *transport*: any object with ``async call(request: dict) -> response`` (the response as a
``data.Const`` or anything with the response fields as attributes). :class:`AmaranthPort`
is the transport for an Amaranth simulation; a cocotb or board transport only needs ``call``.
"""

import zlib
from dataclasses import dataclass

from bpfcore.abi import MapType
from bpfcore.errors import BpfcoreError
from bpfcore.hdl.maps.layouts import Op, Status, Field, RECIP_SHIFT, VALUE_SIZE_BITS

from bpfcore.sim.model.maps import BPF_F_RDONLY_PROG
from bpfcore.sim.rtl.streams import stream_put, stream_get

__all__ = ["Layout", "plan", "MapDriver", "AmaranthPort", "MapFault"]

_KEYED = (MapType.HASH, MapType.LRU_HASH, MapType.LPM_TRIE, MapType.DEVMAP, MapType.PROG_ARRAY)


class MapFault(BpfcoreError):
    """The map memory refused an operation (``Status.FAULT``)."""


@dataclass
class Layout:
    """One map's descriptor, as :func:`plan` computes it."""
    index: int
    name: str
    fields: dict          # Field -> int

    def __getitem__(self, field):
        return self.fields[field]


def _buckets(max_entries):
    n = 8
    while n < 2 * max_entries:
        n *= 2
    return n


def plan(specs, mm, probe_limit=32):
    """Descriptors for ``specs`` (:class:`bpfcore.sim.model.maps.MapSpec` in map-index order) in
    ``mm`` (a :class:`MapMemory`, for its sizes); raises :class:`BpfcoreError` if they do not
    fit, naming the map and the resource."""
    if len(specs) > mm.n_maps:
        raise BpfcoreError(f"{len(specs)} maps, the map memory holds {mm.n_maps}")
    vbase = sbase = bbase = 0
    out = []
    for index, spec in enumerate(specs):
        where = f"map {index} '{spec.name}'"
        try:
            mtype = MapType(spec.type)
        except ValueError:
            raise BpfcoreError(f"{where}: map type {spec.type} is not supported") from None
        built = getattr(mm, "map_types", None)
        if built is not None and mtype not in built:
            names = ", ".join(sorted(t.name.lower() for t in built))
            raise BpfcoreError(f"{where}: this map memory is built without "
                               f"{mtype.name.lower()} maps (map_types: {names})")
        if not 0 < spec.value_size < 1 << VALUE_SIZE_BITS:
            raise BpfcoreError(f"{where}: value size {spec.value_size} is outside "
                               f"1..{(1 << VALUE_SIZE_BITS) - 1}")
        if not 0 < spec.key_size <= mm.max_key_size:
            raise BpfcoreError(f"{where}: key size {spec.key_size} is outside "
                               f"1..{mm.max_key_size}")
        if spec.max_entries <= 0:
            raise BpfcoreError(f"{where}: max_entries must be positive")
        f = {Field.TYPE: int(mtype), Field.KEY_SIZE: spec.key_size,
             Field.VALUE_SIZE: spec.value_size, Field.MAX_ENTRIES: spec.max_entries,
             Field.READ_ONLY: int(bool(spec.read_only or spec.flags & BPF_F_RDONLY_PROG
                                       or mtype in (MapType.DEVMAP, MapType.PROG_ARRAY))),
             Field.CRC_INIT: zlib.crc32(bytes(spec.key_size)),
             Field.RECIP: -(-(1 << RECIP_SHIFT) // spec.value_size),
             Field.LIMIT: spec.max_entries * spec.value_size,
             Field.SLOT_BASE: 0, Field.BUCKET_BASE: 0, Field.BUCKET_MASK: 0,
             Field.PROBE_LIMIT: 0}
        size = spec.max_entries * spec.value_size
        if f[Field.LIMIT] >= 1 << 20:
            raise BpfcoreError(f"{where}: {size} value bytes exceed the 1 MiB map window")
        vbase = -(-vbase // 8) * 8
        if vbase + size > mm.value_bytes:
            raise BpfcoreError(f"{where}: needs {size} value bytes at {vbase}, the map memory "
                               f"has {mm.value_bytes}")
        f[Field.VALUE_BASE] = vbase
        vbase += size
        if mtype in _KEYED:
            if spec.value_size > mm.max_value_size and mtype != MapType.PROG_ARRAY:
                raise BpfcoreError(f"{where}: value size {spec.value_size} exceeds the "
                                   f"update port's {mm.max_value_size} bytes")
            sbase = -(-sbase // 64) * 64
            if sbase + spec.max_entries > mm.slots:
                raise BpfcoreError(f"{where}: needs {spec.max_entries} slots at {sbase}, the "
                                   f"map memory has {mm.slots}")
            f[Field.SLOT_BASE] = sbase
            sbase += spec.max_entries
        if mtype == MapType.ARRAY and spec.key_size != 4 or \
                mtype in (MapType.DEVMAP, MapType.PROG_ARRAY) and spec.key_size != 4:
            raise BpfcoreError(f"{where}: a {mtype.name.lower()} map needs key size 4")
        if mtype == MapType.LPM_TRIE and spec.key_size <= 4:
            raise BpfcoreError(f"{where}: an lpm_trie key must be longer than 4 bytes")
        if mtype in (MapType.HASH, MapType.LRU_HASH):
            n = _buckets(spec.max_entries)
            if bbase + n > mm.buckets:
                raise BpfcoreError(f"{where}: needs {n} buckets at {bbase}, the map memory has "
                                   f"{mm.buckets}")
            f[Field.BUCKET_BASE] = bbase
            f[Field.BUCKET_MASK] = n - 1
            f[Field.PROBE_LIMIT] = min(probe_limit, n)
            bbase += n
        out.append(Layout(index, spec.name, f))
    return out


class AmaranthPort:
    """Transport over one request/response stream pair in an Amaranth async testbench."""

    def __init__(self, ctx, req, resp, rng=None):
        self.ctx, self.req, self.resp, self.rng = ctx, req, resp, rng

    async def call(self, request):
        full = {"op": Op.LOOKUP, "map": 0, "flags": 0, "addr": 0, "data": 0, "key": 0,
                "value": 0}
        full.update(request)
        await stream_put(self.ctx, self.req, full, rng=self.rng)
        return await stream_get(self.ctx, self.resp, rng=self.rng)


def _u32(x):
    return x - (1 << 32) if x >> 31 else x


class MapDriver:
    """Map operations over a transport; keys and values are ``bytes``.

    Results follow :mod:`bpfcore.sim.model.maps`: ``lookup``/``peek`` return a slot index or None,
    ``update``/``delete`` 0 or a negative errno. A refused operation raises :class:`MapFault`.
    """

    def __init__(self, port, layouts=()):
        self.port = port
        self.layouts = list(layouts)
        self.cycles = None

    def _key(self, index, key):
        return int.from_bytes(bytes(key), "little")

    async def _call(self, **request):
        resp = await self.port.call(request)
        if Status(resp.status) != Status.OK:
            raise MapFault(f"map {request.get('map', 0)}: {Op(request['op']).name.lower()} "
                           "refused")
        return resp

    async def configure(self, layouts, initial=None):
        """Write every descriptor, clear the maps, then write ``initial`` (index -> bytes)."""
        self.layouts = list(layouts)
        for lay in self.layouts:
            for field, value in lay.fields.items():
                await self._call(op=Op.CONFIG, map=lay.index, addr=field.value, data=value)
            await self._call(op=Op.CLEAR, map=lay.index)
        for index, blob in (initial or {}).items():
            await self.write_bytes(index, 0, blob)

    async def lookup(self, index, key):
        resp = await self._call(op=Op.LOOKUP, map=index, key=self._key(index, key))
        return resp.slot if resp.found else None

    async def lookup_full(self, index, key, op=Op.LOOKUP):
        """(found, slot, offset) of a lookup (offset = slot * value_size)."""
        resp = await self._call(op=op, map=index, key=self._key(index, key))
        return bool(resp.found), resp.slot, resp.offset

    async def peek(self, index, key):
        resp = await self._call(op=Op.PEEK, map=index, key=self._key(index, key))
        return resp.slot if resp.found else None

    async def update(self, index, key, value, flags=0):
        resp = await self._call(op=Op.UPDATE, map=index, key=self._key(index, key),
                                value=int.from_bytes(bytes(value), "little"), flags=flags)
        return _u32(resp.errno)

    async def delete(self, index, key):
        resp = await self._call(op=Op.DELETE, map=index, key=self._key(index, key))
        return _u32(resp.errno)

    async def next(self, index, start):
        """(slot, key bytes) of the first entry at or after slot ``start``, or None."""
        resp = await self._call(op=Op.NEXT, map=index, addr=start)
        if not resp.found:
            return None
        ks = self.layouts[index][Field.KEY_SIZE]
        return resp.slot, (resp.key & ((1 << 8 * ks) - 1)).to_bytes(ks, "little")

    async def read_bytes(self, index, offset, n):
        # VALUE_READ answers the 8-byte word that holds the byte asked for.
        out = bytearray()
        skip = offset % 8
        for word in range(offset - skip, offset + n, 8):
            resp = await self._call(op=Op.VALUE_READ, map=index, addr=word)
            out += resp.data.to_bytes(8, "little")
        return bytes(out[skip:skip + n])

    async def write_bytes(self, index, offset, blob):
        for at in range(0, len(blob), 8):
            chunk = bytes(blob[at:at + 8])
            await self._call(op=Op.VALUE_WRITE, map=index, addr=offset + at,
                             data=int.from_bytes(chunk, "little"), flags=(1 << len(chunk)) - 1)

    async def value(self, index, slot):
        vs = self.layouts[index][Field.VALUE_SIZE]
        return await self.read_bytes(index, slot * vs, vs)

    async def items(self, index):
        """Sorted (key, value) pairs, as :meth:`bpfcore.sim.model.maps.Map.items`."""
        out, start = [], 0
        while True:
            found = await self.next(index, start)
            if found is None:
                return sorted(out)
            slot, key = found
            out.append((key, await self.value(index, slot)))
            start = slot + 1
