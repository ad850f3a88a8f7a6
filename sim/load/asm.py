"""Assembler and disassembler for the conformance suite's text syntax.

The syntax is the one described in ``shared/conformance/README.md``: ``mnemonic operand, ...``
with registers ``%r0``..``%r10``, 32-bit variants by a ``32`` suffix, memory operands
``[%rN+off]``, labels ``name:`` (the first ``exit`` also defines ``exit``), jump targets by label
or signed slot count (``+1``, ``-3``), ``lock [fetch] op[32]`` atomics, ``call N`` /
``call local L`` / ``call %rN``. Mnemonics come from :data:`bpfcore.isa.FORMS`; nothing here
lists opcodes.
"""

import re

from bpfcore.errors import AsmError
from bpfcore.isa import FORMS_BY_MNEMONIC, Kind, Source, decode_slot, encode_slot, find_form

__all__ = ["assemble", "disassemble", "disassemble_one"]

_LABEL = re.compile(r"^([A-Za-z_.][\w.]*):$")
_TOKEN = re.compile(r"\[[^\]]*\]|[^\s,]+")
_REG = re.compile(r"^%r(\d+)$")
_MEM = re.compile(r"^\[\s*%r(\d+)\s*(?:([+-])\s*(0x[0-9a-fA-F]+|\d+)\s*)?\]$")
_ALIASES = {"swap16": "bswap16", "swap32": "bswap32", "swap64": "bswap64",
            "callx": "callx", "ja64": "ja"}


class _Line:
    def __init__(self, number, mnemonic, operands, form_kind):
        self.number = number
        self.mnemonic = mnemonic
        self.operands = operands
        self.kind = form_kind


def _strip(line):
    return line.split("#", 1)[0].strip()


def _forms_for(mnemonic):
    mnemonic = _ALIASES.get(mnemonic, mnemonic)
    forms = FORMS_BY_MNEMONIC.get(mnemonic)
    if forms is None and mnemonic.endswith("64"):
        forms = FORMS_BY_MNEMONIC.get(mnemonic[:-2])
        if forms and forms[0].width != 64:
            forms = None
    return forms


def _split(text):
    """Mnemonic and operand tokens of one instruction line."""
    tokens = _TOKEN.findall(text)
    words = [tokens[0].lower()]
    rest = tokens[1:]
    if words[0] == "lock":
        while rest and not rest[0].startswith("[") and len(words) < 3:
            words.append(rest.pop(0).lower())
    elif words[0] == "call" and rest:
        head = rest[0].lower()
        if head in ("local", "btf"):
            words.append(rest.pop(0).lower())
        elif head == "helper":
            rest.pop(0)
        elif _REG.match(rest[0]):
            words = ["callx"]
    return " ".join(words), rest


def _int(text, lo, hi, what, line, filename):
    try:
        value = int(text, 0) if not re.match(r"^[+-]?0\d", text) else int(text, 10)
    except ValueError:
        raise AsmError(filename, line, f"expected {what}, got {text!r}") from None
    if not lo <= value <= hi:
        bits = (hi + 1).bit_length() - 1
        raise AsmError(filename, line, f"{what.split(' ', 1)[1]} {text} does not fit in {bits} "
                                       "bits")
    return value


def _reg(text, line, filename):
    m = _REG.match(text)
    if not m or int(m.group(1)) > 10:
        raise AsmError(filename, line, f"expected a register %r0..%r10, got {text!r}")
    return int(m.group(1))


def _mem(text, line, filename):
    m = _MEM.match(text)
    if not m:
        raise AsmError(filename, line, f"expected a memory operand like [%r1+8], got {text!r}")
    reg = int(m.group(1))
    if reg > 10:
        raise AsmError(filename, line, f"expected a register %r0..%r10, got %r{reg}")
    off = int(m.group(3), 0) if m.group(3) else 0
    if m.group(2) == "-":
        off = -off
    if not -0x8000 <= off <= 0x7fff:
        raise AsmError(filename, line, f"memory offset {off} does not fit in 16 bits")
    return reg, off


_IMM32 = (-(1 << 31), (1 << 32) - 1)
_IMM64 = (-(1 << 63), (1 << 64) - 1)


