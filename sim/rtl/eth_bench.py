"""cocotb benches of :class:`~bpfcore.hdl.eth.port.EthPort` against cocotbext-eth's models.

Loaded by the simulator through :func:`bpfcore.sim.rtl.eth.run`, never imported by user code.
``ETH_INTERFACE`` says which port was built: ``gmii`` (GmiiSource/GmiiSink on the byte MAC) or
``rgmii`` (RgmiiSource/RgmiiSink on the pins, behavioural DDR registers, TXC seen 2 ns late as
an RGMII-ID PHY sees it). ``BPFCORE_SEED`` seeds the frame data, lengths, order, idle cycles and
back-pressure; every failure message names it.

One :class:`TB` per test: clocks (``rx0`` 125 MHz, ``tx`` 125 MHz 250 ppm apart from it, ``sync``
62.5 MHz, or as ``ETH_SYNC_PS`` says), the PHY-side models, a consumer of the ``rx`` word stream
with random back-pressure that keeps good frames and discards bad ones (as a packet buffer
would), a producer of ``tx`` words with random idle cycles, and a monitor of the transmit gap.
"""

import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, ReadOnly, RisingEdge, Timer
from cocotb.utils import get_sim_time

from bpfcore.hdl.eth.layouts import (COUNTER_NAMES, DEFAULT_MAX_LENGTH, FCS_BYTES, IFG_BYTES,
                                     MIN_FRAME, MIN_PAYLOAD, PREAMBLE_BYTES, WORD_BYTES)

SEED = int(os.environ.get("BPFCORE_SEED", "1"))
INTERFACE = os.environ.get("ETH_INTERFACE", "gmii")
SYNC_PS = int(os.environ.get("ETH_SYNC_PS", "16000"))
#: Frames per second of minimum-size frames at line rate: 84 byte times of 8 ns each.
LINE_RATE_FPS = 1e9 / 8 / (PREAMBLE_BYTES + 1 + MIN_FRAME + IFG_BYTES)
MAX_PAYLOAD = DEFAULT_MAX_LENGTH - FCS_BYTES
COUNTER_WIDTH = 32


def _int(value):
    text = str(value)
    return int("".join(c if c in "01" else "0" for c in text), 2)


