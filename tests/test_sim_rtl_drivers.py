"""The cocotb stream drivers (:mod:`bpfcore.sim.rtl.drivers`) on a small design of our own: a
stream FIFO converted to Verilog and run under Icarus with the project's runner.

Every payload sent arrives in order under several valid/ready patterns, and the source keeps
``valid`` up and the payload stable until each transfer (checked by a monitor on the bus); X/Z
bits are flagged by name. The patterns' seed is BPFCORE_SEED (printed on failure).

The cocotb tests (``drivers_*``, not collected by pytest) run inside the simulator, which imports
this module again.
"""

import inspect
import itertools
import os
import random

import cocotb
import pytest
from amaranth import Module
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from bpfcore.errors import BpfcoreError
from bpfcore.sim.rtl.drivers import (PATTERNS, StreamSink, StreamSource, UndefinedBits,
                                     bench_pattern, field_mask, flow, read, reset)
from bpfcore.sim.rtl.verilog import TopSpec

WIDTH = 16
DEPTH = 3
PAYLOADS = 40


class StreamPipe(wiring.Component):
    """Stream ``i`` through a ``SyncFIFOBuffered`` to stream ``o``: its ``i.ready`` drops when
    the FIFO is full, so back-pressure on ``o`` reaches the source."""

    i: In(stream.Signature(WIDTH))
    o: Out(stream.Signature(WIDTH))

    def elaborate(self, platform):
        m = Module()
        m.submodules.fifo = buf = fifo.SyncFIFOBuffered(width=WIDTH, depth=DEPTH)
        wiring.connect(m, wiring.flipped(self.i), buf.w_stream)
        wiring.connect(m, buf.r_stream, wiring.flipped(self.o))
        return m


def pipe_spec():
    return TopSpec(factory=f"{__name__}:StreamPipe", name="stream_pipe", sources=[],
                   salt=inspect.getsource(StreamPipe) + f"{WIDTH} {DEPTH}")


def _run(testcase, seed):
    from bpfcore.sim.rtl.runner import run_cocotb_tests
    tests, failed, log = run_cocotb_tests(pipe_spec(), __name__, testcase=testcase,
                                          extra_env={"BPFCORE_SEED": str(seed)})
    return tests, failed, log


# --- inside the simulator ------------------------------------------------------------------

#: (valid pattern, ready pattern) per case: names of drivers.flow, or a list (cycled).
CASES = [("always", "always"), ("slow", "always"), ("always", "slow"), ("random", "random"),
         ("slow", "random"), ([1, 1, 0], [0, 0, 0, 1])]


def _pattern(spec, seed, role):
    return itertools.cycle(spec) if isinstance(spec, list) else flow(spec, seed, role)


async def _watch(dut, log):
    """Per cycle, the source side of the pipe as the rising edge samples it: logs the
    transfers, the stalls and every break of the stream rules the source must keep."""
    from cocotb.triggers import FallingEdge, ReadOnly
    held = None                          # payload offered and not taken in the last cycle
    while True:
        await FallingEdge(dut.clk)
        await ReadOnly()
        valid, ready = read(dut.i__valid), read(dut.i__ready)
        payload = read(dut.i__payload) if valid else None
        if held is not None and not valid:
            log["broken"].append(f"cycle {log['cycles']}: valid dropped before the transfer")
        elif held is not None and payload != held:
            log["broken"].append(f"cycle {log['cycles']}: payload {held:#x} became "
                                 f"{payload:#x} while valid")
        if valid and ready:
            log["transfers"].append(payload)
        log["stalls"] += valid and not ready
        log["cycles"] += 1
        held = payload if valid and not ready else None


