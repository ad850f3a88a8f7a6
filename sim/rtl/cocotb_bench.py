"""The cocotb test that runs a batch of programs in one simulator invocation.

Loaded by the simulator (through :mod:`bpfcore.sim.rtl.runner`), never imported by user code. The
batch is a JSON file named by ``BPFCORE_RTL_BATCH``; for each item it writes the program through
the program port and the input bytes through the packet port, sets the run inputs, pulses
``start`` and waits for ``done`` (or a cycle limit, after which it resets the design). Everything
the design does is logged by the HDL wrapper itself; this test only writes each item's status
(``done`` / ``timeout``) into ``BPFCORE_RTL_RESULTS``.
"""

import json
import os

import cocotb
from cocotb.triggers import First, RisingEdge, Timer

PERIOD_NS = 10
_RUN_INPUTS = ("start_r1", "start_r2", "budget", "data", "data_end", "ingress_ifindex",
               "rx_queue_index")


async def _reset(dut, cycles=3):
    dut.rst.value = 1
    for _ in range(cycles):
        await RisingEdge(dut.clk)
    dut.rst.value = 0
    await RisingEdge(dut.clk)


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
    await _reset(dut)
    loaded = None
    for index, item in enumerate(batch["items"]):
        status.append(await _run_item(dut, index, item, loaded))
        # After a timeout the design was reset: write the program again to be safe.
        loaded = item["slots"] if status[-1] == "done" else None
    # Let the wrapper log the last cycle's events and flush before the simulator stops.
    dut.tb_finish.value = 1
    for _ in range(3):
        await RisingEdge(dut.clk)
    with open(results_path + ".tmp", "w") as f:
        json.dump({"status": status}, f)
    os.replace(results_path + ".tmp", results_path)