def assemble(text, filename="<input>"):
    """Assemble program text into 64-bit slots.

    Raises
    ------
    AsmError
        Naming the file and line of the first problem.
    """
    lines = []
    labels = {}
    slot = 0
    for number, raw in enumerate(text.splitlines(), 1):
        body = _strip(raw)
        if not body:
            continue
        m = _LABEL.match(body)
        if m:
            if m.group(1) in labels:
                raise AsmError(filename, number, f"label {m.group(1)!r} is defined twice")
            labels[m.group(1)] = slot
            continue
        mnemonic, operands = _split(body)
        forms = _forms_for(mnemonic)
        if forms is None:
            raise AsmError(filename, number, f"unknown instruction {mnemonic!r}")
        if forms[0].kind == Kind.EXIT and "exit" not in labels:
            labels["exit"] = slot
        lines.append((number, slot, mnemonic, operands, forms))
        slot += 2 if forms[0].kind == Kind.LDDW else 1
    slots = []
    for number, pc, mnemonic, operands, forms in lines:
        slots.extend(_encode(number, pc, mnemonic, operands, forms, labels, filename))
    return slots


def _encode(line, pc, mnemonic, ops, forms, labels, filename):
    kind = forms[0].kind

    def want(n):
        if len(ops) != n:
            raise AsmError(filename, line, f"{mnemonic} takes {n} operand(s), got {len(ops)}")

    def target(text, bits):
        if text in labels:
            offset = labels[text] - (pc + 1)
        elif re.match(r"^[+-]?(0x[0-9a-fA-F]+|\d+)$", text):
            offset = int(text, 0)
        else:
            raise AsmError(filename, line, f"unknown label {text!r}")
        lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        if not lo <= offset <= hi:
            raise AsmError(filename, line, f"jump offset {offset} does not fit in {bits} bits")
        return offset

    def pick(source):
        for form in forms:
            if form.source == source:
                return form
        raise AsmError(filename, line, f"{mnemonic} has no "
                       f"{'register' if source == Source.X else 'immediate'} form")

    def fixed(form, field):
        rule = getattr(form, field)
        return next(iter(rule)) if isinstance(rule, frozenset) and len(rule) == 1 else 0

    def slot_of(form, dst=0, src=None, off=None, imm=None):
        src = fixed(form, "src") if src is None else src
        off = fixed(form, "off") if off is None else off
        imm = fixed(form, "imm") if imm is None else imm
        return encode_slot(form.opcode, dst, src, off, imm)

    if kind in (Kind.ALU, Kind.END):
        if kind == Kind.END or forms[0].alu_op.name == "NEG":
            want(1)
            return [slot_of(forms[0], dst=_reg(ops[0], line, filename))]
        want(2)
        dst = _reg(ops[0], line, filename)
        if _REG.match(ops[1]):
            return [slot_of(pick(Source.X), dst, src=_reg(ops[1], line, filename))]
        return [slot_of(pick(Source.K), dst, imm=_int(ops[1], *_IMM32, "an immediate", line,
                                                         filename))]
    if kind in (Kind.LOAD, Kind.LOADSX):
        want(2)
        src, off = _mem(ops[1], line, filename)
        return [slot_of(forms[0], _reg(ops[0], line, filename), src=src, off=off)]
    if kind == Kind.STORE_IMM:
        want(2)
        dst, off = _mem(ops[0], line, filename)
        return [slot_of(forms[0], dst, off=off, imm=_int(ops[1], *_IMM32, "an immediate", line,
                                                         filename))]
    if kind in (Kind.STORE_REG, Kind.ATOMIC):
        want(2)
        dst, off = _mem(ops[0], line, filename)
        return [slot_of(forms[0], dst, src=_reg(ops[1], line, filename), off=off)]
    if kind == Kind.LDDW:
        form = forms[0]
        dst = _reg(ops[0], line, filename) if ops else 0
        if form.src == frozenset([0]):
            want(2)
            value = _int(ops[1], *_IMM64, "a 64-bit immediate", line, filename) & (2**64 - 1)
            lo, hi = value & 0xffffffff, value >> 32
        else:
            if len(ops) not in (2, 3):
                raise AsmError(filename, line, f"{mnemonic} takes 2 or 3 operands, got {len(ops)}")
            lo = _int(ops[1], *_IMM32, "an immediate", line, filename)
            hi = _int(ops[2], *_IMM32, "an immediate", line, filename) if len(ops) == 3 else 0
        return [slot_of(form, dst, imm=lo), encode_slot(0, imm=hi)]
    if kind == Kind.JA:
        want(1)
        return [slot_of(forms[0], off=target(ops[0], 16))]
    if kind in (Kind.JA32, Kind.CALL_LOCAL):
        want(1)
        return [slot_of(forms[0], imm=target(ops[0], 32))]
    if kind == Kind.JCOND:
        want(3)
        dst = _reg(ops[0], line, filename)
        off = target(ops[2], 16)
        if _REG.match(ops[1]):
            return [slot_of(pick(Source.X), dst, src=_reg(ops[1], line, filename), off=off)]
        return [slot_of(pick(Source.K), dst, off=off,
                        imm=_int(ops[1], *_IMM32, "an immediate", line, filename))]
    if kind in (Kind.CALL, Kind.CALL_BTF):
        want(1)
        return [slot_of(forms[0], imm=_int(ops[0], *_IMM32, "a helper id", line, filename))]
    if kind == Kind.CALLX:
        want(1)
        return [slot_of(forms[0], dst=_reg(ops[0], line, filename))]
    want(0)
    return [slot_of(forms[0])]


