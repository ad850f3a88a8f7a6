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

The batch's ``pattern`` (``[name, seed]``, see :func:`bpfcore.sim.rtl.drivers.bench_pattern`;
default ``always``) sets the valid pattern of the map host requests and the ready pattern of
the responses. The drivers, reset and packet read-back are those of
:mod:`bpfcore.sim.rtl.drivers` (:class:`~bpfcore.sim.rtl.drivers.XdpBench` for a top with map
memory, else :class:`~bpfcore.sim.rtl.drivers.CoreBench`); values are read with
:func:`~bpfcore.sim.rtl.drivers.read`, which refuses X/Z bits.
"""

import json
import os

import cocotb
from cocotb.triggers import First, RisingEdge, Timer

from bpfcore.sim.rtl.drivers import CoreBench, XdpBench, read

PERIOD_NS = 10
_RUN_INPUTS = ("start_r1", "start_r2", "budget", "data", "data_end", "ingress_ifindex",
               "rx_queue_index", "entry_len")


async def _extras(bench, item):
    """The item's results beyond the status (tops with helper units and map memory)."""
    from bpfcore import abi
    dut = bench.dut
    extra = {}
    if hasattr(dut, "result_data"):
        extra["data"] = read(dut.result_data)
        extra["data_end"] = read(dut.result_data_end)
    if hasattr(dut, "redirect_kind"):
        extra["redirect"] = [read(dut.redirect_kind), read(dut.redirect_ifindex),
                             read(dut.redirect_map), read(dut.redirect_slot)]
    # Only packets that leave are read back (the others are not compared): fewer cycles with
    # Python awake.
    leaves = read(dut.result_fault) == 0 and \
        (read(dut.result_r0) & 0xffff_ffff) in abi.LEAVING_ACTIONS
    if item.get("readback") and "data" in extra and leaves:
        start, end = extra["data"] - abi.PKT_BASE, extra["data_end"] - abi.PKT_BASE
        if 0 <= start <= end <= abi.PKT_BUF_SIZE:
            extra["packet"] = (await bench.read_packet(start, end)).hex()
    return extra


async def _run_item(bench, index, item, loaded):
    """Run one item; ``loaded`` is the program already in program memory (not written again:
    a batch of packets for one program writes it once). Returns the item's status."""
    dut = bench.dut
    clk = bench.clock
    while read(dut.busy):
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
        await bench.reset()
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
    pattern = batch.get("pattern", ("always", 1))
    bench = XdpBench(dut, pattern) if hasattr(dut, "map_host_req__valid") else \
        CoreBench(dut, pattern)
    await bench.reset()
    drv = None
    if "maps" in batch:
        drv = await bench.setup_maps(batch["maps"])
    loaded = None
    for index, item in enumerate(batch["items"]):
        status.append(await _run_item(bench, index, item, loaded))
        extras.append(await _extras(bench, item) if status[-1] == "done" else {})
        # After a timeout the design was reset: write the program again to be safe.
        loaded = item["slots"] if status[-1] == "done" else None
    dump = await bench.dump_maps() if drv is not None and batch["maps"].get("dump") else None
    # Let the wrapper log the last cycle's events and flush before the simulator stops.
    dut.tb_finish.value = 1
    for _ in range(3):
        await RisingEdge(dut.clk)
    with open(results_path + ".tmp", "w") as f:
        json.dump({"status": status, "extras": extras, "maps": dump}, f)
    os.replace(results_path + ".tmp", results_path)
