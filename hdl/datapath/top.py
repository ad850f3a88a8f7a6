"""The packet datapath: receivers, slot pool, dispatcher, transmitters and counters, wired."""

from amaranth import Module, Cat
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from bpfcore import abi

from ..unused import rejecting, unelaborated
from .arbiter import RoundRobin
from .counters import Counters
from .dispatch import INJECT_BUGS, Dispatcher
from .layouts import (CounterLayout, RunControlSignature, RxWord, SlotPortSignature, TxWord,
                      rx_done_layout)
from .pool import SlotPool
from .rx import RxWriter
from .tx import TxReader

__all__ = ["Datapath"]


class Datapath(wiring.Component):
    """Zero-copy packet datapath between the MAC ports and one XDP core (sync domain).

    Each receiver writes frames straight into a free packet slot; good frames of ``ETH_HLEN ..
    max_frame`` bytes queue for the core in arrival order; the dispatcher runs them one at a time
    and queues forwarded slots for their output port's transmitter, which reads the bytes the
    program left and frees the slot. While the core runs one slot, frames keep arriving into
    others. The receivers share the slot write port and the transmitters the read port, each
    round-robin (one word per cycle in all; a lone port gets every cycle).

    Parameters
    ----------
    ports : int
        MAC ports: 2 (a bump in the wire; port ``p`` is ifindex ``p + 1``).
    slots : int
        Packet slots, 2..16.
    slot_bytes : int
        Bytes per slot: a power of two, at least 1024 (the packet starts at
        ``abi.PKT_HEADROOM``; frames up to ``min(slot_bytes, abi.KERNEL_FRAME_LIMIT) -
        abi.PKT_HEADROOM`` bytes are taken).
    budget : int
        Instructions a run may retire (driven to the core's ``budget``).
    inject_bug : str or None
        A known bug to build in (:data:`~bpfcore.hdl.datapath.dispatch.INJECT_BUGS`), for tests.

    Members
    -------
    rx : In(stream.Signature(RxWord)).array(ports)
        Frames received on each port.
    tx : Out(stream.Signature(TxWord)).array(ports)
        Frames sent on each port.
    mem : Out(SlotPortSignature(slots=slots, slot_bytes=slot_bytes))
        The core's packet slots.
    core : Out(RunControlSignature(slots=slots))
        The core's run control.
    counters : Out(data.ArrayLayout(CounterLayout, ports))
        Frame counters per ingress port.
    queued, refused : Out(ports)
        Bit ``p``: a frame of port ``p`` was queued for the core (good, in a slot) / was refused
        (bad, too short or too long, or no free slot) this cycle. Every frame that ends on a
        receive stream gives exactly one of the two, in its port's order (benches use them to
        know which frame each run is).
    free_slots : Out(range(slots + 1))
        Slots free right now (all of them once traffic has drained).

    Raises
    ------
    ValueError
        A parameter out of range.
    """

    def __init__(self, *, ports=2, slots=4, slot_bytes=4096, budget=abi.DEFAULT_BUDGET,
                 inject_bug=None):
        with rejecting(self):
            if ports != 2:
                raise ValueError(f"ports must be 2 (a bump in the wire: PASS leaves on the other "
                                 f"port), not {ports!r}")
            if not isinstance(slots, int) or not 2 <= slots <= 16:
                raise ValueError(f"slots must be an integer in 2..16, not {slots!r}")
            if (not isinstance(slot_bytes, int) or slot_bytes < 1024
                    or slot_bytes & (slot_bytes - 1)):
                raise ValueError(f"slot_bytes must be a power of two of at least 1024, "
                                 f"not {slot_bytes!r}")
            if not isinstance(budget, int) or not 0 <= budget < 1 << 32:
                raise ValueError(f"budget must be a 32-bit unsigned integer, not {budget!r}")
            if inject_bug is not None and inject_bug not in INJECT_BUGS:
                raise ValueError(f"inject_bug must be None or one of {INJECT_BUGS}, "
                                 f"not {inject_bug!r}")
        self.ports, self.slots, self.slot_bytes = ports, slots, slot_bytes
        self.budget, self.inject_bug = budget, inject_bug
        #: Longest frame taken, in bytes.
        self.max_frame = min(slot_bytes, abi.KERNEL_FRAME_LIMIT) - abi.PKT_HEADROOM
        self.receivers = [RxWriter(slots=slots, slot_bytes=slot_bytes, max_frame=self.max_frame)
                          for _ in range(ports)]
        self.transmitters = [TxReader(slots=slots, slot_bytes=slot_bytes) for _ in range(ports)]
        self.dispatcher = Dispatcher(slots=slots, ports=ports, slot_bytes=slot_bytes,
                                     budget=budget, inject_bug=inject_bug)
        # Elaborated with this component; one built only for its signature must not warn.
        unelaborated(*self.receivers, *self.transmitters, self.dispatcher)
        super().__init__({
            "rx": In(stream.Signature(RxWord)).array(ports),
            "tx": Out(stream.Signature(TxWord)).array(ports),
            "mem": Out(SlotPortSignature(slots=slots, slot_bytes=slot_bytes)),
            "core": Out(RunControlSignature(slots=slots)),
            "counters": Out(data.ArrayLayout(CounterLayout, ports)),
            "free_slots": Out(range(slots + 1)),
            "queued": Out(ports),
            "refused": Out(ports),
        })

    def elaborate(self, platform):
        m = Module()
        ports = self.ports
        rxs, txs, dispatch = self.receivers, self.transmitters, self.dispatcher
        for p in range(ports):
            m.submodules[f"rx{p}"] = rxs[p]
            m.submodules[f"tx{p}"] = txs[p]
        m.submodules.dispatch = dispatch
        # Frees: each receiver (a rejected frame), the dispatcher (drop/aborted), each transmitter.
        m.submodules.pool = pool = SlotPool(slots=self.slots, takers=ports, givers=2 * ports + 1)
        m.submodules.write_arbiter = warb = RoundRobin(ports)
        m.submodules.read_arbiter = rarb = RoundRobin(ports)
        m.submodules.counters = counters = Counters(ports=ports)
        # Never full: no more frames than slots are ever queued.
        done_layout = rx_done_layout(self.slots, ports)
        m.submodules.run_queue = queue = SyncFIFOBuffered(width=done_layout.size,
                                                          depth=self.slots)

        givers = [(rx.finish & ~rx.finish_ok, rx.finish_slot) for rx in rxs]
        givers += [(dispatch.free, dispatch.free_slot)]
        givers += [(tx.free, tx.free_slot) for tx in txs]
        for j, (free, slot) in enumerate(givers):
            m.d.comb += [pool.free[j].eq(free), pool.free_slot[j].eq(slot)]

        m.d.comb += [warb.requests.eq(Cat(rx.wvalid for rx in rxs)),
                     rarb.requests.eq(Cat(tx.rvalid for tx in txs))]
        for p in range(ports):
            rx, tx = rxs[p], txs[p]
            wiring.connect(m, wiring.flipped(self.rx[p]), rx.rx)
            wiring.connect(m, tx.tx, wiring.flipped(self.tx[p]))
            wiring.connect(m, dispatch.job[p], tx.job)
            m.d.comb += [
                rx.offer_valid.eq(pool.offer_valid[p]), rx.offer_slot.eq(pool.offer_slot[p]),
                pool.take[p].eq(rx.take),
                rx.wgrant.eq(warb.valid & (warb.grant == p)),
                tx.rgrant.eq(rarb.valid & (rarb.grant == p)),
                tx.rdata.eq(self.mem.rdata),
                counters.finish[p].eq(rx.finish), counters.finish_ok[p].eq(rx.finish_ok),
                counters.finish_length[p].eq(rx.finish_length),
                counters.no_buffer[p].eq(rx.no_buffer),
                self.queued[p].eq(rx.finish & rx.finish_ok),
                self.refused[p].eq((rx.finish & ~rx.finish_ok) | rx.no_buffer),
            ]
            with m.If(warb.grant == p):
                m.d.comb += [self.mem.wslot.eq(rx.wslot), self.mem.waddr.eq(rx.waddr),
                             self.mem.wdata.eq(rx.wdata)]
                with m.If(warb.valid):
                    m.d.comb += self.mem.we.eq(rx.we)
            with m.If(rarb.grant == p):
                m.d.comb += [self.mem.rslot.eq(tx.rslot), self.mem.raddr.eq(tx.raddr)]
            # Only the granted receiver can finish (a frame ends when its last word is written).
            with m.If(rx.finish & rx.finish_ok):
                entry = data.View(done_layout, queue.w_data)
                m.d.comb += [queue.w_en.eq(1), entry.slot.eq(rx.finish_slot), entry.port.eq(p),
                             entry.length.eq(rx.finish_length)]

        m.d.comb += [dispatch.queue.payload.eq(queue.r_data),
                     dispatch.queue.valid.eq(queue.r_rdy), queue.r_en.eq(dispatch.queue.ready)]
        wiring.connect(m, dispatch.core, wiring.flipped(self.core))
        m.d.comb += [counters.outcome_valid.eq(dispatch.outcome_valid),
                     counters.outcome_port.eq(dispatch.outcome_port),
                     counters.outcome.eq(dispatch.outcome),
                     self.counters.eq(counters.counters), self.free_slots.eq(pool.free_count)]
        return m
