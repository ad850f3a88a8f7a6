"""cocotb drivers for the RTL benches: stream source and sink, flow patterns, checked reads,
reset, and the bench of a core top.

An ``amaranth.lib.stream`` interface flattened into Verilog ports ``<prefix>__valid``,
``<prefix>__ready`` and ``<prefix>__payload`` (the names Amaranth's back end gives the members of
a port named ``<prefix>``, see :func:`bpfcore.sim.rtl.tb.ports_of`) is driven by a
:class:`StreamSource` and drained by a :class:`StreamSink`, with the queue API of cocotbext-eth::

    source = StreamSource(dut, "req", dut.clk, valid=flow("random", seed, "req"))
    sink = StreamSink(dut, "resp", dut.clk, ready=itertools.cycle([1, 0, 0]))
    source.send_nowait(0x12)           # queue and return at once
    await source.send(0x34)            # the same, as a coroutine (returns at once too)
    await source.wait()                # until both have been transferred
    first = await sink.recv()          # the next payload received, as an int

Timing, the same for every driver of this module: inputs of the design change at falling edges
of the clock only; the drivers read ``valid``/``ready`` (and the payload) once settled, in the
ReadOnly phase after that falling edge, which is what the next rising edge samples. A transfer
happens at that rising edge when ``valid`` and ``ready`` are both high; the source counts a
payload sent, and the sink queues it, at that edge.

Both drivers follow the ``amaranth.lib.stream`` rules: the source never waits for ``ready``
before raising ``valid``, holds ``valid`` until the transfer and keeps the payload stable
meanwhile; the sink may change ``ready`` in any cycle.

Flow patterns
-------------
A *valid pattern* (source) or *ready pattern* (sink) is an iterator of 0/1, one value per cycle
(``itertools.cycle([1, 0, 0])``, a seeded random generator, ...); an iterator that ends is
followed by 1s. The default is always 1.

* The source draws one value in each cycle in which it has a payload to offer and ``valid`` is
  low: 1 raises ``valid`` with the next payload, 0 inserts an idle cycle. Once up, ``valid``
  stays up until the transfer, whatever the pattern.
* The sink draws one value per cycle while a payload is offered (or might be), and drives it on
  ``ready``. When ``valid`` is low at the ReadOnly sample the sink sleeps (Python stays out of
  the simulation) until ``valid`` rises, and ``ready`` keeps its last value meanwhile.

:func:`flow` makes the named patterns (:data:`PATTERNS`): ``always``, ``random`` (seeded; each
cycle 1 with probability 1/2) and ``slow`` (one cycle in three). :func:`bench_pattern` reads the
benches' pattern from ``BPFCORE_BENCH_PATTERN`` and its seed from ``BPFCORE_SEED``;
:meth:`bpfcore.sim.rtl.runner.Bench.run` puts it in the batch, and the XDP bench applies it to
the map host port (requests' valid, responses' ready), e.g.
``BPFCORE_BENCH_PATTERN=random BPFCORE_SEED=5 bpfcore run ... --engine rtl`` or the same
variables before ``pytest tests/test_sim_rtl_xdp.py``. The CPU's own runs never see it: the
host port is idle while a program runs, so retire cycles and cycles per packet do not change.

Undefined bits
--------------
:func:`read` returns a handle's value as an int and raises :class:`UndefinedBits`, naming the
signal and the bits, when one of the bits it is asked about is X or Z (a 4-state simulator's
value of memory never written, or of a register never set), instead of reading it as 0. A
``mask`` limits the check to the bits that carry meaning (undefined bits outside it read as 0);
:func:`field_mask` builds one from fields of a ``data.StructLayout``. Where the benches mask:

* packet read-back (:meth:`CoreBench.read_packet`): only the bytes asked for, not the rest of
  their 64-bit words (bytes around a packet are not part of the result);
* map responses (:class:`MapHostPort`): every field is checked. The map memory drives every
  response field from registers and memories with initial values, so a field an operation
  does not set holds an old value or 0, never X: X there is a design fault worth stopping on.

Retirement records with X are refused by the log parser (:func:`bpfcore.sim.rtl.trace.parse_log`).

Benches
-------
:func:`reset` pulses ``rst``. :class:`CoreBench` is the bench of a core top inside the HDL
wrapper (:mod:`bpfcore.sim.rtl.tb`): its clock, reset and packet read-back;
:class:`XdpBench` adds the map memory's host port (:class:`MapHostPort`, a
:class:`~bpfcore.sim.rtl.mapdrv.MapDriver` transport over a :class:`StreamSource` and a
:class:`StreamSink` with the bench's flow patterns). :mod:`bpfcore.sim.rtl.cocotb_bench` uses
them; the module imports cocotb but needs no simulator until a driver is made.
"""

