"""The dispatcher: runs queued slots on the core, one at a time, and acts on the verdict."""

from amaranth import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from bpfcore import abi
from bpfcore.abi import XdpAction

from ..helpers import RedirectKind
from .layouts import Outcome, RunControlSignature, rx_done_layout, tx_job_layout

__all__ = ["Dispatcher", "INJECT_BUGS"]

#: Known bugs the dispatcher can be built with, to prove that the tests catch them.
INJECT_BUGS = ("pass_same_port",)


class Dispatcher(wiring.Component):
    """Starts the core on each received slot in arrival order and routes the verdict.

    ``r0 & 0xffff_ffff`` with no fault decides: ``XDP_TX`` leaves on the ingress port,
    ``XDP_PASS`` on the other port, ``XDP_REDIRECT`` on the port of ``redirect_ifindex``
    (ifindex ``i`` is port ``i - 1``; no target or another ifindex drops), ``XDP_DROP`` drops;
    ``XDP_ABORTED``, any other value, a fault, or packet bounds that are empty or outside the
    slot abort. A dropped or aborted slot is freed at once; a forwarded one is queued for its
    port's transmitter with the bytes ``[result_data, result_data_end)``.

    Parameters
    ----------
    slots, ports, slot_bytes, budget : int
        As :class:`~bpfcore.hdl.datapath.Datapath`.
    inject_bug : str or None
        ``"pass_same_port"``: ``XDP_PASS`` leaves on the ingress port (for the tests).

    Members
    -------
    queue : In(stream.Signature(rx_done_layout(slots, ports)))
        Received frames, in arrival order.
    core : Out(RunControlSignature(slots=slots))
        The core's run control.
    job : Out(stream.Signature(tx_job_layout(slots, slot_bytes))).array(ports)
        Frames for each port's transmitter.
    free, free_slot : Out(1), Out(range(slots))
        A dropped or aborted slot is free again (pulse).
    outcome_valid, outcome_port, outcome : Out
        What happened to a frame of ingress port ``outcome_port`` (pulse; for the counters).
    """

    def __init__(self, *, slots, ports, slot_bytes, budget, inject_bug=None):
        self.slots, self.ports, self.slot_bytes = slots, ports, slot_bytes
        self.budget, self.inject_bug = budget, inject_bug
        super().__init__({
            "queue": In(stream.Signature(rx_done_layout(slots, ports))),
            "core": Out(RunControlSignature(slots=slots)),
            "job": Out(stream.Signature(tx_job_layout(slots, slot_bytes))).array(ports),
            "free": Out(1), "free_slot": Out(range(slots)),
            "outcome_valid": Out(1), "outcome_port": Out(range(ports)), "outcome": Out(Outcome),
        })

    def elaborate(self, platform):
        m = Module()
        core = self.core
        data_start = abi.PKT_BASE + abi.PKT_HEADROOM
        slot = Signal(range(self.slots))
        port = Signal(range(self.ports))
        m.d.comb += [core.budget.eq(self.budget), core.start_slot.eq(slot),
                     self.free_slot.eq(slot),
                     core.ingress_ifindex.eq(port + 1), self.outcome_port.eq(port)]

        # The verdict, from the results the core holds after ``done``.
        action = core.result_r0[:32]
        outcome = Signal(Outcome)
        out_port = Signal(range(self.ports))
        in_slot = ((core.result_data >= abi.PKT_BASE)
                   & (core.result_data < core.result_data_end)
                   & (core.result_data_end <= abi.PKT_BASE + self.slot_bytes))
        other = port if self.inject_bug == "pass_same_port" else self.ports - 1 - port
        with m.If((core.result_fault != 0) | ~in_slot):
            m.d.comb += outcome.eq(Outcome.ABORTED)
        with m.Elif(action == XdpAction.TX):
            m.d.comb += [outcome.eq(Outcome.TX), out_port.eq(port)]
        with m.Elif(action == XdpAction.PASS):
            m.d.comb += [outcome.eq(Outcome.PASS), out_port.eq(other)]
        with m.Elif(action == XdpAction.REDIRECT):
            known = ((core.redirect_kind != RedirectKind.NONE)
                     & (core.redirect_ifindex >= 1) & (core.redirect_ifindex <= self.ports))
            m.d.comb += out_port.eq(core.redirect_ifindex - 1)
            with m.If(known):
                m.d.comb += outcome.eq(Outcome.REDIRECT)
            with m.Else():
                m.d.comb += outcome.eq(Outcome.DROP)
        with m.Elif(action == XdpAction.DROP):
            m.d.comb += outcome.eq(Outcome.DROP)
        with m.Else():
            m.d.comb += outcome.eq(Outcome.ABORTED)
        forward = ((outcome == Outcome.PASS) | (outcome == Outcome.TX)
                   | (outcome == Outcome.REDIRECT))
        m.d.comb += self.outcome.eq(outcome)

        for p in range(self.ports):
            m.d.comb += [self.job[p].payload.slot.eq(slot),
                         self.job[p].payload.start.eq(core.result_data - abi.PKT_BASE),
                         self.job[p].payload.end.eq(core.result_data_end - abi.PKT_BASE)]

        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += self.queue.ready.eq(1)
                with m.If(self.queue.valid):
                    entry = self.queue.payload
                    m.d.sync += [slot.eq(entry.slot), port.eq(entry.port),
                                 core.data.eq(data_start),
                                 core.data_end.eq(data_start + entry.length)]
                    m.next = "START"
            with m.State("START"):
                with m.If(~core.busy):
                    m.d.comb += core.start.eq(1)
                    m.next = "RUN"
            with m.State("RUN"):
                with m.If(core.done):
                    m.next = "DECIDE"
            with m.State("DECIDE"):
                with m.If(forward):
                    for p in range(self.ports):
                        with m.If(out_port == p):
                            m.d.comb += self.job[p].valid.eq(1)
                            with m.If(self.job[p].ready):
                                m.d.comb += self.outcome_valid.eq(1)
                                m.next = "IDLE"
                with m.Else():
                    m.d.comb += [self.free.eq(1), self.outcome_valid.eq(1)]
                    m.next = "IDLE"
        return m
