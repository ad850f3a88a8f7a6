"""The cocotb test that runs a capture through the SoC (loaded by the simulator through
:mod:`bpfcore.sim.rtl.soc_runner`, never imported by user code).

The run is described by the JSON file named by ``BPFCORE_SOC_RUN``: the program slots and
``entry_len``, the map memory's ``maps`` section (as :mod:`bpfcore.sim.rtl.cocotb_bench` takes
it), the helper clock ``time_ns``. The test resets the design, writes the program, sets up the
maps, starts the HDL frame players (``tb_go``) and sleeps until they have played everything and
the SoC has drained (every slot free, the core idle); then it reads the counters and the maps
back and writes them to ``BPFCORE_SOC_RESULTS``. Frames in and out, runs and retirements are
logged by the wrapper (:mod:`bpfcore.sim.rtl.soc_tb`); Python is awake only while loading and
reading back.
"""

import json
import os

import cocotb
from cocotb.triggers import RisingEdge, Timer

from bpfcore.sim.rtl.drivers import XdpBench, read

#: Sync cycles between two looks at the drain condition.
POLL_CYCLES = 64


@cocotb.test()
async def run_capture(dut):
    with open(os.environ["BPFCORE_SOC_RUN"]) as f:
        spec = json.load(f)
    bench = XdpBench(dut, tuple(spec.get("pattern", ("always", 1))))
    clk = dut.clk
    await bench.reset(4)
    for addr, word in enumerate(spec["slots"]):
        dut.prog_we.value = 1
        dut.prog_addr.value = addr
        dut.prog_wdata.value = word
        await RisingEdge(clk)
    dut.prog_we.value = 0
    dut.entry_len.value = spec.get("entry_len", 0)
    if "maps" in spec:
        await bench.setup_maps(spec["maps"])
    dut.time_value.value = spec.get("time_ns", 0) & (2**64 - 1)
    dut.time_we.value = 1
    await RisingEdge(clk)
    dut.time_we.value = 0
    dut.tb_go.value = 1
    await RisingEdge(dut.tb_played)
    slots = spec["slots_free"]
    limit = spec["drain_cycles"]
    waited = 0
    while not (read(dut.free_slots) == slots and not read(dut.busy)):
        await Timer(POLL_CYCLES * spec["sync_period_ns"], unit="ns")
        waited += POLL_CYCLES
        if waited > limit:
            break
    drained = waited <= limit
    # Let the last frame leave the transmitter (its FIFO and the MAC).
    await Timer(spec["tail_ns"], unit="ns")
    counters = read(dut.counters)
    maps = await bench.dump_maps() if "maps" in spec and spec["maps"].get("dump") else None
    dut.tb_finish.value = 1
    for _ in range(3):
        await RisingEdge(clk)
    results = {"drained": drained, "counters": hex(counters), "maps": maps}
    path = os.environ["BPFCORE_SOC_RESULTS"]
    with open(path + ".tmp", "w") as f:
        json.dump(results, f)
    os.replace(path + ".tmp", path)
