"""The pipelined eBPF CPU: fetch, decode, execute, memory, writeback.

See ``hdl/README.md`` for the pipeline, its hazards and the measured figures. This file wires the
stages and the units of :mod:`bpfcore.hdl.units`; the control vocabulary is:

* **stall**: a stage keeps its instruction this cycle (and so does every older stage behind it);
* **kill**: a stage's instruction is dropped (wrong path after a redirect, or younger than an
  instruction that ends the program);
* **fire**: a stage hands its instruction to the next stage this cycle;
* **redirect**: execute changes the fetch address (taken branch, local call, exit to a caller).
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from bpfcore import abi
from bpfcore.abi import Fault
from bpfcore.isa import AluOp, Kind, Size
from .layouts import (DxLayout, HelperMemSignature, HelperRequest, HelperResponse, MwLayout,
                      Region, TraceSignature, XmLayout)
from .maps.engine import CpuValueSignature
from .units.alu import Alu
from .units.atomics import Atomics
from .units.branch import BranchCompare
from .units.bswap import ByteSwap
from .units.callstack import CallStack
from .units.divider import Divider
from .units.faults import FaultPriority
from .units.fetch import Fetch
from .units.helper import HelperPort
from .units.lsu import Lsu, RegionCheck, size_mask
from .units.multiplier import Multiplier
from .units.predictor import BHT_ENTRIES, BranchPredictor
from .units.regfile import RegisterFile
from .units.retire import RetireRecord
from .units.shifter import Shifter

__all__ = ["BHT_ENTRIES", "Cpu", "INJECT_BUGS"]

#: Known bugs that ``inject_bug`` can switch on, to prove that lockstep checks catch them.
INJECT_BUGS = {
    "wrong_rd": "add results go to (and are reported for) rd ^ 1",
    "bounds_off_by_one": "the packet end check lets one byte past data_end through",
}


def _log2_size(m, size, name):
    """log2 of the byte count of a :class:`Size` (the map memory's ``size``)."""
    out = Signal(2, name=name)
    with m.Switch(size):
        for value, log2 in ((Size.B, 0), (Size.H, 1), (Size.W, 2), (Size.DW, 3)):
            with m.Case(value):
                m.d.comb += out.eq(log2)
    return out


def _map_offset(addr):
    """``addr - abi.MAP_BASE`` for an address of the map region (26 bits: map, offset)."""
    assert abi.MAP_BASE == 1 << 24 and abi.MAX_MAPS * abi.MAP_WINDOW == 4 << 24
    return Cat(addr[:24], (addr[24:27] - 1)[:2])


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

    Members
    -------
    prog_we, prog_addr, prog_wdata
        Program port: write one slot (the little-endian 64-bit view) per cycle while idle. The
        program's length is one past the last slot written (control beyond it faults
        ``PC_RANGE``).
    pkt_we, pkt_addr, pkt_wdata, pkt_rdata
        Packet buffer port (64-bit words, byte enables), honoured while idle; ``pkt_rdata`` is
        the word at ``pkt_addr`` one cycle later.
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
                 inject_bug=None):
        try:
            self._validate(program_slots, frames, with_divider, with_atomics, inject_bug)
        except ValueError:
            self._MustUse__silence = True       # a rejected instance is not an unused design
            raise
        self.program_slots = program_slots
        self.frames = frames
        self.with_divider = with_divider
        self.with_atomics = with_atomics
        self.inject_bug = inject_bug
        super().__init__({
            "prog_we": In(1),
            "prog_addr": In(range(program_slots)),
            "prog_wdata": In(64),
            "pkt_we": In(8),
            "pkt_addr": In(range(abi.PKT_BUF_SIZE // 8)),
            "pkt_wdata": In(64),
            "pkt_rdata": Out(64),
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
        slots = self.program_slots

        m.d.sync += self.cycles.eq(self.cycles + 1)

        # ---- Run state -----------------------------------------------------------------------
        running = Signal()          # fetching
        launch = Signal()           # first fetch (pc 0) this cycle
        prog_base = Signal(16)                  # first slot of the running program
        prog_end = Signal(17)                   # one past its last slot
        budget = Signal(32)
        data_lo = Signal(32)
        data_hi = Signal(32)
        ingress = Signal(32)
        rxq = Signal(32)
        order = Signal(32)          # order of the instruction in execute
        budget_hit = Signal()       # order == budget
        w_term = Signal()           # writeback retires the last instruction

        m.submodules.fetch = fetch = Fetch(slots, with_divider=self.with_divider,
                                           with_atomics=self.with_atomics)
        m.submodules.predictor = predictor = BranchPredictor()
        m.submodules.regfile = rf = RegisterFile()
        m.submodules.faults = faults = FaultPriority()
        m.submodules.retire = retire = RetireRecord(wrong_rd=self.inject_bug == "wrong_rd")
        m.submodules.callstack = cs = CallStack(self.frames)
        m.submodules.lsu = lsu = Lsu()
        m.submodules.helper = helper = HelperPort()
        wiring.connect(m, wiring.flipped(self.helper_req), helper.req)
        wiring.connect(m, helper.resp, wiring.flipped(self.helper_resp))

        m.d.comb += lsu.ctx.eq(Cat(data_lo, data_hi, data_lo, ingress, rxq, Const(0, 32)))
        m.d.comb += [self.result_data.eq(data_lo), self.result_data_end.eq(data_hi)]
        m.d.comb += lsu.host.eq(~self.busy)
        m.d.comb += [lsu.pkt_we.eq(self.pkt_we), lsu.pkt_addr.eq(self.pkt_addr),
                     lsu.pkt_wdata.eq(self.pkt_wdata), self.pkt_rdata.eq(lsu.pkt_rdata)]

        with m.FSM(name="run"):
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [
                        self.busy.eq(1),
                        budget.eq(self.budget), data_lo.eq(self.data),
                        data_hi.eq(self.data_end), ingress.eq(self.ingress_ifindex),
                        rxq.eq(self.rx_queue_index), order.eq(0),
                        budget_hit.eq(self.budget == 0),
                    ]
                    m.d.sync += [prog_base.eq(0),
                                 prog_end.eq(Mux(self.entry_len != 0, self.entry_len, fetch.length))]
                    m.d.comb += [lsu.clear.eq(1), cs.x_reset.eq(1), rf.start.eq(1)]
                    m.next = "CLEAR"
            with m.State("CLEAR"):
                with m.If(~lsu.clearing):
                    m.d.comb += launch.eq(1)
                    m.d.sync += running.eq(1)
                    m.next = "RUN"
            with m.State("RUN"):
                with m.If(w_term):
                    m.next = "END"
            with m.State("END"):
                m.d.sync += [self.done.eq(0), self.busy.eq(0)]
                m.next = "IDLE"

        # ---- Fetch -> decode -----------------------------------------------------------------
        fd = fetch.fd
        m.d.comb += [
            fetch.prog_we.eq(self.prog_we), fetch.prog_addr.eq(self.prog_addr),
            fetch.prog_wdata.eq(self.prog_wdata),
            predictor.fd.eq(fd), predictor.d_even.eq(fetch.d_even),
            predictor.d_odd.eq(fetch.d_odd),
            fetch.f_next.eq(predictor.f_next), fetch.f_next_even.eq(predictor.f_next_even),
        ]
        d_pc = fd.pc
        d_insn = fd.slot.insn
        d_hi = fd.insn_hi
        ctrl = fd.slot.ctrl
        ja_bad = Signal()           # execute holds a ja whose target (now in decode) is outside

        # ---- Decode --------------------------------------------------------------------------
        dx = Signal(DxLayout)
        xm = Signal(XmLayout)
        m_stall = Signal()          # the memory stage holds an atomic for a second cycle
        phase = Signal()            # the atomic in memory is in its second cycle
        x_fire = Signal()
        mw = Signal(MwLayout)

        d_fault = faults.d_fault
        m.d.comb += [faults.d_pc_range.eq(fd.bad | ja_bad | (d_pc >= prog_end)),
                     faults.d_legal.eq(ctrl.legal)]

        imm = d_insn[32:].as_signed()
        d_imm = Signal(64)
        with m.If(ctrl.lddw):
            src = d_insn[12:16]
            with m.If(src == 0):
                m.d.comb += d_imm.eq(Cat(d_insn[32:], d_hi[32:]))
            with m.Else():
                m.d.comb += d_imm.eq(abi.MAP_BASE + (imm << 20)
                                     + Mux((src == 2) | (src == 6), d_hi[32:], 0))
        with m.Else():
            m.d.comb += d_imm.eq(imm)

        dx_next = Signal(DxLayout)
        m.d.comb += [
            dx_next.valid.eq(fd.valid),
            dx_next.pc.eq(d_pc),
            dx_next.insn.eq(Mux(d_fault == Fault.PC_RANGE, 0, d_insn)),
            dx_next.insn_hi.eq(Mux((d_fault == 0) & ctrl.lddw, d_hi, 0)),
            dx_next.fault.eq(d_fault),
            dx_next.ctrl.eq(ctrl),
            dx_next.ops.eq(rf.d_ops),
            dx_next.imm.eq(d_imm),
            dx_next.off.eq(d_insn[16:32]),
            dx_next.target.eq(fd.slot.target),
            dx_next.bt.eq(predictor.d_taken),
            dx_next.target_even.eq(fd.slot.target_even),
        ]
        m.d.comb += [
            rf.start_r1.eq(self.start_r1), rf.start_r2.eq(self.start_r2), rf.fp.eq(cs.fp),
            rf.d_ra.eq(ctrl.ra), rf.d_rb.eq(ctrl.rb), rf.d_imm.eq(d_insn[32:].as_signed()),
            rf.x_ops.eq(dx.ops), rf.x_ra.eq(dx.ctrl.ra), rf.x_rb.eq(dx.ctrl.rb),
            rf.x_rd.eq(dx.ctrl.rd), rf.x_rd_we.eq(dx.ctrl.rd_we), rf.x_fire.eq(x_fire),
            rf.m_valid.eq(xm.valid), rf.m_rd_valid.eq(xm.rd_valid), rf.m_rd.eq(xm.rd),
            rf.m_result.eq(xm.result), rf.m_stall.eq(m_stall),
            rf.w_we.eq(mw.valid & mw.rec.rd_valid), rf.w_rd.eq(mw.rec.rd),
            rf.w_value.eq(mw.rec.rd_value),
        ]

        # ---- Execute -------------------------------------------------------------------------
        x = dx.ctrl
        # The redirect decided in execute takes effect one cycle later (registered, so that no
        # path runs from the execute operands to the program memory address): the instruction
        # that entered execute behind the redirecting one is then killed.
        r_cond = Signal()
        r_fired = Signal()
        r_redirect = r_cond & r_fired
        r_target = Signal(16)
        r_target_even = Signal(16)
        r_target_bad = Signal()
        x_valid = dx.valid & ~r_redirect

        op_a = rf.x_a
        op_b = rf.x_b       # the register or, as IMM_REG, the immediate
        load_use = Signal()
        m.d.comb += load_use.eq(xm.late & ((x.use_a & dx.ops.m_a) | (x.use_b & dx.ops.m_b)))

        # Faults known before execution, in the golden VM's order.
        # ``budget_hit`` (order == budget) is kept as a register: a 32-bit compare less in
        # front of execute's control.
        early_any = faults.x_early
        go = x_valid & ~early_any

        is_alu = x.kind == Kind.ALU
        is_shift = is_alu & x.alu_op.as_value().matches(AluOp.LSH, AluOp.RSH, AluOp.ARSH)
        is_mul = is_alu & (x.alu_op == AluOp.MUL)
        is_div = is_alu & x.alu_op.as_value().matches(AluOp.DIV, AluOp.MOD)
        is_mem = x.kind.as_value().matches(Kind.LOAD, Kind.LOADSX, Kind.STORE_IMM,
                                           Kind.STORE_REG, Kind.ATOMIC)
        is_write = x.kind.as_value().matches(Kind.STORE_IMM, Kind.STORE_REG, Kind.ATOMIC)
        is_helper = x.kind.as_value().matches(Kind.CALL, Kind.CALLX)
        is_call = x.kind == Kind.CALL_LOCAL
        is_ret = (x.kind == Kind.EXIT) & (cs.depth != 0)
        is_end = (x.kind == Kind.EXIT) & (cs.depth == 0)
        # Calls and returns read or write many registers at once: they wait until every older
        # instruction has retired, then use the register file directly.
        needs_drain = is_helper | is_call | is_ret
        drained = ~xm.valid & ~mw.valid

        m.submodules.alu = alu = Alu()
        m.submodules.shifter = shifter = Shifter()
        m.submodules.bswap = bswap = ByteSwap()
        m.submodules.branch = branch = BranchCompare()
        m.submodules.mul = mul = Multiplier()
        m.submodules.region = region = RegionCheck(
            bounds_off_by_one=self.inject_bug == "bounds_off_by_one")
        m.d.comb += [
            alu.x_op.eq(x.alu_op), alu.x_a.eq(op_a), alu.x_b.eq(op_b), alu.x_w64.eq(x.w64),
            alu.x_off.eq(dx.off),
            bswap.x_a.eq(op_a), bswap.x_bits.eq(dx.imm[:7]), bswap.x_swap.eq(x.swap),
            branch.x_op.eq(x.jmp_op), branch.x_a.eq(op_a), branch.x_b.eq(op_b),
            branch.x_w64.eq(x.w64),
            mul.x_a.eq(op_a), mul.x_b.eq(op_b),
            region.x_base.eq(op_a), region.x_off.eq(dx.off), region.x_size.eq(x.size),
            region.x_write.eq(is_write), region.x_data.eq(data_lo),
            region.x_data_end.eq(data_hi), region.x_fp.eq(cs.fp),
        ]

        # Multi-cycle units: started once per instruction, when its operands are ready.
        started = Signal()
        unit_ready = Signal()
        unit_wait = Signal()
        m.d.comb += mul.x_start.eq(go & is_mul & ~started & ~load_use)
        ready_mul = started & mul.x_done
        ready_div = 0
        if self.with_divider:
            m.submodules.div = div = Divider(external_shift=True)
            m.d.comb += [
                div.x_a.eq(op_a), div.x_b.eq(op_b), div.x_w64.eq(x.w64),
                div.x_signed.eq(dx.off[0]), div.x_mod.eq(x.alu_op == AluOp.MOD),
                div.x_start.eq(go & is_div & ~started & ~load_use),
            ]
            ready_div = started & div.x_done
            # The divider borrows the shifter (idle during a division) to normalise.
            m.d.comb += div.x_norm_result.eq(shifter.x_result)
        m.d.comb += [shifter.x_op.eq(x.alu_op), shifter.x_a.eq(op_a), shifter.x_b.eq(op_b),
                     shifter.x_w64.eq(x.w64)]
        if self.with_divider:
            with m.If(div.x_norm):
                m.d.comb += [shifter.x_op.eq(AluOp.LSH), shifter.x_a.eq(div.x_norm_value),
                             shifter.x_b.eq(div.x_norm_shift), shifter.x_w64.eq(1)]
        callx_bad = (x.kind == Kind.CALLX) & (op_a[32:] != 0)
        m.d.comb += [
            helper.x_start.eq(go & is_helper & ~started & ~load_use & drained),
            helper.x_bad.eq(callx_bad),
            helper.x_nested.eq(cs.depth != 0),
            helper.x_id.eq(Mux(x.kind == Kind.CALLX, op_a[:32], dx.imm[:32])),
        ]
        m.d.comb += helper.x_args.eq(rf.x_r1_r5)
        ready_helper = started & helper.x_done
        with m.If(is_mul):
            m.d.comb += unit_ready.eq(ready_mul)
        with m.Elif(is_div):
            m.d.comb += unit_ready.eq(ready_div)
        with m.Elif(is_helper):
            m.d.comb += unit_ready.eq(ready_helper)
        with m.Else():
            m.d.comb += unit_ready.eq(1)
        multi = is_mul | is_div | is_helper
        m.d.comb += unit_wait.eq(go & ((multi & ~unit_ready) | (needs_drain & ~drained)))

        # The map memory's read port is not transparent: a memory access right behind a store to
        # (or an atomic on) a map value waits one cycle.
        map_hazard = Signal()
        m.d.comb += map_hazard.eq(is_mem & xm.valid & (xm.region == Region.MAP)
                                  & (xm.store | xm.atomic))

        # The memory stage holds an atomic for two cycles (read, then modify-write).
        # ``m_kill`` stops the pipeline: the memory stage holds an instruction that ends the
        # program (``m_term``: a fault known before the memory stage, or the last exit), or
        # the previous cycle's memory stage faulted on a map value (``m_late``, registered: the
        # map memory answers late in the cycle, so its fault stops the younger instructions a
        # cycle later; the one that entered the memory stage meanwhile has no effect).
        m_term = Signal()
        m_late = Signal()
        m_kill = Signal()
        x_stall = Signal()
        m.d.comb += [
            m_kill.eq(m_term | m_late),
            x_stall.eq(x_valid & (load_use | unit_wait | m_stall | map_hazard)),
            x_fire.eq(x_valid & ~x_stall & ~m_kill),
        ]
        with m.If(x_fire | m_kill):
            m.d.sync += started.eq(0)
        with m.Elif(mul.x_start | helper.x_start
                    | (div.x_start if self.with_divider else 0)):
            m.d.sync += started.eq(1)

        # Execute's outcome.
        m.d.comb += [
            faults.x_dx_fault.eq(dx.fault), faults.x_budget_hit.eq(budget_hit),
            faults.x_mem.eq(is_mem), faults.x_region_fault.eq(region.x_fault),
            faults.x_call_full.eq(is_call & cs.x_full),
            faults.x_helper.eq(is_helper), faults.x_helper_fault.eq(helper.x_fault),
        ]

        # A helper that moved the packet bounds (xdp_adjust_head/tail): they change as it retires.
        with m.If(x_fire & ~early_any & (helper.x_fault == 0) & is_helper & helper.x_ctx_we):
            m.d.sync += [data_lo.eq(helper.x_data), data_hi.eq(helper.x_data_end)]

        # Map values: the access is issued to the map memory as it enters the memory stage (or,
        # while a helper works, on behalf of the helper units).
        maps = self.maps
        hmem = self.hmem
        m.submodules.hregion = hregion = RegionCheck()
        m.d.comb += [
            hregion.x_base.eq(hmem.addr), hregion.x_off.eq(0), hregion.x_size.eq(hmem.size),
            hregion.x_write.eq(hmem.we), hregion.x_fp.eq(cs.fp),
            hregion.x_data.eq(Mux(hmem.raw, abi.PKT_BASE, data_lo)),
            hregion.x_data_end.eq(Mux(hmem.raw, abi.PKT_BASE + abi.PKT_BUF_SIZE, data_hi)),
        ]
        x_log2 = _log2_size(m, x.size, "x_log2_size")
        h_log2 = _log2_size(m, hmem.size, "h_log2_size")
        with m.If(hmem.en):
            m.d.comb += [maps.en.eq(hregion.x_region == Region.MAP),
                         maps.addr.eq(_map_offset(hmem.addr)), maps.size.eq(h_log2)]
        with m.Else():
            # (A map region access has no region fault: ``ok`` reduces to the early causes.)
            # The access is issued whether or not execute fires: a stalled instruction issues it
            # again, and the memory stage only looks at the port after an access that fired.
            # Not waiting for ``x_fire`` keeps the map check of the instruction in memory (its
            # fault stops execute) off the path into the map memory's address. The one access
            # that must not be disturbed is an atomic's: it writes in its second memory cycle
            # at the address of its ``en``.
            atomic_hold = xm.valid & xm.atomic & ~phase
            m.d.comb += [maps.en.eq(x_valid & ~early_any & is_mem & ~atomic_hold
                                    & (region.x_region == Region.MAP)),
                         maps.addr.eq(_map_offset(region.x_addr)), maps.size.eq(x_log2)]

        result = Signal(64)
        with m.Switch(x.kind):
            with m.Case(Kind.ALU):
                with m.If(is_shift):
                    m.d.comb += result.eq(shifter.x_result)
                with m.Elif(is_mul):
                    m.d.comb += result.eq(Mux(x.w64, mul.x_result, mul.x_result[:32]))
                with m.Elif(is_div):
                    if self.with_divider:
                        m.d.comb += result.eq(div.x_result)
                with m.Else():
                    m.d.comb += result.eq(alu.x_result)
            with m.Case(Kind.END):
                m.d.comb += result.eq(bswap.x_result)
            with m.Case(Kind.LDDW):
                m.d.comb += result.eq(dx.imm)
            with m.Case(Kind.CALL, Kind.CALLX):
                m.d.comb += result.eq(helper.x_r0)
            with m.Case(Kind.STORE_IMM, Kind.STORE_REG, Kind.ATOMIC):
                # The store value as it is (the byte enables pick its bytes); the retire record
                # shows it cut to the access size.
                m.d.comb += result.eq(op_b)

        # The access, helper and return flags are not qualified by execute's fault: the memory
        # stage drops their effects (and clears the record) when ``xm.fault`` is set, so the
        # region check's outcome only has to reach ``xm.fault``.
        halt = is_helper & helper.x_halt
        xm_next = Signal(XmLayout)
        m.d.comb += [
            xm_next.valid.eq(1),
            xm_next.order.eq(order),
            xm_next.pc.eq(dx.pc - prog_base),
            xm_next.insn.eq(dx.insn),
            xm_next.insn_hi.eq(dx.insn_hi),
            xm_next.fault.eq(faults.x_fault),
            xm_next.rd_valid.eq(x.rd_we),
            xm_next.rd.eq(x.rd),
            xm_next.result.eq(result),
            xm_next.late.eq(x.kind.as_value().matches(Kind.LOAD, Kind.LOADSX, Kind.ATOMIC)),
            xm_next.load.eq(x.kind.as_value().matches(Kind.LOAD, Kind.LOADSX)),
            xm_next.store.eq(x.kind.as_value().matches(Kind.STORE_IMM, Kind.STORE_REG)),
            xm_next.atomic.eq(x.kind == Kind.ATOMIC),
            xm_next.sext.eq(x.kind == Kind.LOADSX),
            xm_next.size.eq(x.size),
            xm_next.addr.eq(region.x_addr),
            xm_next.region.eq(region.x_region),
            xm_next.aop.eq(dx.imm[:8]),
            xm_next.helper_valid.eq(is_helper),
            xm_next.helper_id.eq(helper.x_id),
            xm_next.helper_r0.eq(helper.x_r0),
            xm_next.ret_valid.eq(is_end | halt),
            xm_next.ret.eq(Mux(halt, helper.x_r0, op_a)),
        ]

        # Full-width targets: outside the program means Fault.PC_RANGE where the VM would land.
        wide_target = Signal(range(-(1 << 33), 1 << 33))
        m.d.comb += wide_target.eq(dx.pc + 1 + Mux(x.kind.as_value().matches(Kind.JA32,
                                                                             Kind.CALL_LOCAL),
                                                   dx.imm[:32].as_signed(), dx.off.as_signed()))
        target_bad = Signal()
        m.d.comb += target_bad.eq((wide_target < prog_base) | (wide_target >= prog_end))
        m.d.comb += ja_bad.eq(x_valid & ~early_any & target_bad
                              & (x.kind.as_value().matches(Kind.JA, Kind.JA32) | dx.bt))

        # Redirects and frame changes happen when execute fires.
        x_redirect = Signal()
        x_target = Signal(16)
        x_target_even = Signal(16)
        x_target_bad = Signal()
        # (Branches and exits cannot fault in execute: only the early causes stop them.)
        # ``x_redirect`` is the redirect execute makes if it fires: it is registered beside
        # ``x_fire`` and the two are ANDed in the next cycle (``r_redirect``), so neither waits
        # for the other.
        x_ok = ~early_any
        fire_ok = x_fire & x_ok
        # The target depends on the kind only (a conditional branch goes wherever decode did
        # not send the fetch); whether to redirect comes from the compare.
        with m.Switch(x.kind):
            with m.Case(Kind.JCOND):
                m.d.comb += [x_target.eq(Mux(dx.bt, dx.pc + 1, dx.target)),
                             x_target_even.eq(Mux(dx.bt, (dx.pc + 2) >> 1, dx.target_even)),
                             x_target_bad.eq(~dx.bt & target_bad)]
            with m.Case(Kind.CALL_LOCAL):
                m.d.comb += [x_target.eq(dx.target), x_target_even.eq(dx.target_even),
                             x_target_bad.eq(target_bad)]
            with m.Case(Kind.CALL, Kind.CALLX):
                # A tail call continues in another program, from its first slot.
                m.d.comb += [x_target.eq(helper.x_prog_base),
                             x_target_even.eq((helper.x_prog_base + 1) >> 1)]
            with m.Default():
                m.d.comb += [x_target.eq(cs.top_ret_pc),
                             x_target_even.eq((cs.top_ret_pc + 1) >> 1)]
        is_tail = (helper.x_fault == 0) & is_helper & helper.x_tail
        m.d.comb += x_redirect.eq(x_ok & (((x.kind == Kind.JCOND) & (branch.x_taken != dx.bt))
                                          | (is_call & ~cs.x_full) | is_tail | is_ret))
        with m.If(x_ok & is_call & ~cs.x_full):
            m.d.comb += cs.x_push.eq(x_fire)
        with m.If(fire_ok & is_tail):
            m.d.sync += [prog_base.eq(helper.x_prog_base),
                         prog_end.eq(helper.x_prog_base + helper.x_prog_len)]
        with m.If(x_ok & is_ret):
            m.d.comb += cs.x_pop.eq(x_fire)
            m.d.comb += rf.x_restore.eq(x_fire)
        m.d.comb += [predictor.clear.eq(launch), predictor.x_update.eq(fire_ok & (x.kind == Kind.JCOND)),
                     predictor.x_pc.eq(dx.pc), predictor.x_taken.eq(branch.x_taken)]
        m.d.comb += [cs.x_ret_pc.eq(dx.pc + 1)]
        m.d.sync += [r_cond.eq(x_redirect), r_fired.eq(x_fire), r_target.eq(x_target),
                     r_target_even.eq(x_target_even), r_target_bad.eq(x_target_bad)]
        m.d.comb += [cs.x_saved.eq(rf.x_r6_r9), rf.x_restore_r6_r9.eq(cs.top_saved)]

        # ---- Pipeline registers and fetch control ----------------------------------------------
        d_stall = Signal()
        m.d.comb += d_stall.eq(fd.valid & x_stall)
        d_fire = fd.valid & ~d_stall & ~r_redirect & ~m_kill
        m.d.comb += [
            fetch.f_launch.eq(launch),
            fetch.f_kill.eq(m_kill | ~running),
            fetch.f_redirect.eq(r_redirect),
            fetch.f_target.eq(r_target), fetch.f_target_even.eq(r_target_even),
            fetch.f_target_bad.eq(r_target_bad),
            fetch.d_stall.eq(d_stall),
        ]

        with m.If(m_kill):
            m.d.sync += running.eq(0)

        # decode -> execute
        with m.If(m_kill | x_fire & ~d_fire):
            m.d.sync += dx.valid.eq(0)
        with m.Elif(d_fire):
            m.d.sync += dx.eq(dx_next)
        with m.Elif(x_stall):
            # Keep operands current while execute waits: their producers retire meanwhile.
            m.d.sync += dx.ops.eq(rf.x_held)
        with m.Else():
            m.d.sync += dx.valid.eq(0)
        with m.If(x_fire):
            m.d.sync += [order.eq(order + 1), budget_hit.eq(order + 1 == budget)]

        # execute -> memory
        with m.If(~m_stall):
            with m.If(x_fire):
                m.d.sync += xm.eq(xm_next)
            with m.Else():
                m.d.sync += xm.valid.eq(0)

        # ---- Memory --------------------------------------------------------------------------
        m.submodules.atomics = atomics = Atomics()
        old = Signal(64)

        # A helper units' access (hmem) uses the memory stage's data paths in the cycle after
        # its ``en``: the pipeline is drained while a helper works.
        h_pending = Signal()
        h_addr = Signal(32)
        h_size = Signal(Size)
        h_we = Signal()
        h_wdata = Signal(64)
        h_region = Signal(3)
        h_fault = Signal(4)
        m.d.sync += h_pending.eq(hmem.en)
        with m.If(hmem.en):
            m.d.sync += [h_addr.eq(hregion.x_addr), h_size.eq(hmem.size), h_we.eq(hmem.we),
                         h_wdata.eq(hmem.wdata), h_region.eq(hregion.x_region),
                         h_fault.eq(hregion.x_fault)]
        a_region = Signal(3)
        a_size = Signal(Size)
        m.d.comb += [a_region.eq(Mux(h_pending, h_region, xm.region)),
                     a_size.eq(Mux(h_pending, h_size, xm.size))]
        mmask = size_mask(m, a_size, "m_bmask")
        m_rdata = Signal(64)
        m.d.comb += [lsu.map_ring.eq(maps.ring), lsu.map_rot.eq(maps.rot), m_rdata.eq(lsu.m_rdata)]

        # Map accesses learn in the memory stage whether they are allowed.
        m_map = Signal()
        m_ok = xm.valid & (xm.fault == 0) & ~m_late
        m.d.comb += m_map.eq(m_ok & (xm.region == Region.MAP) & (xm.load | xm.store | xm.atomic))
        map_fault = faults.m_map_fault
        m.d.comb += [
            faults.m_xm_fault.eq(xm.fault), faults.m_map.eq(m_map),
            faults.m_write.eq(xm.store | xm.atomic), faults.m_map_ok.eq(maps.ok),
            faults.m_map_ro.eq(maps.ro),
            m_term.eq(xm.valid & ~m_late & ((xm.fault != 0) | xm.ret_valid)),
            # (An atomic whose map access faults takes its second cycle too: it writes nothing
            # and retires with the fault then.)
            m_stall.eq(m_ok & xm.atomic & ~phase),
        ]
        m.d.sync += phase.eq(m_stall)
        with m.If(m_stall):
            m.d.sync += old.eq(m_rdata)
        h_map = h_region == Region.MAP
        # The answer is registered (``done`` two cycles after ``en``): the helper units' use of
        # the data (sums, compares) then starts at a flip-flop, not behind the memory stage's
        # block-RAM read and alignment.
        m.d.sync += [
            hmem.done.eq(h_pending),
            hmem.rdata.eq(m_rdata),
            hmem.fault.eq((h_fault != 0) | (h_map & (~maps.ok | (h_we & maps.ro)))),
            hmem.slot.eq(Mux(h_map, maps.slot, 0)),
        ]
        m.d.comb += [
            lsu.x_addr.eq(Mux(hmem.en, hregion.x_addr, region.x_addr)),
            lsu.m_addr.eq(Mux(h_pending, h_addr, xm.addr)),
            lsu.m_region.eq(a_region),
            lsu.m_size.eq(a_size),
            atomics.m_op.eq(xm.aop),
            atomics.m_w64.eq(xm.size == Size.DW),
            atomics.m_old.eq(old),
            atomics.m_src.eq(xm.result),
            # cmpxchg compares with r0 in its second memory cycle: by then every older
            # instruction has left writeback (the first cycle sent a bubble), so the register
            # file holds r0.
            atomics.m_cmp.eq(rf.m_r0),
        ]
        atomic_store = xm.atomic & phase & atomics.m_store
        m_we = Signal()
        m_wdata = Signal(64)
        with m.If(h_pending):
            m.d.comb += [m_we.eq(h_we & (h_fault == 0)), m_wdata.eq(h_wdata),
                         maps.we.eq(h_we & h_map & maps.ok & ~maps.ro)]
        with m.Else():
            m.d.comb += [m_we.eq(m_ok & (xm.store | atomic_store) & (map_fault == 0)),
                         m_wdata.eq(Mux(xm.atomic, atomics.m_new, xm.result))]
            m.d.comb += maps.we.eq(m_we & m_map)
        m.d.comb += [lsu.m_we.eq(m_we), lsu.m_wdata.eq(m_wdata), maps.wdata.eq(m_wdata)]

        # (The load/store unit sign-extends a load beside its alignment: lsu.m_loaded.)
        m.d.comb += lsu.m_sext.eq(xm.sext & ~h_pending)
        m.d.comb += [
            retire.m_xm.eq(xm), retire.m_fault.eq(faults.m_fault), retire.m_loaded.eq(lsu.m_loaded),
            retire.m_rdata.eq(m_rdata), retire.m_old.eq(old), retire.m_mask.eq(mmask),
            retire.m_atomic_store.eq(atomics.m_store), retire.m_atomic_new.eq(atomics.m_new),
        ]
        m_retire = Signal()
        m.d.comb += m_retire.eq(xm.valid & ~m_stall & ~m_late)
        m.d.sync += [mw.valid.eq(m_retire), mw.rec.eq(retire.m_rec)]
        m.d.sync += m_late.eq(m_retire & (map_fault != 0))

        # ---- Writeback -----------------------------------------------------------------------
        m.d.comb += [retire.w_valid.eq(mw.valid), retire.w_rec.eq(mw.rec)]
        wiring.connect(m, retire.trace, wiring.flipped(self.trace))
        m.d.comb += w_term.eq(mw.valid & ((mw.rec.fault != 0) | mw.rec.ret_valid))
        with m.If(w_term):
            m.d.sync += [
                self.result_r0.eq(mw.rec.ret),
                self.result_fault.eq(mw.rec.fault),
                self.result_pc.eq(mw.rec.pc),
                self.done.eq(1),
            ]
        return m
