"""The bench mechanics (Verilog generation and cache, HDL-clocked wrapper, cocotb batch runner,
trace log parsing) on a small design of our own, so they are tested without the CPU."""

import inspect

import pytest
from amaranth import Module, Signal
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from bpfcore import abi
from bpfcore.abi import Fault, RetireRecord
from bpfcore.errors import BpfcoreError
from bpfcore.hdl.unused import unelaborated
from bpfcore.sim.rtl import tb, trace
from bpfcore.sim.rtl.runner import BatchItem, Bench
from bpfcore.sim.rtl.verilog import TopSpec

ToyRecord = data.StructLayout({
    "order": 32, "pc": 16, "insn": 64, "rd_valid": 1, "rd": 4, "rd_value": 64,
    "mem_addr": 32, "mem_rmask": 8, "mem_rdata": 64, "fault": 4, "ret_valid": 1, "ret": 64,
})

SLOTS = 16


class ToyTop(wiring.Component):
    """A toy "CPU" with the bench-top ports: on start it walks program memory from slot 0 and
    retires one record per cycle, accumulating r0 = start_r1 + sum of slots, until a zero slot
    (retired with ret = r0) or ``budget`` records (that one retires with Fault.BUDGET). It reads
    packet word ``pc`` with every instruction, so the packet port is exercised too."""

    prog_we: In(1)
    prog_addr: In(range(SLOTS))
    prog_wdata: In(64)
    pkt_we: In(8)
    pkt_addr: In(range(SLOTS))
    pkt_wdata: In(64)
    start: In(1)
    start_r1: In(64)
    start_r2: In(64)
    budget: In(32)
    data: In(32)
    data_end: In(32)
    busy: Out(1)
    done: Out(1)
    result_r0: Out(64)
    result_fault: Out(4)
    result_pc: Out(16)
    trace: Out(wiring.Signature({"valid": Out(1), "record": Out(ToyRecord)}))

    def elaborate(self, platform):
        m = Module()
        m.submodules.prog = prog = memory.Memory(shape=64, depth=SLOTS, init=[])
        m.submodules.pkt = pkt = memory.Memory(shape=64, depth=SLOTS, init=[])
        pw = prog.write_port()
        pr = prog.read_port(domain="comb")
        kw = pkt.write_port(granularity=8)
        kr = pkt.read_port(domain="comb")
        m.d.comb += [pw.en.eq(self.prog_we), pw.addr.eq(self.prog_addr),
                     pw.data.eq(self.prog_wdata),
                     kw.en.eq(self.pkt_we), kw.addr.eq(self.pkt_addr), kw.data.eq(self.pkt_wdata)]
        pc = Signal(16)
        acc = Signal(64)
        m.d.comb += [pr.addr.eq(pc), kr.addr.eq(pc)]
        m.d.sync += [self.trace.valid.eq(0), self.done.eq(0)]
        rec = self.trace.record
        with m.If(self.start & ~self.busy):
            m.d.sync += [self.busy.eq(1), pc.eq(0), acc.eq(self.start_r1)]
        with m.Elif(self.busy):
            m.d.sync += [self.trace.valid.eq(1), rec.order.eq(pc), rec.pc.eq(pc),
                         rec.insn.eq(pr.data), rec.mem_addr.eq(abi.PKT_BASE + pc * 8),
                         rec.mem_rmask.eq(0xff), rec.mem_rdata.eq(kr.data),
                         rec.rd_valid.eq(0), rec.rd.eq(0), rec.rd_value.eq(0),
                         rec.fault.eq(0), rec.ret_valid.eq(0), rec.ret.eq(0), pc.eq(pc + 1)]
            with m.If(pc == self.budget):
                m.d.sync += [rec.fault.eq(Fault.BUDGET), rec.mem_addr.eq(0),
                             rec.mem_rmask.eq(0), rec.mem_rdata.eq(0), self.busy.eq(0),
                             self.done.eq(1), self.result_r0.eq(0),
                             self.result_fault.eq(Fault.BUDGET), self.result_pc.eq(pc)]
            with m.Elif(pr.data == 0):
                m.d.sync += [rec.ret_valid.eq(1), rec.ret.eq(acc), self.busy.eq(0),
                             self.done.eq(1), self.result_r0.eq(acc), self.result_fault.eq(0),
                             self.result_pc.eq(pc)]
            with m.Else():
                m.d.sync += [acc.eq(acc + pr.data), rec.rd_valid.eq(1),
                             rec.rd_value.eq(acc + pr.data)]
        return m


def toy_reference(item, program, packet_words):
    """The records ToyTop must retire for ``item`` (program: its whole program memory, stale
    slots of earlier items included; packet_words: word address -> value)."""
    records = []
    acc = item.r1
    for pc, slot in enumerate(program + [0]):
        if pc == item.budget:
            records.append(RetireRecord(pc, pc, slot, fault=Fault.BUDGET))
            return records, 0
        word = packet_words.get(pc, 0)
        if slot == 0:
            records.append(RetireRecord(pc, pc, 0, mem_addr=abi.PKT_BASE + pc * 8,
                                        mem_rmask=0xff, mem_rdata=word, ret=acc))
            return records, acc
        acc = (acc + slot) % 2**64
        records.append(RetireRecord(pc, pc, slot, rd=0, rd_value=acc,
                                    mem_addr=abi.PKT_BASE + pc * 8, mem_rmask=0xff,
                                    mem_rdata=word))
    raise AssertionError("toy program did not end")


