"""A round-robin arbiter: one shared port, several requesters, one grant per cycle."""

from amaranth import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..unused import rejecting

__all__ = ["RoundRobin"]


class RoundRobin(wiring.Component):
    """Grants one of ``count`` requesters per cycle, starting the search after the last one granted
    (so a requester that keeps asking waits at most ``count - 1`` cycles).

    Parameters
    ----------
    count : int
        Number of requesters.

    Members
    -------
    requests : In(count)
        Bit ``i``: requester ``i`` asks for the port this cycle.
    grant : Out(range(count))
        The requester granted (meaningful with ``valid``).
    valid : Out(1)
        Some requester is granted.
    """

    def __init__(self, count):
        with rejecting(self):
            if not isinstance(count, int) or count < 1:
                raise ValueError(f"count must be a positive integer, not {count!r}")
        self.count = count
        super().__init__({"requests": In(count), "grant": Out(range(count)), "valid": Out(1)})

    def elaborate(self, platform):
        m = Module()
        n = self.count
        last = Signal(range(n), init=n - 1)
        for previous in range(n):
            with m.If(last == previous):
                # Search previous+1, previous+2, ...; the first assignment in this order must win,
                # so assign in reverse (later comb assignments take precedence).
                for step in reversed(range(1, n + 1)):
                    i = (previous + step) % n
                    with m.If(self.requests[i]):
                        m.d.comb += self.grant.eq(i)
        m.d.comb += self.valid.eq(self.requests.any())
        with m.If(self.valid):
            m.d.sync += last.eq(self.grant)
        return m
