"""Random eBPF programs, generated under the ISA table's legality rows.

Every instruction is built from a :class:`bpfcore.isa.Form` of :data:`bpfcore.isa.FORMS`: the
generator picks a form, then fills ``dst``/``src``/``off``/``imm`` from the form's legality row
(narrowed where a profile needs it). There is no opcode table here.

Two profiles:

``"kernel"``
    Programs the Linux verifier accepts, so that the golden VM and the kernel (``bpf()`` with
    ``BPF_PROG_TEST_RUN``, see :mod:`bpfcore.sim.load.kernel`) can be compared. Registers are read only
    once written (and never after a helper or local call clobbered r1-r5); jumps go forward,
    except the back edge of bounded counter loops; stack accesses are aligned and stay inside an
    initialised window of ``[r10-512, r10)``; atomics work on the stack and on map values; up to
    three bpf-to-bpf subprograms (the combined stack stays under 512 bytes); helpers are the
    deterministic ones an XDP program may call (map lookup/update/delete on an array map,
    ``get_smp_processor_id`` with the run pinned to CPU 0, ``redirect``). The kernel's own limits
    are respected: no division by a constant zero, immediate shifts below the width, no ``callx``.

    With ``ctx=True`` (default) the program is an XDP program: ``r1`` is ``struct xdp_md``; it reads
    ``data``/``data_end``/``ingress_ifindex``/``rx_queue_index``, checks the packet length once, spills
    the packet pointer to the stack and accesses the packet through it; it also uses two array maps
    (map 0: one 64-byte value, used directly through ``lddw`` src 2/6; map 1: four 16-byte values,
    used through the helpers). At the end, r0 is mixed with r6-r9 and the stack window and stored
    (64 bits) into the packet's last 8 bytes; the kernel's 32-bit ``retval`` is its low half.

    With ``ctx=False`` the program touches no context, packet, map or helper (so the conformance
    plugin can run it too) and returns the mixed r0 folded to 32 bits.

``"hostile"``
    Anything legal by the legality rows (what :func:`bpfcore.sim.load.program.validate` accepts in the
    conformance profile, helper 5 = "unwind" only): uninitialised registers, any jump and call
    target (backward too: loops, recursion deeper than 8 frames), out-of-bounds loads and stores,
    ``callx`` to good and bad ids, division by zero, shifts by any amount, and sometimes a small
    instruction budget. Meant for VM-vs-RTL lockstep, where both must fault identically.

Use :func:`generate`; :func:`run_vm` and :func:`run_kernel` run a generated program and return an
:class:`Observation` to compare.
"""

import errno as _errno
from dataclasses import dataclass, field
from typing import Optional

from bpfcore import abi
from bpfcore.isa import (ANY, FORMS, FORMS_BY_MNEMONIC, REG, WREG, AluOp, AtomicOp, Kind,
                         Source, encode_slot)
from bpfcore.sim.load.program import Program

__all__ = ["generate", "GenProgram", "GenMap", "Observation", "run_vm", "run_kernel", "listing",
           "kernel_helpers", "PROFILES"]

PROFILES = ("kernel", "hostile")

M64 = 0xffff_ffff_ffff_ffff

#: Multiplier of the final mix (odd, so each step is a bijection of r0).
MIX = 0x2545_F491

# --- Forms, by what the generator does with them (all read from the ISA table) --------------

ALU_FORMS = [f for f in FORMS if f.kind == Kind.ALU]
END_FORMS = [f for f in FORMS if f.kind == Kind.END]
LOAD_FORMS = [f for f in FORMS if f.kind in (Kind.LOAD, Kind.LOADSX)]
STORE_FORMS = [f for f in FORMS if f.kind in (Kind.STORE_IMM, Kind.STORE_REG)]
ATOMIC_FORMS = [f for f in FORMS if f.kind == Kind.ATOMIC]
JCOND_FORMS = [f for f in FORMS if f.kind == Kind.JCOND]


def _form(mnemonic, source=None):
    forms = FORMS_BY_MNEMONIC[mnemonic]
    if source is None:
        assert len(forms) == 1, mnemonic
        return forms[0]
    return next(f for f in forms if f.source == source)


