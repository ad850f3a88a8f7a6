"""trace_printk (helper 6, bpfcore.hdl.printk) against the VM's XdpEnv.trace_printk.

The helper units' bench (tests/test_hdl_helpers.py ``TB``) runs each call on both sides and
compares r0, the fault and the log: the ``printk`` stream (drained with random back-pressure,
the mem port answering with a random latency) must carry exactly the VM's messages. Directed
formats cover every flag, width, precision, length and conversion and every error; random
formats come from BPFCORE_SEED (printed on failure), BPFCORE_PRINTK_CALLS of them.
"""

import os
import random

import pytest

from bpfcore import abi
from bpfcore.abi import Helper
from bpfcore.hdl.helpers import BUILDABLE_HELPERS
from bpfcore.hdl.printk import PrintkFormatter

from conftest import seed_from_env
from test_hdl_helpers import TB, WIDE, handle, stack

RANDOM_CALLS = int(os.environ.get("BPFCORE_PRINTK_CALLS", "150"))
H = Helper
FMT = 0            # offsets into the current stack frame
STRINGS = 256

#: Argument values that reach the corners: zero, signs at 8/16/32/64 bits, all ones.
VALUES = [0, 1, 7, 9, 10, 42, 255, 0x80, 0x7fff, 0x8000, 0xffff, 0x1_0000, 0x7fff_ffff,
          0x8000_0000, 0xffff_ffff, 0x1_2345_6789, 0x7fff_ffff_ffff_ffff,
          0x8000_0000_0000_0000, (1 << 64) - 1, (1 << 64) - 42, 10**19, 12345678901234567890]


def run(scenario, seed=None, **options):
    tb = TB(seed_from_env() if seed is None else seed, helpers=BUILDABLE_HELPERS, **options)
    tb.run(scenario)
    return tb


async def printk(tb, ctx, fmt, *args, size=None, at=None, what=""):
    """Place ``fmt`` (bytes, NUL included by the caller) on the stack and call trace_printk."""
    at = stack(tb, FMT) if at is None else at
    tb.poke(at, fmt)
    return await tb.call(ctx, H.TRACE_PRINTK, at, len(fmt) if size is None else size, *args,
                         what=what or repr(fmt))


def strings(tb):
    """Strings on the stack for %s: empty, short, 63, 64 and 70 bytes without NUL in 64."""
    base = stack(tb, STRINGS)
    blobs = [b"\0", b"hi\0", b"x" * 63 + b"\0", bytes(range(65, 65 + 64)) + b"\0",
             b"\xe9" + b"y" * 69 + b"\0"]
    addrs = []
    for blob in blobs:
        tb.poke(base, blob)
        addrs.append(base)
        base += len(blob)
    return addrs


def test_formats_flags_widths_precisions():
    async def scenario(tb, ctx):
        s_empty, s_hi, s63, s64, s70 = strings(tb)
        rng = tb.rng
        await printk(tb, ctx, b"hello, world\n\0")
        await printk(tb, ctx, b"\0")
        await printk(tb, ctx, b"100%% sure %%\0")
        await printk(tb, ctx, b"%d %i %u\0", -5, 7, -1)
        await printk(tb, ctx, b"%s|%s|%s\0", s_empty, s_hi, s63)
        await printk(tb, ctx, b"%s|%.3s|%-70s|\0", s64, s70, s70)
        await printk(tb, ctx, b"%c%c%c\0", ord("A"), 0x1_00 | ord("b"), 0)   # NUL in the text
        await printk(tb, ctx, b"%p %lp %hp\0", 0x1234_5678_9abc, -1, 0xabcdef)
        await printk(tb, ctx, b"ab\0cd%q\0")                    # stops at the first NUL
        for conv in "diuxXcsp":
            for flags in ("", "-", "+", " ", "0", "#", "-0", "+0", " 0", "#0", "-#", "+ ",
                          "-+ 0#", "00"):
                # Each width with each length, over the flag sets.
                w = rng.sample(["", "1", "5", "23"], 3)
                args = [rng.choice(VALUES) for _ in range(3)]
                if conv == "s":
                    args = [rng.choice([s_empty, s_hi, s63, s70]) for _ in range(3)]
                fmt = (f"[%{flags}{w[0]}{conv}|%{flags}{w[1]}l{conv}|"
                       f"%{flags}{w[2]}h{conv}]\0").encode()
                await printk(tb, ctx, fmt, *args)
        for conv in "diuxXsp":
            for prec in ("0", "1", "3", "8", "19", "22", "064"):
                width = rng.choice(("", "4", "30"))
                args = [rng.choice(VALUES) for _ in range(3)]
                if conv == "s":
                    args = [rng.choice([s_empty, s_hi, s63, s70]) for _ in range(3)]
                fmt = (f"%{width}.{prec}{conv}/%-{width}.{prec}ll{conv}/"
                       f"%#0{width}.{prec}z{conv}\0").encode()
                await printk(tb, ctx, fmt, *args)
        for value in VALUES:
            await printk(tb, ctx, b"%d %lld %hi\0", value, value, value)
            await printk(tb, ctx, b"%u %lu %hu\0", value, value, value)
            await printk(tb, ctx, b"%#x %lX %hx\0", value, value, value)
        await printk(tb, ctx, b"%-2000d|%01500.2d|%.1200x\0", 1, -3, 5)    # long fields
    run(scenario)


