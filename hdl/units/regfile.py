"""Register file r0-r9 (flip-flops, 10 x 64) with decode's reads and execute's forwarding.

Decode reads operands A and B at the predecoded registers ``ra``/``rb`` (``ra`` is src or dst: no
operand multiplexer behind the read); a read sees writeback's write of the same cycle. r10 reads
as the call stack's frame pointer, 11-14 as zero, and :data:`~bpfcore.hdl.decoder.IMM_REG` (15)
as the sign-extended immediate: an operand B of a form without a register B names it, so execute
has no operand-B multiplexer.

Execute takes an operand from the memory stage's result, writeback's value or the value read in
decode. Which one is decided a cycle ahead, in decode (the register matches the rd of the
instruction that will then be in memory or writeback), so only those stages' valid bits remain
between the registers and execute's operand multiplexers. While execute stalls, its operands are
refreshed every cycle (``x_held``): their producers retire meanwhile.
"""

from amaranth.hdl import Array, Const, Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from ..decoder import IMM_REG
from ..layouts import OperandsLayout

__all__ = ["RegisterFile"]


class RegisterFile(wiring.Component):
    """r0-r9, operand reads and forwarding selects.

    Members
    -------
    start : In(1)
        A run starts: every register is cleared, r1 and r2 take ``start_r1``/``start_r2``.
    start_r1, start_r2 : In(64)
    fp : In(32)
        r10 (the call stack's frame pointer).
    d_ra, d_rb : In(4)
        The operand registers of the instruction in decode.
    d_imm : In(64)
        The sign-extended immediate (read as register ``IMM_REG``).
    d_ops : Out(OperandsLayout)
        Its operands as decode hands them to execute: the values read and the forwarding
        selects for the cycle it will be in execute.
    x_ops : In(OperandsLayout)
        The operands of the instruction in execute (the decode/execute register).
    x_ra, x_rb : In(4)
    x_rd, x_rd_we : In
        The register the instruction in execute writes.
    x_fire : In(1)
        Execute hands its instruction to the memory stage.
    x_a, x_b : Out(64)
        Execute's operands, forwarded.
    x_held : Out(OperandsLayout)
        What the decode/execute register's operands become while execute stalls.
    x_restore, x_restore_r6_r9 : In
        A return to a caller restores r6-r9 (``x_restore`` is the cycle it fires).
    x_r1_r5 : Out(ArrayLayout(64, 5))
        The helper call arguments (read once every older instruction has retired).
    x_r6_r9 : Out(ArrayLayout(64, 4))
        The registers a local call saves.
    m_valid, m_rd_valid, m_rd, m_result : In
        The instruction in the memory stage and its result (valid unless it is a load or an
        atomic fetch: execute then waits, see the CPU's ``load_use``).
    m_stall : In(1)
        The memory stage keeps its instruction (an atomic's first cycle).
    m_r0 : Out(64)
        r0 (cmpxchg reads it in its second memory cycle, when every older instruction retired).
    w_we, w_rd, w_value : In
        Writeback's register write.
    """

    def __init__(self):
        super().__init__({
            "start": In(1),
            "start_r1": In(64),
            "start_r2": In(64),
            "fp": In(32),
            "d_ra": In(4),
            "d_rb": In(4),
            "d_imm": In(64),
            "d_ops": Out(OperandsLayout),
            "x_ops": In(OperandsLayout),
            "x_ra": In(4),
            "x_rb": In(4),
            "x_rd": In(4),
            "x_rd_we": In(1),
            "x_fire": In(1),
            "x_a": Out(64),
            "x_b": Out(64),
            "x_held": Out(OperandsLayout),
            "x_restore": In(1),
            "x_restore_r6_r9": In(data.ArrayLayout(64, 4)),
            "x_r1_r5": Out(data.ArrayLayout(64, 5)),
            "x_r6_r9": Out(data.ArrayLayout(64, 4)),
            "m_valid": In(1),
            "m_rd_valid": In(1),
            "m_rd": In(4),
            "m_result": In(64),
            "m_stall": In(1),
            "m_r0": Out(64),
            "w_we": In(1),
            "w_rd": In(4),
            "w_value": In(64),
        })

    def elaborate(self, platform):
        m = Module()
        regs = [Signal(64, name=f"r{i}") for i in range(10)]
        m.d.comb += [self.x_r1_r5[i].eq(regs[1 + i]) for i in range(5)]
        m.d.comb += [self.x_r6_r9[i].eq(regs[6 + i]) for i in range(4)]
        m.d.comb += self.m_r0.eq(regs[0])

        with m.If(self.start):
            m.d.sync += [r.eq(0) for r in regs]
            m.d.sync += [regs[1].eq(self.start_r1), regs[2].eq(self.start_r2)]
        with m.If(self.x_restore):
            m.d.sync += [regs[6 + i].eq(self.x_restore_r6_r9[i]) for i in range(4)]
        with m.If(self.w_we):
            for i, reg in enumerate(regs):
                with m.If(self.w_rd == i):
                    m.d.sync += reg.eq(self.w_value)

        assert IMM_REG == 15
        reg_view = Array(regs + [self.fp] + [Const(0, 64)] * 4 + [self.d_imm])

        def read(index):
            return Mux(self.w_we & (self.w_rd == index), self.w_value, reg_view[index])

        # The instructions that are in memory and writeback when the one in decode is in
        # execute: memory gets execute's instruction, unless the atomic there holds it;
        # writeback gets memory's. The selects include those stages' valid and rd_valid (a
        # faulting instruction there may forward: it kills the instruction in execute anyway).
        next_m_rd = Signal(4)
        next_m_we = Signal()
        next_w_we = Signal()
        m.d.comb += [
            next_m_rd.eq(Mux(self.m_stall, self.m_rd, self.x_rd)),
            next_m_we.eq(Mux(self.m_stall, self.m_valid & self.m_rd_valid,
                             self.x_fire & self.x_rd_we)),
            next_w_we.eq(self.m_valid & ~self.m_stall & self.m_rd_valid),
        ]
        d_ops = self.d_ops
        m.d.comb += [
            d_ops.a.eq(read(self.d_ra)),
            d_ops.b.eq(read(self.d_rb)),
            d_ops.m_a.eq(next_m_we & (next_m_rd == self.d_ra)),
            d_ops.m_b.eq(next_m_we & (next_m_rd == self.d_rb)),
            d_ops.w_a.eq(next_w_we & (self.m_rd == self.d_ra)),
            d_ops.w_b.eq(next_w_we & (self.m_rd == self.d_rb)),
        ]

        def forward(from_m, from_w, latched):
            return Mux(from_m, self.m_result, Mux(from_w, self.w_value, latched))

        x_ops = self.x_ops
        m.d.comb += [self.x_a.eq(forward(x_ops.m_a, x_ops.w_a, x_ops.a)),
                     self.x_b.eq(forward(x_ops.m_b, x_ops.w_b, x_ops.b))]
        held = self.x_held
        m.d.comb += [
            held.a.eq(self.x_a), held.b.eq(self.x_b),
            held.m_a.eq(next_m_we & self.m_stall & (self.m_rd == self.x_ra)),
            held.m_b.eq(next_m_we & self.m_stall & (self.m_rd == self.x_rb)),
            held.w_a.eq(next_w_we & (self.m_rd == self.x_ra)),
            held.w_b.eq(next_w_we & (self.m_rd == self.x_rb)),
        ]
        return m