def toy_spec():
    return TopSpec(factory=f"{__name__}:ToyTop", name="toy", sources=[],
                   salt=inspect.getsource(ToyTop) + repr(ToyRecord))


def test_ports_and_wrapper_follow_the_signature():
    top = ToyTop()
    unelaborated(top)
    ports = dict((name, (direction, width)) for name, direction, width in tb.ports_of(top))
    assert ports["prog_wdata"] == ("in", 64)
    assert ports["trace__record"] == ("out", ToyRecord.size)
    text = tb.wrapper_verilog(top, "toy")
    assert f"reg [{ToyRecord.size - 1}:0]" not in text          # outputs are wires
    assert f"wire [{ToyRecord.size - 1}:0] trace__record;" in text
    assert "$fwrite(tb_log, \"R %0d %h\\n\", tb_cycle, trace__record);" in text


def test_wrapper_refuses_a_top_without_the_bench_ports():
    class Bare(wiring.Component):
        start: In(1)

        def elaborate(self, platform):
            return Module()
    bare = Bare()
    unelaborated(bare)
    with pytest.raises(BpfcoreError, match="without port.*prog_we"):
        tb.wrapper_verilog(bare, "bare")


def test_decode_record_uses_layout_offsets():
    view_value = 0
    fields = {"order": 7, "pc": 3, "insn": 0x1234, "rd_valid": 1, "rd": 5, "rd_value": 99,
              "fault": Fault.LOAD_OOB, "ret_valid": 0, "ret": 0}
    for name, value in fields.items():
        view_value |= int(value) << ToyRecord[name].offset
    rec = trace.decode_record(view_value, ToyRecord)
    assert rec == RetireRecord(7, 3, 0x1234, rd=5, rd_value=99, fault=Fault.LOAD_OOB)
    assert trace.decode_record(1 << ToyRecord["ret_valid"].offset, ToyRecord).ret == 0


def test_parse_log_rejects_bad_lines(tmp_path):
    log = tmp_path / "trace.log"
    log.write_text("S 0 10\nR 12 xx\n")
    with pytest.raises(BpfcoreError, match=r"trace.log:2: bad trace line"):
        trace.parse_log(log, ToyRecord)
    log.write_text("R 12 0\n")
    with pytest.raises(BpfcoreError, match=r"trace.log:1: .*before the first start"):
        trace.parse_log(log, ToyRecord)


def test_verilog_cache_is_keyed_by_sources(tmp_path):
    spec = toy_spec()
    source = tmp_path / "extra.py"
    source.write_text("a = 1\n")
    other = TopSpec(spec.factory, name="toy", sources=spec.sources + [source], salt=spec.salt)
    before = other.digest()
    source.write_text("a = 2\n")
    assert other.digest() != before
    assert spec.digest() == toy_spec().digest()
    assert TopSpec(spec.factory, {"x": 1}, "toy", spec.sources, spec.salt).digest() \
        != spec.digest()
    assert TopSpec(spec.factory, {}, "toy", spec.sources, "other").digest() != spec.digest()


@pytest.mark.parametrize("simulator", ["icarus", "verilator"])
def test_toy_batch_runs_in_one_invocation(simulator):
    bench = Bench(toy_spec(), simulator)
    items = [
        BatchItem([5, 6, 7], packet=bytes(range(1, 20)), r1=100, headroom=3),
        BatchItem([1] * 9, r1=2**64 - 3, budget=4),      # budget fault after 4 records
        BatchItem([], packet=b"\xff", headroom=8),        # ends at once
        BatchItem([2**64 - 1, 2], r1=1, headroom=0, packet=b"\x01\x02\x03\x04\x05\x06\x07\x08"),
    ]
    result = bench.run(items)
    assert result.status == ["done"] * len(items)
    assert [run.index for run in result.runs] == list(range(len(items)))
    packet = {}
    program = [0] * SLOTS
    for item, run in zip(items, result.runs):
        program[:len(item.slots)] = item.slots
        for addr, enables, word in item.packet_words():
            old = packet.get(addr, 0)
            mask = sum(0xff << (8 * lane) for lane in range(8) if enables >> lane & 1)
            packet[addr] = (old & ~mask) | (word & mask)
        expected, r0 = toy_reference(item, program, packet)
        assert [rec for _, rec in run.records] == expected
        cycles = [cycle for cycle, _ in run.records]
        assert cycles == list(range(cycles[0], cycles[0] + len(cycles)))   # one per cycle
        assert run.end[1] == r0
        assert run.end[2] == (Fault.BUDGET if item.budget < len(item.slots) else 0)
        assert run.cycles == run.last_retire_cycle          # done comes with the last record
        if len(run.records) > 1:
            assert trace.cpi(run) == 1.0


