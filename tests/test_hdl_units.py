"""CPU function units: reference (the golden VM's operator tables) against RTL, on edge cases
plus random inputs (seed from BPFCORE_SEED)."""

import itertools
import random

import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from bpfcore import abi
from bpfcore.abi import Fault
from bpfcore.abi import Region
from bpfcore.hdl.units.alu import Alu
from bpfcore.hdl.units.atomics import Atomics
from bpfcore.hdl.units.branch import BranchCompare
from bpfcore.hdl.units.bswap import ByteSwap
from bpfcore.hdl.units.divider import Divider
from bpfcore.hdl.units.faults import FaultPriority
from bpfcore.hdl.units.lsu import RegionCheck
from bpfcore.hdl.units.multiplier import Multiplier
from bpfcore.hdl.units.predictor import BHT_ENTRIES, BranchPredictor
from bpfcore.hdl.units.shifter import Shifter
from bpfcore.isa import AluOp, AtomicOp, Size
from bpfcore.sim.model.vm import ALU_OPS, ATOMIC_OPS, JMP_OPS, Memory, VmFault, byte_swap

M64 = (1 << 64) - 1
EDGES = [0, 1, 2, 3, 7, 0x7f, 0x80, 0xff, 0x7fff, 0x8000, 0xffff, 0x7fff_ffff, 0x8000_0000,
         0xffff_ffff, 0x1_0000_0000, 0x7fff_ffff_ffff_ffff, 0x8000_0000_0000_0000,
         M64 - 1, M64, 0x1234_5678_9abc_def0, 60, 63, 64, 68, 31, 32]