class TB:
    def __init__(self, dut, stall=0.2, idle=0.1):
        from cocotbext.eth import GmiiFrame, GmiiSink, GmiiSource, RgmiiSink, RgmiiSource
        self.dut = dut
        self.rng = random.Random(SEED)
        self.stall = stall
        self.idle = idle
        self.Frame = GmiiFrame
        cocotb.start_soon(Clock(dut.clk, SYNC_PS, unit="ps").start())
        cocotb.start_soon(Clock(dut.rx0_clk, 8, unit="ns").start())
        cocotb.start_soon(self._tx_clock())
        if INTERFACE == "gmii":
            self.source = GmiiSource(dut.gmii_rx__data, dut.gmii_rx__er, dut.gmii_rx__en,
                                     dut.rx0_clk)
            self.sink = GmiiSink(dut.gmii_tx__data, dut.gmii_tx__er, dut.gmii_tx__en,
                                 dut.tx_clk)
            self.tx_clock, self.tx_en = dut.tx_clk, lambda: _int(dut.gmii_tx__en.value)
            self.rx_en = lambda: _int(dut.gmii_rx__en.value)
        else:
            self.source = RgmiiSource(dut.rgmii__rx_data, dut.rgmii__rx_ctl, dut.rx0_clk)
            self.sink = RgmiiSink(dut.rgmii__tx_data, dut.rgmii__tx_ctl, dut.txc_phy)
            self.tx_clock, self.tx_en = dut.txc_phy, lambda: _int(dut.rgmii__tx_ctl.value)
            self.rx_en = lambda: _int(dut.rgmii__rx_ctl.value)
        # What the consumer saw: good frames, bad frame ends, bytes taken.
        self.rx_good = []
        self.rx_bad = 0
        self.rx_bytes = 0
        self.gaps = []
        self.lengths = []
        self.starts = []           # sim time (ps) of each transmitted frame's first byte
        self.rx_starts = []        # and of each received one

    async def _tx_clock(self):
        # 250 ppm from the receive clock: the two 125 MHz domains drift as two crystals would.
        await Timer(3, unit="ns")
        Clock(self.dut.tx_clk, 8002, unit="ps").start()

    async def reset(self):
        dut = self.dut
        for rst in (dut.rst, dut.rx0_rst, dut.tx_rst):
            rst.value = 1
        await ClockCycles(dut.clk, 8)
        for rst in (dut.rst, dut.rx0_rst, dut.tx_rst):
            rst.value = 0
        await ClockCycles(dut.clk, 8)
        cocotb.start_soon(self._consume())
        cocotb.start_soon(self._watch_gap())
        cocotb.start_soon(self._watch_rx())

    def counters(self):
        value = _int(self.dut.counters.value)
        mask = (1 << COUNTER_WIDTH) - 1
        return {name: value >> (COUNTER_WIDTH * i) & mask for i, name in enumerate(COUNTER_NAMES)}

    async def _consume(self):
        """The ``rx`` stream's consumer: inputs change at falling edges; a transfer happens at
        the next rising edge when valid and ready were both high (read once settled)."""
        dut = self.dut
        frame = bytearray()
        while True:
            await FallingEdge(dut.clk)
            ready = self.rng.random() >= self.stall
            dut.rx__ready.value = int(ready)
            await ReadOnly()
            if not (ready and _int(dut.rx__valid.value)):
                continue
            payload = _int(dut.rx__payload.value)
            data, count, last, good = (payload & (1 << 64) - 1, payload >> 64 & 15,
                                       payload >> 68 & 1, payload >> 69 & 1)
            assert 1 <= count <= WORD_BYTES, f"count {count} at byte {len(frame)} (seed {SEED})"
            assert last or count == WORD_BYTES, \
                f"partial word of {count} inside a frame, at byte {len(frame)} (seed {SEED})"
            frame += data.to_bytes(WORD_BYTES, "little")[:count]
            self.rx_bytes += count
            if last:
                if good:
                    self.rx_good.append(bytes(frame))
                else:
                    self.rx_bad += 1
                frame = bytearray()

    async def _watch_gap(self):
        """Byte times of each transmitted frame (TX_EN high) and idle ones between frames (TX_EN
        low; on RGMII the control wire at the rising edge of TXC as the PHY sees it). The
        sink models drop the first preamble byte, so lengths on the line are counted here."""
        idle, busy = 0, 0
        while True:
            await RisingEdge(self.tx_clock)
            if self.tx_en():
                if self.lengths and idle:
                    self.gaps.append(idle)
                if idle or not busy:
                    self.lengths.append(0)
                    self.starts.append(get_sim_time("ps"))
                self.lengths[-1] += 1
                idle, busy = 0, 1
            else:
                idle += 1

    async def _watch_rx(self):
        """The start time of each frame sent to the port (RX_DV rising; RX_CTL at RXC's rising
        edge on RGMII)."""
        busy = 0
        while True:
            await RisingEdge(self.dut.rx0_clk)
            en = self.rx_en()
            if en and not busy:
                self.rx_starts.append(get_sim_time("ps"))
            busy = en

    async def send_rx(self, frames, drain_to=1024):
        """Send ``frames`` (GmiiFrame) to the port back to back, waiting between bursts until
        the consumer has taken all but ``drain_to`` of the bytes sent (so the FIFO to the core
        domain, drained at the consumer's pace, never fills)."""
        written = self.rx_bytes
        burst = 0
        for frame in frames:
            size = len(frame.get_payload(strip_fcs=False)) - FCS_BYTES
            size = max(0, min(size, MAX_PAYLOAD))
            if burst + size > drain_to:
                await self.source.wait()
                await self.until(lambda: self.rx_bytes >= written)
                burst = 0
            await self.source.send(frame)
            written += size
            burst += size
        await self.source.wait()
        await self.until(lambda: self.rx_bytes >= written)
        await ClockCycles(self.dut.clk, 40)

    async def until(self, condition, limit=200_000):
        for _ in range(limit):
            if condition():
                return
            await RisingEdge(self.dut.clk)
        raise AssertionError(f"timed out waiting (seed {SEED})")

    async def send_tx(self, frames, odd_counts=False):
        """Put ``frames`` (bytes) on the ``tx`` stream in words, with random idle cycles; with
        ``odd_counts`` full words carry a random ``count`` among 8, 0 and 9..15 (all taken as
        8)."""
        dut = self.dut
        for frame in frames:
            for i in range(0, len(frame), WORD_BYTES):
                chunk = frame[i:i + WORD_BYTES]
                await FallingEdge(dut.clk)
                while self.idle and self.rng.random() < self.idle:
                    dut.tx__valid.value = 0
                    await FallingEdge(dut.clk)
                last = i + WORD_BYTES >= len(frame)
                count = len(chunk)
                if odd_counts and count == WORD_BYTES:
                    count = self.rng.choice((WORD_BYTES, 0, self.rng.randint(9, 15)))
                dut.tx__payload.value = (int.from_bytes(chunk, "little") | count << 64 |
                                         last << 68)
                dut.tx__valid.value = 1
                while True:
                    await ReadOnly()
                    if _int(dut.tx__ready.value):
                        break
                    await FallingEdge(dut.clk)
        await FallingEdge(dut.clk)
        dut.tx__valid.value = 0

    def payload(self, length):
        return bytes(self.rng.randrange(256) for _ in range(length))