# --- the conformance helper unit of the bench top --------------------------------------------

def test_conformance_helpers_answer_unwind_and_refuse_others():
    from amaranth.sim import Simulator
    from bpfcore.hdl.bench_top import ConformanceHelpers
    from bpfcore.sim.load.conformance import conformance_helpers
    from bpfcore.sim.model.vm import Halt

    unwind = conformance_helpers()[abi.CONFORMANCE_UNWIND_HELPER]

    def reference(helper_id, r1):
        """(r0, fault, halt) as the VM's conformance profile answers."""
        if helper_id != abi.CONFORMANCE_UNWIND_HELPER:
            return 0, Fault.BAD_CALL, 0
        try:
            return unwind(None, r1, 0, 0, 0, 0), Fault.NONE, 0
        except Halt as halt:
            return halt.r0, Fault.NONE, 1

    dut = ConformanceHelpers()
    calls = [(5, 2**64 - 1), (5, 0), (1, 7), (5, 0x1234), (6, 0), (5, 1)]
    answers = []

    async def testbench(ctx):
        for n, (helper_id, r1) in enumerate(calls):
            ctx.set(dut.req.payload.id, helper_id)
            ctx.set(dut.req.payload.r1, r1)
            ctx.set(dut.req.payload.r2, 99)
            ctx.set(dut.req.valid, 1)
            await ctx.tick().until(dut.req.ready)
            ctx.set(dut.req.valid, 0)
            for _ in range(n % 3):                     # back-pressure on the response
                await ctx.tick()
            ctx.set(dut.resp.ready, 1)
            valid, r0, fault, halt = await ctx.tick().sample(
                dut.resp.valid, dut.resp.payload.r0, dut.resp.payload.fault,
                dut.resp.payload.halt).until(dut.resp.valid)
            answers.append((r0, Fault(fault), halt))
            ctx.set(dut.resp.ready, 0)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run_until(1e-3)
    assert answers == [reference(*call) for call in calls]


# --- lockstep reports ---------------------------------------------------------------------

def test_first_mismatch_names_fields_and_shows_the_disassembly():
    from bpfcore.sim.load.asm import assemble
    from bpfcore.sim.rtl.lockstep import first_mismatch
    slots = assemble("mov %r0, 1\nlddw %r1, 0x1122334455667788\nadd %r0, %r1\nexit\n")
    vm = [RetireRecord(0, 0, slots[0], rd=0, rd_value=1),
          RetireRecord(1, 1, slots[1], slots[2], rd=1, rd_value=0x1122334455667788),
          RetireRecord(2, 3, slots[3], rd=0, rd_value=0x1122334455667789),
          RetireRecord(3, 4, slots[4], ret=0x1122334455667789)]
    assert first_mismatch(vm, list(vm), slots) is None
    bad = list(vm)
    bad[2] = RetireRecord(2, 3, slots[3], rd=1, rd_value=0x1122334455667789)
    text = first_mismatch(vm, bad, slots)
    lines = text.splitlines()
    assert lines[0] == "lockstep: retirement #2 at pc 3 differs in rd"
    assert lines[1].startswith("  vm: #2 pc=3") and "r0=0x1122334455667789" in lines[1]
    assert lines[2].startswith("  rtl: #2 pc=3") and "r1=0x1122334455667789" in lines[2]
    assert ">    3: add %r0, %r1" in text and "1: lddw %r1, 0x1122334455667788" in text
    short = first_mismatch(vm, vm[:2], slots)
    assert short.startswith("lockstep: rtl stopped after 2 retirements")
    longer = first_mismatch(vm[:3], vm, slots)
    assert longer.startswith("lockstep: rtl retires more than the 3 of vm")


def test_toy_timeout_resets_and_the_batch_goes_on():
    bench = Bench(toy_spec(), "icarus")
    # 16 non-zero slots: the toy wraps around program memory and never ends by itself.
    items = [BatchItem([3] * SLOTS, timeout_cycles=200), BatchItem([4, 0], r1=1)]
    result = bench.run(items)
    assert result.status == ["timeout", "done"]
    hung, after = result.runs
    assert hung.end is None and hung.cycles is None and len(hung.records) > 150
    assert after.end[1] == 5 and [rec.pc for _, rec in after.records] == [0, 1]


def test_kick_makes_every_combinational_block_read_the_kick_signal():
    from bpfcore.sim.rtl.verilog import KICK, kick
    text = ("module m(a, y);\n  input a;\n  output [1:0] y;\n  reg [1:0] y;\n"
            "  always @*\n    y[0] = 1'h1;\n"
            "  always @* begin\n    y[1] = a;\n  end\nendmodule\n")
    out = kick(text)
    assert out.count(f"if ({KICK}) begin end") == 2
    assert f"  reg {KICK} = 1'b0;\n  initial #1 {KICK} = 1'b1;\n" in out
    assert "  always @* begin\n    if (bpfcore_kick) begin end\n    y[0] = 1'h1;\n  end\n" in out
    assert kick(text).count("module m(") == 1
