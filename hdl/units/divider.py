"""Divider: div, sdiv, mod, smod on 64 or 32 bits (RFC 9669 section 4.1, ISA-NOTES corners).

Radix-4 restoring division of magnitudes, normalised so that only the quotient's significant
digits are iterated:

========  ===========================================================================
start     latch |a|, |b| (cut to the width), the signs and the operation
norm      ``k = msb(|a|) - msb(|b|)``; |b| == 0 or k < 0 finish at once (q = 0, r = |a|);
          else the divisor shifts left by ``k`` rounded up to odd
iterate   two quotient bits per cycle: subtract 2D if it fits, then D if it fits
done      ``x_result``: the quotient or remainder with its sign fixed, cut to the width
========  ===========================================================================

Latency from ``x_start`` to ``x_done``: ``2 + ceil((k + 1) / 2)`` cycles (2 when the quotient is
0 or the divisor is 0; 34 for a full 64-bit quotient). Division by zero gives 0, modulo by zero
the dividend; INT_MIN / -1 wraps to INT_MIN and INT_MIN % -1 is 0, all without special cases:
they fall out of the magnitude arithmetic.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["Divider"]


def _encode(m, value, name):
    """(any bit set, index of the highest set bit) of ``value`` (width a power of two): a tree
    of named signals (so shared subexpressions stay shared)."""
    if len(value) == 1:
        return value[0], Const(0, 0)
    half = len(value) // 2
    lo_any, lo_index = _encode(m, value[:half], name + "l")
    hi_any, hi_index = _encode(m, value[half:], name + "h")
    any_ = Signal(name=name + "_any")
    index = Signal(len(hi_index) + 1, name=name + "_index")
    m.d.comb += [any_.eq(lo_any | hi_any),
                 index.eq(Mux(hi_any, Cat(hi_index, 1), Cat(lo_index, 0)))]
    return any_, index


def _msb(m, value, name):
    """Index of the highest set bit of ``value`` (0 when zero)."""
    out = Signal(range(len(value)), name=name)
    m.d.comb += out.eq(_encode(m, value, name)[1])
    return out


class Divider(wiring.Component):
    """Iterative divider.

    Parameters
    ----------
    external_shift : bool
        The normalising left shift is done outside (the CPU lends its shifter, idle while a
        division runs): ``x_norm*`` ports appear. Else the divider has its own shifter.

    Members
    -------
    x_start : In(1)
        Operands are valid: start (restarts any division in flight).
    x_a, x_b : In(64)
        Dividend and divisor (only the low 32 bits are used when ``x_w64`` is 0).
    x_w64, x_signed, x_mod : In(1)
        Width, signedness (``sdiv``/``smod``), remainder instead of quotient.
    x_done : Out(1)
        ``x_result`` holds the answer of the last start (stays until the next start).
    x_result : Out(64)
        Zero-extended for 32-bit operations.
    x_norm : Out(1)
        (``external_shift``) The divider needs ``x_norm_value << x_norm_shift`` on
        ``x_norm_result`` this cycle.
    x_norm_value : Out(64)
    x_norm_shift : Out(6)
    x_norm_result : In(64)
    """

    def __init__(self, *, external_shift=False):
        self._external = external_shift
        members = {
            "x_start": In(1), "x_a": In(64), "x_b": In(64), "x_w64": In(1),
            "x_signed": In(1), "x_mod": In(1), "x_done": Out(1), "x_result": Out(64),
        }
        if external_shift:
            members.update({"x_norm": Out(1), "x_norm_value": Out(64), "x_norm_shift": Out(6),
                            "x_norm_result": In(64)})
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        w64 = self.x_w64
        a = Mux(w64, self.x_a, self.x_a[:32])
        b = Mux(w64, self.x_b, self.x_b[:32])
        sign_a = self.x_signed & Mux(w64, self.x_a[63], self.x_a[31])
        sign_b = self.x_signed & Mux(w64, self.x_b[63], self.x_b[31])
        abs_a = Signal(64)
        abs_b = Signal(64)
        m.d.comb += [
            abs_a.eq(Mux(sign_a, Mux(w64, -self.x_a, (-self.x_a)[:32]), a)),
            abs_b.eq(Mux(sign_b, Mux(w64, -self.x_b, (-self.x_b)[:32]), b)),
        ]

        na = Signal(64)          # |a|, then the running remainder
        nb = Signal(64)
        neg_q = Signal()
        neg_r = Signal()
        is_mod = Signal()
        wide = Signal()
        q = Signal(64)
        d1 = Signal(66)          # D = |b| << shift, shifted right by 2 per step
        steps = Signal(range(33))

        msb_a = _msb(m, na, "msb_a")
        msb_b = _msb(m, nb, "msb_b")
        k = Signal(range(-64, 64))
        m.d.comb += k.eq(msb_a - msb_b)
        shift = Signal(6)
        m.d.comb += shift.eq(Cat(0, k[1:6]))     # (k | 1) - 1: the low bit pair starts at bit 0

        # One radix-4 step: the largest multiple of D (0..3) not above the remainder, as two
        # restoring radix-2 steps in a row (2D, then D): two subtractions and two 2-way
        # selects, where comparing with D, 2D and 3D at once costs three and a 4-way select.
        t2 = Signal(68)
        r_hi = Signal(64)
        t1 = Signal(68)
        r_lo = Signal(64)
        m.d.comb += [
            t2.eq(na - (d1 << 1)),
            r_hi.eq(Mux(t2[67], na, t2)),
            t1.eq(r_hi - d1),
            r_lo.eq(Mux(t1[67], r_hi, t1)),
        ]

        # |b| << shift fits in 64 bits: shift <= msb(|a|) - msb(|b|).
        shifted = Signal(64)
        if self._external:
            m.d.comb += [self.x_norm_value.eq(nb), self.x_norm_shift.eq(shift),
                         shifted.eq(self.x_norm_result)]
        else:
            m.d.comb += shifted.eq(nb << shift)

        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.x_start):
                    m.next = "NORM"
            with m.State("NORM"):
                if self._external:
                    m.d.comb += self.x_norm.eq(1)
                with m.If((nb == 0) | (msb_a < msb_b)):
                    m.d.sync += q.eq(0)
                    m.next = "DONE"
                with m.Else():
                    m.d.sync += [
                        q.eq(0),
                        d1.eq(shifted),
                        steps.eq(k[1:6] + 1),
                    ]
                    m.next = "ITER"
                with m.If(self.x_start):
                    m.next = "NORM"
            with m.State("ITER"):
                m.d.sync += [na.eq(r_lo), q.eq(Cat(~t1[67], ~t2[67], q)),   # q << 2 | digit
                             d1.eq(d1 >> 2), steps.eq(steps - 1)]
                with m.If(steps == 1):
                    m.next = "DONE"
                with m.If(self.x_start):
                    m.next = "NORM"
            with m.State("DONE"):
                m.d.comb += self.x_done.eq(1)
                with m.If(self.x_start):
                    m.next = "NORM"
        with m.If(self.x_start):
            m.d.sync += [
                na.eq(abs_a), nb.eq(abs_b),
                neg_q.eq(sign_a ^ sign_b), neg_r.eq(sign_a),
                is_mod.eq(self.x_mod), wide.eq(w64),
            ]

        magnitude = Mux(is_mod, na, q)
        value = Mux(Mux(is_mod, neg_r, neg_q), -magnitude, magnitude)
        m.d.comb += self.x_result.eq(Mux(wide, value[:64], value[:32]))
        return m