def test_errors_and_faults():
    async def scenario(tb, ctx):
        s_empty, s_hi, *_ = strings(tb)
        mem = tb.ref_mem
        bad = abi.STACK_BASE - 64                                # no region
        # -EINVAL: size 0, no NUL, bad conversions, too many, "%%" with a spec
        await printk(tb, ctx, b"%d\0", 1, size=0)
        await printk(tb, ctx, b"abc", size=3)
        await printk(tb, ctx, b"abc\0", size=3)
        for fmt in (b"%\0", b"%q\0", b"%5%\0", b"%-%\0", b"%l%\0", b"%.d\0", b"%.\0",
                    b"%hhd\0", b"%lq\0", b"%Lx\0", b"%llld\0", b"%d%d%d%d\0", b"%%%d%%%q\0",
                    b"%5.\0", b"% \0", b"%#\0", b"%05\0", b"%.5\0", b"%l\0"):
            await printk(tb, ctx, fmt, 1, 2, 3)
        await printk(tb, ctx, b"%d%%%s%%%x\0", 1, s_hi, 3)      # exactly three: fine
        # faults: the fmt buffer, %s strings (before and after an EINVAL)
        await printk(tb, ctx, b"x\0", size=(1 << 40))
        await printk(tb, ctx, b"x\0", size=(1 << 64) - 1)
        await tb.call(ctx, H.TRACE_PRINTK, bad, 4)
        await tb.call(ctx, H.TRACE_PRINTK, 0, 1)
        await tb.call(ctx, H.TRACE_PRINTK, abi.STACK_TOP - 2, 3)          # past the stack top
        tb.poke(abi.STACK_TOP - 2, b"a\0")
        await tb.call(ctx, H.TRACE_PRINTK, abi.STACK_TOP - 2, 2)
        await tb.call(ctx, H.TRACE_PRINTK, stack(tb, 0) - 1, 3)            # below the frame
        tb.poke(mem.data_end - 3, b"p%d")
        await tb.call(ctx, H.TRACE_PRINTK, mem.data_end - 3, 3, 5)          # no NUL: EINVAL
        await tb.call(ctx, H.TRACE_PRINTK, mem.data_end - 3, 4, 5)          # past data_end
        tb.poke(mem.data_end - 4, b"p%d\0")
        await tb.call(ctx, H.TRACE_PRINTK, mem.data_end - 4, 4, -9)         # in the packet
        await tb.call(ctx, H.TRACE_PRINTK, abi.CTX_BASE, 24)                # context: no NUL
        await printk(tb, ctx, b"%s\0", bad)
        await printk(tb, ctx, b"%s %q\0", bad)
        await printk(tb, ctx, b"%q %s\0", bad)
        await printk(tb, ctx, b"%d %s\0", 1, 1 << 32 | s_hi)    # %s: 32 bits of the pointer
        await printk(tb, ctx, b"%ls\0", 1 << 32 | s_hi)         # 64 bits: fault
        await printk(tb, ctx, b"%hs\0", s_hi)                   # 16 bits: fault
        tb.poke(abi.STACK_TOP - 3, b"end")                       # string runs off the stack
        await printk(tb, ctx, b"%s\0", abi.STACK_TOP - 3)
        await printk(tb, ctx, b"%.1s\0", abi.STACK_TOP - 3)      # read whole even if cut
        tb.poke(mem.data_end - 2, b"ok")
        await printk(tb, ctx, b"%s\0", mem.data_end - 2)
        # fmt and strings in map values: one value, across two (fmt faults, %s does not)
        k = stack(tb, 128)
        v = stack(tb, 160)
        for slot, text in ((0, b"map %s fmt %u\0"), (1, b"second\0")):
            tb.poke(k, slot.to_bytes(4, "little"))
            tb.poke(v, text.ljust(40, b"z"))
            await tb.call(ctx, H.MAP_UPDATE_ELEM, handle(WIDE), k, v, 0)
        tb.poke(k, bytes(4))
        value0, _ = await tb.call(ctx, H.MAP_LOOKUP_ELEM, handle(WIDE), k)
        await tb.call(ctx, H.TRACE_PRINTK, value0, 15, value0 + 40, 77)
        await tb.call(ctx, H.TRACE_PRINTK, value0, 40, value0 + 36, 77)   # %s across values
        await tb.call(ctx, H.TRACE_PRINTK, value0, 41)                     # fmt across values
        await tb.call(ctx, H.TRACE_PRINTK, value0 + 40, 7)
        await tb.call(ctx, H.TRACE_PRINTK, value0 + 40, 200)               # past the last

    tb = run(scenario)
    assert {(6, "ok"), (6, -22), (6, "HELPER")} <= tb.outcomes


