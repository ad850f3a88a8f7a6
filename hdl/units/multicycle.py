"""Multi-cycle units in execute: the multiplier, the divider and the helper port.

Each is started once per instruction, when its operands are ready (no load result pending) and,
for a helper call, when every older instruction has retired (calls and returns read or write many
registers at once and use the register file directly). Execute waits until the unit is done.
"""

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["MultiCycle"]


class MultiCycle(wiring.Component):
    """Start and wait for execute's multi-cycle units.

    Parameters
    ----------
    with_divider : bool
        The divider is built (else ``x_div_start`` stays low).

    Members
    -------
    x_go : In(1)
        Execute holds an instruction without an early fault.
    x_load_use : In(1)
        An operand is still being loaded.
    x_mul, x_div, x_helper : In(1)
        The instruction is a multiplication, a division, a helper call.
    x_drain : In(1)
        It waits until every older instruction retired (helper call, local call, return).
    x_drained : In(1)
        Memory and writeback are empty.
    x_mul_start, x_div_start, x_helper_start : Out(1)
    x_mul_done, x_div_done, x_helper_done : In(1)
    x_wait : Out(1)
        Execute waits for a unit or for the drain.
    x_fire, m_kill : In(1)
        The instruction leaves execute (handed on, or killed): the next one starts afresh.
    """

    def __init__(self, *, with_divider=True):
        self._with_divider = with_divider
        super().__init__({
            "x_go": In(1),
            "x_load_use": In(1),
            "x_mul": In(1),
            "x_div": In(1),
            "x_helper": In(1),
            "x_drain": In(1),
            "x_drained": In(1),
            "x_mul_start": Out(1),
            "x_div_start": Out(1),
            "x_helper_start": Out(1),
            "x_mul_done": In(1),
            "x_div_done": In(1),
            "x_helper_done": In(1),
            "x_wait": Out(1),
            "x_fire": In(1),
            "m_kill": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        started = Signal()
        ready = Signal()
        go = self.x_go & ~started & ~self.x_load_use
        m.d.comb += [self.x_mul_start.eq(go & self.x_mul),
                     self.x_helper_start.eq(go & self.x_helper & self.x_drained)]
        ready_div = 0
        if self._with_divider:
            m.d.comb += self.x_div_start.eq(go & self.x_div)
            ready_div = started & self.x_div_done
        with m.If(self.x_mul):
            m.d.comb += ready.eq(started & self.x_mul_done)
        with m.Elif(self.x_div):
            m.d.comb += ready.eq(ready_div)
        with m.Elif(self.x_helper):
            m.d.comb += ready.eq(started & self.x_helper_done)
        with m.Else():
            m.d.comb += ready.eq(1)
        multi = self.x_mul | self.x_div | self.x_helper
        m.d.comb += self.x_wait.eq(self.x_go & ((multi & ~ready)
                                                | (self.x_drain & ~self.x_drained)))
        with m.If(self.x_fire | self.m_kill):
            m.d.sync += started.eq(0)
        with m.Elif(self.x_mul_start | self.x_helper_start | self.x_div_start):
            m.d.sync += started.eq(1)
        return m
