"""bpfcore.sim.gen.progen: random programs under the ISA table's legality rows."""

import random
from collections import Counter

import pytest

from bpfcore.abi import Fault
from bpfcore.isa import FORMS, Kind, decode_slot, find_form
from bpfcore.sim.gen import progen
from bpfcore.sim.load.program import validate

#: Forms the Linux kernel has no use for: callx (not in the kernel ISA), helper calls by BTF id,
#: lddw of a variable or code address (need BTF / are not loadable without one).
NOT_IN_KERNEL = {"callx", "call btf", "lddw.var", "lddw.code"}


def executed_forms(programs):
    seen = Counter()

    def hook(record):
        insn = decode_slot(record.insn)
        seen[find_form(insn.opcode, insn.src, insn.off, insn.imm).mnemonic] += 1
    outcomes = [progen.run_vm(gp, on_retire=hook) for gp in programs]
    return seen, outcomes


def test_same_seed_same_program(seed):
    for profile in progen.PROFILES:
        a = progen.generate(random.Random(seed), profile=profile)
        b = progen.generate(random.Random(seed), profile=profile)
        assert a.slots == b.slots and a.packet == b.packet


def test_kernel_profile_runs_every_kernel_form_and_never_faults(seed):
    rng = random.Random(seed)
    programs = [progen.generate(rng, size=30, ctx=i % 3 != 0, seed=i) for i in range(300)]
    for gp in programs:
        validate(gp, helpers=gp.helpers, n_maps=len(gp.maps))
    seen, outcomes = executed_forms(programs)
    faults = [(gp.name, o.fault) for gp, o in zip(programs, outcomes) if o.fault]
    assert faults == []
    missing = {f.mnemonic for f in FORMS} - NOT_IN_KERNEL - set(seen)
    assert missing == set()


def test_kernel_profile_without_ctx_is_self_contained(seed):
    rng = random.Random(seed)
    for i in range(50):
        gp = progen.generate(rng, ctx=False)
        assert gp.maps == [] and gp.helpers == frozenset() and gp.packet == b""
        kinds = {find_form(i.opcode, i.src, i.off, i.imm).kind for i in gp.insns
                 if find_form(i.opcode, i.src, i.off, i.imm)}
        assert Kind.CALL not in kinds and Kind.CALLX not in kinds
        outcome = progen.run_vm(gp)
        assert not outcome.fault and outcome.r0 == outcome.retval   # folded to 32 bits


def test_kernel_profile_uses_calls_loops_and_helpers(seed):
    rng = random.Random(seed)
    local_calls = back_edges = 0
    helpers = Counter()
    for i in range(100):
        gp = progen.generate(rng, size=30)
        for pc, insn in enumerate(gp.insns):
            form = find_form(insn.opcode, insn.src, insn.off, insn.imm)
            if form is None:
                continue
            if form.kind == Kind.CALL_LOCAL:
                local_calls += 1
            elif form.kind == Kind.JCOND and insn.off < 0:
                back_edges += 1
            elif form.kind == Kind.CALL:
                helpers[insn.imm] += 1
    assert local_calls > 20 and back_edges > 20
    assert set(helpers) == {1, 2, 3, 8, 23}


def test_hostile_profile_is_legal_and_reaches_every_ending(seed):
    rng = random.Random(seed)
    programs = [progen.generate(rng, size=40, profile="hostile") for _ in range(400)]
    forms = set()
    for gp in programs:
        validate(gp, helpers=gp.helpers)
        forms |= {find_form(i.opcode, i.src, i.off, i.imm).mnemonic
                  for pc, i in enumerate(gp.insns)
                  if find_form(i.opcode, i.src, i.off, i.imm) is not None}
    _, outcomes = executed_forms(programs)
    endings = Counter(o.fault.split(":")[0] if o.fault else "exit" for o in outcomes)
    for ending in ("exit", Fault.LOAD_OOB.name, Fault.STORE_OOB.name, Fault.BUDGET.name,
                   Fault.CALL_DEPTH.name, Fault.BAD_CALL.name):
        assert endings[ending] > 0, (ending, endings)
    # Every form the conformance profile accepts appears (lddw map forms need maps: none here).
    legal = {f.mnemonic for f in progen.HOSTILE_FORMS}
    assert legal - forms == set()
    assert any(gp.budget < 1000 for gp in programs)


def test_bad_arguments_are_clear():
    with pytest.raises(ValueError, match="unknown profile 'nice'; choose one of kernel, hostile"):
        progen.generate(random.Random(0), profile="nice")
    with pytest.raises(ValueError, match="subprogs must be 0..3, not 5"):
        progen.generate(random.Random(0), subprogs=5)


def test_listing_numbers_slots():
    gp = progen.generate(random.Random(1), size=5)
    lines = progen.listing(gp).splitlines()
    assert lines[0].startswith("   0: ldxw %r2, [%r1+0]")
    last = int(lines[-1].split(":")[0])
    assert last + (2 if "lddw" in lines[-1] else 1) == len(gp.slots)
