"""Timing probes: the CPU's tightest loops alone, to measure what the ECP5 fabric allows.

Each probe is one loop of the pipeline with nothing else in the design: flip-flops in front,
the logic of one stage, flip-flops behind, and the result fed back where the CPU feeds it back.
Placed alone (``bpfcore synth-report --target probe_...``), a probe's Fmax is an upper bound
for any CPU that keeps that loop in one cycle: the full design only adds routing congestion and
sources. ``hdl/README.md`` ("What stands between this CPU and 100 MHz") gives the figures.

* :class:`ExecuteLoop`: the CPU's :class:`~bpfcore.hdl.units.alu.Alu` (and, with
  ``shifter=True``, its :class:`~bpfcore.hdl.units.shifter.Shifter` beside it) behind a
  four-way forwarding multiplexer whose first source is the result: back-to-back dependent
  instructions in execute.
* :class:`AdderLoop`: the same loop with only a 64-bit add, or add/sub/and/xor: the floor
  under any ALU.
* :class:`CompareLoop`: the CPU's :class:`~bpfcore.hdl.units.branch.BranchCompare` behind the
  same multiplexer, into a registered "taken" that picks the next fetch address.
* :class:`BlockRamRead`: one DP16KD read (no output register) into flip-flops through
  ``levels`` two-way multiplexers: what may follow a block RAM in one cycle.
"""

from amaranth.hdl import Array, Cat, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

__all__ = ["AdderLoop", "ExecuteLoop", "CompareLoop", "BlockRamRead"]


def _forwarding_sources(m, result, seed):
    """Four 64-bit sources for an operand: the loop's ``result`` and three registers that
    change every cycle (as the memory stage, writeback and the register read would)."""
    sources = [result] + [Signal(64, name=f"source{i}") for i in range(1, 4)]
    m.d.sync += [sources[1].eq(seed), sources[2].eq(sources[1] + 1),
                 sources[3].eq(sources[2] ^ sources[1])]
    return Array(sources)


class _Loop(wiring.Component):
    """An execute loop: two operands picked by the forwarding multiplexer, :meth:`operate` on
    them, the result registered and fed back as the multiplexer's first source.

    Members
    -------
    seed : In(64)
        Feeds the forwarding sources other than the result.
    control : In(16)
        Registered, then cut into the operand selects (bits 0-3) and what :meth:`operate`
        takes from the rest.
    result : Out(64)
    """

    seed: In(64)
    control: In(16)
    result: Out(64)

    def operate(self, m, a, b, control):
        raise NotImplementedError

    def elaborate(self, platform):
        m = Module()
        result = Signal(64)
        control = Signal(16)
        m.d.sync += control.eq(self.control)
        sources = _forwarding_sources(m, result, self.seed)
        m.d.sync += result.eq(self.operate(m, sources[control[0:2]], sources[control[2:4]],
                                           control))
        m.d.comb += self.result.eq(result)
        return m


class ExecuteLoop(_Loop):
    """The execute loop with the CPU's ALU (and, with ``shifter=True``, its shifter beside
    it): bits 4-7 of ``control`` are the operation, 8 the width, 9-10 the ``movsx`` width, 11
    picks the shifter."""

    def __init__(self, shifter=False):
        self._shifter = shifter
        super().__init__()

    def operate(self, m, a, b, control):
        from bpfcore.hdl.units.alu import Alu
        from bpfcore.hdl.units.shifter import Shifter
        m.submodules.alu = alu = Alu()
        m.d.comb += [alu.x_a.eq(a), alu.x_b.eq(b), alu.x_op.eq(control[4:8]),
                     alu.x_w64.eq(control[8]),
                     alu.x_off.eq(Array([0, 8, 16, 32])[control[9:11]])]
        if not self._shifter:
            return alu.x_result
        m.submodules.shifter = shifter = Shifter()
        m.d.comb += [shifter.x_a.eq(a), shifter.x_b.eq(b), shifter.x_op.eq(control[4:8]),
                     shifter.x_w64.eq(control[8])]
        return Mux(control[11], shifter.x_result, alu.x_result)


class AdderLoop(_Loop):
    """The smallest execute loop: a 64-bit add, or (``logic=True``) add, sub, and, xor picked
    by bits 4-5 of ``control``."""

    def __init__(self, logic=False):
        self._logic = logic
        super().__init__()

    def operate(self, m, a, b, control):
        if self._logic:
            return Array([a + b, a - b, a & b, a ^ b])[control[4:6]]
        return a + b


class CompareLoop(wiring.Component):
    """Branch resolution: forwarded operands, the 64/32-bit compare, a registered "taken" that
    picks the next fetch address (and the address feeds a forwarding source back).

    Members
    -------
    seed : In(64)
    control : In(16)
        Registered, then cut into the operand selects, the condition and the width.
    pc : Out(16)
    """

    seed: In(64)
    control: In(16)
    pc: Out(16)

    def elaborate(self, platform):
        from bpfcore.hdl.units.branch import BranchCompare
        m = Module()
        pc = Signal(16)
        taken = Signal()
        result = Signal(64)
        control = Signal(16)
        m.d.sync += [control.eq(self.control), result.eq(Cat(pc, self.seed[16:]))]
        sources = _forwarding_sources(m, result, self.seed)
        m.submodules.compare = compare = BranchCompare()
        m.d.comb += [compare.x_a.eq(sources[control[0:2]]), compare.x_b.eq(sources[control[2:4]]),
                     compare.x_op.eq(control[4:8]), compare.x_w64.eq(control[8])]
        m.d.sync += [taken.eq(compare.x_taken),
                     pc.eq(Mux(taken, pc + self.seed[:16], pc + 1))]
        m.d.comb += self.pc.eq(pc)
        return m


class BlockRamRead(wiring.Component):
    """A 512 x 36 block RAM read (registered address, no output register) into flip-flops,
    through ``levels`` two-way multiplexers.

    Members
    -------
    addr : In(9)
    data : In(36)
        Write data, and the multiplexers' other input.
    we : In(1)
    q : Out(36)
    """

    addr: In(9)
    data: In(36)
    we: In(1)
    q: Out(36)

    def __init__(self, levels=0):
        self._levels = levels
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules.memory = memory = Memory(shape=36, depth=512, init=[])
        write = memory.write_port()
        read = memory.read_port()
        other = Signal(36)
        select = Signal(9)
        m.d.sync += [other.eq(self.data), select.eq(self.addr)]
        m.d.comb += [write.addr.eq(self.addr), write.data.eq(self.data), write.en.eq(self.we),
                     read.addr.eq(self.addr + 1)]
        value = read.data
        for level in range(self._levels):
            value = Mux(select[level], value, value.rotate_left(1) ^ other)
        q = Signal(36)
        m.d.sync += q.eq(value)
        m.d.comb += self.q.eq(q)
        return m