import collections
import itertools
import os
import random

import cocotb
from cocotb.triggers import Event, FallingEdge, ReadOnly, RisingEdge

from bpfcore.errors import BpfcoreError

__all__ = ["UndefinedBits", "read", "field_mask", "PATTERNS", "flow", "bench_pattern",
           "StreamSource", "StreamSink", "reset", "MapHostPort", "CoreBench", "XdpBench"]

_LH = str.maketrans("LH", "01")


class UndefinedBits(BpfcoreError):
    """A value read from the design has X/Z bits where a defined value is needed."""


def _name(handle):
    return getattr(handle, "_path", None) or getattr(handle, "_name", None) or repr(handle)


def _resolve(text):
    """``(value, undefined)`` of a binary string (MSB first): the 0/1 bits as an int and a mask
    of the other bits (X, Z, U, W, -; L and H count as 0 and 1)."""
    text = text.translate(_LH)
    try:
        return int(text, 2), 0
    except ValueError:
        pass
    value = undefined = 0
    for bit, char in enumerate(reversed(text)):
        if char == "1":
            value |= 1 << bit
        elif char != "0":
            undefined |= 1 << bit
    return value, undefined


def _check(name, value, undefined, mask, layout=None):
    bad = undefined if mask is None else undefined & mask
    if bad:
        bits = [i for i in range(bad.bit_length()) if bad >> i & 1]
        where = ""
        if layout is not None:
            fields = [fname for fname, fld in layout
                      if bad >> fld.offset & ((1 << fld.width) - 1)]
            where = f" (field(s) {', '.join(fields)})"
        shown = ", ".join(map(str, bits[:8])) + (", ..." if len(bits) > 8 else "")
        raise UndefinedBits(f"{name}: {len(bits)} undefined (X/Z) bit(s){where}, bit(s) "
                            f"{shown}")
    return value


def read(handle, mask=None, layout=None):
    """The value of ``handle`` (a cocotb signal handle) as an unsigned int.

    Parameters
    ----------
    handle : cocotb.handle.LogicObject or LogicArrayObject
    mask : int or None
        The bits that must be defined (bit 0 is the LSB); None: all of them. Undefined bits
        outside the mask read as 0.
    layout : amaranth.lib.data.StructLayout or None
        The layout of the value, to name the fields with undefined bits in the error.

    Raises
    ------
    UndefinedBits
        A bit under ``mask`` is X or Z; the message names the signal and the bits.
    """
    value, undefined = _resolve(str(handle.value))
    return _check(_name(handle), value, undefined, mask, layout)


def field_mask(layout, *names):
    """The bits of fields ``names`` of ``layout`` (a ``data.StructLayout``) as a mask."""
    mask = 0
    for name in names:
        fld = layout[name]
        mask |= ((1 << fld.width) - 1) << fld.offset
    return mask


# --- flow patterns -------------------------------------------------------------------------

#: Named flow patterns (see :func:`flow`).
PATTERNS = ("always", "random", "slow")


def flow(name="always", seed=1, role=""):
    """An endless iterator of 0/1 for pattern ``name`` (:data:`PATTERNS`).

    ``always``: 1 every cycle; ``slow``: 1, 0, 0, repeated; ``random``: 1 with probability 1/2,
    from ``random.Random`` seeded with ``seed`` and ``role`` (so that the patterns of two streams
    of one bench, e.g. ``"req"`` and ``"resp"``, differ but both follow the seed).
    """
    if name == "always":
        return itertools.repeat(1)
    if name == "slow":
        return itertools.cycle((1, 0, 0))
    if name == "random":
        rng = random.Random(f"{seed}/{role}")
        return iter(lambda: rng.getrandbits(1), None)
    raise BpfcoreError(f"unknown flow pattern {name!r}; choose {', '.join(PATTERNS)}")