# --- Disassembly -------------------------------------------------------------------------------

def _mem_text(reg, off):
    return f"[%r{reg}{'+' if off >= 0 else '-'}{abs(off)}]"


def _rel(offset):
    return f"{'+' if offset >= 0 else '-'}{abs(offset)}"


def disassemble_one(word, next_word=0):
    """Text of the instruction in ``word`` (``next_word``: the second slot of an ``lddw``)."""
    insn = decode_slot(word)
    form = find_form(insn.opcode, insn.src, insn.off, insn.imm)
    if form is None:
        return f"<illegal {word:#018x}>"
    name, kind = form.mnemonic, form.kind
    if kind == Kind.ALU:
        if form.alu_op.name == "NEG":
            return f"{name} %r{insn.dst}"
        operand = f"%r{insn.src}" if form.source == Source.X else str(insn.imm)
        return f"{name} %r{insn.dst}, {operand}"
    if kind == Kind.END:
        return f"{name} %r{insn.dst}"
    if kind in (Kind.LOAD, Kind.LOADSX):
        return f"{name} %r{insn.dst}, {_mem_text(insn.src, insn.off)}"
    if kind == Kind.STORE_IMM:
        return f"{name} {_mem_text(insn.dst, insn.off)}, {insn.imm}"
    if kind in (Kind.STORE_REG, Kind.ATOMIC):
        return f"{name} {_mem_text(insn.dst, insn.off)}, %r{insn.src}"
    if kind == Kind.LDDW:
        hi = (next_word >> 32) & 0xffffffff
        if insn.src == 0:
            return f"{name} %r{insn.dst}, {(insn.imm & 0xffffffff) | hi << 32:#x}"
        return f"{name} %r{insn.dst}, {insn.imm}, {hi - (1 << 32) if hi >> 31 else hi}"
    if kind == Kind.JA:
        return f"{name} {_rel(insn.off)}"
    if kind in (Kind.JA32, Kind.CALL_LOCAL):
        return f"{name} {_rel(insn.imm)}"
    if kind == Kind.JCOND:
        operand = f"%r{insn.src}" if form.source == Source.X else str(insn.imm)
        return f"{name} %r{insn.dst}, {operand}, {_rel(insn.off)}"
    if kind in (Kind.CALL, Kind.CALL_BTF):
        return f"{name} {insn.imm}"
    if kind == Kind.CALLX:
        return f"call %r{insn.dst}"
    return name


def disassemble(slots):
    """One line per instruction (an ``lddw`` is one line covering two slots)."""
    lines = []
    pc = 0
    while pc < len(slots):
        word = slots[pc]
        insn = decode_slot(word)
        form = find_form(insn.opcode, insn.src, insn.off, insn.imm)
        if form is not None and form.kind == Kind.LDDW and pc + 1 < len(slots):
            lines.append(disassemble_one(word, slots[pc + 1]))
            pc += 2
        else:
            lines.append(disassemble_one(word))
            pc += 1
    return lines
