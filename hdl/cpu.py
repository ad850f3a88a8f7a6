"""The pipelined eBPF CPU: fetch, decode, execute, memory, writeback.

See ``hdl/README.md`` for the pipeline, its hazards and the measured figures. This file wires the
stages and the units of :mod:`bpfcore.hdl.units`; the control vocabulary is:

* **stall**: a stage keeps its instruction this cycle (and so does every older stage behind it);
* **kill**: a stage's instruction is dropped (wrong path after a redirect, or younger than an
  instruction that ends the program);
* **fire**: a stage hands its instruction to the next stage this cycle;
* **redirect**: execute changes the fetch address (taken branch, local call, exit to a caller).
"""

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from bpfcore import abi
from bpfcore.abi import Fault, Region
from bpfcore.isa import AluOp, Kind, LddwSource, Size
from .layouts import (DxLayout, HelperMemSignature, HelperRequest, HelperResponse, MwLayout,
                      SlotPortSignature, TraceSignature, XmLayout)
from .maps.layouts import CpuValueSignature
from .units.alu import Alu
from .units.atomics import Atomics
from .units.branch import BranchCompare
from .units.bswap import ByteSwap
from .units.callstack import CallStack
from .units.divider import Divider
from .units.faults import FaultPriority
from .units.fetch import Fetch
from .units.helper import HelperPort
from .units.lsu import Lsu, RegionCheck
from .units.memport import MemoryPort
from .units.multicycle import MultiCycle
from .units.multiplier import Multiplier
from .units.predictor import BHT_ENTRIES, BranchPredictor
from .units.redirect import Redirect
from .units.regfile import RegisterFile
from .units.result import ResultSelect
from .units.retire import RetireRecord
from .units.run import RunControl
from .units.shifter import Shifter
from .unused import rejecting

__all__ = ["BHT_ENTRIES", "Cpu", "INJECT_BUGS"]

#: Known bugs that ``inject_bug`` can switch on, to prove that lockstep checks catch them.
INJECT_BUGS = {
    "wrong_rd": "add results go to (and are reported for) rd ^ 1",
    "bounds_off_by_one": "the packet end check lets one byte past data_end through",
}


def _check(name, value, ok, expected):
    if not ok:
        raise ValueError(f"Cpu: {name}={value!r} is invalid: expected {expected}")


