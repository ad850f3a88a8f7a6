"""The eBPF instruction set: one table, from which everything else is derived.

Implements RFC 9669 (BPF Instruction Set Architecture, October 2024):

* section 3   instruction encoding (``opcode:8 dst:4 src:4 offset:s16 imm:s32``, the wide ``lddw``);
* section 4   arithmetic and jump instructions (4.1 ALU, 4.2 byte swap, 4.3 jumps, 4.3.1 helper
  calls, 4.3.2 local calls);
* section 5   load and store instructions (5.1 regular, 5.2 sign-extension, 5.3 atomic, 5.4 64-bit
  immediate);
* section 7   conformance groups (base32, base64, atomic32, atomic64, divmul32, divmul64);

plus ``callx`` (opcode 0x8d, register in ``dst``), the Linux extension that the conformance suite
files under its own group. The legacy packet group (``ld_abs``/``ld_ind``) is not supported.

Every legal instruction *form* appears once in :data:`FORMS` with its legality row (which values
``dst``, ``src``, ``offset`` and ``imm`` may take). The assembler, disassembler, load-time
validator, golden VM, random program generator and the hardware decoder all read this table.
"""

import enum
from dataclasses import dataclass
from typing import Optional

from amaranth.lib import enum as aenum

__all__ = [
    "Class", "Source", "AluOp", "JmpOp", "Size", "Mode", "AtomicOp", "Kind", "Group", "Form",
    "FORMS", "FORMS_BY_MNEMONIC", "Insn", "decode_slot", "encode_slot", "find_form",
    "SIZE_BYTES", "LddwSource", "ATOMIC_FETCH",
]


class Class(aenum.Enum, shape=3):
    """Instruction class, ``opcode & 7`` (RFC 9669 section 3.1)."""
    LD = 0
    LDX = 1
    ST = 2
    STX = 3
    ALU = 4
    JMP = 5
    JMP32 = 6
    ALU64 = 7


class Source(aenum.Enum, shape=1):
    """Operand source bit of ALU and JMP opcodes (section 4): ``K`` = imm, ``X`` = src register."""
    K = 0
    X = 1


class AluOp(aenum.Enum, shape=4):
    """ALU operation, ``opcode >> 4`` (section 4.1)."""
    ADD = 0x0
    SUB = 0x1
    MUL = 0x2
    DIV = 0x3
    OR = 0x4
    AND = 0x5
    LSH = 0x6
    RSH = 0x7
    NEG = 0x8
    MOD = 0x9
    XOR = 0xa
    MOV = 0xb
    ARSH = 0xc
    END = 0xd


class JmpOp(aenum.Enum, shape=4):
    """Jump operation, ``opcode >> 4`` (section 4.3)."""
    JA = 0x0
    JEQ = 0x1
    JGT = 0x2
    JGE = 0x3
    JSET = 0x4
    JNE = 0x5
    JSGT = 0x6
    JSGE = 0x7
    CALL = 0x8
    EXIT = 0x9
    JLT = 0xa
    JLE = 0xb
    JSLT = 0xc
    JSLE = 0xd


class Size(aenum.Enum, shape=2):
    """Load/store size, ``(opcode >> 3) & 3`` (section 5)."""
    W = 0
    H = 1
    B = 2
    DW = 3


#: Bytes per access for each :class:`Size`.
SIZE_BYTES = {Size.W: 4, Size.H: 2, Size.B: 1, Size.DW: 8}


class Mode(aenum.Enum, shape=3):
    """Load/store mode, ``opcode >> 5`` (section 5)."""
    IMM = 0
    ABS = 1
    IND = 2
    MEM = 3
    MEMSX = 4
    ATOMIC = 6


#: The flag in an atomic's ``imm`` that returns the old value (section 5.3, ``FETCH``).
ATOMIC_FETCH = 0x01


class AtomicOp(aenum.Enum, shape=8):
    """Atomic operation in ``imm`` (section 5.3); :data:`ATOMIC_FETCH` may be or-ed into the
    first four."""
    ADD = 0x00
    OR = 0x40
    AND = 0x50
    XOR = 0xa0
    FETCH_ADD = 0x01
    FETCH_OR = 0x41
    FETCH_AND = 0x51
    FETCH_XOR = 0xa1
    XCHG = 0xe1
    CMPXCHG = 0xf1

    @property
    def fetches(self):
        """Whether the old value is written back to a register (``src``, or r0 for cmpxchg)."""
        return bool(self.value & ATOMIC_FETCH)