def _good(tb, payload):
    return tb.Frame.from_payload(payload)


def _bad_fcs(tb, payload):
    frame = tb.Frame.from_payload(payload)
    frame.data[-1] ^= 1 << tb.rng.randrange(8)
    return frame


def _runt(tb, payload):
    return tb.Frame.from_payload(payload, min_len=0)


def _rx_error(tb, payload):
    frame = tb.Frame.from_payload(payload)
    frame.error = [0] * len(frame.data)
    frame.error[tb.rng.randrange(10, len(frame.data))] = 1
    return frame


@cocotb.test()
async def rx_frames(dut):
    """Good frames (60, 61, 1514 and random payloads), bad FCS, runts (down to no byte
    before the FCS), oversize and RX_ER frames, shuffled, back to back in bursts: only the good
    ones reach the consumer, intact and in order, and each kind is counted."""
    tb = TB(dut)
    await tb.reset()
    rng = tb.rng
    light = INTERFACE == "rgmii"          # the RGMII run repeats fewer long frames
    kinds = ([("good", n) for n in (60, 61, MAX_PAYLOAD)] +
             [("good", rng.randint(60, 400 if light else MAX_PAYLOAD)) for _ in range(4 if light
                                                                                    else 8)] +
             [("good", rng.randint(60, 128)) for _ in range(6)] +
             [("fcs", rng.randint(60, 300)) for _ in range(3)] +
             [("runt", n) for n in (0, 1, 59)] + [("runt", rng.randint(2, 58))] +
             [("oversize", MAX_PAYLOAD + 1), ("oversize", rng.randint(MAX_PAYLOAD + 2, 1600))] +
             [("rx_error", rng.randint(60, 200)) for _ in range(2)])
    rng.shuffle(kinds)
    make = {"good": _good, "fcs": _bad_fcs, "runt": _runt, "oversize": _good,
            "rx_error": _rx_error}
    sent, good = [], []
    for kind, length in kinds:
        payload = tb.payload(length)
        sent.append(make[kind](tb, payload))
        if kind == "good":
            good.append(payload)
    await tb.send_rx(sent)

    assert tb.rx_good == good, (
        f"good frames differ (seed {SEED}): got lengths {[len(f) for f in tb.rx_good]}, "
        f"sent {[len(f) for f in good]}")
    expect = {name: 0 for name in COUNTER_NAMES}
    expect.update(frames_rx=len(good), bytes_rx=sum(map(len, good)),
                  fcs_error=sum(k == "fcs" for k, _ in kinds),
                  runt=sum(k == "runt" for k, _ in kinds),
                  oversize=sum(k == "oversize" for k, _ in kinds),
                  rx_error=sum(k == "rx_error" for k, _ in kinds))
    assert tb.counters() == expect, f"counters {tb.counters()} != {expect} (seed {SEED})"