MOV64_K = _form("mov", Source.K)
MOV64_X = _form("mov", Source.X)
MOV32_X = _form("mov32", Source.X)
ADD64_K = _form("add", Source.K)
SUB64_K = _form("sub", Source.K)
MUL64_K = _form("mul", Source.K)
XOR64_X = _form("xor", Source.X)
RSH64_K = _form("rsh", Source.K)
LDDW = _form("lddw")
LDDW_MAP = (_form("lddw.map_fd"), _form("lddw.map_idx"))
LDDW_MAP_VALUE = (_form("lddw.map_value"), _form("lddw.map_idx_value"))
LDXW = _form("ldxw")
LDXDW = _form("ldxdw")
STW = _form("stw")
STDW = _form("stdw")
STXDW = _form("stxdw")
JA = _form("ja")
JA32 = _form("ja32")
CALL = _form("call")
CALL_LOCAL = _form("call local")
CALLX = _form("callx")
EXIT = _form("exit")
JEQ_K = _form("jeq", Source.K)
LOOP_JUMPS = [_form(m, Source.K) for m in ("jne", "jsgt", "jgt", "jne32", "jsgt32", "jgt32")]

_INTERESTING32 = (0, 1, 2, 3, 7, 8, 31, 32, 63, 64, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0x8000,
                  0xffff, 0x7fff_ffff, -0x8000_0000, -1, -2, -8, -0x100)
_INTERESTING64 = (0, 1, M64, 0x8000_0000_0000_0000, 0x7fff_ffff_ffff_ffff, 0xffff_ffff,
                  0x1_0000_0000, 0x8000_0000, 0xffff_ffff_8000_0000, 0x0123_4567_89ab_cdef)


def _imm32(rng):
    r = rng.random()
    if r < 0.45:
        return rng.choice(_INTERESTING32)
    if r < 0.7:
        return rng.randint(-64, 64)
    return rng.randint(-0x8000_0000, 0x7fff_ffff)


def _imm64(rng):
    if rng.random() < 0.4:
        return rng.choice(_INTERESTING64)
    return rng.getrandbits(64)


# --- Maps -----------------------------------------------------------------------------------

@dataclass
class GenMap:
    """An array map of a generated program: the VM's map object and the kernel map's spec.

    Members
    -------
    value_size, capacity : int
    init : bytes
        Initial contents of every value, ``capacity * value_size`` bytes.
    values : bytearray
        The VM's live storage (reset from ``init`` by :meth:`reset`).
    read_only : bool
    key_size : int
    map_type : int
    """
    value_size: int
    capacity: int
    init: bytes
    read_only: bool = False
    key_size: int = 4
    map_type: int = abi.MapType.ARRAY
    values: bytearray = field(default_factory=bytearray)

    def __post_init__(self):
        self.reset()

    def reset(self):
        self.values = bytearray(self.init)


# --- The generated program --------------------------------------------------------------------

class GenProgram(Program):
    """A generated program and what it needs to run.

    Members (besides :class:`Program`'s)
    -------
    profile : str
    seed : object
        What the generator was seeded with (for messages), if known.
    ctx : bool
        Kernel profile: r1 is ``struct xdp_md``; else the conformance profile (r1 = memory).
    packet : bytes
        Packet (kernel profile) or input memory (hostile profile).
    maps : list of GenMap
    helpers : frozenset of int
        Helper ids the program may call.
    budget : int
        Instruction budget to run it with.
    """

    def __init__(self, slots, *, profile, ctx, packet, maps, helpers, budget, name="", seed=None):
        super().__init__(slots, name)
        self.profile = profile
        self.ctx = ctx
        self.packet = bytes(packet)
        self.maps = list(maps)
        self.helpers = frozenset(helpers)
        self.budget = budget
        self.seed = seed


# --- Instruction items and label resolution ------------------------------------------------

class _Ins:
    __slots__ = ("form", "dst", "src", "off", "imm", "hi", "target")

    def __init__(self, form, dst=0, src=0, off=0, imm=0, hi=0, target=None):
        self.form, self.dst, self.src, self.off, self.imm = form, dst, src, off, imm
        self.hi, self.target = hi, target


class _Label:
    __slots__ = ("name",)

    def __init__(self, name):
        self.name = name


def _resolve(items):
    """Slots of a list of instructions and labels; targets are labels (str) or slot indices."""
    pcs = {}
    pc = 0
    for item in items:
        if isinstance(item, _Label):
            pcs[item.name] = pc
        else:
            pc += 2 if item.form.kind == Kind.LDDW else 1
    slots = []
    for item in items:
        if isinstance(item, _Label):
            continue
        ins = item
        pc = len(slots)
        off, imm = ins.off, ins.imm
        if ins.target is not None:
            target = pcs[ins.target] if isinstance(ins.target, str) else ins.target
            if ins.form.kind in (Kind.JA, Kind.JCOND):
                off = target - pc - 1
                assert -0x8000 <= off < 0x8000
            else:
                imm = target - pc - 1
        slots.append(encode_slot(ins.form.opcode, ins.dst, ins.src, off, imm))
        if ins.form.kind == Kind.LDDW:
            slots.append(encode_slot(0, imm=ins.hi))
    return slots


# --- The kernel profile -----------------------------------------------------------------------

