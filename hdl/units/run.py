"""Run control: start, stack clearing, launch, end; the state a run keeps beside the pipeline.

``start`` (while idle) latches the budget, the packet bounds and the ``xdp_md`` words and the
program to run (slot 0 up to ``entry_len``, or to the last slot written), then waits for the stack
to be cleared (``clearing``) and launches the fetch at pc 0. The run ends when writeback retires
the last instruction (``w_term``): the results are latched and ``done`` pulses one cycle later.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["RunControl"]


class RunControl(wiring.Component):
    """Run state machine and run state.

    Parameters
    ----------
    slots : int
        Program memory size in slots.
    pkt_slots : int
        Packet slots of the CPU; with more than one, ``start_slot`` is latched into ``slot``.

    Members
    -------
    start, entry_len, budget, data, data_end, ingress_ifindex, rx_queue_index : In
        The CPU's run control inputs.
    start_slot : In(range(pkt_slots)), slot : Out(range(pkt_slots))
        With several packet slots: the slot a run uses, latched at ``start``.
    prog_len : In(range(slots + 1))
        One past the last slot written.
    busy, done, cycles : Out
        The CPU's run status outputs.
    clear : Out(1)
        The start cycle: clear the stack, the call stack and the register file.
    clearing : In(1)
        The stack is being cleared.
    launch : Out(1)
        Fetch pc 0 this cycle.
    running : Out(1)
        Fetching (from launch until an instruction that ends the run reaches memory).
    prog_base : Out(16)
    prog_end : Out(17)
        The running program: first slot, one past the last.
    ctx : Out(ArrayLayout(32, 6))
        The ``xdp_md`` words: data, data_end, data_meta (= data), ingress_ifindex,
        rx_queue_index, egress_ifindex (0).
    pkt_data, pkt_data_end : Out(32)
        The packet bounds.
    x_fire : In(1)
        Execute hands an instruction on: the next one gets the next ``x_order``.
    x_order : Out(32)
    x_budget_hit : Out(1)
        ``x_order == budget`` (kept as a register).
    x_bounds_we, x_bounds_data, x_bounds_data_end : In
        A helper moved the packet bounds (taken as it fires).
    x_tail, x_tail_base, x_tail_len : In
        A tail call fires: the program at ``x_tail_base`` of ``x_tail_len`` slots runs.
    m_kill : In(1)
        An instruction that ends the run reached memory: stop fetching.
    w_term, w_ret, w_fault, w_pc : In
        Writeback retires the last instruction (its r0, fault and pc).
    result_r0, result_fault, result_pc : Out
    """

    def __init__(self, slots, pkt_slots=1):
        self.pkt_slots = pkt_slots
        packet = {} if pkt_slots == 1 else {"start_slot": In(range(pkt_slots)),
                                            "slot": Out(range(pkt_slots))}
        super().__init__({
            **packet,
            "start": In(1),
            "entry_len": In(range(slots + 1)),
            "prog_len": In(range(slots + 1)),
            "budget": In(32),
            "data": In(32),
            "data_end": In(32),
            "ingress_ifindex": In(32),
            "rx_queue_index": In(32),
            "busy": Out(1),
            "done": Out(1),
            "cycles": Out(64),
            "clear": Out(1),
            "clearing": In(1),
            "launch": Out(1),
            "running": Out(1),
            "prog_base": Out(16),
            "prog_end": Out(17),
            "ctx": Out(data.ArrayLayout(32, 6)),
            "pkt_data": Out(32),
            "pkt_data_end": Out(32),
            "x_fire": In(1),
            "x_order": Out(32),
            "x_budget_hit": Out(1),
            "x_bounds_we": In(1),
            "x_bounds_data": In(32),
            "x_bounds_data_end": In(32),
            "x_tail": In(1),
            "x_tail_base": In(16),
            "x_tail_len": In(16),
            "m_kill": In(1),
            "w_term": In(1),
            "w_ret": In(64),
            "w_fault": In(4),
            "w_pc": In(16),
            "result_r0": Out(64),
            "result_fault": Out(4),
            "result_pc": Out(16),
        })

    def elaborate(self, platform):
        m = Module()
        m.d.sync += self.cycles.eq(self.cycles + 1)

        budget = Signal(32)
        data_lo = self.pkt_data
        data_hi = self.pkt_data_end
        ingress = Signal(32)
        rxq = Signal(32)
        order = self.x_order
        m.d.comb += self.ctx.eq(Cat(data_lo, data_hi, data_lo, ingress, rxq, Const(0, 32)))

        with m.FSM(name="run"):
            with m.State("IDLE"):
                with m.If(self.start):
                    if self.pkt_slots > 1:
                        m.d.sync += self.slot.eq(self.start_slot)
                    m.d.sync += [
                        self.busy.eq(1),
                        budget.eq(self.budget), data_lo.eq(self.data),
                        data_hi.eq(self.data_end), ingress.eq(self.ingress_ifindex),
                        rxq.eq(self.rx_queue_index), order.eq(0),
                        self.x_budget_hit.eq(self.budget == 0),
                    ]
                    m.d.sync += [self.prog_base.eq(0),
                                 self.prog_end.eq(Mux(self.entry_len != 0, self.entry_len,
                                                      self.prog_len))]
                    m.d.comb += self.clear.eq(1)
                    m.next = "CLEAR"
            with m.State("CLEAR"):
                with m.If(~self.clearing):
                    m.d.comb += self.launch.eq(1)
                    m.d.sync += self.running.eq(1)
                    m.next = "RUN"
            with m.State("RUN"):
                with m.If(self.w_term):
                    m.next = "END"
            with m.State("END"):
                m.d.sync += [self.done.eq(0), self.busy.eq(0)]
                m.next = "IDLE"

        with m.If(self.x_bounds_we):
            m.d.sync += [data_lo.eq(self.x_bounds_data), data_hi.eq(self.x_bounds_data_end)]
        with m.If(self.x_tail):
            m.d.sync += [self.prog_base.eq(self.x_tail_base),
                         self.prog_end.eq(self.x_tail_base + self.x_tail_len)]
        with m.If(self.m_kill):
            m.d.sync += self.running.eq(0)
        with m.If(self.x_fire):
            m.d.sync += [order.eq(order + 1), self.x_budget_hit.eq(order + 1 == budget)]
        with m.If(self.w_term):
            m.d.sync += [
                self.result_r0.eq(self.w_ret),
                self.result_fault.eq(self.w_fault),
                self.result_pc.eq(self.w_pc),
                self.done.eq(1),
            ]
        return m