def bench_pattern(environ=None):
    """``(name, seed)`` of the benches' flow pattern: ``BPFCORE_BENCH_PATTERN`` (default
    ``always``) and ``BPFCORE_SEED`` (default 1)."""
    environ = os.environ if environ is None else environ
    name = environ.get("BPFCORE_BENCH_PATTERN", "") or "always"
    if name not in PATTERNS:
        raise BpfcoreError(f"BPFCORE_BENCH_PATTERN={name!r}: choose {', '.join(PATTERNS)}")
    try:
        seed = int(environ.get("BPFCORE_SEED", "") or 1)
    except ValueError:
        raise BpfcoreError(f"BPFCORE_SEED={environ['BPFCORE_SEED']!r} is not an integer") \
            from None
    return name, seed


def _pattern(pattern):
    return itertools.repeat(1) if pattern is None else itertools.chain(pattern,
                                                                       itertools.repeat(1))


def _bits(payload, layout):
    if isinstance(payload, dict):
        if layout is None:
            raise TypeError("a dict payload needs the driver's layout")
        payload = layout.const(payload)
    if hasattr(payload, "as_bits"):
        payload = payload.as_bits()
    return int(payload)


# --- stream drivers ------------------------------------------------------------------------

class _Stream:
    def __init__(self, dut, prefix, clock, layout):
        try:
            self.valid = getattr(dut, f"{prefix}__valid")
            self.ready = getattr(dut, f"{prefix}__ready")
            self.payload = getattr(dut, f"{prefix}__payload")
        except AttributeError:
            raise BpfcoreError(f"{_name(dut)} has no stream {prefix!r} (ports {prefix}__valid, "
                               f"{prefix}__ready, {prefix}__payload)") from None
        self.prefix = prefix
        self.clock = clock
        self.layout = layout
        self._queue = collections.deque()
        self._task = None

    def count(self):
        """Payloads in the queue."""
        return len(self._queue)

    def empty(self):
        return not self._queue

    def stop(self):
        """End the driver's task (it holds its outputs as they are)."""
        if self._task is not None and not self._task.done():
            self._task.cancel()


class StreamSource(_Stream):
    """Drives stream ``prefix`` of ``dut``: ``valid`` and ``payload`` from a queue.

    Parameters
    ----------
    dut : cocotb.handle.HierarchyObject
        The object holding the ports (the design, or the wrapper that drives its inputs).
    prefix : str
        The stream's port name: ports ``<prefix>__valid``, ``__ready``, ``__payload``.
    clock : cocotb handle
        The clock of the stream's domain.
    valid : iterator of 0/1 or None
        Valid pattern (module docstring); None: always 1.
    layout : amaranth.lib.data.Layout or None
        Lets :meth:`send` take a dict of fields.

    Members
    -------
    sent : int
        Payloads transferred so far.
    """

    def __init__(self, dut, prefix, clock, *, valid=None, layout=None):
        super().__init__(dut, prefix, clock, layout)
        self._pattern = _pattern(valid)
        self._current = None
        self._wake = Event()
        self._idle = Event()
        self._idle.set()
        self.sent = 0
        self.valid.value = 0
        self._task = cocotb.start_soon(self._run())

    def send_nowait(self, payload):
        """Queue ``payload`` (an int, a ``data.Const``, or a dict with ``layout``) and return."""
        self._queue.append(_bits(payload, self.layout))
        self._idle.clear()
        self._wake.set()

    async def send(self, payload):
        """Queue ``payload`` and return at once (no queue limit, so this never waits; await
        :meth:`wait` for the transfer)."""
        self.send_nowait(payload)

    def idle(self):
        """True when nothing is queued and no payload is offered (``valid`` low)."""
        return not self._queue and self._current is None

    async def wait(self):
        """Return once :meth:`idle` (at the rising edge of the last transfer), at once if
        already idle."""
        while not self.idle():
            await self._idle.wait()

    def clear(self):
        """Drop the queued payloads (not the one on offer, which the stream rules hold)."""
        self._queue.clear()

    async def _run(self):
        clock = self.clock
        while True:
            while not self._queue:
                self._wake.clear()
                await self._wake.wait()
            await FallingEdge(clock)
            while True:
                if self._current is None:
                    if not self._queue:
                        self.valid.value = 0
                        break
                    if next(self._pattern):
                        self._current = self._queue.popleft()
                        self.payload.value = self._current
                        self.valid.value = 1
                    else:
                        self.valid.value = 0
                await ReadOnly()
                if self._current is not None and read(self.ready):
                    await RisingEdge(clock)          # the transfer
                    self._current = None
                    self.sent += 1
                    if not self._queue:
                        self._idle.set()
                await FallingEdge(clock)


