"""The packet datapath against a Python reference, with a behavioural slot memory and a fake core.

The bench (one per test, :class:`Bench`) drives random frames into both receive streams (random
lengths, bad, runt and too-long frames, idle cycles), answers the slot port from Python byte
arrays, plays the core (random run times; a verdict chosen by the frame's byte 0; moved packet
bounds from bytes 6 and 7, so transmits start at any byte), and takes the transmit streams with
back-pressure. The reference (:func:`ref_outcome`) says what each frame becomes; since *which*
frames find no free slot is a matter of timing, the bench reads that per frame from the receiver
(``discarding`` after the frame's last word) and checks everything else exactly: the frames the
core ran (each good frame with a slot exactly once, nothing else, in arrival order per port), the
frames each port sent (bytes and order) and every counter. Seed: BPFCORE_SEED.
"""

import os
import random

import pytest
from amaranth import Module
from amaranth.lib import wiring
from amaranth.sim import Simulator

from bpfcore import abi
from bpfcore.abi import XdpAction
from bpfcore.hdl.datapath import COUNTER_NAMES, Datapath, RxBytesToWords, TxWordsToBytes
from bpfcore.hdl.datapath.tx import TxReader
from bpfcore.hdl.helpers import RedirectKind
from bpfcore.sim.model.xdp import MAX_PACKET
from bpfcore.sim.rtl.streams import stream_get, stream_put

#: Frames per port in the random traffic tests.
FRAMES = int(os.environ.get("BPFCORE_DP_FRAMES", "30"))
HEAD = abi.PKT_HEADROOM
#: Cycles without progress after which the bench declares a hang.
HANG = 20_000


# -- the reference --------------------------------------------------------------------------------

def core_rule(frame):
    """The fake core's answer for ``frame``: (r0, fault, redirect kind, redirect ifindex, head
    move, tail move)."""
    sel = frame[0] % 12
    r0, fault, kind, ifindex = {
        0: (XdpAction.ABORTED, 0, RedirectKind.NONE, 0),
        1: (XdpAction.DROP, 0, RedirectKind.NONE, 0),
        2: (XdpAction.PASS, 0, RedirectKind.NONE, 0),
        3: (XdpAction.TX, 0, RedirectKind.NONE, 0),
        4: (XdpAction.REDIRECT, 0, RedirectKind.IFINDEX, 1),
        5: (XdpAction.REDIRECT, 0, RedirectKind.DEVMAP, 2),
        6: (XdpAction.REDIRECT, 0, RedirectKind.IFINDEX, 7),
        7: (XdpAction.REDIRECT, 0, RedirectKind.NONE, 1),
        8: (XdpAction.PASS, 3, RedirectKind.NONE, 0),
        9: (0xdead_0000_0000_0003, 0, RedirectKind.NONE, 0),
        10: (5, 0, RedirectKind.NONE, 0),
        11: (XdpAction.PASS, 0, RedirectKind.IFINDEX, 1),
    }[sel]
    head, tail = frame[6] % 25 - 12, frame[7] % 25 - 12
    if len(frame) - head + tail < abi.ETH_HLEN:
        head = tail = 0
    return int(r0), fault, kind, ifindex, head, tail


def head_bytes(n):
    """What the fake core writes in front of the packet when it grows the head by ``n``."""
    return bytes((0xa0 + i) & 0xff for i in range(n))


def ref_outcome(frame, port):
    """(counter name, output port or None, bytes sent) for a frame of ingress ``port`` the core
    runs: the rule the datapath must follow (bpfcore.sim.model.xdp.finished_packet's ports)."""
    r0, fault, kind, ifindex, head, tail = core_rule(frame)
    action = r0 & 0xffff_ffff
    out = (head_bytes(-head) if head < 0 else b"") \
        + frame[max(head, 0):len(frame) + min(tail, 0)] + bytes(max(tail, 0))
    if fault:
        return "aborted", None, None
    if action == XdpAction.TX:
        return "tx", port, out
    if action == XdpAction.PASS:
        return "pass", 1 - port, out
    if action == XdpAction.REDIRECT:
        if kind != RedirectKind.NONE and ifindex in (1, 2):
            return "redirect", ifindex - 1, out
        return "drop", None, None
    if action == XdpAction.DROP:
        return "drop", None, None
    return "aborted", None, None


