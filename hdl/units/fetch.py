"""Fetch: the predecoded program memory and the fetch/decode register.

Program memory holds, next to each slot, what the decoder derives from it, computed when the host
writes the slot (so nothing decodes between the memory and the pipeline). Two banks (even and odd
slots) deliver an ``lddw``'s two slots in one read. The memories are read synchronously: their
output *is* the fetch/decode register (:data:`~bpfcore.hdl.layouts.FdLayout`), the word read at
the fetch address in the previous cycle; a stalled decode keeps it (read enable low).
"""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from bpfcore.isa import AluOp, Kind
from ..decoder import Decoder
from ..layouts import FdLayout, PredecodeLayout

__all__ = ["Fetch"]


class Fetch(wiring.Component):
    """Program memory, fetch address and the fetch/decode register.

    Parameters
    ----------
    slots : int
        Program memory size in 64-bit slots (a power of two, at least 2).
    with_divider, with_atomics : bool
        Whether the CPU builds these units; without them their instructions predecode as
        illegal.

    Members
    -------
    prog_we, prog_addr, prog_wdata : In
        Host write of one slot (the CPU's program port).
    length : Out(range(slots + 1))
        One past the last slot written.
    f_launch : In(1)
        Fetch slot 0 (the run starts).
    f_kill : In(1)
        Fetch nothing: decode is empty next cycle.
    f_redirect, f_target, f_target_even, f_target_bad : In
        Execute's redirect: fetch ``f_target`` (even-bank row ``f_target_even``); ``f_target_bad``
        marks a target outside the program (decode faults ``PC_RANGE``).
    f_next, f_next_even : In(16)
        The next fetch address otherwise (and its even-bank row), from the branch predictor.
    d_stall : In(1)
        Decode keeps its instruction (and the program memory its output).
    d_even, d_odd : Out(PredecodeLayout)
        Both banks' words as read (the predictor works out the next address for each).
    fd : Out(FdLayout)
        The fetch/decode register: ``valid``, ``pc``, ``bad``, the slot at ``pc`` and the slot
        after it (``insn_hi``).
    """

    def __init__(self, slots, *, with_divider=True, with_atomics=True):
        self._slots = slots
        self._with_divider = with_divider
        self._with_atomics = with_atomics
        super().__init__({
            "prog_we": In(1),
            "prog_addr": In(range(slots)),
            "prog_wdata": In(64),
            "length": Out(range(slots + 1)),
            "f_launch": In(1),
            "f_kill": In(1),
            "f_redirect": In(1),
            "f_target": In(16),
            "f_target_even": In(16),
            "f_target_bad": In(1),
            "f_next": In(16),
            "f_next_even": In(16),
            "d_stall": In(1),
            "d_even": Out(PredecodeLayout),
            "d_odd": Out(PredecodeLayout),
            "fd": Out(FdLayout),
        })

    def elaborate(self, platform):
        m = Module()

        m.submodules.decoder = decoder = Decoder()
        m.d.comb += decoder.insn.eq(self.prog_wdata)
        ctrl_w = decoder.ctrl
        pre_w = Signal(PredecodeLayout)
        legal_w = ctrl_w.legal & (ctrl_w.kind != Kind.CALL_BTF)
        if not self._with_divider:
            legal_w = legal_w & ~((ctrl_w.kind == Kind.ALU)
                                  & ctrl_w.alu_op.as_value().matches(AluOp.DIV, AluOp.MOD))
        if not self._with_atomics:
            legal_w = legal_w & (ctrl_w.kind != Kind.ATOMIC)
        long_jump = ctrl_w.kind.as_value().matches(Kind.JA32, Kind.CALL_LOCAL)
        # Static prediction of a conditional branch not seen yet in this run (see
        # :mod:`.predictor`): backward branches are taken (loops), forward ones are not (an XDP
        # program's bounds and protocol checks usually fall through). Taking forward branches
        # other than ``jne`` suits the conformance suite (CPI 1.470 / 1.211 against
        # 1.493 / 1.248) but costs l3_filter about 18 % more cycles per packet.
        jcond_w = legal_w & (ctrl_w.kind == Kind.JCOND)
        m.d.comb += [
            pre_w.insn.eq(self.prog_wdata),
            pre_w.ctrl.eq(ctrl_w),
            pre_w.ctrl.legal.eq(legal_w),
            pre_w.jcond.eq(jcond_w),
            pre_w.bt.eq(jcond_w & self.prog_wdata[31]),
            pre_w.ja.eq(legal_w & ctrl_w.kind.as_value().matches(Kind.JA, Kind.JA32)),
            pre_w.target.eq(self.prog_addr + 1 + Mux(long_jump, self.prog_wdata[32:48],
                                                     self.prog_wdata[16:32])),
        ]
        m.d.comb += pre_w.target_even.eq((pre_w.target + 1) >> 1)
        banks = []
        for parity in ("even", "odd"):
            mem = memory.Memory(shape=PredecodeLayout, depth=self._slots // 2, init=[])
            m.submodules[f"prog_{parity}"] = mem
            wp = mem.write_port()
            rp = mem.read_port()
            m.d.comb += [
                wp.addr.eq(self.prog_addr >> 1),
                wp.data.eq(pre_w),
                wp.en.eq(self.prog_we & (self.prog_addr[0] == (parity == "odd"))),
            ]
            banks.append(rp)
        prog_even, prog_odd = banks
        with m.If(self.prog_we):
            m.d.sync += self.length.eq(self.prog_addr + 1)

        # The fetch address and, precomputed per source, its even-bank row ((addr + 1) >> 1):
        # no adder between the program memory output and its address input.
        f_addr = Signal(16)
        f_even = Signal(16)
        d_valid = Signal()
        d_pc = Signal(16)
        d_bad = Signal()
        m.d.comb += [
            prog_even.addr.eq(f_even), prog_odd.addr.eq(f_addr >> 1),
            prog_even.en.eq(~self.d_stall), prog_odd.en.eq(~self.d_stall),
            self.d_even.eq(prog_even.data), self.d_odd.eq(prog_odd.data),
            self.fd.valid.eq(d_valid), self.fd.pc.eq(d_pc), self.fd.bad.eq(d_bad),
            self.fd.slot.eq(Mux(d_pc[0], prog_odd.data, prog_even.data)),
            self.fd.insn_hi.eq(Mux(d_pc[0], prog_even.data.insn, prog_odd.data.insn)),
        ]
        with m.If(self.f_launch):
            m.d.comb += [f_addr.eq(0), f_even.eq(0)]
            m.d.sync += [d_valid.eq(1), d_pc.eq(0), d_bad.eq(0)]
        with m.Elif(self.f_kill):
            m.d.sync += d_valid.eq(0)
        with m.Elif(self.f_redirect):
            m.d.comb += [f_addr.eq(self.f_target), f_even.eq(self.f_target_even)]
            m.d.sync += [d_valid.eq(1), d_pc.eq(f_addr), d_bad.eq(self.f_target_bad)]
        with m.Else():
            m.d.comb += [f_addr.eq(self.f_next), f_even.eq(self.f_next_even)]
            with m.If(~self.d_stall):
                m.d.sync += [d_valid.eq(1), d_pc.eq(f_addr), d_bad.eq(0)]
        return m
