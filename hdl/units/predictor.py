"""Branch prediction and the next fetch address, worked out in decode.

A conditional branch is predicted by the last outcome of the branch at the same pc (modulo
:data:`BHT_ENTRIES`) in this run; without history, statically (the predecoded ``bt``: backward
taken, forward not taken). ``ja``/``ja32`` and predicted-taken branches are followed at once;
``lddw`` advances by two. The next address is worked out for both banks' words, then picked by the
pc's parity: one level less behind the program memory outputs.
"""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..layouts import FdLayout, PredecodeLayout

__all__ = ["BHT_ENTRIES", "BranchPredictor"]

#: Conditional branches whose last outcome decode remembers (by pc modulo this; 16 give the
#: conformance suite the same CPI as 64).
BHT_ENTRIES = 16


class BranchPredictor(wiring.Component):
    """Branch history and next pc.

    Parameters
    ----------
    entries : int
        Branch history entries (a power of two).

    Members
    -------
    clear : In(1)
        Forget the history (a run starts).
    fd : In(FdLayout)
        The instruction in decode (its pc and slot).
    d_even, d_odd : In(PredecodeLayout)
        Both program memory banks' words (``fd.slot`` is one of them).
    d_taken : Out(1)
        The instruction in decode is a conditional branch predicted taken.
    f_next, f_next_even : Out(16)
        The next fetch address and its even-bank row ((addr + 1) >> 1).
    x_update : In(1)
        A conditional branch at ``x_pc`` resolved in execute (``x_taken``): remember it.
    x_pc : In(16)
    x_taken : In(1)
    """

    def __init__(self, entries=BHT_ENTRIES):
        self._entries = entries
        super().__init__({
            "clear": In(1),
            "fd": In(FdLayout),
            "d_even": In(PredecodeLayout),
            "d_odd": In(PredecodeLayout),
            "d_taken": Out(1),
            "f_next": Out(16),
            "f_next_even": Out(16),
            "x_update": In(1),
            "x_pc": In(16),
            "x_taken": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        d_pc = self.fd.pc
        valid = Signal(self._entries)
        taken = Signal(self._entries)
        bits = (self._entries - 1).bit_length()
        d_hist = d_pc[:bits]
        d_hit = valid.bit_select(d_hist, 1)
        d_last = taken.bit_select(d_hist, 1)
        m.d.comb += self.d_taken.eq(self.fd.slot.jcond & Mux(d_hit, d_last, self.fd.slot.bt))

        pc1 = Signal(16)
        pc2 = Signal(16)
        pc3 = Signal(16)
        m.d.comb += [pc1.eq(d_pc + 1), pc2.eq(d_pc + 2), pc3.eq(d_pc + 3)]
        bank_next = []
        for pre in (self.d_even, self.d_odd):
            nxt = Signal(16)
            nxt_even = Signal(16)
            with m.If(pre.ja | (pre.jcond & Mux(d_hit, d_last, pre.bt))):
                m.d.comb += [nxt.eq(pre.target), nxt_even.eq(pre.target_even)]
            with m.Elif(pre.ctrl.lddw & pre.ctrl.legal):
                m.d.comb += [nxt.eq(pc2), nxt_even.eq(pc3 >> 1)]
            with m.Else():
                m.d.comb += [nxt.eq(pc1), nxt_even.eq(pc2 >> 1)]
            bank_next.append((nxt, nxt_even))
        m.d.comb += [self.f_next.eq(Mux(d_pc[0], bank_next[1][0], bank_next[0][0])),
                     self.f_next_even.eq(Mux(d_pc[0], bank_next[1][1], bank_next[0][1]))]

        x_hist = self.x_pc[:bits]
        with m.If(self.clear):
            m.d.sync += valid.eq(0)
        with m.Elif(self.x_update):
            m.d.sync += [valid.bit_select(x_hist, 1).eq(1),
                         taken.bit_select(x_hist, 1).eq(self.x_taken)]
        return m
