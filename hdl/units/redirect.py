"""Execute's redirect: where the fetch goes when execute overrides decode's next pc.

A mispredicted conditional branch goes wherever decode did not send the fetch; a local call goes
to its target, a return to the caller's return pc, a tail call to the first slot of the program it
continues in. The redirect is registered (its condition beside execute's ``fire``, the two ANDed in
the next cycle, so neither waits for the other; no path runs from execute's operands to the
program memory address) and steers the fetch one cycle later, killing the instruction that entered
execute behind the redirecting one: a mispredicted branch costs 2 cycles.

Jump targets are also checked at full width: a target outside the running program faults
``PC_RANGE`` where the VM would land (the trace's pc is then the target's low 16 bits).
"""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from bpfcore.isa import Kind

__all__ = ["Redirect"]


class Redirect(wiring.Component):
    """Redirect target, its check, and the redirect register.

    Members
    -------
    prog_base : In(16)
    prog_end : In(17)
        The running program's first slot and one past its last.
    x_valid : In(1)
        Execute holds an instruction (not killed).
    x_early : In(1)
        It has a fault known before execution: no redirect.
    x_fire : In(1)
        Execute hands it on this cycle.
    x_kind : In(Kind)
    x_pc : In(16)
    x_imm : In(32)
    x_off : In(16)
    x_target, x_target_even : In(16)
        The predecoded target (pc + 1 + off, or + imm) and its even-bank row.
    x_bt : In(1)
        Decode predicted the conditional branch taken (the fetch followed it).
    x_taken : In(1)
        The branch compare's outcome.
    x_call : In(1)
        A local call that has a frame to push.
    x_ret, x_ret_pc : In
        A return to a caller, at the caller's return pc.
    x_tail, x_tail_pc : In
        A tail call taken, to the new program's first slot.
    x_ja_bad : Out(1)
        Execute holds a jump followed in decode whose target (now in decode) is outside the
        program.
    f_redirect : Out(1)
        Registered: fetch ``f_target`` this cycle (and kill the instruction in execute).
    f_target, f_target_even : Out(16)
    f_target_bad : Out(1)
        The target is outside the program.
    """

    prog_base: In(16)
    prog_end: In(17)
    x_valid: In(1)
    x_early: In(1)
    x_fire: In(1)
    x_kind: In(Kind)
    x_pc: In(16)
    x_imm: In(32)
    x_off: In(16)
    x_target: In(16)
    x_target_even: In(16)
    x_bt: In(1)
    x_taken: In(1)
    x_call: In(1)
    x_ret: In(1)
    x_ret_pc: In(16)
    x_tail: In(1)
    x_tail_pc: In(16)
    x_ja_bad: Out(1)
    f_redirect: Out(1)
    f_target: Out(16)
    f_target_even: Out(16)
    f_target_bad: Out(1)

    def elaborate(self, platform):
        m = Module()
        kind = self.x_kind
        pc = self.x_pc
        bt = self.x_bt

        wide_target = Signal(range(-(1 << 33), 1 << 33))
        m.d.comb += wide_target.eq(pc + 1 + Mux(kind.as_value().matches(Kind.JA32,
                                                                        Kind.CALL_LOCAL),
                                                self.x_imm.as_signed(), self.x_off.as_signed()))
        target_bad = Signal()
        m.d.comb += target_bad.eq((wide_target < self.prog_base) | (wide_target >= self.prog_end))
        m.d.comb += self.x_ja_bad.eq(self.x_valid & ~self.x_early & target_bad
                                     & (kind.as_value().matches(Kind.JA, Kind.JA32) | bt))

        # The target depends on the kind only (a conditional branch goes wherever decode did
        # not send the fetch); whether to redirect comes from the compare.
        target = Signal(16)
        target_even = Signal(16)
        bad = Signal()
        with m.Switch(kind):
            with m.Case(Kind.JCOND):
                m.d.comb += [target.eq(Mux(bt, pc + 1, self.x_target)),
                             target_even.eq(Mux(bt, (pc + 2) >> 1, self.x_target_even)),
                             bad.eq(~bt & target_bad)]
            with m.Case(Kind.CALL_LOCAL):
                m.d.comb += [target.eq(self.x_target), target_even.eq(self.x_target_even),
                             bad.eq(target_bad)]
            with m.Case(Kind.CALL, Kind.CALLX):
                m.d.comb += [target.eq(self.x_tail_pc),
                             target_even.eq((self.x_tail_pc + 1) >> 1)]
            with m.Default():
                m.d.comb += [target.eq(self.x_ret_pc),
                             target_even.eq((self.x_ret_pc + 1) >> 1)]
        # (Branches and exits cannot fault in execute: only the early causes stop them.)
        redirect = Signal()
        m.d.comb += redirect.eq(~self.x_early
                                & (((kind == Kind.JCOND) & (self.x_taken != bt))
                                   | self.x_call | self.x_tail | self.x_ret))

        cond = Signal()
        fired = Signal()
        m.d.sync += [cond.eq(redirect), fired.eq(self.x_fire), self.f_target.eq(target),
                     self.f_target_even.eq(target_even), self.f_target_bad.eq(bad)]
        m.d.comb += self.f_redirect.eq(cond & fired)
        return m