class Frame:
    """One frame sent into a receive stream: its bytes, ``good`` flag and, after it was sent,
    whether it found no free slot."""

    def __init__(self, data, good=True):
        self.data, self.good, self.no_buffer = bytes(data), good, None

    @property
    def valid(self):
        """The datapath queues it for the core (given a slot)."""
        return self.good and abi.ETH_HLEN <= len(self.data) <= MAX_PACKET


def make_frames(rng, port, count, serials):
    """``count`` random frames (mostly good, 14..1514 bytes; some bad, runt or too long), among
    them, in random places, one of each corner: 1 byte, 13 bytes, 14 bytes, ``MAX_PACKET``,
    ``MAX_PACKET + 1``, longer than a slot, and a bad one. Each frame of 5 bytes or more carries
    a unique serial in bytes 1..4."""
    corners = [(1, True), (abi.ETH_HLEN - 1, True), (abi.ETH_HLEN, True), (MAX_PACKET, True),
               (MAX_PACKET + 1, True), (4500, True), (rng.randint(abi.ETH_HLEN, 200), False)]
    shapes = []
    for _ in range(max(count - len(corners), 0)):
        kind = rng.random()
        if kind < 0.04:
            length = rng.randint(1, abi.ETH_HLEN - 1)
        elif kind < 0.06:
            length = rng.randint(MAX_PACKET + 1, MAX_PACKET + 40)
        elif kind < 0.55:
            length = rng.randint(abi.ETH_HLEN, 120)
        else:
            length = rng.randint(abi.ETH_HLEN, 1514)
        shapes.append((length, rng.random() > 0.05))
    shapes += corners[:count]
    rng.shuffle(shapes)
    frames = []
    for length, good in shapes:
        data = bytearray(rng.randbytes(length))
        if length >= 5:
            serial = len(serials)
            data[1:5] = serial.to_bytes(4, "little")
            serials.append((port, len(frames)))
        frames.append(Frame(data, good))
    return frames


# -- the bench ------------------------------------------------------------------------------------

async def idle(ctx, cycles):
    """Wait ``cycles`` (possibly 0) cycles."""
    if cycles:
        await ctx.tick().repeat(cycles)