def operands(rng, n):
    pairs = list(itertools.product(EDGES[:18], repeat=2))
    rng.shuffle(pairs)
    pairs = pairs[:n // 2]
    while len(pairs) < n:
        pairs.append((rng.getrandbits(rng.choice((3, 8, 31, 32, 33, 63, 64))),
                      rng.getrandbits(rng.choice((3, 8, 31, 32, 33, 63, 64)))))
    return pairs


def drive(dut, *ports):
    """An ``apply(ctx, case)`` that sets the named input ports of ``dut`` to the case's values."""
    def apply(ctx, case):
        for port, value in zip(ports, case, strict=True):
            ctx.set(getattr(dut, port), value)
    return apply


def run_comb(dut, cases, apply, check):
    """Drive a combinational unit with each case and check its outputs; return the failures."""
    failures = []

    async def bench(ctx):
        for case in cases:
            apply(ctx, case)
            problem = check(ctx, case)
            if problem:
                failures.append(problem)
                if len(failures) > 5:
                    return

    sim = Simulator(dut)
    sim.add_testbench(bench)
    sim.run()
    return failures


def ref_alu(op, a, b, w64, off):
    w = 64 if w64 else 32
    mask = (1 << w) - 1
    return ALU_OPS[op](a & mask, b & mask, w, off if op == AluOp.MOV else 0) & mask


def test_alu(seed):
    rng = random.Random(seed)
    ops = [AluOp.ADD, AluOp.SUB, AluOp.OR, AluOp.AND, AluOp.XOR, AluOp.NEG, AluOp.MOV]
    cases = []
    for a, b in operands(rng, 300):
        op = rng.choice(ops)
        w64 = rng.random() < 0.5
        off = rng.choice((0, 8, 16, 32) if w64 else (0, 8, 16)) if op == AluOp.MOV else 0
        cases.append((op, a, b, w64, off))
    dut = Alu()

    apply = drive(dut, 'x_op', 'x_a', 'x_b', 'x_w64', 'x_off')

    def check(ctx, c):
        got, want = ctx.get(dut.x_result), ref_alu(*c)
        return None if got == want else f"{c}: rtl {got:#x} ref {want:#x}"

    assert run_comb(dut, cases, apply, check) == []


def test_shifter(seed):
    rng = random.Random(seed)
    cases = [(rng.choice([AluOp.LSH, AluOp.RSH, AluOp.ARSH]), a, b, rng.random() < 0.5)
             for a, b in operands(rng, 300)]
    dut = Shifter()

    apply = drive(dut, 'x_op', 'x_a', 'x_b', 'x_w64')

    def check(ctx, c):
        got, want = ctx.get(dut.x_result), ref_alu(*c, 0)
        return None if got == want else f"{c}: rtl {got:#x} ref {want:#x}"

    assert run_comb(dut, cases, apply, check) == []


def test_byte_swap(seed):
    rng = random.Random(seed)
    cases = [(rng.getrandbits(64), bits, swap) for _ in range(20)
             for bits in (16, 32, 64) for swap in (0, 1)]
    dut = ByteSwap()

    apply = drive(dut, 'x_a', 'x_bits', 'x_swap')

    def check(ctx, c):
        value, bits, swap = c
        want = byte_swap(value, bits) if swap else value & ((1 << bits) - 1)
        got = ctx.get(dut.x_result)
        return None if got == want else f"{c}: rtl {got:#x} ref {want:#x}"

    assert run_comb(dut, cases, apply, check) == []


def test_branch_compare(seed):
    rng = random.Random(seed)
    cases = []
    for a, b in operands(rng, 400):
        if rng.random() < 0.2:
            b = a
        cases.append((rng.choice(list(JMP_OPS)), a, b, rng.random() < 0.5))
    dut = BranchCompare()

    apply = drive(dut, 'x_op', 'x_a', 'x_b', 'x_w64')

    def check(ctx, c):
        op, a, b, w64 = c
        w = 64 if w64 else 32
        mask = (1 << w) - 1
        want = int(JMP_OPS[op](a & mask, b & mask, w))
        got = ctx.get(dut.x_taken)
        return None if got == want else f"{op.name} {a:#x} {b:#x} w{w}: rtl {got} ref {want}"

    assert run_comb(dut, cases, apply, check) == []


def run_multicycle(dut, cases, apply, result, want, limit=80):
    """Start a multi-cycle unit per case, wait for ``x_done``; return failures and latencies."""
    failures = []
    latencies = []

    async def bench(ctx):
        for case in cases:
            apply(ctx, case)
            ctx.set(dut.x_start, 1)
            await ctx.tick()
            ctx.set(dut.x_start, 0)
            for cycle in range(1, limit):
                if ctx.get(dut.x_done):
                    break
                await ctx.tick()
            else:
                failures.append(f"{case}: no x_done after {limit} cycles")
                continue
            latencies.append(cycle)
            got, expected = ctx.get(result), want(case)
            if got != expected:
                failures.append(f"{case}: rtl {got:#x} ref {expected:#x}")

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return failures, latencies


def test_multiplier(seed):
    rng = random.Random(seed)
    cases = operands(rng, 120)
    dut = Multiplier()

    apply = drive(dut, 'x_a', 'x_b')

    failures, latencies = run_multicycle(dut, cases, apply, dut.x_result,
                                         lambda c: (c[0] * c[1]) & M64)
    assert failures == []
    assert set(latencies) == {2}


class DividerWithShifter(wiring.Component):
    """The divider as the CPU builds it: normalising through the (lent) shifter."""

    x_start: In(1)
    x_a: In(64)
    x_b: In(64)
    x_w64: In(1)
    x_signed: In(1)
    x_mod: In(1)
    x_done: Out(1)
    x_result: Out(64)

    def elaborate(self, platform):
        m = Module()
        m.submodules.div = div = Divider(external_shift=True)
        m.submodules.shifter = shifter = Shifter()
        for name in ("x_start", "x_a", "x_b", "x_w64", "x_signed", "x_mod"):
            m.d.comb += getattr(div, name).eq(getattr(self, name))
        m.d.comb += [
            self.x_done.eq(div.x_done), self.x_result.eq(div.x_result),
            shifter.x_op.eq(AluOp.LSH), shifter.x_a.eq(div.x_norm_value),
            shifter.x_b.eq(div.x_norm_shift), shifter.x_w64.eq(1),
            div.x_norm_result.eq(shifter.x_result),
        ]
        return m


@pytest.mark.parametrize("external", [False, True], ids=["own_shift", "lent_shifter"])
def test_divider(seed, external):
    rng = random.Random(seed)
    cases = []
    for a, b in operands(rng, 240):
        if rng.random() < 0.1:
            b = 0
        w64 = rng.random() < 0.5
        cases.append((a, b, w64, rng.random() < 0.5, rng.random() < 0.5))
    for w64 in (0, 1):                       # INT_MIN / -1 and by zero, every variant
        int_min = 1 << (63 if w64 else 31)
        for signed, mod in itertools.product((0, 1), repeat=2):
            cases += [(int_min, M64, w64, signed, mod), (int_min, 0, w64, signed, mod),
                      (M64 - 9, 0, w64, signed, mod), (M64 - 12, 3, w64, signed, mod)]
    dut = DividerWithShifter() if external else Divider()

    apply = drive(dut, 'x_a', 'x_b', 'x_w64', 'x_signed', 'x_mod')

    def want(c):
        a, b, w64, signed, mod = c
        w = 64 if w64 else 32
        mask = (1 << w) - 1
        return ALU_OPS[AluOp.MOD if mod else AluOp.DIV](a & mask, b & mask, w, int(signed)) & mask

    failures, latencies = run_multicycle(dut, cases, apply, dut.x_result, want)
    assert failures == []
    assert max(latencies) <= 2 + 32


def test_atomics(seed):
    rng = random.Random(seed)
    cases = []
    for old, src in operands(rng, 200):
        op = rng.choice(list(AtomicOp))
        w64 = rng.random() < 0.5
        mask = M64 if w64 else 0xffff_ffff
        cmp = old if rng.random() < 0.5 else rng.getrandbits(64)
        cases.append((op, w64, old & mask, src & mask, cmp))
    dut = Atomics()

    def apply(ctx, c):
        op, w64, old, src, cmp = c
        ctx.set(dut.m_op, op.value)
        ctx.set(dut.m_w64, w64)
        ctx.set(dut.m_old, old)
        ctx.set(dut.m_src, src)
        ctx.set(dut.m_cmp, cmp)

    def check(ctx, c):
        op, w64, old, src, cmp = c
        mask = M64 if w64 else 0xffff_ffff
        if op == AtomicOp.CMPXCHG:
            store, new = old == cmp & mask, src
        elif op == AtomicOp.XCHG:
            store, new = True, src
        else:
            store, new = True, ATOMIC_OPS[AtomicOp(op.value & ~1)](old, src) & mask
        got = (ctx.get(dut.m_store), ctx.get(dut.m_new) if store else None)
        expected = (int(store), new if store else None)
        return None if got == expected else f"{c}: rtl {got} ref {expected}"

    assert run_comb(dut, cases, apply, check) == []


def ref_region(addr, size, write, data, data_end, fp):
    # Map values: the region check only decodes the region; whether the access lies inside one
    # value (and may write it) is the map memory's answer in the memory stage.
    if abi.MAP_BASE <= addr < abi.MAP_BASE + abi.MAX_MAPS * abi.MAP_WINDOW:
        return Region.MAP, Fault.NONE
    mem = Memory()
    mem.data, mem.data_end, mem.fp = data, data_end, fp
    try:
        buf, _ = mem.locate(addr, size, write)
    except VmFault as fault:
        return Region.NONE, fault.cause
    return {id(mem.stack): Region.STACK, id(mem.packet): Region.PACKET,
            id(mem.ctx): Region.CTX}[id(buf)], Fault.NONE


def test_region_check(seed):
    rng = random.Random(seed)
    data = abi.PKT_BASE + abi.PKT_HEADROOM
    data_end = data + 64
    bases = [abi.CTX_BASE, abi.STACK_TOP, abi.STACK_TOP - 512, abi.STACK_BASE, data, data_end,
             abi.PKT_BASE, abi.PKT_BASE + abi.PKT_BUF_SIZE, abi.MAP_BASE, 0, M64 - 3,
             1 << 32 | abi.STACK_TOP]
    cases = []
    for _ in range(400):
        base = rng.choice(bases)
        off = rng.randint(-600, 40) if rng.random() < 0.8 else rng.randint(-32768, 32767)
        size = rng.choice(list(Size))
        fp = abi.frame_pointer(rng.randint(0, 7))
        cases.append((base, off, size, rng.random() < 0.5, fp))
    dut = RegionCheck()

    def apply(ctx, c):
        base, off, size, write, fp = c
        ctx.set(dut.x_base, base)
        ctx.set(dut.x_off, off & 0xffff)
        ctx.set(dut.x_size, size)
        ctx.set(dut.x_write, write)
        ctx.set(dut.x_data, data)
        ctx.set(dut.x_data_end, data_end)
        ctx.set(dut.x_fp, fp)

    def check(ctx, c):
        base, off, size, write, fp = c
        addr = (base + off) & M64
        nbytes = {Size.B: 1, Size.H: 2, Size.W: 4, Size.DW: 8}[size]
        want = ref_region(addr, nbytes, write, data, data_end, fp)
        got = (ctx.get(dut.x_region), Fault(ctx.get(dut.x_fault)))
        if want[1] == Fault.NONE and ctx.get(dut.x_addr) != addr:
            return f"{c}: address {ctx.get(dut.x_addr):#x}, expected {addr:#x}"
        if got == want:
            return None
        return f"{addr:#x} size {nbytes} write {write}: rtl {got} ref {want}"

    assert run_comb(dut, cases, apply, check) == []


class RefPredictor:
    """Decode's prediction as ``hdl/README.md`` states it: a conditional branch goes the way
    it went last time at the same pc modulo ``BHT_ENTRIES`` in this run, else backward taken /
    forward not taken (the predecoded ``bt``); ja follows its target, lddw skips a slot."""

    def __init__(self):
        self.history = {}

    def predict(self, pc, slot):
        taken = slot["jcond"] and self.history.get(pc % BHT_ENTRIES, slot["bt"])
        if slot["ja"] or taken:
            nxt = slot["target"]
        elif slot["lddw"] and slot["legal"]:
            nxt = (pc + 2) & 0xffff
        else:
            nxt = (pc + 1) & 0xffff
        return bool(taken), nxt, ((nxt + 1) & 0xffff) >> 1


def random_slot(rng):
    kind = rng.choice(["plain", "ja", "jcond", "lddw"])
    target = rng.getrandbits(16)
    return {"ja": kind == "ja", "jcond": kind == "jcond", "bt": rng.random() < 0.5,
            "lddw": kind == "lddw", "legal": rng.random() < 0.9, "target": target,
            "target_even": ((target + 1) & 0xffff) >> 1}


def test_branch_predictor(seed):
    rng = random.Random(seed)
    dut = BranchPredictor()
    ref = RefPredictor()
    failures = []

    def put(ctx, port, slot):
        for name in ("ja", "jcond", "bt", "target", "target_even"):
            ctx.set(getattr(port, name), slot[name])
        ctx.set(port.ctrl.lddw, slot["lddw"])
        ctx.set(port.ctrl.legal, slot["legal"])

    async def bench(ctx):
        for step in range(600):
            # Few pcs, so that branches meet their own history and their neighbours' aliases.
            pc = rng.choice([rng.randrange(40), rng.getrandbits(16)])
            banks = [random_slot(rng), random_slot(rng)]
            slot = banks[pc & 1]
            ctx.set(dut.fd.pc, pc)
            put(ctx, dut.d_even, banks[0])
            put(ctx, dut.d_odd, banks[1])
            put(ctx, dut.fd.slot, slot)
            clear = rng.random() < 0.02
            update = not clear and rng.random() < 0.6
            x_pc, x_taken = rng.randrange(40), rng.random() < 0.5
            ctx.set(dut.clear, clear)
            ctx.set(dut.x_update, update)
            ctx.set(dut.x_pc, x_pc)
            ctx.set(dut.x_taken, x_taken)
            want = ref.predict(pc, slot)
            got = (bool(ctx.get(dut.d_taken)), ctx.get(dut.f_next), ctx.get(dut.f_next_even))
            if got != want:
                failures.append(f"step {step} pc {pc} slot {slot}: rtl {got} ref {want}")
                if len(failures) > 5:
                    return
            await ctx.tick()
            if clear:
                ref.history.clear()
            elif update:
                ref.history[x_pc % BHT_ENTRIES] = x_taken

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert failures == []


def ref_faults(c):
    """Fault causes in the VM's order (``bpfcore.sim.model.vm``: fetch, budget, decode, then the
    instruction's own checks; a map access out of bounds before read-only)."""
    d = Fault.PC_RANGE if c["d_pc_range"] else Fault.ILLEGAL if not c["d_legal"] else 0
    dx = c["x_dx_fault"]
    early = dx != 0 or c["x_budget_hit"]
    if dx == Fault.PC_RANGE:
        x = Fault.PC_RANGE
    elif c["x_budget_hit"]:
        x = Fault.BUDGET
    elif dx:
        x = dx
    elif c["x_mem"]:
        x = c["x_region_fault"]
    elif c["x_call_full"]:
        x = Fault.CALL_DEPTH
    elif c["x_helper"]:
        x = c["x_helper_fault"]
    else:
        x = 0
    mapf = 0
    if c["m_map"] and not c["m_map_ok"]:
        mapf = Fault.STORE_OOB if c["m_write"] else Fault.LOAD_OOB
    elif c["m_map"] and c["m_write"] and c["m_map_ro"]:
        mapf = Fault.STORE_RO
    # An instruction that faulted before the memory stage makes no map access.
    m = c["m_xm_fault"] if c["m_xm_fault"] else mapf
    return int(d), bool(early), int(x), int(mapf), int(m)


def test_fault_priority(seed):
    rng = random.Random(seed)
    dut = FaultPriority()
    causes = [0, Fault.PC_RANGE, Fault.ILLEGAL, Fault.LOAD_OOB, Fault.BAD_CALL, Fault.HELPER]
    bits = ["d_pc_range", "d_legal", "x_budget_hit", "x_mem", "x_call_full", "x_helper",
            "m_write", "m_map_ok", "m_map_ro"]
    cases = []
    for _ in range(500):
        c = {name: rng.random() < 0.5 for name in bits}
        c.update(x_dx_fault=rng.choice(causes[:3]), x_region_fault=rng.choice(causes),
                 x_helper_fault=rng.choice(causes), m_xm_fault=rng.choice(causes))
        c["m_map"] = c["m_xm_fault"] == 0 and rng.random() < 0.7
        cases.append(c)

    def apply(ctx, c):
        for name, value in c.items():
            ctx.set(getattr(dut, name), value)

    def check(ctx, c):
        got = (ctx.get(dut.d_fault), bool(ctx.get(dut.x_early)), ctx.get(dut.x_fault),
               ctx.get(dut.m_map_fault), ctx.get(dut.m_fault))
        want = ref_faults(c)
        return None if got == want else f"{c}: rtl {got} ref {want}"

    assert run_comb(dut, cases, apply, check) == []