class Cpu(wiring.Component):
    """The eBPF CPU.

    Parameters
    ----------
    program_slots : int
        Program memory size in 64-bit slots: a power of two from 2 to 65536.
    frames : int
        Call frames (the entry program's included), 1 to ``abi.STACK_FRAMES``; a local call
        beyond them faults with ``Fault.CALL_DEPTH``. The golden VM uses ``abi.STACK_FRAMES``.
    with_divider : bool
        Build the divider; without it div/mod trap as ``Fault.ILLEGAL``.
    with_atomics : bool
        Build the atomics; without them atomic instructions trap as ``Fault.ILLEGAL``.
    inject_bug : str or None
        A key of :data:`INJECT_BUGS`, or None.
    pkt_slots : int
        1: one packet buffer, loaded through the packet port while idle. 2 to 16: packet slots
        of ``abi.PKT_SLOT_SIZE`` bytes (see :class:`~bpfcore.hdl.units.lsu.Lsu`).

    Members
    -------
    prog_we, prog_addr, prog_wdata
        Program port: write one slot (the little-endian 64-bit view) per cycle while idle. The
        program's length is one past the last slot written (control beyond it faults
        ``PC_RANGE``).
    pkt_we, pkt_addr, pkt_wdata, pkt_rdata
        With one packet slot: the packet buffer port (64-bit words, byte enables), honoured
        while idle; ``pkt_rdata`` is the word at ``pkt_addr`` one cycle later.
    start_slot, dp
        With several packet slots: the slot a run uses (latched by ``start``), and a
        datapath's port to the other slots (:class:`~bpfcore.hdl.layouts.SlotPortSignature`).
    start, start_r1, start_r2, budget, data, data_end, ingress_ifindex, rx_queue_index
        Run control: ``start`` (a pulse while idle) latches the other inputs and runs from pc 0.
    entry_len
        Slots of the program that ``start`` runs (it begins at slot 0); 0 means up to the last
        slot written. Program memory may hold more programs after it: ``tail_call`` targets,
        which a helper response with ``tail`` switches to (pcs in the trace count from the
        start of the running program, as in the VM).
    busy, done, result_r0, result_fault, result_pc, cycles
        Run status: ``done`` pulses once when the program ended; the results hold until the
        next start.
    result_data, result_data_end
        The packet bounds (``data``, ``data_end``), as helpers left them: the packet leaves
        with the bytes between them.
    helper_req, helper_resp
        Helper port (streams of :data:`HelperRequest` / :data:`HelperResponse`). A response
        with ``ctx_we`` moves the packet bounds (``data``/``data_end`` and the ``xdp_md`` words)
        as the helper instruction retires.
    hmem : In(HelperMemSignature)
        The helper units' access to stack, packet, context and map values while the CPU waits
        for a helper response (see :data:`HelperMemSignature`): done two cycles after ``en``,
        with the same region rules as loads and stores.
    maps : Out(CpuValueSignature())
        Map values (``abi.MAP_BASE`` ...): the map memory's CPU port. Loads, stores and atomics
        there are checked by the map memory (``ok``, ``ro``) in the memory stage. Tie ``ok``
        low when there is no map memory: every map access then faults like any other
        out-of-bounds access.
    trace
        One :data:`RetireLayout` record per retired instruction (``trace.valid``).

    Raises
    ------
    ValueError
        A constructor argument is out of range (the message echoes it).
    """

    def __init__(self, *, program_slots=4096, frames=8, with_divider=True, with_atomics=True,
                 inject_bug=None, pkt_slots=1):
        with rejecting(self):
            self._validate(program_slots, frames, with_divider, with_atomics, inject_bug)
            _check("pkt_slots", pkt_slots,
                   isinstance(pkt_slots, int) and 1 <= pkt_slots <= 16, "an int from 1 to 16")
        self.program_slots = program_slots
        self.pkt_slots = pkt_slots
        self.frames = frames
        self.with_divider = with_divider
        self.with_atomics = with_atomics
        self.inject_bug = inject_bug
        if pkt_slots == 1:
            packet = {"pkt_we": In(8), "pkt_addr": In(range(abi.PKT_BUF_SIZE // 8)),
                      "pkt_wdata": In(64), "pkt_rdata": Out(64)}
        else:
            packet = {"start_slot": In(range(pkt_slots)),
                      "dp": In(SlotPortSignature(slots=pkt_slots, slot_bytes=abi.PKT_SLOT_SIZE))}
        super().__init__({
            "prog_we": In(1),
            "prog_addr": In(range(program_slots)),
            "prog_wdata": In(64),
            **packet,
            "entry_len": In(range(program_slots + 1)),
            "start": In(1),
            "start_r1": In(64),
            "start_r2": In(64),
            "budget": In(32),
            "data": In(32),
            "data_end": In(32),
            "ingress_ifindex": In(32),
            "rx_queue_index": In(32),
            "busy": Out(1),
            "done": Out(1),
            "result_r0": Out(64),
            "result_fault": Out(4),
            "result_pc": Out(16),
            "result_data": Out(32),
            "result_data_end": Out(32),
            "cycles": Out(64),
            "helper_req": Out(stream.Signature(HelperRequest)),
            "helper_resp": In(stream.Signature(HelperResponse)),
            "hmem": In(HelperMemSignature),
            "maps": Out(CpuValueSignature()),
            "trace": Out(TraceSignature),
        })

    @staticmethod
    def _validate(program_slots, frames, with_divider, with_atomics, inject_bug):
        _check("program_slots", program_slots,
               isinstance(program_slots, int) and 2 <= program_slots <= 65536
               and program_slots & (program_slots - 1) == 0,
               "a power of two from 2 to 65536")
        _check("frames", frames, isinstance(frames, int) and 1 <= frames <= abi.STACK_FRAMES,
               f"an int from 1 to {abi.STACK_FRAMES}")
        _check("with_divider", with_divider, isinstance(with_divider, bool), "True or False")
        _check("with_atomics", with_atomics, isinstance(with_atomics, bool), "True or False")
        _check("inject_bug", inject_bug, inject_bug is None or inject_bug in INJECT_BUGS,
               "None or one of " + ", ".join(repr(k) for k in INJECT_BUGS))

    def elaborate(self, platform):
        m = Module()
        m.submodules.run = run = RunControl(self.program_slots, self.pkt_slots)
        m.submodules.fetch = fetch = Fetch(self.program_slots, with_divider=self.with_divider,
                                           with_atomics=self.with_atomics)
        m.submodules.predictor = predictor = BranchPredictor()
        m.submodules.regfile = rf = RegisterFile()
        m.submodules.faults = faults = FaultPriority()
        m.submodules.redirect = redirect = Redirect()
        m.submodules.multicycle = multi = MultiCycle(with_divider=self.with_divider)
        m.submodules.callstack = cs = CallStack(self.frames)
        m.submodules.alu = alu = Alu()
        m.submodules.shifter = shifter = Shifter()
        m.submodules.bswap = bswap = ByteSwap()
        m.submodules.branch = branch = BranchCompare()
        m.submodules.mul = mul = Multiplier()
        if self.with_divider:
            m.submodules.div = div = Divider(external_shift=True)
        m.submodules.helper = helper = HelperPort()
        m.submodules.region = region = RegionCheck(
            bounds_off_by_one=self.inject_bug == "bounds_off_by_one")
        m.submodules.lsu = lsu = Lsu(pkt_slots=self.pkt_slots)
        m.submodules.memport = memport = MemoryPort()
        m.submodules.result = result = ResultSelect(with_divider=self.with_divider)
        m.submodules.atomics = atomics = Atomics()
        m.submodules.retire = retire = RetireRecord(wrong_rd=self.inject_bug == "wrong_rd")

        # The stage-pair payloads (fd is the program memory's output, in the fetch unit).
        fd = fetch.fd
        dx = Signal(DxLayout)
        xm = Signal(XmLayout)
        mw = Signal(MwLayout)
        x = dx.ctrl

        # ---- Stall, kill, fire: every cause on its own line ----------------------------------
        f_kill = Signal()
        d_stall = Signal()
        d_fire = Signal()
        x_valid = Signal()
        x_stall = Signal()
        x_fire = Signal()
        m_stall = Signal()
        m_kill = Signal()
        m_term = Signal()
        m_late = Signal()
        m_ok = Signal()             # the memory stage holds an instruction that acts
        m_retire = Signal()
        load_use = Signal()         # (execute's stall causes are worked out below)
        map_hazard = Signal()
        phase = Signal()            # the atomic in memory is in its second cycle
        m.d.comb += [
            f_kill.eq(~run.running  # kill: not running (or the run ended)
                      | m_kill),
            d_stall.eq(fd.valid & x_stall),         # stall: execute keeps its instruction
            d_fire.eq(fd.valid & ~d_stall
                      & ~redirect.f_redirect        # kill: on the wrong path
                      & ~m_kill),
            x_valid.eq(dx.valid
                       & ~redirect.f_redirect),     # kill: on the wrong path
            x_stall.eq(x_valid & (
                load_use            # an operand comes from a load (or atomic fetch) in memory
                | multi.x_wait      # a multi-cycle unit works, or a call waits for the drain
                | m_stall           # the memory stage keeps an atomic for its second cycle
                | map_hazard)),     # a memory access right behind a map value write
            x_fire.eq(x_valid & ~x_stall & ~m_kill),
            # An atomic whose map access faults takes its second cycle too (it writes nothing
            # and retires with the fault then).
            m_stall.eq(m_ok & xm.atomic & ~phase),  # stall: an atomic's read cycle
            m_kill.eq(m_term        # kill the younger instructions: this one ends the run
                      | m_late),    # kill: the previous one's map value access faulted
            m_term.eq(xm.valid & ~m_late & ((xm.fault != 0) | xm.ret_valid)),
            m_ok.eq(xm.valid & (xm.fault == 0) & ~m_late),
            m_retire.eq(xm.valid & ~m_stall & ~m_late),
        ]
        # The map memory answers late in the cycle: its fault stops the younger instructions a
        # cycle later, and the one that entered the memory stage meanwhile has no effect.
        m.d.sync += m_late.eq(m_retire & (faults.m_map_fault != 0))

        # ---- Run control ---------------------------------------------------------------------
        m.d.comb += [
            run.start.eq(self.start), run.entry_len.eq(self.entry_len),
            run.prog_len.eq(fetch.length), run.budget.eq(self.budget), run.data.eq(self.data),
            run.data_end.eq(self.data_end), run.ingress_ifindex.eq(self.ingress_ifindex),
            run.rx_queue_index.eq(self.rx_queue_index),
            self.busy.eq(run.busy), self.done.eq(run.done), self.cycles.eq(run.cycles),
            run.clearing.eq(lsu.clearing), run.x_fire.eq(x_fire), run.m_kill.eq(m_kill),
            lsu.clear.eq(run.clear), cs.x_reset.eq(run.clear), rf.start.eq(run.clear),
            self.result_data.eq(run.pkt_data), self.result_data_end.eq(run.pkt_data_end),
            self.result_r0.eq(run.result_r0), self.result_fault.eq(run.result_fault),
            self.result_pc.eq(run.result_pc),
        ]

        # ---- Fetch -> decode -----------------------------------------------------------------
        m.d.comb += [
            fetch.prog_we.eq(self.prog_we), fetch.prog_addr.eq(self.prog_addr),
            fetch.prog_wdata.eq(self.prog_wdata),
            fetch.f_launch.eq(run.launch),
            fetch.f_kill.eq(f_kill),
            fetch.f_redirect.eq(redirect.f_redirect),
            fetch.f_target.eq(redirect.f_target), fetch.f_target_even.eq(redirect.f_target_even),
            fetch.f_target_bad.eq(redirect.f_target_bad),
            fetch.f_next.eq(predictor.f_next), fetch.f_next_even.eq(predictor.f_next_even),
            fetch.d_stall.eq(d_stall),
            predictor.clear.eq(run.launch), predictor.fd.eq(fd),
            predictor.d_even.eq(fetch.d_even), predictor.d_odd.eq(fetch.d_odd),
        ]

        # ---- Decode --------------------------------------------------------------------------
        d_insn = fd.slot.insn
        d_hi = fd.insn_hi
        ctrl = fd.slot.ctrl
        d_fault = faults.d_fault
        m.d.comb += [faults.d_pc_range.eq(fd.bad | redirect.x_ja_bad | (fd.pc >= run.prog_end)),
                     faults.d_legal.eq(ctrl.legal)]
        imm = d_insn[32:].as_signed()
        src = d_insn[12:16]         # lddw: a constant, else a map (+ a value offset)
        adds_offset = (src == LddwSource.MAP_VALUE) | (src == LddwSource.MAP_IDX_VALUE)
        map_imm = abi.MAP_BASE + (imm << 20) + Mux(adds_offset, d_hi[32:], 0)
        d_imm = Signal(64)
        m.d.comb += d_imm.eq(Mux(ctrl.lddw, Mux(src == LddwSource.IMM64,
                                                Cat(d_insn[32:], d_hi[32:]), map_imm), imm))
        m.d.comb += [
            rf.start_r1.eq(self.start_r1), rf.start_r2.eq(self.start_r2), rf.fp.eq(cs.fp),
            rf.d_ra.eq(ctrl.ra), rf.d_rb.eq(ctrl.rb), rf.d_imm.eq(imm),
            rf.x_ops.eq(dx.ops), rf.x_ra.eq(x.ra), rf.x_rb.eq(x.rb), rf.x_rd.eq(x.rd),
            rf.x_rd_we.eq(x.rd_we), rf.x_fire.eq(x_fire),
            rf.m_valid.eq(xm.valid), rf.m_rd_valid.eq(xm.rd_valid), rf.m_rd.eq(xm.rd),
            rf.m_result.eq(xm.result), rf.m_stall.eq(m_stall),
            rf.w_we.eq(mw.valid & mw.rec.rd_valid), rf.w_rd.eq(mw.rec.rd),
            rf.w_value.eq(mw.rec.rd_value),
        ]
        dx_next = Signal(DxLayout)
        m.d.comb += [
            dx_next.valid.eq(fd.valid), dx_next.pc.eq(fd.pc),
            dx_next.insn.eq(Mux(d_fault == Fault.PC_RANGE, 0, d_insn)),
            dx_next.insn_hi.eq(Mux((d_fault == 0) & ctrl.lddw, d_hi, 0)),
            dx_next.fault.eq(d_fault), dx_next.ctrl.eq(ctrl), dx_next.ops.eq(rf.d_ops),
            dx_next.imm.eq(d_imm), dx_next.off.eq(d_insn[16:32]),
            dx_next.target.eq(fd.slot.target), dx_next.target_even.eq(fd.slot.target_even),
            dx_next.bt.eq(predictor.d_taken),
        ]

        # ---- Execute -------------------------------------------------------------------------
        op_a = rf.x_a
        op_b = rf.x_b               # the register or, as IMM_REG, the immediate
        early = faults.x_early      # a fault known before execution: no effects in execute
        go = x_valid & ~early
        is_mul = (x.kind == Kind.ALU) & (x.alu_op == AluOp.MUL)
        is_div = (x.kind == Kind.ALU) & x.alu_op.as_value().matches(AluOp.DIV, AluOp.MOD)
        is_mem = x.kind.as_value().matches(Kind.LOAD, Kind.LOADSX, Kind.STORE_IMM,
                                           Kind.STORE_REG, Kind.ATOMIC)
        is_write = x.kind.as_value().matches(Kind.STORE_IMM, Kind.STORE_REG, Kind.ATOMIC)
        is_helper = x.kind.as_value().matches(Kind.CALL, Kind.CALLX)
        is_call = x.kind == Kind.CALL_LOCAL
        is_ret = (x.kind == Kind.EXIT) & (cs.depth != 0)
        is_end = (x.kind == Kind.EXIT) & (cs.depth == 0)
        is_tail = (helper.x_fault == 0) & is_helper & helper.x_tail
        drained = ~xm.valid & ~mw.valid
        m.d.comb += [
            load_use.eq(xm.late & ((x.use_a & dx.ops.m_a) | (x.use_b & dx.ops.m_b))),
            # The map memory's read port is not transparent.
            map_hazard.eq(is_mem & xm.valid & (xm.region == Region.MAP) & (xm.store | xm.atomic)),
        ]

        m.d.comb += [
            alu.x_op.eq(x.alu_op), alu.x_a.eq(op_a), alu.x_b.eq(op_b), alu.x_w64.eq(x.w64),
            alu.x_off.eq(dx.off),
            bswap.x_a.eq(op_a), bswap.x_bits.eq(dx.imm[:7]), bswap.x_swap.eq(x.swap),
            branch.x_op.eq(x.jmp_op), branch.x_a.eq(op_a), branch.x_b.eq(op_b),
            branch.x_w64.eq(x.w64),
            mul.x_a.eq(op_a), mul.x_b.eq(op_b), mul.x_start.eq(multi.x_mul_start),
            region.x_base.eq(op_a), region.x_off.eq(dx.off), region.x_size.eq(x.size),
            region.x_write.eq(is_write), region.x_data.eq(run.pkt_data),
            region.x_data_end.eq(run.pkt_data_end), region.x_fp.eq(cs.fp),
            helper.x_start.eq(multi.x_helper_start),
            helper.x_bad.eq((x.kind == Kind.CALLX) & (op_a[32:] != 0)),
            helper.x_nested.eq(cs.depth != 0),
            helper.x_id.eq(Mux(x.kind == Kind.CALLX, op_a[:32], dx.imm[:32])),
            helper.x_args.eq(rf.x_r1_r5),
        ]
        wiring.connect(m, wiring.flipped(self.helper_req), helper.req)
        wiring.connect(m, helper.resp, wiring.flipped(self.helper_resp))
        m.d.comb += [shifter.x_op.eq(x.alu_op), shifter.x_a.eq(op_a), shifter.x_b.eq(op_b),
                     shifter.x_w64.eq(x.w64)]
        if self.with_divider:
            m.d.comb += [
                div.x_a.eq(op_a), div.x_b.eq(op_b), div.x_w64.eq(x.w64),
                div.x_signed.eq(dx.off[0]), div.x_mod.eq(x.alu_op == AluOp.MOD),
                div.x_start.eq(multi.x_div_start), multi.x_div_done.eq(div.x_done),
                div.x_norm_result.eq(shifter.x_result), result.x_div_result.eq(div.x_result),
            ]
            # The divider borrows the shifter (idle during a division) to normalise.
            with m.If(div.x_norm):
                m.d.comb += [shifter.x_op.eq(AluOp.LSH), shifter.x_a.eq(div.x_norm_value),
                             shifter.x_b.eq(div.x_norm_shift), shifter.x_w64.eq(1)]
        m.d.comb += [
            multi.x_go.eq(go), multi.x_load_use.eq(load_use), multi.x_mul.eq(is_mul),
            multi.x_div.eq(is_div), multi.x_helper.eq(is_helper),
            multi.x_drain.eq(is_helper | is_call | is_ret), multi.x_drained.eq(drained),
            multi.x_mul_done.eq(mul.x_done), multi.x_helper_done.eq(helper.x_done),
            multi.x_fire.eq(x_fire), multi.m_kill.eq(m_kill),
        ]
        m.d.comb += [
            faults.x_dx_fault.eq(dx.fault), faults.x_budget_hit.eq(run.x_budget_hit),
            faults.x_mem.eq(is_mem), faults.x_region_fault.eq(region.x_fault),
            faults.x_call_full.eq(is_call & cs.x_full),
            faults.x_helper.eq(is_helper), faults.x_helper_fault.eq(helper.x_fault),
        ]

        m.d.comb += [
            result.x_kind.eq(x.kind), result.x_alu_op.eq(x.alu_op), result.x_w64.eq(x.w64),
            result.x_mul.eq(is_mul), result.x_div.eq(is_div), result.x_alu.eq(alu.x_result),
            result.x_shift.eq(shifter.x_result), result.x_mul_result.eq(mul.x_result),
            result.x_bswap.eq(bswap.x_result), result.x_imm.eq(dx.imm),
            result.x_helper_r0.eq(helper.x_r0), result.x_store.eq(op_b),
        ]

        # The access, helper and return flags are not qualified by execute's fault: the memory
        # stage drops their effects (and clears the record) when ``xm.fault`` is set.
        halt = is_helper & helper.x_halt
        xm_next = Signal(XmLayout)
        m.d.comb += [
            xm_next.valid.eq(1), xm_next.order.eq(run.x_order),
            xm_next.pc.eq(dx.pc - run.prog_base),
            xm_next.insn.eq(dx.insn), xm_next.insn_hi.eq(dx.insn_hi),
            xm_next.fault.eq(faults.x_fault), xm_next.rd_valid.eq(x.rd_we), xm_next.rd.eq(x.rd),
            xm_next.result.eq(result.x_result),
            xm_next.late.eq(x.kind.as_value().matches(Kind.LOAD, Kind.LOADSX, Kind.ATOMIC)),
            xm_next.load.eq(x.kind.as_value().matches(Kind.LOAD, Kind.LOADSX)),
            xm_next.store.eq(x.kind.as_value().matches(Kind.STORE_IMM, Kind.STORE_REG)),
            xm_next.atomic.eq(x.kind == Kind.ATOMIC),
            xm_next.sext.eq(x.kind == Kind.LOADSX),
            xm_next.size.eq(x.size), xm_next.addr.eq(region.x_addr),
            xm_next.region.eq(region.x_region), xm_next.aop.eq(dx.imm[:8]),
            xm_next.helper_valid.eq(is_helper), xm_next.helper_id.eq(helper.x_id),
            xm_next.helper_r0.eq(helper.x_r0),
            xm_next.ret_valid.eq(is_end | halt), xm_next.ret.eq(Mux(halt, helper.x_r0, op_a)),
        ]

        # Redirects, frame changes, branch history, packet bounds and tail calls take effect
        # as execute fires.
        fire_ok = x_fire & ~early
        m.d.comb += [
            redirect.prog_base.eq(run.prog_base), redirect.prog_end.eq(run.prog_end),
            redirect.x_valid.eq(x_valid), redirect.x_early.eq(early),
            redirect.x_fire.eq(x_fire), redirect.x_kind.eq(x.kind), redirect.x_pc.eq(dx.pc),
            redirect.x_imm.eq(dx.imm[:32]), redirect.x_off.eq(dx.off),
            redirect.x_target.eq(dx.target), redirect.x_target_even.eq(dx.target_even),
            redirect.x_bt.eq(dx.bt), redirect.x_taken.eq(branch.x_taken),
            redirect.x_call.eq(is_call & ~cs.x_full),
            redirect.x_ret.eq(is_ret), redirect.x_ret_pc.eq(cs.top_ret_pc),
            redirect.x_tail.eq(is_tail), redirect.x_tail_pc.eq(helper.x_prog_base),
            cs.x_push.eq(~early & is_call & ~cs.x_full & x_fire),
            cs.x_pop.eq(~early & is_ret & x_fire),
            cs.x_ret_pc.eq(dx.pc + 1), cs.x_saved.eq(rf.x_r6_r9),
            rf.x_restore.eq(~early & is_ret & x_fire), rf.x_restore_r6_r9.eq(cs.top_saved),
            predictor.x_update.eq(fire_ok & (x.kind == Kind.JCOND)),
            predictor.x_pc.eq(dx.pc), predictor.x_taken.eq(branch.x_taken),
            run.x_bounds_we.eq(fire_ok & (helper.x_fault == 0) & is_helper & helper.x_ctx_we),
            run.x_bounds_data.eq(helper.x_data), run.x_bounds_data_end.eq(helper.x_data_end),
            run.x_tail.eq(fire_ok & is_tail), run.x_tail_base.eq(helper.x_prog_base),
            run.x_tail_len.eq(helper.x_prog_len),
        ]

        # ---- Pipeline registers --------------------------------------------------------------
        with m.If(m_kill | x_fire & ~d_fire):
            m.d.sync += dx.valid.eq(0)
        with m.Elif(d_fire):
            m.d.sync += dx.eq(dx_next)
        with m.Elif(x_stall):
            m.d.sync += dx.ops.eq(rf.x_held)
        with m.Else():
            m.d.sync += dx.valid.eq(0)
        with m.If(~m_stall):
            with m.If(x_fire):
                m.d.sync += xm.eq(xm_next)
            with m.Else():
                m.d.sync += xm.valid.eq(0)
        m.d.sync += [mw.valid.eq(m_retire), mw.rec.eq(retire.m_rec)]

        # ---- Memory --------------------------------------------------------------------------
        # (A map region access has no region fault: ``ok`` reduces to the early causes.) An
        # atomic's access must not be disturbed: it writes in its second memory cycle at the
        # address of its request.
        maps = self.maps
        m_map = Signal()
        m_we = Signal()
        old = Signal(64)
        atomic_hold = xm.valid & xm.atomic & ~phase
        m.d.comb += [
            m_map.eq(m_ok & (xm.region == Region.MAP) & (xm.load | xm.store | xm.atomic)),
            m_we.eq(m_ok & (xm.store | xm.atomic & phase & atomics.m_store)
                    & (faults.m_map_fault == 0)),
            memport.fp.eq(cs.fp), memport.pkt_data.eq(run.pkt_data),
            memport.pkt_data_end.eq(run.pkt_data_end),
            memport.x_map.eq(x_valid & ~early & is_mem & ~atomic_hold
                             & (region.x_region == Region.MAP)),
            memport.x_addr.eq(region.x_addr), memport.x_size.eq(x.size),
            memport.m_addr.eq(xm.addr), memport.m_region.eq(xm.region),
            memport.m_size.eq(xm.size), memport.m_sext.eq(xm.sext),
            memport.m_we.eq(m_we), memport.m_wdata.eq(Mux(xm.atomic, atomics.m_new, xm.result)),
            memport.m_map.eq(m_map), memport.m_rdata.eq(lsu.m_rdata),
            maps.en.eq(memport.map_en), maps.addr.eq(memport.map_addr),
            maps.size.eq(memport.map_size), maps.we.eq(memport.map_we),
            maps.wdata.eq(memport.map_wdata), memport.map_ok.eq(maps.ok),
            memport.map_ro.eq(maps.ro), memport.map_slot.eq(maps.slot),
            lsu.x_addr.eq(memport.lsu_x_addr), lsu.m_addr.eq(memport.lsu_m_addr),
            lsu.m_region.eq(memport.lsu_m_region), lsu.m_size.eq(memport.lsu_m_size),
            lsu.m_sext.eq(memport.lsu_m_sext), lsu.m_we.eq(memport.lsu_m_we),
            lsu.m_wdata.eq(memport.lsu_m_wdata),
            lsu.map_ring.eq(maps.ring), lsu.map_rot.eq(maps.rot),
            lsu.ctx.eq(run.ctx), lsu.host.eq(~run.busy),
        ]
        if self.pkt_slots == 1:
            m.d.comb += [lsu.pkt_we.eq(self.pkt_we), lsu.pkt_addr.eq(self.pkt_addr),
                         lsu.pkt_wdata.eq(self.pkt_wdata), self.pkt_rdata.eq(lsu.pkt_rdata)]
        else:
            m.d.comb += [run.start_slot.eq(self.start_slot), lsu.slot.eq(run.slot)]
            wiring.connect(m, wiring.flipped(self.dp), lsu.dp)
        wiring.connect(m, wiring.flipped(self.hmem), memport.hmem)
        m.d.sync += phase.eq(m_stall)
        with m.If(m_stall):
            m.d.sync += old.eq(lsu.m_rdata)
        m.d.comb += [
            atomics.m_op.eq(xm.aop), atomics.m_w64.eq(xm.size == Size.DW),
            atomics.m_old.eq(old), atomics.m_src.eq(xm.result),
            # cmpxchg compares with r0 in its second memory cycle: by then every older
            # instruction has left writeback (the first cycle sent a bubble).
            atomics.m_cmp.eq(rf.m_r0),
            faults.m_xm_fault.eq(xm.fault), faults.m_map.eq(m_map),
            faults.m_write.eq(xm.store | xm.atomic), faults.m_map_ok.eq(maps.ok),
            faults.m_map_ro.eq(maps.ro),
            retire.m_xm.eq(xm), retire.m_fault.eq(faults.m_fault),
            retire.m_loaded.eq(lsu.m_loaded), retire.m_rdata.eq(lsu.m_rdata),
            retire.m_old.eq(old), retire.m_mask.eq(memport.m_mask),
            retire.m_atomic_store.eq(atomics.m_store), retire.m_atomic_new.eq(atomics.m_new),
        ]

        # ---- Writeback -----------------------------------------------------------------------
        w_term = mw.valid & ((mw.rec.fault != 0) | mw.rec.ret_valid)
        m.d.comb += [
            retire.w_valid.eq(mw.valid), retire.w_rec.eq(mw.rec),
            run.w_term.eq(w_term), run.w_ret.eq(mw.rec.ret), run.w_fault.eq(mw.rec.fault),
            run.w_pc.eq(mw.rec.pc),
        ]
        wiring.connect(m, retire.trace, wiring.flipped(self.trace))
        return m