class LddwSource(aenum.Enum, shape=4):
    """What the ``src`` field of a 64-bit immediate load says its value is (section 5.4)."""
    IMM64 = 0            #: the 64-bit immediate itself
    MAP_FD = 1           #: the address of map ``imm``
    MAP_VALUE = 2        #: the address of map ``imm``'s value plus ``next_imm``
    VARIABLE = 3         #: the address of variable ``imm``
    CODE = 4             #: the address of instruction ``imm``
    MAP_IDX = 5          #: the address of map index ``imm``
    MAP_IDX_VALUE = 6    #: map index ``imm``'s value plus ``next_imm``

    @property
    def adds_offset(self):
        """Whether ``next_imm`` is an offset into the map value (else it must be 0)."""
        return self in (LddwSource.MAP_VALUE, LddwSource.MAP_IDX_VALUE)


class Kind(aenum.Enum, shape=4):
    """What an instruction form does; the VM and the decoder dispatch on it."""
    ALU = 0          #: ALU/ALU64 arithmetic, logic, shifts, mov, movsx, neg
    END = 1          #: byte order (le, be, bswap)
    LOAD = 2         #: ldx (zero-extending)
    LOADSX = 3       #: ldxs (sign-extending)
    STORE_IMM = 4    #: st
    STORE_REG = 5    #: stx
    ATOMIC = 6       #: lock ...
    LDDW = 7         #: 64-bit immediate, two slots
    JA = 8           #: goto, 16-bit offset
    JA32 = 9         #: goto, 32-bit imm ("gotol")
    JCOND = 10       #: conditional jump (64- or 32-bit compare)
    CALL = 11        #: helper call by id (src 0)
    CALL_LOCAL = 12  #: bpf-to-bpf call (src 1)
    CALL_BTF = 13    #: helper call by BTF id (src 2); always rejected at load
    CALLX = 14       #: helper call through the register in dst
    EXIT = 15        #: return


class Group(str, enum.Enum):
    """Conformance groups (section 7), plus the suite's ``callx`` group."""
    BASE32 = "base32"
    BASE64 = "base64"
    ATOMIC32 = "atomic32"
    ATOMIC64 = "atomic64"
    DIVMUL32 = "divmul32"
    DIVMUL64 = "divmul64"
    CALLX = "callx"


# Legality of a field: the set of allowed values, or one of these words.
ANY = "any"          # any value of the field's width
REG = "reg"          # a register read: r0..r10
WREG = "wreg"        # a register written: r0..r9 (r10 is read-only)


@dataclass(frozen=True)
class Form:
    """One legal instruction form: an opcode, the fields that select it, and its legality row.

    Members
    -------
    mnemonic : str
        Assembler name, e.g. ``"add32"``, ``"sdiv"``, ``"lock fetch add32"``, ``"be16"``.
    opcode : int
        The opcode byte.
    kind : Kind
    group : Group
    dst, src, off, imm : str or frozenset
        Allowed values: :data:`ANY`, :data:`REG`, :data:`WREG`, or a frozenset of values.
    width : int
        Operand width in bits: 32 or 64 for ALU/JMP forms, the access width for memory forms.
    """
    mnemonic: str
    opcode: int
    kind: Kind
    group: Group
    dst: object
    src: object
    off: object
    imm: object
    width: int

    @property
    def cls(self):
        return Class(self.opcode & 7)

    @property
    def source(self):
        return Source((self.opcode >> 3) & 1)

    @property
    def alu_op(self):
        return AluOp(self.opcode >> 4)

    @property
    def jmp_op(self):
        return JmpOp(self.opcode >> 4)

    @property
    def size(self):
        return Size((self.opcode >> 3) & 3)

    @property
    def mode(self):
        return Mode(self.opcode >> 5)

    @property
    def swaps(self):
        """For byte order forms (section 4.2): whether the bytes are reversed on this
        little-endian machine: ``be`` (to big endian, source bit set) and ``bswap`` (ALU64)
        swap; ``le`` (to little endian, source bit clear) only truncates."""
        return self.kind == Kind.END and (self.cls == Class.ALU64 or self.source == Source.X)

    @property
    def fetches(self):
        """For atomic forms: whether the old value is written back (:data:`ATOMIC_FETCH`)."""
        return self.kind == Kind.ATOMIC and any(v & ATOMIC_FETCH for v in self.imm)

    def allows(self, field, value):
        rule = getattr(self, field)
        if rule == ANY:
            return True
        if rule == REG:
            return 0 <= value <= 10
        if rule == WREG:
            return 0 <= value <= 9
        return value in rule

    def selects(self, src, off, imm):
        """Whether the selector fields of this form's opcode hold this form's values."""
        values = {"src": src, "off": off, "imm": imm}
        return all(values[field] in getattr(self, field) for field in SELECTORS[self.opcode])


def _one(value):
    return frozenset([value])


ZERO = _one(0)


