"""The cocotb test that runs a batch of programs in one simulator invocation.

Loaded by the simulator (through :mod:`bpfcore.sim.rtl.runner`), never imported by user code. The
batch is a JSON file named by ``BPFCORE_RTL_BATCH``; for each item it writes the program through
the program port and the input bytes through the packet port, sets the run inputs, pulses
``start`` and waits for ``done`` (or a cycle limit, after which it resets the design). Everything
the design does (retirements, ``trace_printk`` text) is logged by the HDL wrapper itself
(:mod:`bpfcore.sim.rtl.tb`); this test only writes each item's status (``done`` /
``timeout``) into ``BPFCORE_RTL_RESULTS``.

A batch for a top with map memory (:class:`bpfcore.hdl.xdpcore.XdpCore`) may also carry:

* ``maps``: the map memory's sizes, the descriptors (``layouts``), the entries to write before
  the first item (``entries``: ``[index, key hex, value hex]``), the helper units' ``seed``, and
  ``dump``: read every map back through the host port after the last item;
* per item: ``time_ns`` (the helper units' clock, set before the start) and ``readback``
  (read the packet between the final ``data`` and ``data_end`` back through the packet port,
  when the verdict lets it leave).

Each item's result then also holds the final packet bounds, the redirect target and the packet.
Python only wakes every cycle for these transfers, never while a program runs.
"""

import json
import os

import cocotb
from cocotb.triggers import FallingEdge, First, ReadOnly, RisingEdge, Timer

PERIOD_NS = 10
_RUN_INPUTS = ("start_r1", "start_r2", "budget", "data", "data_end", "ingress_ifindex",
               "rx_queue_index", "entry_len")


async def _reset(dut, cycles=3):
    dut.rst.value = 1
    for _ in range(cycles):
        await RisingEdge(dut.clk)
    dut.rst.value = 0
    await RisingEdge(dut.clk)


def _bits(value):
    """A signal's value as an int, undefined bits (X/Z: memory never written, response fields
    an operation leaves open, in a 4-state simulator) read as 0, as the VM's zeroed state."""
    text = str(value)
    if text.isdigit():
        return int(text, 2)
    return int("".join(c if c in "01" else "0" for c in text), 2)


class _HostPort:
    """:class:`bpfcore.sim.rtl.mapdrv.MapDriver` transport over the top's map host streams.

    Inputs change at falling edges only; a transfer happens at the rising edge in between when
    ``valid`` and ``ready`` were both high (read once settled, in the ReadOnly phase)."""

    def __init__(self, dut, sizes):
        from bpfcore.hdl.maps.layouts import Op, request_layout, response_layout
        self.dut = dut
        self.req_layout = request_layout(sizes["map_bits"], sizes["max_key_size"],
                                         sizes["max_value_size"])
        self.resp_layout = response_layout(sizes["max_key_size"])
        self.defaults = {"op": Op.LOOKUP, "map": 0, "flags": 0, "addr": 0, "data": 0, "key": 0,
                         "value": 0}

    async def call(self, request):
        dut = self.dut
        full = dict(self.defaults)
        full.update(request)
        # Inputs change at falling edges; ReadOnly sees the settled ready/valid that the next
        # rising edge samples.
        await FallingEdge(dut.clk)
        dut.map_host_req__payload.value = self.req_layout.const(full).as_bits()
        dut.map_host_req__valid.value = 1
        while True:
            await ReadOnly()
            accepted = int(dut.map_host_req__ready.value)
            await FallingEdge(dut.clk)
            if accepted:
                break
        dut.map_host_req__valid.value = 0
        dut.map_host_resp__ready.value = 1
        while True:
            await ReadOnly()
            payload = _bits(dut.map_host_resp__payload.value) \
                if int(dut.map_host_resp__valid.value) else None
            await FallingEdge(dut.clk)
            if payload is not None:
                break
        dut.map_host_resp__ready.value = 0
        return self.resp_layout.from_bits(payload)


def _driver(dut, spec):
    from bpfcore.hdl.maps.layouts import Field
    from bpfcore.sim.rtl.mapdrv import Layout, MapDriver
    layouts = [Layout(lay["index"], lay["name"], {Field(int(f)): v for f, v in lay["fields"]})
               for lay in spec["layouts"]]
    return MapDriver(_HostPort(dut, spec), layouts), layouts


async def _setup_maps(dut, spec):
    drv, layouts = _driver(dut, spec)
    await drv.configure(layouts, {index: bytes.fromhex(blob)
                                  for index, blob in spec.get("initial", ())})
    for index, key, value in spec.get("entries", ()):
        errno = await drv.update(index, bytes.fromhex(key), bytes.fromhex(value))
        if errno:
            raise RuntimeError(f"map {index}: initial update of key {key} failed: {errno}")
    if "seed" in spec:
        dut.seed.value = spec["seed"] & 0xffff_ffff
        dut.seed_we.value = 1
        await RisingEdge(dut.clk)
        dut.seed_we.value = 0
    return drv


