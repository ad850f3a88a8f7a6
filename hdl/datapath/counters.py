"""Per-ingress-port frame counters."""

from amaranth import Module
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .layouts import CounterLayout, Outcome

__all__ = ["Counters"]


class Counters(wiring.Component):
    """The 32-bit counters of :data:`~bpfcore.hdl.datapath.layouts.CounterLayout`, one set per
    ingress port (they wrap around).

    Parameters
    ----------
    ports : int
        Number of ports.

    Members
    -------
    finish, finish_ok, finish_length : In(1).array(ports), In(1).array(ports), In(16).array(ports)
        A frame of port ``p`` ended and was written: received; ``finish_ok``: queued for the core
        (``bytes_received`` += ``finish_length``), else rejected.
    no_buffer : In(1).array(ports)
        A frame of port ``p`` ended that found no free slot.
    outcome_valid, outcome_port, outcome : In
        What the dispatcher did with a frame of ingress port ``outcome_port``.
    counters : Out(data.ArrayLayout(CounterLayout, ports))
        The counters, by ingress port.
    """

    def __init__(self, *, ports):
        self.ports = ports
        super().__init__({
            "finish": In(1).array(ports), "finish_ok": In(1).array(ports),
            "finish_length": In(16).array(ports), "no_buffer": In(1).array(ports),
            "outcome_valid": In(1), "outcome_port": In(range(ports)), "outcome": In(Outcome),
            "counters": Out(data.ArrayLayout(CounterLayout, ports)),
        })

    def elaborate(self, platform):
        m = Module()
        names = {Outcome.PASS: "pass", Outcome.TX: "tx", Outcome.REDIRECT: "redirect",
                 Outcome.DROP: "drop", Outcome.ABORTED: "aborted"}
        for p in range(self.ports):
            c = self.counters[p]
            ok = self.finish[p] & self.finish_ok[p]
            m.d.sync += [
                c.received.eq(c.received + self.finish[p] + self.no_buffer[p]),
                c.rejected.eq(c.rejected + (self.finish[p] & ~self.finish_ok[p])),
                c.no_buffer.eq(c.no_buffer + self.no_buffer[p]),
            ]
            with m.If(ok):
                m.d.sync += c.bytes_received.eq(c.bytes_received + self.finish_length[p])
            with m.If(self.outcome_valid & (self.outcome_port == p)):
                for outcome, name in names.items():
                    with m.If(self.outcome == outcome):
                        field = getattr(c, name)
                        m.d.sync += field.eq(field + 1)
        return m
