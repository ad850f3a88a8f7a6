"""Fault priority: which cause an instruction retires with, in the golden VM's order.

Decode finds ``PC_RANGE`` (the fetch left the program) before ``ILLEGAL``. Execute puts the
causes known before execution first (``PC_RANGE``, then an exhausted budget, then decode's
``ILLEGAL``), then the region check of a memory access, a local call past the last frame, a
helper's fault. The memory stage adds a map value access that the map memory refused (out of
bounds, then read-only); an instruction that faulted earlier makes no map access, so at most one
of the two causes is set there.
"""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from bpfcore.abi import Fault

__all__ = ["FaultPriority"]


class FaultPriority(wiring.Component):
    """The fault cause of the instruction in decode, execute and memory (0: none).

    Members
    -------
    d_pc_range : In(1)
        The instruction in decode lies outside the program (or was reached by a jump that left
        it).
    d_legal : In(1)
    d_fault : Out(4)
    x_dx_fault : In(4)
        The cause decode found for the instruction in execute.
    x_budget_hit : In(1)
        The instruction in execute is one past the budget.
    x_mem, x_region_fault : In
        A load, store or atomic, and the region check's cause.
    x_call_full : In(1)
        A local call with every frame in use.
    x_helper, x_helper_fault : In
        A helper call, and the helper's cause.
    x_early : Out(1)
        A cause known before execution: the instruction has no effect in execute.
    x_fault : Out(4)
    m_xm_fault : In(4)
        Execute's cause for the instruction in memory.
    m_map : In(1)
        It accesses a map value (and had no earlier fault).
    m_write, m_map_ok, m_map_ro : In
        The access writes; the map memory's answer (inside a value; the map is read-only).
    m_map_fault : Out(4)
    m_fault : Out(4)
    """

    d_pc_range: In(1)
    d_legal: In(1)
    d_fault: Out(4)
    x_dx_fault: In(4)
    x_budget_hit: In(1)
    x_mem: In(1)
    x_region_fault: In(4)
    x_call_full: In(1)
    x_helper: In(1)
    x_helper_fault: In(4)
    x_early: Out(1)
    x_fault: Out(4)
    m_xm_fault: In(4)
    m_map: In(1)
    m_write: In(1)
    m_map_ok: In(1)
    m_map_ro: In(1)
    m_map_fault: Out(4)
    m_fault: Out(4)

    def elaborate(self, platform):
        m = Module()

        with m.If(self.d_pc_range):
            m.d.comb += self.d_fault.eq(Fault.PC_RANGE)
        with m.Elif(~self.d_legal):
            m.d.comb += self.d_fault.eq(Fault.ILLEGAL)

        early = Signal(4)
        with m.If(self.x_dx_fault == Fault.PC_RANGE):
            m.d.comb += early.eq(Fault.PC_RANGE)
        with m.Elif(self.x_budget_hit):
            m.d.comb += early.eq(Fault.BUDGET)
        with m.Elif(self.x_dx_fault != 0):
            m.d.comb += early.eq(self.x_dx_fault)
        m.d.comb += self.x_early.eq((self.x_dx_fault != 0) | self.x_budget_hit)
        with m.If(self.x_early):
            m.d.comb += self.x_fault.eq(early)
        with m.Elif(self.x_mem):
            m.d.comb += self.x_fault.eq(self.x_region_fault)
        with m.Elif(self.x_call_full):
            m.d.comb += self.x_fault.eq(Fault.CALL_DEPTH)
        with m.Elif(self.x_helper):
            m.d.comb += self.x_fault.eq(self.x_helper_fault)

        with m.If(self.m_map & ~self.m_map_ok):
            m.d.comb += self.m_map_fault.eq(Mux(self.m_write, Fault.STORE_OOB, Fault.LOAD_OOB))
        with m.Elif(self.m_map & self.m_write & self.m_map_ro):
            m.d.comb += self.m_map_fault.eq(Fault.STORE_RO)
        m.d.comb += self.m_fault.eq(self.m_xm_fault | self.m_map_fault)
        return m