@cocotb.test()
async def rx_overflow(dut):
    """The consumer stalls while ten 600-byte frames arrive back to back: the FIFO (512
    words) takes six and part of a seventh; every frame is either delivered whole or counted as
    an overflow, never delivered truncated."""
    tb = TB(dut, stall=1.0)
    await tb.reset()
    payloads = [tb.payload(600) for _ in range(10)]
    for payload in payloads:
        await tb.source.send(_good(tb, payload))
    await tb.source.wait()
    await ClockCycles(dut.clk, 20)
    tb.stall = 0.2
    await tb.until(lambda: tb.counters()["frames_rx"] + tb.counters()["overflow"] == 10)
    await ClockCycles(dut.clk, 100)
    counters = tb.counters()
    assert counters["frames_rx"] == len(tb.rx_good) >= 6, f"{counters} (seed {SEED})"
    assert counters["frames_rx"] + counters["overflow"] == 10, f"{counters} (seed {SEED})"
    assert counters["overflow"] >= 3, f"{counters} (seed {SEED})"   # 7 x 75 words > 513
    assert tb.rx_good == payloads[:len(tb.rx_good)], f"delivered frames differ (seed {SEED})"
    # Nothing is stuck: a frame after the overflow gets through.
    payload = tb.payload(100)
    await tb.send_rx([_good(tb, payload)])
    assert tb.rx_good[-1] == payload, f"no frame after the overflow (seed {SEED})"


@cocotb.test()
async def rx_line_rate(dut):
    """250 minimum-size frames (64 bytes with FCS) back to back with the minimum 12-byte gap,
    the ``rx`` stream always ready: none overflows, every frame arrives intact and in order."""
    tb = TB(dut, stall=0.0)
    await tb.reset()
    payloads = [tb.payload(MIN_PAYLOAD) for _ in range(250)]
    frames = [_good(tb, payload) for payload in payloads]
    for frame in frames:
        tb.source.send_nowait(frame)
    await tb.source.wait()
    await tb.until(lambda: len(tb.rx_good) + tb.rx_bad >= len(frames), limit=2000)
    await ClockCycles(dut.clk, 40)
    assert len(tb.rx_starts) == len(frames), f"{len(tb.rx_starts)} frames sent (seed {SEED})"
    span = (tb.rx_starts[-1] - tb.rx_starts[0]) * 1e-12
    fps = (len(frames) - 1) / span
    dut._log.info(f"rx: {len(frames)} frames at {fps / 1e6:.4f} Mpps offered "
                  f"({fps / LINE_RATE_FPS:.2%} of line rate), sync {SYNC_PS} ps")
    assert fps >= 0.999 * LINE_RATE_FPS, f"the source sent at {fps:.0f} frames/s (seed {SEED})"
    counters = tb.counters()
    assert counters["overflow"] == 0 and tb.rx_bad == 0, f"{counters} (seed {SEED})"
    assert tb.rx_good == payloads, f"frames differ or are missing (seed {SEED})"
    assert counters["frames_rx"] == len(frames), f"{counters} (seed {SEED})"


