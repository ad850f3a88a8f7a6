"""Execute's result: the value an instruction hands to the memory stage.

The destination register's value for ALU operations, byte swaps, ``lddw`` and helper calls, or
the store value of a store or atomic, as it is (the byte enables pick its bytes; the retire record
shows it cut to the access size). Loads and atomic fetches get theirs in the memory stage.
"""

from amaranth.hdl import Module, Mux
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from bpfcore.isa import AluOp, Kind

__all__ = ["ResultSelect"]


class ResultSelect(wiring.Component):
    """Pick execute's result by the instruction's kind.

    Members
    -------
    x_kind : In(Kind)
    x_alu_op : In(AluOp)
    x_w64 : In(1)
        A 64-bit operation (a 32-bit multiplication keeps the low word).
    x_mul, x_div : In(1)
        A multiplication, a division or modulo.
    x_alu, x_shift, x_mul_result, x_div_result, x_bswap, x_imm, x_helper_r0, x_store : In(64)
        The units' results, the 64-bit immediate (``lddw``), the helper's r0, the store value.
    x_result : Out(64)
    """

    x_kind: In(Kind)
    x_alu_op: In(AluOp)
    x_w64: In(1)
    x_mul: In(1)
    x_div: In(1)
    x_alu: In(64)
    x_shift: In(64)
    x_mul_result: In(64)
    x_div_result: In(64)
    x_bswap: In(64)
    x_imm: In(64)
    x_helper_r0: In(64)
    x_store: In(64)
    x_result: Out(64)

    def __init__(self, *, with_divider=True):
        self._with_divider = with_divider
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        result = self.x_result
        is_shift = self.x_alu_op.as_value().matches(AluOp.LSH, AluOp.RSH, AluOp.ARSH)
        with m.Switch(self.x_kind):
            with m.Case(Kind.ALU):
                with m.If(is_shift):
                    m.d.comb += result.eq(self.x_shift)
                with m.Elif(self.x_mul):
                    m.d.comb += result.eq(Mux(self.x_w64, self.x_mul_result,
                                              self.x_mul_result[:32]))
                with m.Elif(self.x_div):
                    if self._with_divider:
                        m.d.comb += result.eq(self.x_div_result)
                with m.Else():
                    m.d.comb += result.eq(self.x_alu)
            with m.Case(Kind.END):
                m.d.comb += result.eq(self.x_bswap)
            with m.Case(Kind.LDDW):
                m.d.comb += result.eq(self.x_imm)
            with m.Case(Kind.CALL, Kind.CALLX):
                m.d.comb += result.eq(self.x_helper_r0)
            with m.Case(Kind.STORE_IMM, Kind.STORE_REG, Kind.ATOMIC):
                m.d.comb += result.eq(self.x_store)
        return m
