"""The hardware decoder against the ISA table: every form, legal and illegal field values, random
words (seed from BPFCORE_SEED)."""

import random

from amaranth.sim import Simulator

from bpfcore.hdl.decoder import IMM_REG, Decoder, operand_roles
from bpfcore.isa import ANY, FORMS, REG, WREG, Kind, decode_slot, encode_slot, find_form


def ref_decode(word):
    """(legal, kind) as the ISA table says."""
    insn = decode_slot(word)
    form = find_form(insn.opcode, insn.src, insn.off, insn.imm)
    if form is None:
        return 0, None
    legal = all(form.allows(f, getattr(insn, f)) for f in ("dst", "src", "off", "imm"))
    return int(legal), form


def sample(rule, bits, rng):
    if rule == ANY:
        return rng.getrandbits(bits)
    if rule == REG:
        return rng.randint(0, 10)
    if rule == WREG:
        return rng.randint(0, 9)
    return rng.choice(sorted(rule))


def words(rng):
    out = []
    for form in FORMS:
        for _ in range(3):
            fields = {f: sample(getattr(form, f), bits, rng)
                      for f, bits in (("dst", 4), ("src", 4), ("off", 16), ("imm", 32))}
            out.append(encode_slot(form.opcode, **fields))
            bad = dict(fields)
            field = rng.choice(("dst", "src", "off", "imm"))
            bad[field] = rng.getrandbits(4 if field in ("dst", "src") else 16)
            out.append(encode_slot(form.opcode, **bad))
    out += [rng.getrandbits(64) for _ in range(300)]
    return out


def test_decoder_matches_isa_table(seed):
    rng = random.Random(seed)
    dut = Decoder()
    failures = []

    async def bench(ctx):
        for word in words(rng):
            ctx.set(dut.insn, word)
            legal, form = ref_decode(word)
            got_legal = ctx.get(dut.ctrl.legal)
            if got_legal != legal:
                failures.append(f"{word:#018x}: legal rtl {got_legal} ref {legal}")
                continue
            if not legal:
                continue
            if ctx.get(dut.ctrl.kind) != form.kind:
                failures.append(f"{word:#018x} ({form.mnemonic}): kind {ctx.get(dut.ctrl.kind)}")
            insn = decode_slot(word)
            ra, rb, rd, _ = operand_roles(form)
            for name, role in (("ra", ra), ("rb", rb), ("rd", rd)):
                flag = dut.ctrl.rd_we if name == "rd" else getattr(dut.ctrl, "use_" + name[1])
                use = ctx.get(flag)
                if use != (role is not None):
                    failures.append(f"{form.mnemonic}: {name} use {use}")
                elif name == "rb" and role is None and ctx.get(dut.ctrl.rb) != IMM_REG:
                    failures.append(f"{form.mnemonic}: rb {ctx.get(dut.ctrl.rb)} != IMM_REG")
                elif role is not None:
                    want = role if isinstance(role, int) else getattr(insn, role)
                    got = ctx.get(getattr(dut.ctrl, name))
                    if got != want:
                        failures.append(f"{form.mnemonic}: {name} {got} != {want}")
            if form.kind == Kind.LDDW and not ctx.get(dut.ctrl.lddw):
                failures.append(f"{form.mnemonic}: lddw flag")
            if len(failures) > 5:
                return

    sim = Simulator(dut)
    sim.add_testbench(bench)
    sim.run()
    assert failures == []