@cocotb.test()
async def tx_line_rate(dut):
    """250 minimum-size frames written back to back as words: they leave with exactly the
    12-byte gap, at least 99% of the line's 1.488 Mpps, intact."""
    tb = TB(dut, idle=0.0)
    await tb.reset()
    payloads = [tb.payload(MIN_PAYLOAD) for _ in range(250)]
    await tb.send_tx(payloads)
    received = [await tb.sink.recv() for _ in payloads]
    await ClockCycles(dut.clk, 40)
    span = (tb.starts[len(payloads) - 1] - tb.starts[0]) * 1e-12
    fps = (len(payloads) - 1) / span
    dut._log.info(f"tx: {len(payloads)} frames at {fps / 1e6:.4f} Mpps "
                  f"({fps / LINE_RATE_FPS:.2%} of line rate), sync {SYNC_PS} ps")
    assert fps >= 0.99 * LINE_RATE_FPS, f"{fps:.0f} frames/s on the line (seed {SEED})"
    assert set(tb.gaps) == {IFG_BYTES}, f"gaps {sorted(set(tb.gaps))} (seed {SEED})"
    for payload, frame in zip(payloads, received):
        assert frame.check_fcs() and bytes(frame.get_payload()) == payload, \
            f"a frame differs on the line (seed {SEED})"
    assert tb.counters()["frames_tx"] == len(payloads), f"{tb.counters()} (seed {SEED})"


@cocotb.test()
async def tx_frames(dut):
    """Frames of 1, 17, 59, 60, 61, 1514 and random lengths, and one of 1520 bytes: the line
    sees the preamble, the frame padded to 60 bytes, a correct FCS and gaps of at least 12
    bytes; a burst of short frames goes out with exactly the minimum gap; the 1520-byte
    frame is cut to 1514 and counted. Full words carry counts of 0 and 9..15 too (taken as 8)."""
    tb = TB(dut)
    await tb.reset()
    rng = tb.rng
    light = INTERFACE == "rgmii"
    lengths = [1, 17, 59, 60, 61, MAX_PAYLOAD] + \
        [rng.randint(1, 300 if light else MAX_PAYLOAD) for _ in range(3 if light else 5)] + \
        [MAX_PAYLOAD + 6] + [rng.randint(1, 20) for _ in range(6)]    # the burst
    frames = [tb.payload(n) for n in lengths]
    await tb.send_tx(frames, odd_counts=True)
    received = []
    for _ in frames:
        received.append(await tb.sink.recv())
    await ClockCycles(dut.clk, 60)

    for sent, frame, length in zip(frames, received, tb.lengths):
        expected = sent[:MAX_PAYLOAD].ljust(MIN_PAYLOAD, b"\0")
        preamble = bytes(frame.get_preamble())
        assert preamble[-1] == 0xD5 and set(preamble[:-1]) == {0x55}, f"preamble (seed {SEED})"
        # Seven preamble bytes, the SFD, the padded frame, the FCS.
        assert length == 8 + len(expected) + FCS_BYTES, \
            f"{length} byte times on the line for a frame of {len(sent)} (seed {SEED})"
        assert frame.error is None, f"TX_ER in a frame of {len(sent)} (seed {SEED})"
        assert frame.check_fcs(), f"bad FCS on a frame of {len(sent)} (seed {SEED})"
        assert bytes(frame.get_payload()) == expected, \
            f"frame of {len(sent)} bytes differs on the line (seed {SEED})"
    assert min(tb.gaps) >= 12, f"gap of {min(tb.gaps)} byte times (seed {SEED})"
    assert tb.gaps[-5:] == [12] * 5, f"burst gaps {tb.gaps[-5:]} (seed {SEED})"
    expect = {name: 0 for name in COUNTER_NAMES}
    expect.update(frames_tx=len(frames), bytes_tx=sum(min(n, MAX_PAYLOAD) for n in lengths),
                  tx_truncated=1)
    assert tb.counters() == expect, f"counters {tb.counters()} != {expect} (seed {SEED})"