def _build_forms():
    forms = []

    def add(*args):
        forms.append(Form(*args))

    # 4.1 arithmetic: ALU (32-bit) and ALU64.
    alu_names = {
        AluOp.ADD: "add", AluOp.SUB: "sub", AluOp.MUL: "mul", AluOp.DIV: "div", AluOp.OR: "or",
        AluOp.AND: "and", AluOp.LSH: "lsh", AluOp.RSH: "rsh", AluOp.MOD: "mod", AluOp.XOR: "xor",
        AluOp.MOV: "mov", AluOp.ARSH: "arsh",
    }
    for cls, width, suffix in ((Class.ALU, 32, "32"), (Class.ALU64, 64, "")):
        for op, name in alu_names.items():
            divmul = op in (AluOp.MUL, AluOp.DIV, AluOp.MOD)
            group = {(False, 32): Group.BASE32, (False, 64): Group.BASE64,
                     (True, 32): Group.DIVMUL32, (True, 64): Group.DIVMUL64}[divmul, width]
            for source in Source:
                opcode = (op.value << 4) | (source.value << 3) | cls.value
                src = ZERO if source == Source.K else REG
                imm = ANY if source == Source.K else ZERO
                add(name + suffix, opcode, Kind.ALU, group, WREG, src, ZERO, imm, width)
                if op in (AluOp.DIV, AluOp.MOD):
                    add("s" + name + suffix, opcode, Kind.ALU, group, WREG, src, _one(1), imm,
                        width)
                if op == AluOp.MOV and source == Source.X:
                    for bits in ((8, 16) if width == 32 else (8, 16, 32)):
                        add(f"movsx{bits}{width}", opcode, Kind.ALU, group, WREG, src,
                            _one(bits), imm, width)
        group = Group.BASE32 if width == 32 else Group.BASE64
        add("neg" + suffix, (AluOp.NEG.value << 4) | cls.value, Kind.ALU, group, WREG, ZERO, ZERO,
            ZERO, width)

    # 4.2 byte swap: le/be (ALU class, source bit picks the order), bswap (ALU64, source 0).
    for name, opcode in (("le", 0xd4), ("be", 0xdc), ("bswap", 0xd7)):
        for bits in (16, 32, 64):
            group = Group.BASE64 if bits == 64 else Group.BASE32
            add(f"{name}{bits}", opcode, Kind.END, group, WREG, ZERO, ZERO, _one(bits), bits)

    # 4.3 jumps.
    add("ja", 0x05, Kind.JA, Group.BASE32, ZERO, ZERO, ANY, ZERO, 64)
    add("ja32", 0x06, Kind.JA32, Group.BASE32, ZERO, ZERO, ZERO, ANY, 32)
    jmp_names = {
        JmpOp.JEQ: "jeq", JmpOp.JGT: "jgt", JmpOp.JGE: "jge", JmpOp.JSET: "jset",
        JmpOp.JNE: "jne", JmpOp.JSGT: "jsgt", JmpOp.JSGE: "jsge", JmpOp.JLT: "jlt",
        JmpOp.JLE: "jle", JmpOp.JSLT: "jslt", JmpOp.JSLE: "jsle",
    }
    for cls, width, suffix, group in ((Class.JMP, 64, "", Group.BASE64),
                                      (Class.JMP32, 32, "32", Group.BASE32)):
        for op, name in jmp_names.items():
            for source in Source:
                opcode = (op.value << 4) | (source.value << 3) | cls.value
                src = ZERO if source == Source.K else REG
                imm = ANY if source == Source.K else ZERO
                add(name + suffix, opcode, Kind.JCOND, group, REG, src, ANY, imm, width)
    add("call", 0x85, Kind.CALL, Group.BASE32, ZERO, ZERO, ZERO, ANY, 64)
    add("call local", 0x85, Kind.CALL_LOCAL, Group.BASE32, ZERO, _one(1), ZERO, ANY, 64)
    add("call btf", 0x85, Kind.CALL_BTF, Group.BASE32, ZERO, _one(2), ZERO, ANY, 64)
    add("callx", 0x8d, Kind.CALLX, Group.CALLX, REG, ZERO, ZERO, ZERO, 64)
    add("exit", 0x95, Kind.EXIT, Group.BASE32, ZERO, ZERO, ZERO, ZERO, 64)

    # 5.1/5.2 loads and stores.
    size_names = {Size.W: "w", Size.H: "h", Size.B: "b", Size.DW: "dw"}
    for size, letter in size_names.items():
        bits = SIZE_BYTES[size] * 8
        group = Group.BASE64 if size == Size.DW else Group.BASE32
        s = size.value << 3
        add("ldx" + letter, (Mode.MEM.value << 5) | s | Class.LDX.value, Kind.LOAD, group,
            WREG, REG, ANY, ZERO, bits)
        if size != Size.DW:
            add("ldxs" + letter, (Mode.MEMSX.value << 5) | s | Class.LDX.value, Kind.LOADSX,
                group, WREG, REG, ANY, ZERO, bits)
        add("st" + letter, (Mode.MEM.value << 5) | s | Class.ST.value, Kind.STORE_IMM, group,
            REG, ZERO, ANY, ANY, bits)
        add("stx" + letter, (Mode.MEM.value << 5) | s | Class.STX.value, Kind.STORE_REG, group,
            REG, REG, ANY, ZERO, bits)

    # 5.3 atomics.
    atomic_names = {
        AtomicOp.ADD: "lock add", AtomicOp.OR: "lock or", AtomicOp.AND: "lock and",
        AtomicOp.XOR: "lock xor", AtomicOp.FETCH_ADD: "lock fetch add",
        AtomicOp.FETCH_OR: "lock fetch or", AtomicOp.FETCH_AND: "lock fetch and",
        AtomicOp.FETCH_XOR: "lock fetch xor", AtomicOp.XCHG: "lock xchg",
        AtomicOp.CMPXCHG: "lock cmpxchg",
    }
    for size, suffix, group in ((Size.W, "32", Group.ATOMIC32), (Size.DW, "", Group.ATOMIC64)):
        opcode = (Mode.ATOMIC.value << 5) | (size.value << 3) | Class.STX.value
        for op, name in atomic_names.items():
            src = WREG if op.value & 1 and op != AtomicOp.CMPXCHG else REG
            add(name + suffix, opcode, Kind.ATOMIC, group, REG, src, ANY, _one(op.value),
                SIZE_BYTES[size] * 8)

    # 5.4 64-bit immediate: src selects how imm is read (0 = plain constant).
    lddw_names = ("lddw", "lddw.map_fd", "lddw.map_value", "lddw.var", "lddw.code",
                  "lddw.map_idx", "lddw.map_idx_value")
    for src, name in enumerate(lddw_names):
        add(name, 0x18, Kind.LDDW, Group.BASE64, WREG, _one(src), ZERO, ANY, 64)
    return tuple(forms)