@cocotb.test()
async def drivers_in_order(dut):
    from cocotb.clock import Clock
    seed = int(os.environ.get("BPFCORE_SEED", "1"))
    rng = random.Random(seed)
    Clock(dut.clk, 10, unit="ns").start()
    dut.i__valid.value = 0
    dut.o__ready.value = 0
    await reset(dut)
    for valid, ready in CASES:
        what = f"valid {valid}, ready {ready}, seed {seed}"
        source = StreamSource(dut, "i", dut.clk, valid=_pattern(valid, seed, "i"))
        sink = StreamSink(dut, "o", dut.clk, ready=_pattern(ready, seed, "o"))
        log = {"transfers": [], "stalls": 0, "cycles": 0, "broken": []}
        watch = cocotb.start_soon(_watch(dut, log))
        payloads = [rng.getrandbits(WIDTH) for _ in range(PAYLOADS)]
        assert source.idle() and sink.idle()
        for payload in payloads[:PAYLOADS // 2]:
            source.send_nowait(payload)
        got = [await sink.recv() for _ in range(4)]
        for payload in payloads[PAYLOADS // 2:]:
            await source.send(payload)
        got += [await sink.recv() for _ in range(PAYLOADS - 4)]
        await source.wait()
        assert got == payloads, what
        assert log["transfers"] == payloads and not log["broken"], f"{what}: {log['broken']}"
        assert source.idle() and sink.idle() and source.sent == sink.received == PAYLOADS, what
        if valid == "slow":                          # an idle cycle before each payload
            assert log["cycles"] >= 3 * PAYLOADS - 2, what
        if ready != "always" and valid != "slow":    # the full FIFO pushed back on the source
            assert log["stalls"] > 0, what
        watch.cancel()
        source.stop()
        sink.stop()


@cocotb.test()
async def drivers_monitor_catches_a_broken_source(dut):
    """The stability check bites: a hand-driven source that changes its payload, then drops
    valid, while the full FIFO holds ready low."""
    from cocotb.clock import Clock
    from cocotb.triggers import FallingEdge
    Clock(dut.clk, 10, unit="ns").start()
    dut.i__valid.value = 0
    dut.o__ready.value = 0
    await reset(dut)
    log = {"transfers": [], "stalls": 0, "cycles": 0, "broken": []}
    watch = cocotb.start_soon(_watch(dut, log))
    for payload in list(range(1, DEPTH + 1)) + [0x77, 0x78, None]:
        await FallingEdge(dut.clk)
        dut.i__valid.value = payload is not None
        dut.i__payload.value = payload or 0
    await FallingEdge(dut.clk)
    watch.cancel()
    assert log["transfers"] == list(range(1, DEPTH + 1)), log
    assert [line.split(": ", 1)[1] for line in log["broken"]] == [
        "payload 0x77 became 0x78 while valid", "valid dropped before the transfer"], log


@cocotb.test()
async def drivers_flag_undefined_bits(dut):
    from cocotb.clock import Clock
    from cocotb.triggers import FallingEdge, RisingEdge
    Clock(dut.clk, 10, unit="ns").start()
    dut.i__valid.value = 0
    dut.o__ready.value = 0
    await reset(dut)
    # Nothing drives i__payload (an input of the toplevel): Z.
    with pytest.raises(UndefinedBits, match=r"i__payload: 16 undefined \(X/Z\) bit\(s\)"):
        read(dut.i__payload)
    assert read(dut.i__payload, mask=0) == 0
    sink = StreamSink(dut, "o", dut.clk)
    await FallingEdge(dut.clk)
    dut.i__valid.value = 1                           # a transfer of the undriven payload
    await RisingEdge(dut.clk)
    await FallingEdge(dut.clk)
    dut.i__valid.value = 0
    dut.i__payload.value = 0x1234
    with pytest.raises(UndefinedBits, match=r"o__payload \(transfer 0\): 16 undefined"):
        await sink.recv()
    assert sink.received == 1 and sink.idle()
    source = StreamSource(dut, "i", dut.clk)
    source.send_nowait(0x00ff)
    assert await sink.recv() == 0x00ff
    await source.wait()


# --- pytest ----------------------------------------------------------------------------------

def test_every_payload_arrives_in_order_under_every_pattern(seed):
    tests, failed, log = _run("drivers_in_order", seed)
    assert (tests, failed) == (1, 0), f"seed {seed}: see {log}"


def test_the_stability_check_catches_a_broken_source(seed):
    tests, failed, log = _run("drivers_monitor_catches_a_broken_source", seed)
    assert (tests, failed) == (1, 0), f"see {log}"


def test_undefined_bits_are_flagged_by_name(seed):
    tests, failed, log = _run("drivers_flag_undefined_bits", seed)
    assert (tests, failed) == (1, 0), f"see {log}"


def test_flow_patterns():
    take = lambda it: list(itertools.islice(it, 9))          # noqa: E731
    assert take(flow()) == [1] * 9
    assert take(flow("slow")) == [1, 0, 0] * 3
    assert take(flow("random", 5, "a")) == take(flow("random", 5, "a"))
    assert take(flow("random", 5, "a")) != take(flow("random", 5, "b"))
    assert set(take(flow("random", 1))) == {0, 1}
    assert set(PATTERNS) == {"always", "random", "slow"}
    with pytest.raises(BpfcoreError, match="unknown flow pattern 'fast'"):
        flow("fast")


def test_bench_pattern_comes_from_the_environment():
    assert bench_pattern({}) == ("always", 1)
    assert bench_pattern({"BPFCORE_BENCH_PATTERN": "random", "BPFCORE_SEED": "7"}) == \
        ("random", 7)
    with pytest.raises(BpfcoreError, match="BPFCORE_BENCH_PATTERN='rnd'"):
        bench_pattern({"BPFCORE_BENCH_PATTERN": "rnd"})


def test_field_mask():
    from amaranth.lib import data
    layout = data.StructLayout({"a": 4, "b": 8, "c": 4})
    assert field_mask(layout, "b") == 0xff0
    assert field_mask(layout, "a", "c") == 0xf00f