async def _dump_maps(drv):
    return [[[k.hex(), v.hex()] for k, v in await drv.items(lay.index)]
            for lay in drv.layouts]


async def _read_packet(dut, start, end):
    """Bytes ``[start, end)`` of the packet buffer (offsets from its base)."""
    out = bytearray()
    for word in range(start // 8, (end + 7) // 8):
        dut.pkt_addr.value = word
        await RisingEdge(dut.clk)
        await FallingEdge(dut.clk)
        out += _bits(dut.pkt_rdata.value).to_bytes(8, "little")
    skip = start % 8
    return bytes(out[skip:skip + end - start])


async def _extras(dut, item):
    """The item's results beyond the status (tops with helper units and map memory)."""
    from bpfcore import abi
    extra = {}
    if hasattr(dut, "result_data"):
        extra["data"] = int(dut.result_data.value)
        extra["data_end"] = int(dut.result_data_end.value)
    if hasattr(dut, "redirect_kind"):
        extra["redirect"] = [int(dut.redirect_kind.value), int(dut.redirect_ifindex.value),
                             int(dut.redirect_map.value), int(dut.redirect_slot.value)]
    # Only packets that leave are read back (the others are not compared): fewer cycles with
    # Python awake.
    leaves = int(dut.result_fault.value) == 0 and \
        (int(dut.result_r0.value) & 0xffff_ffff) in abi.LEAVING_ACTIONS
    if item.get("readback") and "data" in extra and leaves:
        start, end = extra["data"] - abi.PKT_BASE, extra["data_end"] - abi.PKT_BASE
        if 0 <= start <= end <= abi.PKT_BUF_SIZE:
            extra["packet"] = (await _read_packet(dut, start, end)).hex()
    return extra


async def _run_item(dut, index, item, loaded):
    """Run one item; ``loaded`` is the program already in program memory (not written again:
    a batch of packets for one program writes it once). Returns the item's status."""
    clk = dut.clk
    while int(dut.busy.value):
        await RisingEdge(clk)
    if item["slots"] != loaded:
        for addr, word in enumerate(item["slots"]):
            dut.prog_we.value = 1
            dut.prog_addr.value = addr
            dut.prog_wdata.value = word
            await RisingEdge(clk)
        dut.prog_we.value = 0
    for addr, enables, word in item["pkt"]:
        dut.pkt_we.value = enables
        dut.pkt_addr.value = addr
        dut.pkt_wdata.value = word
        await RisingEdge(clk)
    dut.pkt_we.value = 0
    for name in _RUN_INPUTS:
        if name in item and hasattr(dut, name):
            getattr(dut, name).value = item[name]
    if "time_ns" in item:
        dut.time_value.value = item["time_ns"] & (2**64 - 1)
        dut.time_we.value = 1
        await RisingEdge(clk)
        dut.time_we.value = 0
    dut.tb_index.value = index
    dut.start.value = 1
    await RisingEdge(clk)
    dut.start.value = 0
    timeout = Timer(item["timeout_cycles"] * PERIOD_NS, unit="ns")
    fired = await First(RisingEdge(dut.done), timeout)
    if fired is timeout:
        await _reset(dut)
        return "timeout"
    await RisingEdge(clk)
    return "done"


@cocotb.test()
async def run_batch(dut):
    with open(os.environ["BPFCORE_RTL_BATCH"]) as f:
        batch = json.load(f)
    results_path = os.environ["BPFCORE_RTL_RESULTS"]
    status = []
    extras = []
    await _reset(dut)
    drv = None
    if "maps" in batch:
        drv = await _setup_maps(dut, batch["maps"])
    loaded = None
    for index, item in enumerate(batch["items"]):
        status.append(await _run_item(dut, index, item, loaded))
        extras.append(await _extras(dut, item) if status[-1] == "done" else {})
        # After a timeout the design was reset: write the program again to be safe.
        loaded = item["slots"] if status[-1] == "done" else None
    dump = await _dump_maps(drv) if drv is not None and batch["maps"].get("dump") else None
    # Let the wrapper log the last cycle's events and flush before the simulator stops.
    dut.tb_finish.value = 1
    for _ in range(3):
        await RisingEdge(dut.clk)
    with open(results_path + ".tmp", "w") as f:
        json.dump({"status": status, "extras": extras, "maps": dump}, f)
    os.replace(results_path + ".tmp", results_path)