UNINIT = None
SCALAR = "scalar"


@dataclass
class _Frame:
    """Where a function's stack window is, relative to its r10 (negative offsets)."""
    lo: int                 # lowest offset of the window
    hi: int                 # one past the highest
    spill: Optional[int]    # offset of the spilled packet pointer (main with ctx only)
    index: int              # -1 = main, else subprogram number
    args: int = 0


class _KernelGen:
    """Builds one kernel-profile program."""

    def __init__(self, rng, size, ctx, subprogs):
        self.rng = rng
        self.size = size
        self.ctx = ctx
        self.items = []
        self.n_labels = 0
        self.in_loop = False
        self.reserved = set()
        self.pkt_len = rng.choice((16, 32, 48, 64, 96)) if ctx else 0
        self.n_sub = subprogs
        self.sub_args = [rng.randint(0, 5) for _ in range(subprogs)]
        self.helper_ids = {1, 2, 3, 8, 23} if ctx else set()
        self.called = set()
        self.maps = []
        if ctx:
            self.maps = [GenMap(64, 1, rng.randbytes(64)), GenMap(16, 4, rng.randbytes(64))]

    # -- small emitters
    def label(self):
        self.n_labels += 1
        return f"L{self.n_labels}"

    def emit(self, *args, **kwargs):
        self.items.append(_Ins(*args, **kwargs))

    def place(self, name):
        self.items.append(_Label(name))

    def scalars(self, state):
        return [r for r in range(10) if state[r] == SCALAR]

    def writable(self):
        return [r for r in range(10) if r not in self.reserved]

    def need_scalar(self, state, exclude=()):
        """A register holding a scalar, making one if there is none."""
        choices = [r for r in self.scalars(state) if r not in exclude]
        if choices and self.rng.random() < 0.95:
            return self.rng.choice(choices)
        r = self.rng.choice([r for r in self.writable() if r not in exclude])
        self.set_const(state, r)
        return r

    def set_const(self, state, r):
        if self.rng.random() < 0.3:
            self.emit(LDDW, dst=r, imm=(v := _imm64(self.rng)) & 0xffff_ffff, hi=v >> 32)
        else:
            self.emit(MOV64_K, dst=r, imm=_imm32(self.rng))
        state[r] = SCALAR

    # -- whole program
    def build(self):
        rng = self.rng
        calls = self.n_sub > 0
        max_depth = 256 if calls else 512
        main = self.frame(-1, max_depth, with_spill=self.ctx)
        fail = self.label()
        state = [UNINIT] * 10
        if self.ctx:
            # xdp_md: data, data_end (pointers), ingress_ifindex, rx_queue_index (scalars).
            self.emit(LDXW, dst=2, src=1, off=0)
            self.emit(LDXW, dst=3, src=1, off=4)
            self.emit(LDXW, dst=4, src=1, off=12)
            self.emit(LDXW, dst=5, src=1, off=16)
            self.emit(MOV64_X, dst=0, src=2)
            self.emit(ADD64_K, dst=0, imm=self.pkt_len + 8)
            self.emit(_form("jgt", Source.X), dst=0, src=3, target=fail)
            self.emit(STXDW, dst=10, src=2, off=main.spill)
            state[4] = state[5] = SCALAR
        for r in range(10):
            if state[r] is UNINIT and (r >= 6 or r == 0 or rng.random() < 0.8):
                self.set_const(state, r)
        self.init_window(state, main)
        self.block(state, main, self.size, depth=0)
        for callee in range(self.n_sub):
            if callee not in self.called:        # the kernel rejects unreachable code
                self.gen_call(state, main, 0, callee)
        self.epilogue(state, main)
        if self.ctx:
            self.place(fail)
            self.emit(MOV64_K, dst=0, imm=0)
            self.emit(EXIT)
        for index in range(self.n_sub):
            self.subprogram(index)
        return _resolve(self.items)

    def frame(self, index, max_depth, with_spill=False):
        rng = self.rng
        size = rng.choice((16, 16, 24, 32, 48, 64, 64, 96, 128))
        size = min(size, max_depth - 8 if with_spill else max_depth)
        spill = None
        if with_spill:
            if rng.random() < 0.5:
                spill = -8
                top = -8 - 8 * rng.randint(0, (max_depth - 8 - size) // 8)
            else:
                spill = -max_depth
                top = -8 * rng.randint(0, (max_depth - 8 - size) // 8)
        else:
            top = -8 * rng.randint(0, (max_depth - size) // 8)
        return _Frame(lo=top - size, hi=top, spill=spill, index=index)

    def init_window(self, state, frame):
        for off in range(frame.lo, frame.hi, 8):
            if self.rng.random() < 0.6:
                self.emit(STDW, dst=10, off=off, imm=_imm32(self.rng))
            else:
                self.emit(STXDW, dst=10, src=self.need_scalar(state), off=off)

    def subprogram(self, index):
        frame = self.frame(index, 64)
        frame.args = self.sub_args[index]
        self.place(f"sub{index}")
        state = [UNINIT] * 10
        for r in range(1, 1 + frame.args):
            state[r] = SCALAR
        self.init_window(state, frame)
        self.block(state, frame, max(3, self.size // 3), depth=1)
        self.epilogue(state, frame)

    def mix(self, state, r):
        self.emit(MUL64_K, dst=0, imm=MIX)
        self.emit(XOR64_X, dst=0, src=r)

    def epilogue(self, state, frame):
        if state[0] != SCALAR:
            self.set_const(state, 0)
        if frame.index < 0:
            for r in range(6, 10):
                if state[r] == SCALAR:
                    self.mix(state, r)
        for off in range(frame.lo, frame.hi, 8):
            self.emit(LDXDW, dst=2, src=10, off=off)
            self.mix(state, 2)
        if frame.index < 0:
            if self.ctx:
                self.emit(LDXDW, dst=1, src=10, off=frame.spill)
                self.emit(STXDW, dst=1, src=0, off=self.pkt_len)
            else:
                self.emit(MOV64_X, dst=1, src=0)
                self.emit(RSH64_K, dst=1, imm=32)
                self.emit(XOR64_X, dst=0, src=1)
                self.emit(MOV32_X, dst=0, src=0)
        self.emit(EXIT)

    # -- bodies
    def block(self, state, frame, n, depth):
        for _ in range(n):
            self.item(state, frame, depth)

    def item(self, state, frame, depth):
        rng = self.rng
        choices = [("alu", 40), ("end", 5), ("stack", 16), ("atomic_stack", 6), ("lddw", 3)]
        if depth < 3:
            choices += [("if", 8), ("ifelse", 4)]
        if not self.in_loop:
            if depth < 3:
                choices.append(("loop", 2))
            if self.ctx and frame.index < 0:
                choices.append(("packet", 10))
            if self.ctx:
                choices += [("map", 7), ("helper", 5)]
            callees = [i for i in range(self.n_sub) if i > frame.index]
            if callees:
                choices.append(("call", 4))
        total = sum(w for _, w in choices)
        pick = rng.uniform(0, total)
        for what, weight in choices:
            pick -= weight
            if pick <= 0:
                break
        getattr(self, "gen_" + what)(state, frame, depth)

    def gen_alu(self, state, frame, depth):
        rng = self.rng
        form = rng.choice(ALU_FORMS)
        op = form.alu_op
        if op == AluOp.MOV:
            dst = rng.choice(self.writable())
        else:
            dst = self.need_scalar(state, exclude=self.reserved)
        off = rng.choice(sorted(form.off))
        if form.source == Source.X:
            src = self.need_scalar(state)
            self.emit(form, dst=dst, src=src, off=off)
        else:
            if form.imm != ANY:
                imm = rng.choice(sorted(form.imm))
            elif op in (AluOp.LSH, AluOp.RSH, AluOp.ARSH):
                imm = rng.randrange(form.width)          # the kernel rejects larger shifts
            elif op in (AluOp.DIV, AluOp.MOD):
                imm = _imm32(rng) or rng.choice((1, -1, 3))  # and division by a constant 0
            else:
                imm = _imm32(rng)
            self.emit(form, dst=dst, off=off, imm=imm)
        state[dst] = SCALAR

    def gen_end(self, state, frame, depth):
        form = self.rng.choice(END_FORMS)
        dst = self.need_scalar(state, exclude=self.reserved)
        self.emit(form, dst=dst, imm=next(iter(form.imm)))
        state[dst] = SCALAR

    def gen_lddw(self, state, frame, depth):
        dst = self.rng.choice(self.writable())
        v = _imm64(self.rng)
        self.emit(LDDW, dst=dst, imm=v & 0xffff_ffff, hi=v >> 32)
        state[dst] = SCALAR

    def stack_off(self, frame, size):
        slots = [off for off in range(frame.lo, frame.hi - size + 1, size)]
        return self.rng.choice(slots)

    def access(self, state, base, lo, hi, stores=True, aligned=False):
        """A random load or store at ``[base + off]`` with ``lo <= off`` and ``off + size <= hi``."""
        rng = self.rng
        forms = [f for f in LOAD_FORMS + (STORE_FORMS if stores else []) if f.width <= 8 * (hi - lo)]
        form = rng.choice(forms)
        size = form.width // 8
        if aligned:
            off = rng.choice(range(lo, hi - size + 1, size))
        else:
            off = rng.randint(lo, hi - size)
        if form.kind in (Kind.LOAD, Kind.LOADSX):
            dst = rng.choice(self.writable())
            self.emit(form, dst=dst, src=base, off=off)
            state[dst] = SCALAR
        elif form.kind == Kind.STORE_IMM:
            self.emit(form, dst=base, off=off, imm=_imm32(rng))
        else:
            src = self.need_scalar(state, exclude={base})
            self.emit(form, dst=base, src=src, off=off)

    def gen_stack(self, state, frame, depth):
        self.access(state, 10, frame.lo, frame.hi, aligned=True)

    def atomic(self, state, base, off):
        rng = self.rng
        # cmpxchg compares with r0 and writes it: not when r0 is the base.
        form = rng.choice([f for f in ATOMIC_FORMS
                           if base != 0 or next(iter(f.imm)) != AtomicOp.CMPXCHG.value])
        op = AtomicOp(next(iter(form.imm)))
        fetch = op.fetches
        if op == AtomicOp.CMPXCHG and state[0] != SCALAR:
            if 0 in self.reserved:
                return
            self.set_const(state, 0)
        exclude = self.reserved | {base} if fetch else {base}
        src = self.need_scalar(state, exclude=exclude)
        self.emit(form, dst=base, src=src, off=off(form.width // 8), imm=op.value)
        if op == AtomicOp.CMPXCHG:
            state[0] = SCALAR
        elif fetch:
            state[src] = SCALAR

    def gen_atomic_stack(self, state, frame, depth):
        if 0 in self.reserved:
            return self.gen_stack(state, frame, depth)
        self.atomic(state, 10, lambda size: self.stack_off(frame, size))

    def pointer(self, state, kind, make):
        """A register holding a pointer of ``kind`` (reused or made by ``make(dst)``)."""
        have = [r for r in range(10) if state[r] == kind and r not in self.reserved]
        if have and self.rng.random() < 0.5:
            return self.rng.choice(have)
        dst = self.rng.choice(self.writable())
        make(dst)
        state[dst] = kind
        return dst

    def gen_packet(self, state, frame, depth):
        p = self.pointer(state, ("pkt",),
                         lambda dst: self.emit(LDXDW, dst=dst, src=10, off=frame.spill))
        self.access(state, p, 0, self.pkt_len + 8)

    def gen_map(self, state, frame, depth):
        rng = self.rng
        base = rng.choice((0, 0, 8, 16, 32, 60))
        kind = ("map", 0, base)

        def make(dst):
            form = rng.choice(LDDW_MAP_VALUE)
            self.emit(form, dst=dst, src=next(iter(form.src)), imm=0, hi=base)
        p = self.pointer(state, kind, make)
        if rng.random() < 0.3 and 0 not in self.reserved:
            self.atomic(state, p, lambda size: rng.choice(range(-base, 64 - base - size + 1, size)))
        else:
            self.access(state, p, -base, 64 - base)

    def stack_ptr(self, reg, off):
        self.emit(MOV64_X, dst=reg, src=10)
        self.emit(ADD64_K, dst=reg, imm=off)

    def gen_helper(self, state, frame, depth):
        rng = self.rng
        helper = rng.choice((1, 1, 2, 3, 8, 23))
        if helper in (1, 2, 3):
            key_off = self.stack_off(frame, 4)
            self.emit(STW, dst=10, off=key_off, imm=rng.choice((0, 1, 2, 3, 4, -1)))
            form = rng.choice(LDDW_MAP)
            self.emit(form, dst=1, src=next(iter(form.src)), imm=1)
            self.stack_ptr(2, key_off)
            if helper == 2:
                if frame.hi - frame.lo < 16:
                    self.emit(STDW, dst=10, off=frame.lo, imm=0)
                    value_off = frame.lo
                else:
                    value_off = rng.choice(range(frame.lo, frame.hi - 16 + 1, 8))
                self.stack_ptr(3, value_off)
                self.emit(MOV64_K, dst=4, imm=rng.choice((0, 0, 1, 2, 3, 4)))
        elif helper == 23:
            self.emit(MOV64_K, dst=1, imm=rng.choice((0, 1, 7)))
            self.emit(MOV64_K, dst=2, imm=rng.choice((0, 0, 0, 1, 8)))
        self.emit(CALL, imm=helper)
        for r in range(1, 6):
            state[r] = UNINIT
        state[0] = SCALAR
        if helper == 1:
            # r0 is a pointer to the value, or NULL: the verifier wants the check.
            skip = self.label()
            self.emit(JEQ_K, dst=0, imm=0, target=skip)
            inner = list(state)
            inner[0] = ("map", 1, 0)
            if rng.random() < 0.3:
                self.atomic(inner, 0, lambda size: rng.choice(range(0, 16 - size + 1, size)))
            else:
                self.access(inner, 0, 0, 16)
            self.place(skip)
            _meet(state, inner)
            state[0] = UNINIT

    def gen_call(self, state, frame, depth, callee=None):
        if callee is None:
            callee = self.rng.choice([i for i in range(self.n_sub) if i > frame.index])
        self.called.add(callee)
        for r in range(1, 1 + self.sub_args[callee]):
            if state[r] != SCALAR:
                self.set_const(state, r)
        self.emit(CALL_LOCAL, src=1, target=f"sub{callee}")
        for r in range(1, 6):
            state[r] = UNINIT
        state[0] = SCALAR

    def condition(self, state, target):
        rng = self.rng
        form = rng.choice(JCOND_FORMS)
        dst = self.need_scalar(state)
        if form.source == Source.X:
            self.emit(form, dst=dst, src=self.need_scalar(state), target=target)
        else:
            self.emit(form, dst=dst, imm=_imm32(rng), target=target)

    def sub_block(self, state, frame, depth):
        inner = list(state)
        self.block(inner, frame, self.rng.randint(1, 4), depth + 1)
        return inner

    def gen_if(self, state, frame, depth):
        end = self.label()
        self.condition(state, end)
        inner = self.sub_block(state, frame, depth)
        self.place(end)
        _meet(state, inner)

    def gen_ifelse(self, state, frame, depth):
        other, end = self.label(), self.label()
        self.condition(state, other)
        then = self.sub_block(state, frame, depth)
        if self.rng.random() < 0.5:
            self.emit(JA, target=end)
        else:
            self.emit(JA32, target=end)
        self.place(other)
        alt = self.sub_block(state, frame, depth)
        self.place(end)
        _meet(then, alt)
        state[:] = then

    def gen_loop(self, state, frame, depth):
        rng = self.rng
        free = [r for r in self.writable() if r != 0]
        counter = rng.choice(free)
        self.emit(MOV64_K, dst=counter, imm=rng.randint(1, 4))
        state[counter] = SCALAR
        top = self.label()
        self.place(top)
        self.reserved.add(counter)
        self.in_loop = True
        inner = list(state)
        self.block(inner, frame, rng.randint(1, 5), depth + 1)
        self.in_loop = False
        self.reserved.discard(counter)
        self.emit(SUB64_K, dst=counter, imm=1)
        self.emit(rng.choice(LOOP_JUMPS), dst=counter, imm=0, target=top)
        state[:] = inner


def _meet(state, other):
    """The register state where two paths join: what both agree on."""
    for r in range(10):
        if state[r] != other[r]:
            state[r] = UNINIT


# --- The hostile profile ----------------------------------------------------------------------

HOSTILE_FORMS = [f for f in FORMS if f.kind != Kind.CALL_BTF
                 and not (f.kind == Kind.LDDW and f.src != frozenset([0]))]


def _field(rng, rule, bits):
    if rule == ANY:
        if bits == 16:
            return rng.choice((0, 0, 1, -1, 2, 4, -8, 8, 0x7fff, -0x8000, rng.randint(-40, 40)))
        return _imm32(rng)
    if rule == REG:
        return rng.randrange(11)
    if rule == WREG:
        return rng.randrange(10)
    return rng.choice(sorted(rule))


def _hostile(rng, size, mem_len):
    items = []
    n_items = size
    for _ in range(n_items):
        form = rng.choice(HOSTILE_FORMS)
        ins = _Ins(form, dst=_field(rng, form.dst, 4), src=_field(rng, form.src, 4),
                   off=_field(rng, form.off, 16), imm=_field(rng, form.imm, 32))
        kind = form.kind
        if form.dst == WREG and ins.dst == 1 and rng.random() < 0.8:
            ins.dst = rng.choice((0, 2, 3, 4, 5, 6, 7, 8, 9))    # keep the memory pointer a while
        if kind in (Kind.LOAD, Kind.LOADSX, Kind.STORE_IMM, Kind.STORE_REG, Kind.ATOMIC):
            # Aim at the stack or the memory, mostly inside, sometimes just outside.
            base = rng.choices((10, 1, None), (60, 25, 15))[0]
            size_b = form.width // 8
            inside = rng.random() < 0.85
            if base == 10:
                ins.off = rng.randrange(-512, 0, size_b) if inside else rng.randint(-520, 8)
            elif base == 1:
                ins.off = rng.randint(0, mem_len - size_b) if inside and mem_len >= size_b \
                    else rng.randint(-4, mem_len + 4)
            if base is not None:
                if kind in (Kind.LOAD, Kind.LOADSX):
                    ins.src = base
                else:
                    ins.dst = base
        elif kind == Kind.LDDW:
            value = _imm64(rng)
            ins.imm, ins.hi = value & 0xffff_ffff, value >> 32
        elif kind == Kind.CALL:
            ins.imm = abi.CONFORMANCE_UNWIND_HELPER
            if rng.random() < 0.3:
                items.append(_Ins(MOV64_K, dst=1, imm=rng.choice((0, 1, -1))))
        elif kind == Kind.CALLX:
            if rng.random() < 0.7:
                items.append(_Ins(MOV64_K, dst=ins.dst if ins.dst < 10 else 0,
                                  imm=abi.CONFORMANCE_UNWIND_HELPER))
                ins.dst = min(ins.dst, 9)
        if kind in (Kind.JA, Kind.JA32, Kind.JCOND, Kind.CALL_LOCAL):
            ins.target = "random"
        items.append(ins)
    if rng.random() < 0.3:
        # A recursive function: n frames deep, more than the 8 allowed when n > 7.
        depth = rng.randint(3, 11)
        body = f"rec{len(items)}"
        items.append(_Ins(MOV64_K, dst=6, imm=depth))
        items.append(_Ins(CALL_LOCAL, src=1, target=body))
        items.append(_Ins(EXIT))
        items.append(_Label(body))
        items.append(_Ins(SUB64_K, dst=6, imm=1))
        items.append(_Ins(JEQ_K, dst=6, imm=0, target=f"{body}.end"))
        items.append(_Ins(CALL_LOCAL, src=1, target=body))
        items.append(_Label(f"{body}.end"))
    items.append(_Ins(EXIT))
    # Jump and call targets: any instruction start.
    starts = []
    pc = 0
    for item in items:
        if isinstance(item, _Ins):
            starts.append(pc)
            pc += 2 if item.form.kind == Kind.LDDW else 1
    for item in items:
        if isinstance(item, _Ins) and item.target == "random":
            item.target = rng.choice(starts)
    return _resolve(items)


# --- Entry point --------------------------------------------------------------------------------

def generate(rng, *, size=30, profile="kernel", ctx=True, subprogs=None, seed=None):
    """A random program.

    Parameters
    ----------
    rng : random.Random
    size : int
        Body instructions to generate (prologue, epilogue and sub-blocks come on top).
    profile : str
        ``"kernel"`` or ``"hostile"`` (see the module docstring).
    ctx : bool
        Kernel profile: an XDP program using context, packet, maps and helpers (True), or a
        self-contained one (False).
    subprogs : int, optional
        Kernel profile: number of bpf-to-bpf subprograms (default: random 0-3).
    seed : object
        Recorded in the program (``.seed``) for messages.

    Returns
    -------
    GenProgram
    """
    if profile == "kernel":
        if subprogs is None:
            subprogs = rng.choice((0, 0, 1, 2, 3))
        if not 0 <= subprogs <= 3:
            raise ValueError(f"subprogs must be 0..3, not {subprogs}")
        gen = _KernelGen(rng, size, ctx, subprogs)
        slots = gen.build()
        packet = rng.randbytes(gen.pkt_len + 8) if ctx else b""
        return GenProgram(slots, profile=profile, ctx=ctx, packet=packet, maps=gen.maps,
                          helpers=gen.helper_ids, budget=abi.DEFAULT_BUDGET,
                          name=f"kernel-{seed}" if seed is not None else "kernel", seed=seed)
    if profile == "hostile":
        mem = rng.randbytes(rng.choice((0, 8, 16, 64)))
        slots = _hostile(rng, size, len(mem))
        budget = rng.randint(5, 200) if rng.random() < 0.25 else 2_000
        return GenProgram(slots, profile=profile, ctx=False, packet=mem, maps=(),
                          helpers={abi.CONFORMANCE_UNWIND_HELPER}, budget=budget,
                          name=f"hostile-{seed}" if seed is not None else "hostile", seed=seed)
    raise ValueError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")


# --- Running: VM and kernel, with the same observation ---------------------------------------

@dataclass
class Observation:
    """What a run of a generated program shows: compare these between engines.

    ``r0`` is 64 bits for the VM; for the kernel it is the packet's last 8 bytes (ctx programs)
    or the 32-bit ``retval`` (the program folded r0 to 32 bits). ``retval`` is r0's low half.
    """
    r0: Optional[int]
    retval: Optional[int]
    packet: bytes = b""
    maps: tuple = ()
    fault: str = ""


def _lookup(vm, r1, r2, r3, r4, r5):
    m = vm.maps[(r1 - abi.MAP_BASE) // abi.MAP_WINDOW]
    key = vm.mem.load(r2, 4)
    if key >= m.capacity:
        return 0
    return r1 + key * m.value_size


def _update(vm, r1, r2, r3, r4, r5):
    m = vm.maps[(r1 - abi.MAP_BASE) // abi.MAP_WINDOW]
    key = vm.mem.load(r2, 4)
    value = vm.mem.read_bytes(r3, m.value_size)
    if r4 & ~4 > 2:                  # unknown flags
        return -_errno.EINVAL
    if key >= m.capacity:
        return -_errno.E2BIG
    if r4 & 1:                       # BPF_NOEXIST: every array element exists
        return -_errno.EEXIST
    if r4 & 4:                       # BPF_F_LOCK, but the value has no spin lock
        return -_errno.EINVAL
    m.values[key * m.value_size:(key + 1) * m.value_size] = value
    return 0


def _delete(vm, r1, r2, r3, r4, r5):
    vm.mem.load(r2, 4)
    return -_errno.EINVAL            # array elements cannot be deleted


def _redirect(vm, r1, r2, r3, r4, r5):
    return abi.XdpAction.ABORTED if r2 else abi.XdpAction.REDIRECT


def kernel_helpers():
    """VM helpers that behave like the kernel's for the kernel profile (array maps, CPU 0)."""
    return {
        abi.Helper.MAP_LOOKUP_ELEM: _lookup,
        abi.Helper.MAP_UPDATE_ELEM: _update,
        abi.Helper.MAP_DELETE_ELEM: _delete,
        abi.Helper.GET_SMP_PROCESSOR_ID: lambda vm, *args: 0,
        abi.Helper.REDIRECT: _redirect,
    }


def _ctx_bytes(packet_len):
    data = abi.PKT_BASE + abi.PKT_HEADROOM
    # ingress_ifindex 1: the loopback device, where the kernel's test run says the packet came in.
    return abi.xdp_md_bytes(data, data + packet_len, ingress_ifindex=1)


def run_vm(gp, *, on_retire=None):
    """Run a generated program on the golden VM."""
    from bpfcore.sim.load.conformance import conformance_helpers
    from bpfcore.sim.model.vm import Vm
    for m in gp.maps:
        m.reset()
    if gp.profile == "hostile":
        helpers = conformance_helpers()
    else:
        helpers = {k: v for k, v in kernel_helpers().items() if k in gp.helpers}
    vm = Vm(gp, helpers=helpers, maps=gp.maps, budget=gp.budget, on_retire=on_retire)
    if gp.ctx:
        result = vm.run(r1=abi.CTX_BASE, ctx=_ctx_bytes(len(gp.packet)), packet=gp.packet)
    elif gp.packet:
        result = vm.run(r1=abi.PKT_BASE + abi.PKT_HEADROOM, r2=len(gp.packet), packet=gp.packet)
    else:
        result = vm.run()
    if not result.ok:
        return Observation(None, None, fault=f"{result.fault.name}: {result.message}")
    return Observation(result.r0, result.r0 & 0xffff_ffff, vm.mem.packet_bytes() if gp.ctx else b"",
                       tuple(bytes(m.values) for m in gp.maps))


def run_kernel(gp):
    """Load a kernel-profile program into the kernel as XDP and run it once (pinned to CPU 0).

    Raises
    ------
    bpfcore.sim.load.kernel.KernelError
        The verifier rejected it (the message has the end of the log, ``.log`` all of it).
    """
    from bpfcore.sim.load import kernel
    if gp.profile != "kernel":
        raise ValueError(f"only kernel-profile programs run in the kernel, not {gp.profile!r}")
    kmaps = []
    try:
        for i, m in enumerate(gp.maps):
            km = kernel.KernelMap(m.map_type, m.key_size, m.value_size, m.capacity, name=f"m{i}")
            kmaps.append(km)
            for key in range(m.capacity):
                km.update(key, m.init[key * m.value_size:(key + 1) * m.value_size])
        packet = gp.packet if gp.ctx else bytes(64)
        run = kernel.run_slots(gp.slots, packet, maps=kmaps, name=gp.name.replace("-", "_"),
                               cpu=0 if 8 in gp.helpers else None)
        maps = tuple(b"".join(km.lookup(key) for key in range(km.max_entries)) for km in kmaps)
    finally:
        for km in kmaps:
            km.close()
    if gp.ctx:
        r0 = int.from_bytes(run.data_out[-8:], "little")
        return Observation(r0, run.retval, run.data_out, maps)
    return Observation(run.retval, run.retval, b"", maps)


def listing(program):
    """The program as numbered assembly lines (for failure messages)."""
    from bpfcore.sim.load.asm import disassemble
    lines = []
    pc = 0
    for text in disassemble(program.slots):
        lines.append(f"{pc:4d}: {text}")
        pc += 2 if text.startswith("lddw") else 1
    return "\n".join(lines)
