"""The instruction decoder, generated from the ISA table (:data:`bpfcore.isa.FORMS`).

There is no opcode table here: one ``Case`` per opcode of the table, and inside it one branch per
form of that opcode, selected by the same selector fields as :func:`bpfcore.isa.find_form`. The
legality row of the selected form (allowed ``dst``, ``src``, ``offset``, ``imm``) becomes the
``legal`` output, so an instruction the loader would reject traps as ``Fault.ILLEGAL``.
"""

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from bpfcore.isa import ANY, FORMS_BY_OPCODE, REG, SELECTORS, WREG, AluOp, AtomicOp, Kind, Source
from .layouts import DecodeLayout

__all__ = ["Decoder", "operand_roles", "IMM_REG"]

#: The register index that operand B names when it is the immediate (no register): the CPU's
#: register read returns the sign-extended ``imm`` there, so execute needs no operand-B mux.
IMM_REG = 15

_FIELD_SLICES = {"dst": (8, 12), "src": (12, 16), "off": (16, 32), "imm": (32, 64)}
_FIELD_BITS = {"dst": 4, "src": 4, "off": 16, "imm": 32}


def operand_roles(form):
    """Which register fields a form reads and writes.

    Returns ``(ra, rb, rd, use_r0)``: each of ``ra``/``rb``/``rd`` is ``"dst"``, ``"src"``, a
    register number, or None. ``ra`` is operand A (the base register of memory forms), ``rb``
    operand B, ``rd`` the register written.
    """
    kind = form.kind
    x = form.source == Source.X if kind in (Kind.ALU, Kind.JCOND) else False
    if kind == Kind.ALU:
        ra = None if form.alu_op == AluOp.MOV else "dst"
        return ra, "src" if x else None, "dst", False
    if kind == Kind.END:
        return "dst", None, "dst", False
    if kind in (Kind.LOAD, Kind.LOADSX):
        return "src", None, "dst", False
    if kind == Kind.STORE_IMM:
        return "dst", None, None, False
    if kind == Kind.STORE_REG:
        return "dst", "src", None, False
    if kind == Kind.ATOMIC:
        if form.imm == frozenset([AtomicOp.CMPXCHG.value]):
            return "dst", "src", 0, True
        return "dst", "src", "src" if form.fetches else None, False
    if kind == Kind.LDDW:
        return None, None, "dst", False
    if kind == Kind.JCOND:
        return "dst", "src" if x else None, None, False
    if kind == Kind.CALLX:
        return "dst", None, 0, False
    if kind == Kind.CALL:
        return None, None, 0, False
    if kind == Kind.EXIT:
        return 0, None, None, False
    return None, None, None, False


class Decoder(wiring.Component):
    """Combinational decoder of one instruction slot.

    Members
    -------
    insn : In(64)
        The slot (little-endian 64-bit view).
    ctrl : Out(DecodeLayout)
        Decoded control; ``ctrl.legal`` is 0 when no form selects the slot or its legality row
        fails (the rest is then don't-care).
    """

    insn: In(64)
    ctrl: Out(DecodeLayout)

    def elaborate(self, platform):
        m = Module()
        insn = self.insn
        fields = {name: insn[lo:hi] for name, (lo, hi) in _FIELD_SLICES.items()}

        def value_in(field, values):
            bits = _FIELD_BITS[field]
            cond = 0
            for v in sorted(values):
                cond = cond | (fields[field] == (v & ((1 << bits) - 1)))
            return cond

        def allowed(field, rule):
            if rule == ANY:
                return 1
            if rule == REG:
                return fields[field] <= 10
            if rule == WREG:
                return fields[field] <= 9
            return value_in(field, rule)

        def reg(role):
            if role is None:
                return 0
            if isinstance(role, int):
                return role
            return fields[role]

        with m.Switch(insn[0:8]):
            for opcode, forms in sorted(FORMS_BY_OPCODE.items()):
                with m.Case(opcode):
                    selectors = SELECTORS[opcode]
                    first = True
                    for form in forms:
                        cond = 1
                        for field in selectors:
                            cond = cond & value_in(field, getattr(form, field))
                        ctx = m.If(cond) if first else m.Elif(cond)
                        first = False
                        with ctx:
                            self._emit(m, form, allowed, reg)
        return m

    def _emit(self, m, form, allowed, reg):
        ctrl = self.ctrl
        legal = 1
        for field in ("dst", "src", "off", "imm"):
            legal = legal & allowed(field, getattr(form, field))
        m.d.comb += [ctrl.legal.eq(legal), ctrl.kind.eq(form.kind)]
        kind = form.kind
        if kind in (Kind.ALU, Kind.END):
            m.d.comb += ctrl.alu_op.eq(form.alu_op)
        if kind in (Kind.ALU, Kind.JCOND):
            m.d.comb += [ctrl.w64.eq(form.width == 64), ctrl.use_x.eq(form.source == Source.X)]
        if kind == Kind.JCOND:
            m.d.comb += ctrl.jmp_op.eq(form.jmp_op)
        if kind == Kind.END:
            m.d.comb += ctrl.swap.eq(form.swaps)
        if kind in (Kind.LOAD, Kind.LOADSX, Kind.STORE_IMM, Kind.STORE_REG, Kind.ATOMIC):
            m.d.comb += ctrl.size.eq(form.size)
        if kind == Kind.ATOMIC:
            m.d.comb += ctrl.fetch.eq(form.fetches)
        if kind == Kind.LDDW:
            m.d.comb += ctrl.lddw.eq(1)
        ra, rb, rd, use_r0 = operand_roles(form)
        m.d.comb += [
            ctrl.ra.eq(reg(ra)), ctrl.use_a.eq(ra is not None),
            ctrl.rb.eq(IMM_REG if rb is None else reg(rb)), ctrl.use_b.eq(rb is not None),
            ctrl.rd.eq(reg(rd)), ctrl.rd_we.eq(rd is not None),
            ctrl.use_r0.eq(use_r0),
            ctrl.a_src.eq(ra == "src"),
        ]