def _random_format(rng, pointers):
    """A random format (NUL-terminated bytes) and three arguments: mostly valid conversions,
    some literal text with latin-1 bytes, sometimes a broken spec."""
    parts, args = [], []
    for _ in range(rng.randrange(1, 6)):
        r = rng.random()
        if r < 0.3:
            parts.append(bytes(rng.choice(b"ab %\n\xff-09") for _ in range(rng.randrange(4))
                               ).replace(b"%", b"%%"))
            continue
        flags = "".join(rng.choice("-+ 0#") for _ in range(rng.choice([0, 0, 1, 2, 4])))
        width = rng.choice(["", "", "1", "7", "12", "40"])
        prec = rng.choice(["", "", ".0", ".2", ".9", ".25", "."])
        length = rng.choice(["", "", "l", "ll", "h", "hh", "z", "L"])
        conv = rng.choice("diuxXcspdxs%" + ("qZ" if rng.random() < 0.1 else ""))
        parts.append(f"%{flags}{width}{prec}{length}{conv}".encode())
    for _ in range(3):
        if rng.random() < 0.4:
            args.append(rng.choice(pointers))
        else:
            args.append(rng.choice(VALUES + [rng.getrandbits(64), rng.getrandbits(32),
                                             -rng.randrange(1000) & (1 << 64) - 1]))
    return b"".join(parts) + b"\0", args


def test_random_formats():
    seed = seed_from_env()

    async def scenario(tb, ctx):
        rng = random.Random(seed)
        pointers = strings(tb) + [abi.STACK_BASE - 8, tb.ref_mem.data, abi.STACK_TOP - 1]
        for step in range(RANDOM_CALLS):
            fmt, args = _random_format(rng, pointers)
            size = len(fmt) + rng.choice([0, 0, 0, 1, 5, -1])
            await printk(tb, ctx, fmt, *args, size=max(size, 0),
                         what=f"random step {step}: {fmt!r}")

    tb = run(scenario, seed)
    if RANDOM_CALLS >= 100:
        assert {(6, "ok"), (6, -22)} <= tb.outcomes, f"seed {seed}: {tb.outcomes}"


def test_not_built_by_default():
    async def scenario(tb, ctx):
        await printk(tb, ctx, b"hi\0")
    tb = TB(1)
    tb.run(scenario)
    assert (6, "BAD_CALL") in tb.outcomes and tb.printk.messages == []


def test_injected_bug_is_caught():
    async def scenario(tb, ctx):
        await printk(tb, ctx, b"one wrong byte\0")
    with pytest.raises(AssertionError, match="printk log"):
        run(scenario, inject_bug="printk_byte")


def test_constructor_checks():
    with pytest.raises(ValueError, match=r"inject_bug must be None or 'printk_byte', not 'x'"):
        PrintkFormatter(inject_bug="x")


def test_documented_latency_bound():
    """Cycles from request valid to response valid (mem latency 1, the stream always ready)
    stay within the bound of bpfcore.hdl.printk's docstring, plus 1 for the helper units."""
    def bound(r2, k, c, text, s, L=1):
        return 1 + 2 + r2 * (L + 1) + 2 * (k + 1) * (L + 7) + c * (128 * (L + 1) + 74) \
            + text + s * (L + 2)

    got = []

    async def scenario(tb, ctx):
        tb.rng.choice = lambda seq: seq[0]              # mem latency 1
        tb.sink_rng.random = lambda: 0.0                # always ready
        s_empty, s_hi, s63, *_ = strings(tb)
        # (format, arguments, conversions, %s bytes printed)
        cases = [(b"plain text\n\0", (), 0, 0), (b"%d %lld %u\0", (-1, -1, 7), 3, 0),
                 (b"%-30s|%#20lx|%s\0", (s63, -1, s_hi), 3, 65), (b"%q\0", (), 0, 0),
                 (b"\0" * 40, (), 0, 0)]
        for fmt, args, convs, s_bytes in cases:
            at = stack(tb, FMT)
            tb.poke(at, fmt)
            args = [a & (1 << 64) - 1 for a in args] + [0] * (3 - len(args))
            logged = len(tb.env.log)
            tb.env.trace_printk(tb.vm, at, len(fmt), *args)     # the VM's text
            text = "".join(tb.env.log[logged:])
            cycles, _ = await tb.timed_call(ctx, H.TRACE_PRINTK, at, len(fmt), *args,
                                            limit=20_000)
            limit = bound(len(fmt), fmt.index(b"\0"), convs, len(text), s_bytes)
            got.append((fmt, cycles, limit))

    tb = run(scenario, seed=1)
    assert tb.printk.messages == tb.env.log
    for fmt, cycles, limit in got:
        assert cycles <= limit, f"{fmt!r}: {cycles} cycles, documented bound {limit}"
