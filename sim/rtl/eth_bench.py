"""cocotb benches of :class:`~bpfcore.hdl.eth.port.EthPort` against cocotbext-eth's models.

Loaded by the simulator through :func:`bpfcore.sim.rtl.eth.run`, never imported by user code.
``ETH_INTERFACE`` says which port was built: ``gmii`` (GmiiSource/GmiiSink on the byte MAC) or
``rgmii`` (RgmiiSource/RgmiiSink on the pins, behavioural DDR registers, TXC seen 2 ns late as
an RGMII-ID PHY sees it). ``BPFCORE_SEED`` seeds the frame data, lengths, order, idle cycles and
back-pressure; every failure message names it.

One :class:`TB` per test: clocks (``rx0`` 125 MHz, ``tx`` 125 MHz 250 ppm apart from it, ``sync``
62.5 MHz), the PHY-side models, a consumer of the ``rx`` stream with random back-pressure that
keeps good frames and discards bad ones (as a packet buffer would), a producer on ``tx`` with
random idle cycles, and a monitor of the transmit gap.
"""

import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, ReadOnly, RisingEdge, Timer

from bpfcore.hdl.eth.layouts import COUNTER_NAMES, DEFAULT_MAX_LENGTH, FCS_BYTES, MIN_PAYLOAD

SEED = int(os.environ.get("BPFCORE_SEED", "1"))
INTERFACE = os.environ.get("ETH_INTERFACE", "gmii")
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
        cocotb.start_soon(Clock(dut.clk, 16, unit="ns").start())
        cocotb.start_soon(Clock(dut.rx0_clk, 8, unit="ns").start())
        cocotb.start_soon(self._tx_clock())
        if INTERFACE == "gmii":
            self.source = GmiiSource(dut.gmii_rx__data, dut.gmii_rx__er, dut.gmii_rx__en,
                                     dut.rx0_clk)
            self.sink = GmiiSink(dut.gmii_tx__data, dut.gmii_tx__er, dut.gmii_tx__en,
                                 dut.tx_clk)
            self.tx_clock, self.tx_en = dut.tx_clk, lambda: _int(dut.gmii_tx__en.value)
        else:
            self.source = RgmiiSource(dut.rgmii__rx_data, dut.rgmii__rx_ctl, dut.rx0_clk)
            self.sink = RgmiiSink(dut.rgmii__tx_data, dut.rgmii__tx_ctl, dut.txc_phy)
            self.tx_clock, self.tx_en = dut.txc_phy, lambda: _int(dut.rgmii__tx_ctl.value)
        # What the consumer saw: good frames, bad frame ends, bytes taken.
        self.rx_good = []
        self.rx_bad = 0
        self.rx_bytes = 0
        self.gaps = []
        self.lengths = []

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
            data, first, last, good = (payload & 0xFF, payload >> 8 & 1, payload >> 9 & 1,
                                       payload >> 10 & 1)
            assert first == (not frame), f"first={first} at byte {len(frame)} (seed {SEED})"
            frame.append(data)
            self.rx_bytes += 1
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
                self.lengths[-1] += 1
                idle, busy = 0, 1
            else:
                idle += 1

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

    async def send_tx(self, frames):
        """Put ``frames`` (bytes) on the ``tx`` stream, with random idle cycles."""
        dut = self.dut
        for frame in frames:
            for i, byte in enumerate(frame):
                await FallingEdge(dut.clk)
                while self.idle and self.rng.random() < self.idle:
                    dut.tx__valid.value = 0
                    await FallingEdge(dut.clk)
                dut.tx__payload.value = byte | (i == 0) << 8 | (i == len(frame) - 1) << 9
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
    """The consumer stalls while six 600-byte frames arrive back to back: the FIFO takes
    three and part of a fourth; every frame is either delivered whole or counted as an
    overflow, never delivered truncated."""
    tb = TB(dut, stall=1.0)
    await tb.reset()
    payloads = [tb.payload(600) for _ in range(6)]
    for payload in payloads:
        await tb.source.send(_good(tb, payload))
    await tb.source.wait()
    await ClockCycles(dut.clk, 20)
    tb.stall = 0.2
    await tb.until(lambda: tb.counters()["frames_rx"] + tb.counters()["overflow"] == 6)
    await ClockCycles(dut.clk, 100)
    counters = tb.counters()
    assert counters["frames_rx"] == len(tb.rx_good) >= 3, f"{counters} (seed {SEED})"
    assert counters["frames_rx"] + counters["overflow"] == 6, f"{counters} (seed {SEED})"
    assert counters["overflow"] >= 2, f"{counters} (seed {SEED})"   # 4 x 600 > 2048
    assert tb.rx_good == payloads[:len(tb.rx_good)], f"delivered frames differ (seed {SEED})"
    # Nothing is stuck: a frame after the overflow gets through.
    payload = tb.payload(100)
    await tb.send_rx([_good(tb, payload)])
    assert tb.rx_good[-1] == payload, f"no frame after the overflow (seed {SEED})"


@cocotb.test()
async def tx_frames(dut):
    """Frames of 1, 17, 59, 60, 61, 1514 and random lengths, and one of 1520 bytes: the line
    sees the preamble, the frame padded to 60 bytes, a correct FCS and gaps of at least 12
    bytes; a burst of short frames goes out with exactly the minimum gap; the 1520-byte
    frame is cut to 1514 and counted."""
    tb = TB(dut)
    await tb.reset()
    rng = tb.rng
    light = INTERFACE == "rgmii"
    lengths = [1, 17, 59, 60, 61, MAX_PAYLOAD] + \
        [rng.randint(1, 300 if light else MAX_PAYLOAD) for _ in range(3 if light else 5)] + \
        [MAX_PAYLOAD + 6] + [rng.randint(1, 20) for _ in range(6)]    # the burst
    frames = [tb.payload(n) for n in lengths]
    await tb.send_tx(frames)
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
