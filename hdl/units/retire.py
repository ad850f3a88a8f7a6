"""The retire record: what the memory stage hands to writeback, and what the trace port shows.

One :data:`~bpfcore.hdl.layouts.RetireLayout` record per retired instruction, field by field the
golden VM's ``on_retire`` record (an eBPF analogue of RISC-V's RVFI). The memory stage builds it
from the execute/memory register and the access's outcome; writeback writes the register file
from it and puts it on the trace port.
"""

from amaranth.hdl import Cat, Module, Mux
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from bpfcore.isa import AluOp
from ..layouts import RetireLayout, TraceSignature, XmLayout

__all__ = ["RetireRecord"]


class RetireRecord(wiring.Component):
    """Retire record of the instruction in the memory stage; the trace port.

    Parameters
    ----------
    wrong_rd : bool
        Inject the known bug ``"wrong_rd"``: add results go to (and are reported for) rd ^ 1.

    Members
    -------
    m_xm : In(XmLayout)
        The execute/memory register.
    m_fault : In(4)
        Its final fault cause (a faulting instruction's record carries no effects).
    m_loaded : In(64)
        A load's value (aligned, extended).
    m_rdata : In(64)
        The bytes read (aligned, not extended).
    m_old : In(64)
        An atomic's old value (read in its first cycle).
    m_mask : In(8)
        The access's byte mask.
    m_atomic_store, m_atomic_new : In
        The atomic writes (``m_atomic_new``).
    m_rec : Out(RetireLayout)
    w_valid : In(1)
    w_rec : In(RetireLayout)
        The record in writeback.
    trace : Out(TraceSignature)
        ``w_rec`` with ``rd_value`` zeroed unless ``rd_valid``, ``mem_rdata`` unless the record
        has no fault. These two are zeroed here, not in ``m_rec``: off the load path, and no
        other reader uses them then.
    """

    def __init__(self, *, wrong_rd=False):
        self._wrong_rd = wrong_rd
        super().__init__({
            "m_xm": In(XmLayout),
            "m_fault": In(4),
            "m_loaded": In(64),
            "m_rdata": In(64),
            "m_old": In(64),
            "m_mask": In(8),
            "m_atomic_store": In(1),
            "m_atomic_new": In(64),
            "m_rec": Out(RetireLayout),
            "w_valid": In(1),
            "w_rec": In(RetireLayout),
            "trace": Out(TraceSignature),
        })

    def elaborate(self, platform):
        m = Module()
        xm = self.m_xm
        r = self.m_rec
        mmask = self.m_mask
        m.d.comb += [
            r.order.eq(xm.order), r.pc.eq(xm.pc), r.insn.eq(xm.insn), r.insn_hi.eq(xm.insn_hi),
            r.fault.eq(self.m_fault),
            r.rd.eq(xm.rd),
            r.helper_valid.eq(xm.helper_valid),
            r.ret_valid.eq(xm.ret_valid),
            r.ret.eq(Mux(xm.ret_valid, xm.ret, 0)),
        ]
        with m.If(xm.helper_valid):
            m.d.comb += [r.helper_id.eq(xm.helper_id), r.helper_r0.eq(xm.helper_r0)]
        with m.If(xm.load):
            m.d.comb += [
                r.rd_valid.eq(1), r.rd_value.eq(self.m_loaded),
                r.mem_addr.eq(xm.addr), r.mem_rmask.eq(mmask), r.mem_rdata.eq(self.m_rdata),
            ]
        with m.Elif(xm.store):
            m.d.comb += [r.mem_addr.eq(xm.addr), r.mem_wmask.eq(mmask),
                         r.mem_wdata.eq(xm.result & Cat(*(mmask[i].replicate(8)
                                                          for i in range(8))))]
        with m.Elif(xm.atomic):
            m.d.comb += [
                r.rd_valid.eq(xm.rd_valid), r.rd_value.eq(self.m_old),
                r.mem_addr.eq(xm.addr), r.mem_rmask.eq(mmask), r.mem_rdata.eq(self.m_old),
            ]
            with m.If(self.m_atomic_store):
                m.d.comb += [r.mem_wmask.eq(mmask), r.mem_wdata.eq(self.m_atomic_new)]
        with m.Else():
            m.d.comb += [r.rd_valid.eq(xm.rd_valid), r.rd_value.eq(xm.result)]
            if self._wrong_rd:
                with m.If(xm.rd_valid & (xm.insn[4:8] == AluOp.ADD.value)
                          & ((xm.insn[0:3] == 4) | (xm.insn[0:3] == 7))):
                    m.d.comb += r.rd.eq(xm.rd ^ 1)
        with m.If(self.m_fault != 0):
            m.d.comb += [r.rd_valid.eq(0), r.mem_addr.eq(0),
                         r.mem_rmask.eq(0), r.mem_wmask.eq(0),
                         r.mem_wdata.eq(0), r.helper_valid.eq(0), r.helper_id.eq(0),
                         r.helper_r0.eq(0), r.ret_valid.eq(0), r.ret.eq(0)]
        with m.If(~r.rd_valid):
            m.d.comb += r.rd.eq(0)

        trace = self.trace
        m.d.comb += [trace.valid.eq(self.w_valid), trace.record.eq(self.w_rec)]
        with m.If(~self.w_rec.rd_valid):
            m.d.comb += trace.record.rd_value.eq(0)
        with m.If(self.w_rec.fault != 0):
            m.d.comb += trace.record.mem_rdata.eq(0)
        return m
