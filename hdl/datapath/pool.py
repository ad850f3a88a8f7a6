"""The free list of packet slots."""

from amaranth import Module, Signal, Const
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["SlotPool"]


class SlotPool(wiring.Component):
    """Hands free slots to the receivers and takes them back from whoever finished with them.

    Every receiver is offered the lowest free slot that no receiver before it takes in the same
    cycle, so two receivers starting frames at once get different slots, and the last free slot
    goes to whichever receiver asks for it (the lower-numbered one when both ask at once).

    Parameters
    ----------
    slots : int
        Number of slots (all free after reset).
    takers : int
        Number of receivers.
    givers : int
        Number of places that free slots (a slot is freed by exactly one of them at a time).

    Members
    -------
    offer_valid : Out(1).array(takers)
        A slot is free for receiver ``i``.
    offer_slot : Out(range(slots)).array(takers)
        The slot offered to receiver ``i``.
    take : In(1).array(takers)
        Receiver ``i`` takes its offered slot (only while ``offer_valid``).
    free : In(1).array(givers)
        Giver ``j`` frees ``free_slot[j]``.
    free_slot : In(range(slots)).array(givers)
    free_count : Out(range(slots + 1))
        Free slots (for status and tests).
    """

    def __init__(self, *, slots, takers, givers):
        self.slots, self.takers, self.givers = slots, takers, givers
        super().__init__({
            "offer_valid": Out(1).array(takers), "offer_slot": Out(range(slots)).array(takers),
            "take": In(1).array(takers),
            "free": In(1).array(givers), "free_slot": In(range(slots)).array(givers),
            "free_count": Out(range(slots + 1)),
        })

    def elaborate(self, platform):
        m = Module()
        free = Signal(self.slots, init=(1 << self.slots) - 1)
        available = free
        for i in range(self.takers):
            mask = Signal(self.slots, name=f"mask{i}")
            m.d.comb += mask.eq(available)
            for s in reversed(range(self.slots)):
                with m.If(mask[s]):
                    m.d.comb += self.offer_slot[i].eq(s)
            m.d.comb += self.offer_valid[i].eq(mask.any())
            taken = Signal(self.slots, name=f"taken{i}")
            with m.If(self.take[i] & self.offer_valid[i]):
                m.d.comb += taken.eq(Const(1, self.slots) << self.offer_slot[i])
            available = mask & ~taken
        freed = 0
        for j in range(self.givers):
            one = Signal(self.slots, name=f"freed{j}")
            with m.If(self.free[j]):
                m.d.comb += one.eq(Const(1, self.slots) << self.free_slot[j])
            freed = freed | one
        m.d.sync += free.eq(available | freed)
        m.d.comb += self.free_count.eq(sum(free[s] for s in range(self.slots)))
        return m
