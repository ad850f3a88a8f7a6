"""The load/store unit's packet slots: the CPU on one slot while a datapath fills and reads the
others, compared with a byte-array model of every slot."""

import random

from amaranth.sim import Simulator

from bpfcore import abi
from bpfcore.abi import Region
from bpfcore.hdl.units.lsu import Lsu
from bpfcore.isa import Size

from conftest import seed_from_env

SLOTS = 4
WORDS = abi.PKT_SLOT_SIZE // 8


def test_slots_serve_the_cpu_and_the_datapath_at_once():
    seed = seed_from_env()
    rng = random.Random(seed)
    dut = Lsu(pkt_slots=SLOTS)
    model = [bytearray(abi.PKT_SLOT_SIZE) for _ in range(SLOTS)]
    problems = []

    async def dp_write(ctx, slot, word, value, enables=0xff):
        ctx.set(dut.dp.wslot, slot)
        ctx.set(dut.dp.waddr, word)
        ctx.set(dut.dp.wdata, value)
        ctx.set(dut.dp.we, enables)
        await ctx.tick()
        ctx.set(dut.dp.we, 0)
        for i in range(8):
            if enables >> i & 1:
                model[slot][8 * word + i] = value >> (8 * i) & 0xff

    def expect_word(slot, word):
        return int.from_bytes(model[slot][8 * word:8 * word + 8], "little")

    async def bench(ctx):
        ctx.set(dut.host, 1)
        # The datapath fills every slot (idle CPU: its slot too).
        for slot in range(SLOTS):
            for word in range(0, 64):
                await dp_write(ctx, slot, word, rng.getrandbits(64), rng.getrandbits(8) | 1)
        # The CPU runs on slot 2 while the datapath writes slot 1 and reads slot 3.
        ctx.set(dut.slot, 2)
        ctx.set(dut.host, 0)
        await ctx.tick()
        for step in range(200):
            offset = rng.randrange(0, 8 * 60)
            addr = abi.PKT_BASE + offset
            dp_word = rng.randrange(64)
            dp_value = rng.getrandbits(64)
            read_word = rng.randrange(64)
            ctx.set(dut.x_addr, addr)
            ctx.set(dut.dp.wslot, 1)
            ctx.set(dut.dp.waddr, dp_word)
            ctx.set(dut.dp.wdata, dp_value)
            ctx.set(dut.dp.we, 0xff)
            ctx.set(dut.dp.rslot, 3)
            ctx.set(dut.dp.raddr, read_word)
            await ctx.tick()
            ctx.set(dut.dp.we, 0)
            model[1][8 * dp_word:8 * dp_word + 8] = dp_value.to_bytes(8, "little")
            ctx.set(dut.m_addr, addr)
            ctx.set(dut.m_region, Region.PACKET)
            ctx.set(dut.m_size, Size.DW)
            got = ctx.get(dut.m_rdata)
            want = int.from_bytes(model[2][offset:offset + 8], "little")
            if got != want:
                problems.append(f"step {step}: CPU load at +{offset}: {got:#x}, want {want:#x}")
            if ctx.get(dut.dp.rdata) != expect_word(3, read_word):
                problems.append(f"step {step}: datapath read of slot 3 word {read_word}")
            if step % 4 == 0:           # a CPU store into its slot, in the memory stage
                value = rng.getrandbits(64)
                ctx.set(dut.m_we, 1)
                ctx.set(dut.m_wdata, value)
                await ctx.tick()
                ctx.set(dut.m_we, 0)
                model[2][offset:offset + 8] = value.to_bytes(8, "little")
        # Idle again: the datapath reads every slot back, the CPU's stores included.
        ctx.set(dut.host, 1)
        for slot in range(SLOTS):
            for word in range(64):
                ctx.set(dut.dp.rslot, slot)
                ctx.set(dut.dp.raddr, word)
                await ctx.tick()
                if ctx.get(dut.dp.rdata) != expect_word(slot, word):
                    problems.append(f"read back slot {slot} word {word}: "
                                    f"{ctx.get(dut.dp.rdata):#x}, want {expect_word(slot, word):#x}")

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert not problems, f"seed {seed}: " + "; ".join(problems[:5])


def test_one_slot_keeps_the_host_port():
    dut = Lsu()
    assert "pkt_we" in dut.signature.members and "dp" not in dut.signature.members
    slotted = Lsu(pkt_slots=2)
    assert "dp" in slotted.signature.members and "pkt_we" not in slotted.signature.members
    from bpfcore.hdl.unused import unelaborated
    unelaborated(dut, slotted)