class StreamSink(_Stream):
    """Takes the payloads of stream ``prefix`` of ``dut`` into a queue, driving ``ready``.

    Parameters
    ----------
    dut, prefix, clock
        As :class:`StreamSource`.
    ready : iterator of 0/1 or None
        Ready pattern (module docstring); None: always 1.
    layout : amaranth.lib.data.Layout or None
        :meth:`recv` returns ``layout.from_bits(value)`` instead of an int, and undefined bits
        are reported by field.

    Members
    -------
    received : int
        Payloads transferred so far.

    Payloads are queued with their undefined (X/Z) bits; :meth:`recv` checks them.
    """

    def __init__(self, dut, prefix, clock, *, ready=None, layout=None):
        super().__init__(dut, prefix, clock, layout)
        self._pattern = _pattern(ready)
        self._offered = False
        self._arrived = Event()
        self.received = 0
        self.ready.value = 0
        self._task = cocotb.start_soon(self._run())

    def recv_nowait(self, mask=None):
        """The oldest payload received (removed from the queue); ``mask``: the bits that must
        be defined (None: all), as :func:`read`. Raises ``IndexError`` when the queue is
        empty, :class:`UndefinedBits` when a bit under ``mask`` is X/Z."""
        value, undefined = self._queue.popleft()
        _check(f"{_name(self.payload)} (transfer {self.received - len(self._queue) - 1})",
               value, undefined, mask, self.layout)
        return value if self.layout is None else self.layout.from_bits(value)

    async def recv(self, mask=None):
        """Await the next payload and return it (see :meth:`recv_nowait`)."""
        while not self._queue:
            self._arrived.clear()
            await self._arrived.wait()
        return self.recv_nowait(mask)

    def idle(self):
        """True when no payload waits in the queue and none was offered at the last sample."""
        return not self._queue and not self._offered

    async def wait(self):
        """Return once a payload waits in the queue (at once if one does already)."""
        while not self._queue:
            self._arrived.clear()
            await self._arrived.wait()

    def clear(self):
        """Drop the received payloads."""
        self._queue.clear()

    def _take(self):
        self._queue.append(_resolve(str(self.payload.value)))

    async def _run(self):
        clock = self.clock
        await FallingEdge(clock)
        while True:
            ready = next(self._pattern)
            self.ready.value = ready
            await ReadOnly()
            self._offered = bool(read(self.valid))
            if not self._offered:
                # Nothing offered: sleep until valid rises; ready keeps its value meanwhile.
                await RisingEdge(self.valid)
                await ReadOnly()
                self._offered = bool(read(self.valid))
            if self._offered and ready:
                self._take()                         # stable until the transfer
                await RisingEdge(clock)
                self.received += 1
                self._offered = False
                self._arrived.set()
            await FallingEdge(clock)


# --- benches -------------------------------------------------------------------------------

async def reset(dut, cycles=3):
    """Hold ``dut.rst`` high for ``cycles`` rising edges of ``dut.clk``, then release it; returns
    at the first rising edge after the reset."""
    dut.rst.value = 1
    for _ in range(cycles):
        await RisingEdge(dut.clk)
    dut.rst.value = 0
    await RisingEdge(dut.clk)


class MapHostPort:
    """:class:`bpfcore.sim.rtl.mapdrv.MapDriver` transport over the map memory's host streams
    (``map_host_req``, ``map_host_resp``).

    Parameters
    ----------
    dut : cocotb handle
        The wrapper of a top with map memory (:class:`bpfcore.hdl.xdpcore.XdpCore`).
    clock : cocotb handle
    sizes : dict
        ``map_bits``, ``max_key_size``, ``max_value_size`` of the map memory.
    valid, ready : iterator of 0/1 or None
        The request source's valid pattern and the response sink's ready pattern.
    """

    def __init__(self, dut, clock, sizes, *, valid=None, ready=None):
        from bpfcore.hdl.maps.layouts import Op, request_layout, response_layout
        self.req_layout = request_layout(sizes["map_bits"], sizes["max_key_size"],
                                         sizes["max_value_size"])
        self.resp_layout = response_layout(sizes["max_key_size"])
        self.defaults = {"op": Op.LOOKUP, "map": 0, "flags": 0, "addr": 0, "data": 0, "key": 0,
                         "value": 0}
        self.source = StreamSource(dut, "map_host_req", clock, valid=valid,
                                   layout=self.req_layout)
        self.sink = StreamSink(dut, "map_host_resp", clock, ready=ready,
                               layout=self.resp_layout)

    async def call(self, request):
        """Send ``request`` (fields of the request layout; the others 0) and return the
        response (a ``data.Const`` of the response layout)."""
        full = dict(self.defaults)
        full.update(request)
        self.source.send_nowait(full)
        return await self.sink.recv()


