"""The timing probes (bpfcore.boards.probes): each computes what its loop should, so the Fmax
measured on it is the Fmax of that loop; the block RAM read places above 100 MHz alone."""

from pathlib import Path

from amaranth.sim import Simulator

from bpfcore.boards import probes, synth
from bpfcore.isa import AluOp, JmpOp

MASK = (1 << 64) - 1
SEED = 0x0123_4567_89ab_cdef


def control(a, b, op, w64=1, off=0, shifter=0):
    return a | b << 2 | op.value << 4 | w64 << 8 | off << 9 | shifter << 11


def run(dut, setup, cycles, output):
    """Apply ``setup(ctx)``, then sample ``output`` after each of ``cycles`` clock edges."""
    seen = []

    async def bench(ctx):
        setup(ctx)
        for _ in range(cycles):
            await ctx.tick()
            seen.append(ctx.get(output))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return seen


def test_execute_loop_adds_the_forwarded_result_every_cycle():
    dut = probes.ExecuteLoop()
    seen = run(dut, lambda ctx: (ctx.set(dut.seed, SEED),
                                 ctx.set(dut.control, control(0, 1, AluOp.ADD))), 8, dut.result)
    # From the third edge on, result = result + source1 (the registered seed).
    assert all((b - a) & MASK == SEED for a, b in zip(seen[3:], seen[4:]))


def test_adder_loop_runs_each_operation():
    expected = {0: lambda r: (r + SEED) & MASK, 1: lambda r: (r - SEED) & MASK,
                2: lambda r: r & SEED, 3: lambda r: r ^ SEED}
    for op, step in expected.items():
        dut = probes.AdderLoop(logic=True)
        seen = run(dut, lambda ctx: (ctx.set(dut.seed, SEED),
                                     ctx.set(dut.control, 0 | 1 << 2 | op << 4)), 8, dut.result)
        assert all(b == step(a) for a, b in zip(seen[3:], seen[4:])), op
    dut = probes.AdderLoop()
    seen = run(dut, lambda ctx: (ctx.set(dut.seed, SEED), ctx.set(dut.control, 1 << 2)), 6,
               dut.result)
    assert all((b - a) & MASK == SEED for a, b in zip(seen[3:], seen[4:]))


def test_execute_loop_with_the_shifter():
    dut = probes.ExecuteLoop(shifter=True)
    seen = run(dut, lambda ctx: (ctx.set(dut.seed, SEED),
                                 ctx.set(dut.control, control(1, 1, AluOp.LSH, shifter=1))),
               5, dut.result)
    assert seen[-1] == (SEED << (SEED & 63)) & MASK
    dut = probes.ExecuteLoop(shifter=True)
    seen = run(dut, lambda ctx: (ctx.set(dut.seed, SEED),
                                 ctx.set(dut.control, control(1, 1, AluOp.XOR))), 5, dut.result)
    assert seen[-1] == 0                     # the ALU's result when the shifter is not picked


def test_compare_loop_steps_the_pc_by_the_outcome():
    for op, step in ((JmpOp.JEQ, SEED & 0xffff), (JmpOp.JNE, 1)):
        dut = probes.CompareLoop()
        seen = run(dut, lambda ctx: (ctx.set(dut.seed, SEED),
                                     ctx.set(dut.control, control(1, 1, op))), 8, dut.pc)
        assert all((b - a) & 0xffff == step for a, b in zip(seen[4:], seen[5:])), op


def test_block_ram_read_returns_what_was_written():
    for levels in (0, 2):
        dut = probes.BlockRamRead(levels=levels)

        async def bench(ctx):
            ctx.set(dut.addr, 8)
            ctx.set(dut.data, 0xabcdef123)
            ctx.set(dut.we, 1)
            await ctx.tick()
            ctx.set(dut.we, 0)
            ctx.set(dut.addr, 7)              # the read port reads addr + 1
            await ctx.tick().repeat(2)
            # addr 7 has its low bits set: every multiplexer passes the memory's word.
            assert ctx.get(dut.q) == 0xabcdef123

        sim = Simulator(dut)
        sim.add_clock(1e-6)
        sim.add_testbench(bench)
        sim.run()


def test_block_ram_read_alone_places_above_100_mhz(tmp_path, monkeypatch):
    monkeypatch.setenv("BPFCORE_BUILD", str(tmp_path))
    summary = synth.synthesize("probe_bram", freq_mhz=100)
    assert summary["bram"] == 1
    # Measured 138.5 / 135.9 MHz with seeds 1 / 2: the block RAM's clock-to-out (5.83 ns) and
    # the routing to its flip-flops leave about a quarter of a 10 ns cycle.
    assert summary["fmax_mhz"] > 100


def test_editing_a_probe_invalidates_its_cached_results():
    spec, _ = synth._spec_and_folder("probe_add", synth.DEFAULT_PART, 100, 1)
    assert Path(probes.__file__).resolve() in {Path(p).resolve() for p in spec.sources}
    assert synth._factory_source("no.such.module:Design") == []
