"""Run programs on the CPU in Amaranth's Python simulator and collect its retire records.

This is the reusable driver of the CPU's ports (program, packet, run control, helper, trace) used
by ``tests/test_hdl_*.py``; one simulation runs a whole batch of programs, so the design is
elaborated and compiled once. Records are decoded by :func:`bpfcore.sim.rtl.trace.decode_record`
and compared by :func:`bpfcore.sim.rtl.lockstep.first_mismatch`, as in the cocotb benches.
"""

from dataclasses import dataclass, field
from typing import Optional

from amaranth.sim import Simulator

from bpfcore import abi
from bpfcore.abi import Fault
from bpfcore.hdl.layouts import RetireLayout
from bpfcore.sim.model.vm import Halt, HelperFault
from bpfcore.sim.rtl.trace import decode_record

__all__ = ["Job", "RtlRun", "run_jobs", "ctx_bytes"]

M64 = (1 << 64) - 1


@dataclass
class Job:
    """One program run: slots, packet bytes (placed at ``PKT_BASE + PKT_HEADROOM``), r1, r2."""
    slots: list
    packet: bytes = b""
    r1: int = 0
    r2: int = 0
    budget: int = abi.DEFAULT_BUDGET
    ingress_ifindex: int = 0
    rx_queue_index: int = 0

    @property
    def data(self):
        return abi.PKT_BASE + abi.PKT_HEADROOM

    @property
    def data_end(self):
        return self.data + len(self.packet)


@dataclass
class RtlRun:
    """What the CPU did: its retire records, cycle stamps of each, and the run's result."""
    records: list = field(default_factory=list)
    cycles: list = field(default_factory=list)
    r0: int = 0
    fault: Fault = Fault.NONE
    pc: int = 0
    packet: Optional[bytes] = None
    timeout: bool = False


def ctx_bytes(job):
    """The ``xdp_md`` bytes the CPU presents for ``job`` (give these to the VM as ``ctx``)."""
    return abi.xdp_md_bytes(job.data, job.data_end, job.ingress_ifindex, job.rx_queue_index)


def _call_helper(helpers, hid, args):
    """(r0, fault, halt) of a helper call, as the VM would see it."""
    fn = helpers.get(hid)
    if fn is None:
        return 0, Fault.BAD_CALL, 0
    try:
        return fn(None, *args) & M64, 0, 0
    except HelperFault:
        return 0, Fault.HELPER, 0
    except Halt as halt:
        return halt.r0 & M64, 0, 1


def run_jobs(cpu, jobs, *, helpers=None, max_cycles=20000, read_packet=False, vcd=None):
    """Run ``jobs`` one after the other on ``cpu``; return one :class:`RtlRun` per job.

    ``helpers`` maps helper ids to VM-style functions ``fn(vm, r1..r5)`` (``vm`` is None here).
    A run that does not finish within ``max_cycles`` is stopped and marked ``timeout``.
    """
    helpers = dict(helpers or {})
    runs = []

    async def bench(ctx):
        for job in jobs:
            run = RtlRun()
            runs.append(run)
            for addr, slot in enumerate(job.slots):
                ctx.set(cpu.prog_we, 1)
                ctx.set(cpu.prog_addr, addr)
                ctx.set(cpu.prog_wdata, slot & M64)
                await ctx.tick()
            ctx.set(cpu.prog_we, 0)
            buf = bytes(abi.PKT_HEADROOM) + bytes(job.packet)
            buf += bytes(-len(buf) % 8)
            for i in range(abi.PKT_HEADROOM // 8, len(buf) // 8):
                ctx.set(cpu.pkt_we, 0xff)
                ctx.set(cpu.pkt_addr, i)
                ctx.set(cpu.pkt_wdata, int.from_bytes(buf[8 * i:8 * i + 8], "little"))
                await ctx.tick()
            ctx.set(cpu.pkt_we, 0)
            ctx.set(cpu.start_r1, job.r1 & M64)
            ctx.set(cpu.start_r2, job.r2 & M64)
            ctx.set(cpu.budget, job.budget)
            ctx.set(cpu.data, job.data)
            ctx.set(cpu.data_end, job.data_end)
            ctx.set(cpu.ingress_ifindex, job.ingress_ifindex)
            ctx.set(cpu.rx_queue_index, job.rx_queue_index)
            ctx.set(cpu.start, 1)
            await ctx.tick()
            ctx.set(cpu.start, 0)
            ctx.set(cpu.helper_req.ready, 1)
            pending = None
            for _ in range(max_cycles):
                _, _, valid, rec, done, cycles, req_valid, req, resp_ready = \
                    await ctx.tick().sample(
                        cpu.trace.valid, cpu.trace.record, cpu.done, cpu.cycles,
                        cpu.helper_req.valid, cpu.helper_req.payload, cpu.helper_resp.ready)
                if valid:
                    run.records.append(decode_record(rec.as_bits(), RetireLayout))
                    run.cycles.append(cycles)
                if resp_ready and ctx.get(cpu.helper_resp.valid):
                    ctx.set(cpu.helper_resp.valid, 0)
                if req_valid:
                    args = (req.r1, req.r2, req.r3, req.r4, req.r5)
                    pending = _call_helper(helpers, req.id, args)
                if pending is not None and not ctx.get(cpu.helper_resp.valid):
                    r0, fault, halt = pending
                    ctx.set(cpu.helper_resp.payload.r0, r0)
                    ctx.set(cpu.helper_resp.payload.fault, fault)
                    ctx.set(cpu.helper_resp.payload.halt, halt)
                    ctx.set(cpu.helper_resp.valid, 1)
                    pending = None
                if done:
                    break
            else:
                run.timeout = True
                return
            ctx.set(cpu.helper_resp.valid, 0)
            run.r0 = ctx.get(cpu.result_r0)
            run.fault = Fault(ctx.get(cpu.result_fault))
            run.pc = ctx.get(cpu.result_pc)
            if read_packet:
                words = []
                for i in range(abi.PKT_BUF_SIZE // 8):
                    ctx.set(cpu.pkt_addr, i)
                    await ctx.tick()
                    words.append(ctx.get(cpu.pkt_rdata).to_bytes(8, "little"))
                run.packet = b"".join(words)
            await ctx.tick()

    sim = Simulator(cpu)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    if vcd:
        with sim.write_vcd(vcd):
            sim.run()
    else:
        sim.run()
    return runs