#: Every legal instruction form.
FORMS = _build_forms()

#: Forms by assembler mnemonic: one form, or two (K and X source) for ALU and conditional jumps.
FORMS_BY_MNEMONIC = {}
for _form in FORMS:
    FORMS_BY_MNEMONIC.setdefault(_form.mnemonic, []).append(_form)
del _form

_FORMS_BY_OPCODE = {}
for _form in FORMS:
    _FORMS_BY_OPCODE.setdefault(_form.opcode, []).append(_form)
del _form

#: Forms by opcode byte.
FORMS_BY_OPCODE = _FORMS_BY_OPCODE

#: For each opcode, the fields that tell its forms apart (e.g. ``off`` for div/sdiv, ``src`` for
#: call and lddw, ``imm`` for byte swaps and atomics); empty for opcodes with one form.
SELECTORS = {
    opcode: tuple(field for field in ("src", "off", "imm")
                  if len({getattr(form, field) for form in forms}) > 1
                  and all(isinstance(getattr(form, field), frozenset) for form in forms))
    for opcode, forms in _FORMS_BY_OPCODE.items()
}

#: Opcodes that have at least one legal form.
OPCODES = frozenset(_FORMS_BY_OPCODE)


def find_form(opcode, src, off, imm):
    """The form an instruction selects, or None.

    Selection looks only at the opcode and at selector fields (``src`` of ``call``/``lddw``,
    ``off`` of ``sdiv``/``smod``/``movsx``, ``imm`` of byte swaps and atomics); whether the other
    fields are legal is :meth:`Form.allows`'s business.
    """
    for form in _FORMS_BY_OPCODE.get(opcode, ()):
        if form.selects(src, off, imm):
            return form
    return None


@dataclass(frozen=True)
class Insn:
    """One decoded instruction slot (fields as encoded, ``off`` and ``imm`` signed)."""
    opcode: int
    dst: int
    src: int
    off: int
    imm: int

    @property
    def form(self) -> Optional[Form]:
        return find_form(self.opcode, self.src, self.off, self.imm)


def _signed(value, bits):
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def decode_slot(word):
    """Split a 64-bit slot (little-endian view) into an :class:`Insn`."""
    return Insn(opcode=word & 0xff, dst=(word >> 8) & 0xf, src=(word >> 12) & 0xf,
                off=_signed(word >> 16, 16), imm=_signed(word >> 32, 32))


def encode_slot(opcode, dst=0, src=0, off=0, imm=0):
    """Pack fields into a 64-bit slot (little-endian view); ``off``/``imm`` may be signed."""
    return ((opcode & 0xff) | (dst & 0xf) << 8 | (src & 0xf) << 12 | (off & 0xffff) << 16
            | (imm & 0xffffffff) << 32)