class Bench:
    """A :class:`Datapath`, its slot memory and core played in Python, and the traffic."""

    def __init__(self, seed, *, slots=4, frames=FRAMES, inject_bug=None, idle=0.3, stall=0.3,
                 hold=None, core_cycles=(1, 40), gap=(0, 6), tweak=None, ports=(0, 1)):
        self.rng = random.Random(seed)
        self.dut = Datapath(slots=slots, inject_bug=inject_bug, budget=12345)
        self.slots = slots
        self.idle, self.stall, self.core_cycles, self.gap = idle, stall, core_cycles, gap
        #: (port, cycles) the port's transmit stream is held not ready from cycle 0 on.
        self.hold = hold or {}
        self.mem = [bytearray(self.dut.slot_bytes) for _ in range(slots)]
        self.serials = []
        self.sent = [make_frames(self.rng, p, frames if p in ports else 0, self.serials)
                     for p in range(2)]
        for frame in self.sent[0] + self.sent[1]:
            if tweak and len(frame.data) >= 8:
                frame.data = tweak(frame.data)
        self.ran = []               # (port, index) in the order the core ran them
        self.out = [[], []]         # frames each transmit stream sent
        self.spans = [[], []]       # (words, cycles from the first to the last word) per frame
        self.cycle = 0
        self.progress = 0           # the cycle of the last transfer anywhere
        self.drivers_done = 0
        self.running = None         # the slot the core runs
        self.max_stall = [0, 0]     # longest wait of an rx word for ready
        self.errors = []
        self.finished = False

    # The slot port: a registered read, byte-enabled writes.
    async def memory(self, ctx):
        port = self.dut.mem
        while not self.finished:
            _, _, wslot, waddr, we, wdata, rslot, raddr = await ctx.tick().sample(
                port.wslot, port.waddr, port.we, port.wdata, port.rslot, port.raddr)
            self.cycle += 1
            word = self.mem[rslot][8 * raddr:8 * raddr + 8]
            ctx.set(port.rdata, int.from_bytes(word, "little"))
            if we:
                if wslot == self.running:
                    self.errors.append(f"cycle {self.cycle}: write to slot {wslot} while the "
                                       f"core runs it")
                for i in range(8):
                    if we >> i & 1:
                        self.mem[wslot][8 * waddr + i] = wdata >> (8 * i) & 0xff
                self.progress = self.cycle
            if self.cycle - self.progress > HANG:
                raise AssertionError(f"no progress for {HANG} cycles at cycle {self.cycle}: "
                                     f"hang")

    async def core(self, ctx):
        c = self.dut.core
        while not self.finished:
            _, _, start, slot, data, data_end, ifindex, budget = await ctx.tick().sample(
                c.start, c.start_slot, c.data, c.data_end, c.ingress_ifindex, c.budget)
            if not start:
                continue
            ctx.set(c.busy, 1)
            self.running = slot
            self.progress = self.cycle
            assert budget == 12345
            assert data == abi.PKT_BASE + HEAD, hex(data)
            port = ifindex - 1
            assert port in (0, 1), ifindex
            frame = bytes(self.mem[slot][HEAD:HEAD + data_end - data])
            serial = int.from_bytes(frame[1:5], "little") if len(frame) >= 5 else -1
            if not 0 <= serial < len(self.serials) or self.serials[serial][0] != port:
                raise AssertionError(f"the core ran an unknown frame on port {port}: "
                                     f"{frame[:16].hex()}")
            sent = self.sent[port][self.serials[serial][1]]
            assert sent.valid, f"the core ran a frame it must not see ({len(sent.data)} bytes, " \
                               f"good={sent.good})"
            assert frame == sent.data, f"port {port} frame {self.serials[serial][1]}: slot " \
                                       f"bytes differ"
            self.ran.append(self.serials[serial])
            r0, fault, kind, target, head, tail = core_rule(frame)
            start, end = HEAD + head, HEAD + len(frame) + tail
            if head < 0:
                self.mem[slot][start:HEAD] = head_bytes(-head)
            if tail > 0:
                self.mem[slot][HEAD + len(frame):end] = bytes(tail)
            await idle(ctx, self.rng.randint(*self.core_cycles))
            ctx.set(c.result_r0, r0)
            ctx.set(c.result_fault, fault)
            ctx.set(c.result_data, abi.PKT_BASE + start)
            ctx.set(c.result_data_end, abi.PKT_BASE + end)
            ctx.set(c.redirect_kind, kind)
            ctx.set(c.redirect_ifindex, target)
            ctx.set(c.done, 1)
            ctx.set(c.busy, 0)
            self.running = None
            await ctx.tick()
            ctx.set(c.done, 0)

    def driver(self, port):
        async def drive(ctx):
            stream = self.dut.rx[port]
            rng = random.Random(self.rng.random())
            for frame in self.sent[port]:
                await idle(ctx, rng.randint(*self.gap))
                data = frame.data
                for at in range(0, len(data), 8):
                    chunk = data[at:at + 8]
                    last = at + 8 >= len(data)
                    if self.idle and rng.random() < self.idle:
                        await ctx.tick().repeat(rng.randint(1, 3))
                    ctx.set(stream.payload, {"data": int.from_bytes(chunk, "little"),
                                             "count": len(chunk), "last": last,
                                             "good": frame.good if last else 0})
                    ctx.set(stream.valid, 1)
                    waited = 0
                    while not (await ctx.tick().sample(stream.ready))[2]:
                        waited += 1
                    self.max_stall[port] = max(self.max_stall[port], waited)
                    ctx.set(stream.valid, 0)
                    self.progress = self.cycle
                frame.no_buffer = bool(ctx.get(self.dut.receivers[port].discarding))
            self.drivers_done += 1
        return drive

    def monitor(self, port):
        async def take(ctx):
            stream = self.dut.tx[port]
            rng = random.Random(self.rng.random())
            frame = bytearray()
            waiting = None          # a word offered but not taken: it must stay offered
            while not self.finished:
                ready = self.cycle >= self.hold.get(port, 0) and rng.random() >= self.stall
                ctx.set(stream.ready, ready)
                _, _, valid, word = await ctx.tick().sample(stream.valid, stream.payload)
                if waiting is not None:
                    assert valid and word == waiting, \
                        f"port {port}: tx word withdrawn or changed before it was taken"
                waiting = word if valid and not ready else None
                if not (valid and ready):
                    continue
                assert 1 <= word.count <= 8, word.count
                if not frame:
                    began = self.cycle
                frame += (word.data).to_bytes(8, "little")[:word.count]
                self.progress = self.cycle
                if word.last:
                    self.out[port].append(bytes(frame))
                    self.spans[port].append(((len(frame) + 7) // 8, self.cycle - began + 1))
                    frame = bytearray()
        return take

    async def main(self, ctx):
        while self.drivers_done < 2 or ctx.get(self.dut.free_slots) != self.slots:
            await ctx.tick()
        await ctx.tick().repeat(4)
        self.counters = [{name: getattr(ctx.get(self.dut.counters[p]), name)
                          for name in COUNTER_NAMES} for p in range(2)]
        self.finished = True

    def run(self):
        sim = Simulator(self.dut)
        sim.add_clock(1e-8)
        sim.add_testbench(self.memory)
        sim.add_testbench(self.core)
        for p in range(2):
            sim.add_testbench(self.driver(p))
            sim.add_testbench(self.monitor(p))
        sim.add_testbench(self.main)
        if os.environ.get("BPFCORE_VCD"):
            with sim.write_vcd(os.environ["BPFCORE_VCD"]):
                sim.run()
        else:
            sim.run()
        return self

    def check(self):
        """Compare with the reference; raise AssertionError naming the first difference."""
        assert not self.errors, self.errors[0]
        runnable = [(p, i) for p in range(2) for i, f in enumerate(self.sent[p])
                    if f.valid and not f.no_buffer]
        assert sorted(self.ran) == sorted(runnable), \
            f"frames run {sorted(set(self.ran) ^ set(runnable))[:4]} differ from the reference " \
            f"(or one ran twice)"
        for p in range(2):
            order = [i for q, i in self.ran if q == p]
            assert order == sorted(order), f"port {p}: frames ran out of arrival order"
        want_out = [[], []]
        want = [dict.fromkeys(COUNTER_NAMES, 0) for _ in range(2)]
        for p in range(2):
            for frame in self.sent[p]:
                want[p]["received"] += 1
                if frame.no_buffer:
                    want[p]["no_buffer"] += 1
                elif not frame.valid:
                    want[p]["rejected"] += 1
                else:
                    want[p]["bytes_received"] += len(frame.data)
        for p, i in self.ran:
            name, port, data = ref_outcome(self.sent[p][i].data, p)
            want[p][name] += 1
            if port is not None:
                want_out[port].append((p, i, data))
        for port in range(2):
            got = self.out[port]
            for k, (p, i, data) in enumerate(want_out[port]):
                assert k < len(got), f"port {port} sent {len(got)} frames, expected " \
                                     f"{len(want_out[port])}"
                assert got[k] == data, \
                    f"port {port} frame {k} (port {p} frame {i}, {len(data)} bytes) differs: " \
                    f"got {len(got[k])} bytes {got[k][:16].hex()}.., expected {data[:16].hex()}.."
            assert len(got) == len(want_out[port]), \
                f"port {port} sent {len(got)} frames, expected {len(want_out[port])}"
        for p in range(2):
            c = self.counters[p]
            assert c == want[p], f"port {p} counters {c}, expected {want[p]}"
            assert c["received"] == sum(c[name] for name in COUNTER_NAMES[2:]), c
        return self


# -- the tests ------------------------------------------------------------------------------------

def test_random_traffic(seed):
    bench = Bench(seed).run().check()
    assert bench.ran, "the core ran nothing"
    assert all(bench.out), "a port sent nothing"


def test_back_to_back_never_stalls_rx(seed):
    """Both ports at one word per cycle, no gaps: the shared write port holds an rx word for
    at most one cycle, and with 16 slots and a quick core no frame lacks a buffer."""
    bench = Bench(seed, slots=16, idle=0, stall=0, gap=(0, 0), core_cycles=(1, 3),
                  frames=12).run().check()
    assert max(bench.max_stall) <= 1, bench.max_stall


@pytest.mark.parametrize("head", [0, 3])
def test_one_port_at_one_word_per_cycle(seed, head):
    """Alone, a port takes and sends one word per cycle: every frame XDP_TX, the core quick, no
    idle cycles, no back-pressure; the packet start moved by ``head`` bytes."""
    def tx_moved(data):
        return bytes([3]) + data[1:6] + bytes([12 + head, 12]) + data[8:]
    bench = Bench(seed, slots=8, idle=0, stall=0, gap=(0, 0), core_cycles=(1, 1), frames=12,
                  tweak=tx_moved, ports=(0,)).run().check()
    assert bench.max_stall[0] == 0, bench.max_stall
    long = [(words, cycles) for words, cycles in bench.spans[0] if words >= 16]
    assert long and all(cycles == words for words, cycles in long), long


def test_held_transmitter_runs_out_of_slots(seed):
    """Port 1's transmitter is not ready for a long time: its frames hold every slot, new
    frames count no_buffer, nothing hangs, and the counters add up after the release."""
    bench = Bench(seed, hold={1: 3000}, gap=(0, 40), core_cycles=(1, 10)).run().check()
    assert sum(bench.counters[p]["no_buffer"] for p in range(2)) > 0
    assert bench.out[1], "port 1 sent nothing after the release"


def test_injected_bug_is_caught(seed):
    """PASS leaving on the ingress port must fail the comparison."""
    bench = Bench(seed, inject_bug="pass_same_port", frames=16).run()
    with pytest.raises(AssertionError, match=r"port \d (sent|frame)"):
        bench.check()


@pytest.mark.parametrize("kwargs, message", [
    ({"ports": 3}, "ports must be 2.*3"),
    ({"slots": 1}, "slots must be .*1"),
    ({"slots": 17}, "slots must be .*17"),
    ({"slot_bytes": 3000}, "slot_bytes .*3000"),
    ({"budget": -1}, "budget .*-1"),
    ({"inject_bug": "nope"}, "inject_bug .*'nope'"),
])
def test_parameters_are_checked(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Datapath(**kwargs)


class _RoundTrip(wiring.Component):
    """Bytes -> words -> bytes."""

    def __init__(self):
        self.pack, self.unpack = RxBytesToWords(), TxWordsToBytes()
        super().__init__({"i": self.pack.signature.members["i"],
                          "o": self.unpack.signature.members["o"]})

    def elaborate(self, platform):
        m = Module()
        m.submodules.pack, m.submodules.unpack = self.pack, self.unpack
        wiring.connect(m, wiring.flipped(self.i), self.pack.i)
        wiring.connect(m, self.unpack.o, wiring.flipped(self.o))
        m.d.comb += [self.unpack.i.valid.eq(self.pack.o.valid),
                     self.pack.o.ready.eq(self.unpack.i.ready),
                     self.unpack.i.payload.data.eq(self.pack.o.payload.data),
                     self.unpack.i.payload.count.eq(self.pack.o.payload.count),
                     self.unpack.i.payload.last.eq(self.pack.o.payload.last)]
        return m


def test_adapters_round_trip(seed):
    """Byte frames through RxBytesToWords and TxWordsToBytes come back whole; the words in
    between are the reference packing and carry ``good`` on the last word."""
    rng = random.Random(seed)
    dut = _RoundTrip()
    frames = [(rng.randbytes(rng.randint(1, 40)), rng.random() < 0.8) for _ in range(30)]
    words, got = [], []

    async def send(ctx):
        for data, good in frames:
            for i, byte in enumerate(data):
                await stream_put(ctx, dut.i, {"data": byte, "first": i == 0,
                                              "last": i == len(data) - 1, "good": good},
                                 rng=rng, idle=0.2)

    async def watch(ctx):
        while len(got) < len(frames):
            _, _, valid, ready, payload = await ctx.tick().sample(
                dut.pack.o.valid, dut.pack.o.ready, dut.pack.o.payload)
            if valid and ready:
                words.append((payload.data, payload.count, payload.last, payload.good))

    async def take(ctx):
        frame = bytearray()
        while len(got) < len(frames):
            byte = await stream_get(ctx, dut.o, rng=rng, stall=0.3)
            assert byte.first == (len(frame) == 0)
            frame.append(byte.data)
            if byte.last:
                got.append(bytes(frame))
                frame = bytearray()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(send)
    sim.add_testbench(watch)
    sim.add_testbench(take)
    sim.run()
    assert got == [data for data, _ in frames]
    want = []
    for data, good in frames:
        for at in range(0, len(data), 8):
            chunk = data[at:at + 8]
            last = at + 8 >= len(data)
            want.append((int.from_bytes(chunk, "little"), len(chunk), int(last),
                         int(good and last)))
    assert words == want


def test_tx_reader_every_alignment(seed):
    """TxReader alone: every start byte of a word and short to long lengths, with a contended
    read port and back-pressure; each frame is the slot's bytes ``[start, end)``."""
    rng = random.Random(seed)
    dut = TxReader(slots=2, slot_bytes=1024)
    mem = [rng.randbytes(1024) for _ in range(2)]
    jobs = [(rng.randrange(2), start, start + length)
            for start in range(256, 264) for length in [*range(1, 20), 63, 64, 65, 200]]
    got, freed = [], []

    async def port(ctx):
        while len(got) < len(jobs):
            ctx.set(dut.rgrant, rng.random() < 0.7)
            _, _, slot, addr, free, free_slot = await ctx.tick().sample(
                dut.rslot, dut.raddr, dut.free, dut.free_slot)
            ctx.set(dut.rdata, int.from_bytes(mem[slot][8 * addr:8 * addr + 8], "little"))
            if free:
                freed.append(free_slot)

    async def send(ctx):
        for slot, start, end in jobs:
            await stream_put(ctx, dut.job, {"slot": slot, "start": start, "end": end},
                             rng=rng, idle=0.2)

    async def take(ctx):
        frame = bytearray()
        while len(got) < len(jobs):
            word = await stream_get(ctx, dut.tx, rng=rng, stall=0.3)
            frame += word.data.to_bytes(8, "little")[:word.count]
            if word.last:
                got.append(bytes(frame))
                frame = bytearray()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    for bench in (port, send, take):
        sim.add_testbench(bench)
    sim.run()
    for k, (slot, start, end) in enumerate(jobs):
        assert got[k] == mem[slot][start:end], f"job {k}: slot {slot} [{start}, {end})"
    assert freed == [slot for slot, _, _ in jobs]