class CoreBench:
    """The bench of a core top (:class:`bpfcore.hdl.bench_top.BenchTop`,
    :class:`bpfcore.hdl.xdpcore.XdpCore`) inside the HDL wrapper (:mod:`bpfcore.sim.rtl.tb`).

    Parameters
    ----------
    dut : cocotb handle
        The wrapper (``tb_top``): it owns the clock, the reset and the design's inputs.
    pattern : (str, int)
        The flow pattern and its seed (:func:`bench_pattern`) of the bench's streams.

    Members
    -------
    clock : cocotb handle
    """

    def __init__(self, dut, pattern=("always", 1)):
        self.dut = dut
        self.clock = dut.clk
        self.pattern = tuple(pattern)
        flow(*self.pattern)                     # refuse an unknown name here

    def flow(self, role):
        """The bench's pattern for the stream named ``role``."""
        return flow(self.pattern[0], self.pattern[1], role)

    async def reset(self, cycles=3):
        await reset(self.dut, cycles)

    async def read_packet(self, start, end):
        """Bytes ``[start, end)`` of the packet buffer (offsets from its base) through the
        packet port; only those bytes must be defined (module docstring)."""
        dut = self.dut
        out = bytearray()
        first, last = start // 8, (end + 7) // 8
        for word in range(first, last):
            lo = start - 8 * word if word == first else 0
            hi = end - 8 * word if word == last - 1 else 8
            dut.pkt_addr.value = word
            await RisingEdge(self.clock)
            await FallingEdge(self.clock)
            mask = ((1 << 8 * (hi - lo)) - 1) << 8 * lo
            out += read(dut.pkt_rdata, mask).to_bytes(8, "little")
        skip = start % 8
        return bytes(out[skip:skip + end - start])


class XdpBench(CoreBench):
    """:class:`CoreBench` of :class:`bpfcore.hdl.xdpcore.XdpCore`, with its map host port.

    Members
    -------
    map_host : MapHostPort or None
        Made by :meth:`open_map_host` (the sizes come with the batch); request valid and
        response ready follow the bench's pattern (roles ``map_host_req``, ``map_host_resp``).
    """

    def __init__(self, dut, pattern=("always", 1)):
        super().__init__(dut, pattern)
        self.map_host = None
        self.maps = None

    def open_map_host(self, sizes):
        self.map_host = MapHostPort(self.dut, self.clock, sizes,
                                    valid=self.flow("map_host_req"),
                                    ready=self.flow("map_host_resp"))
        return self.map_host

    async def setup_maps(self, spec):
        """Configure the map memory from a batch's ``maps`` section (sizes, ``layouts``,
        ``initial`` contents, ``entries``, the helper units' ``seed``); returns the
        :class:`~bpfcore.sim.rtl.mapdrv.MapDriver`, also kept as ``self.maps``."""
        from bpfcore.hdl.maps.layouts import Field
        from bpfcore.sim.rtl.mapdrv import Layout, MapDriver
        dut = self.dut
        layouts = [Layout(lay["index"], lay["name"],
                          {Field(int(f)): v for f, v in lay["fields"]})
                   for lay in spec["layouts"]]
        drv = self.maps = MapDriver(self.open_map_host(spec), layouts)
        await drv.configure(layouts, {index: bytes.fromhex(blob)
                                      for index, blob in spec.get("initial", ())})
        for index, key, value in spec.get("entries", ()):
            errno = await drv.update(index, bytes.fromhex(key), bytes.fromhex(value))
            if errno:
                raise RuntimeError(f"map {index}: initial update of key {key} failed: {errno}")
        if "seed" in spec:
            dut.seed.value = spec["seed"] & 0xffff_ffff
            dut.seed_we.value = 1
            await RisingEdge(self.clock)
            dut.seed_we.value = 0
        return drv

    async def dump_maps(self):
        """Every map's ``[[key hex, value hex], ...]``, read through the host port."""
        return [[[k.hex(), v.hex()] for k, v in await self.maps.items(lay.index)]
                for lay in self.maps.layouts]
