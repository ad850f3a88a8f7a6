"""``trace_printk`` in hardware: the format string interpreter behind helper 6.

:class:`PrintkFormatter` produces exactly the text of the golden VM's
:meth:`bpfcore.sim.model.helpers.XdpEnv.trace_printk` (Python %-formatting of each conversion, as
``XdpEnv._format_one`` does it) and returns the same ``r0``:

* ``r2`` (fmt_size) = 0, no NUL among the ``r2`` bytes at ``r1``, a conversion whose
  conversion character is missing or not one of ``d i u x X c s p``, ``%%`` with anything
  between the two ``%``, ``.`` not followed by a digit, a fourth conversion: ``-EINVAL``
  (nothing is printed);
* the ``r2`` bytes at ``r1`` not readable as one buffer (the VM's ``read_bytes(r1, r2)``), or a
  ``%s`` string byte that cannot be read: ``Fault.HELPER`` (nothing is printed);
* else the text goes out on ``text`` and ``r0`` is its length in bytes.

The format is parsed as the VM's regular expression
``%([-+ 0#]*)(\\d*)(?:\\.(\\d+))?(ll|l|h|hh|z)?([diuxXcsp%])?`` matches it: flags, width,
precision, then the first length that matches (``ll``, ``l``, ``h``, ``z``; ``hh`` is never
reached, so ``%hhd`` is a ``%h`` without a valid conversion character), then the conversion.
``h`` takes the low 16 bits of the argument, none the low 32, ``l``/``ll``/``z`` all 64. A
``%s`` string is read byte by byte up to its NUL or 64 bytes, as the VM does.

Every memory access goes through the helper units' mem port (:data:`HelperMemSignature`), one
byte at a time. The fmt buffer is read whole first (each byte must pass the region check and,
in a map value, report the first byte's ``slot``: one ``Memory.locate(r1, r2)``).

Two passes, so that only complete messages leave: pass 1 parses the format and reads every
``%s`` string, finding every error and fault in the VM's order; pass 2 parses again and sends
the text, then one ``end`` transfer, then answers. ``text`` may hold a byte back as long as it
likes (``ready`` low): the formatter waits, no byte is lost.

Width and precision saturate at :data:`MAX_FIELD` (the VM builds a string of any width; above
65535 bytes the two differ, a format no debug message needs).

Latency (cycles from ``start`` to ``done``, with mem port latency ``L`` (``en`` to ``done``,
>= 1), no back-pressure): at most ``2 + r2 (L + 1) + 2 (k + 1) (L + 7) + c (128 (L + 1) + 74)
+ T + s (L + 2)``, where ``k`` is the format's length up to its NUL, ``c`` <= 3 the
conversions, ``T`` the bytes printed and ``s`` the ``%s`` bytes among them: the fmt buffer
check reads ``r2`` bytes; each pass reads the format byte by byte (and examines a character in
up to 5 phases); a ``%s`` string is measured in both passes (up to 64 reads each); a decimal
conversion takes 65 cycles (double dabble, 64 steps), a field's layout and its six pieces 8;
each ``%s`` byte is read again just before it is sent. Typically a few hundred cycles.
"""

from amaranth import Cat, Module, Mux, Signal
from amaranth.lib import enum, stream, wiring
from amaranth.lib.wiring import In, Out

from bpfcore.abi import Errno
from bpfcore.isa import Size
from .layouts import HelperMemSignature, PrintkLayout
from .unused import rejecting

__all__ = ["PrintkFormatter", "MAX_FIELD", "STRING_MAX"]

#: Width and precision saturate here.
MAX_FIELD = 0xffff
#: Bytes of a ``%s`` string read at most (``XdpEnv._format_one``).
STRING_MAX = 64
#: Bits of a position in the fmt buffer: more than the bytes of any region (a map window is
#: 1 MiB), so a longer ``r2`` always reaches a byte that faults before the counter wraps.
_FMT_POS_BITS = 21
_DIGITS = 20                    # decimal digits of 2**64 - 1
_M64 = (1 << 64) - 1


class Conv(enum.Enum, shape=3):
    """What a conversion prints."""
    SIGNED = 0          #: ``d``, ``i``
    UNSIGNED = 1        #: ``u``
    HEX = 2             #: ``x``
    HEX_UPPER = 3       #: ``X``
    CHAR = 4            #: ``c``
    STRING = 5          #: ``s``
    POINTER = 6         #: ``p``: ``0x`` and lower-case hex digits, as a string


class Phase(enum.Enum, shape=4):
    """Where the parser is in the format (the next character is examined in this phase)."""
    LITERAL = 0
    FLAGS = 1
    WIDTH = 2
    DOT = 3
    PREC_FIRST = 4      #: after ``.``: a digit must follow
    PREC = 5
    LENGTH = 6
    LENGTH_L = 7        #: after ``l``: a second ``l`` may follow
    CONV = 8


_CONVS = {"d": Conv.SIGNED, "i": Conv.SIGNED, "u": Conv.UNSIGNED, "x": Conv.HEX,
          "X": Conv.HEX_UPPER, "c": Conv.CHAR, "s": Conv.STRING, "p": Conv.POINTER}


class PrintkFormatter(wiring.Component):
    """``trace_printk`` (helper 6): format, check and send one message (module docstring).

    Parameters
    ----------
    inject_bug : None or str
        ``"printk_byte"``: the first byte of every message goes out with its low bit flipped
        (length and ``r0`` unchanged), a known bug the comparison of the logs must catch.

    Members
    -------
    start : In(1)
        Pulse: format ``r1``..``r5``, which must hold until ``done``.
    r1, r2, r3, r4, r5 : In(64)
        fmt pointer, fmt_size, the three arguments.
    done : Out(1)
        One cycle: ``r0`` and ``fault`` are valid (they hold until the next ``start``).
    r0 : Out(64)
        The text's length, or ``-EINVAL`` (two's complement).
    fault : Out(1)
        A read faulted (the VM's ``Fault.HELPER``); ``r0`` is 0.
    mem : Out(HelperMemSignature)
        One-byte reads (``size`` ``Size.B``, ``we``/``raw`` 0).
    text : Out(stream.Signature(PrintkLayout))
        The message's bytes, then one ``end`` transfer; only for a call that succeeds.

    Raises
    ------
    ValueError
        ``inject_bug`` is not None or ``"printk_byte"``.
    """

    def __init__(self, *, inject_bug=None):
        with rejecting(self):
            if inject_bug not in (None, "printk_byte"):
                raise ValueError(f"PrintkFormatter inject_bug must be None or 'printk_byte', not "
                                 f"{inject_bug!r}")
        self.inject_bug = inject_bug
        super().__init__({
            "start": In(1),
            "r1": In(64), "r2": In(64), "r3": In(64), "r4": In(64), "r5": In(64),
            "done": Out(1),
            "r0": Out(64),
            "fault": Out(1),
            "mem": Out(HelperMemSignature),
            "text": Out(stream.Signature(PrintkLayout)),
        })

    def elaborate(self, platform):
        m = Module()
        mem = self.mem

        # --- sequencer registers ---------------------------------------------------------
        emit = Signal()                     # pass 2: send the text
        fpos = Signal(_FMT_POS_BITS)        # next fmt byte
        first_slot = Signal(21)
        nul_seen = Signal()
        count = Signal(32)                  # bytes sent in this message
        used = Signal(2)                    # arguments consumed
        ch = Signal(8)                      # the fmt character (or %s byte) in hand
        phase = Signal(Phase)
        # The conversion being parsed.
        minus, plus, space, zero, alt = (Signal(name=n) for n in
                                         ("minus", "plus", "space", "zero", "alt"))
        has_spec = Signal()                 # a flag, width, precision or length was given
        width = Signal(16)
        prec = Signal(16)
        has_prec = Signal()
        long = Signal()
        short = Signal()
        conv = Signal(Conv)
        # Its value and text.
        value = Signal(64)                  # the argument (a %s pointer); the dabble shifter
        neg = Signal()
        digits = Signal(4 * _DIGITS)        # BCD (decimal) or nibbles (hex, pointer)
        steps = Signal(range(65))
        in_string = Signal()                # mem reads at value + idx (else r1 + fpos)
        idx = Signal(7)                     # %s bytes measured; then body byte sent
        slen = Signal(7)
        # Its layout: left spaces, sign, "0x", zeros, body, right spaces.
        lpad = Signal(16)
        zeros = Signal(17)
        rpad = Signal(16)
        blen = Signal(7)
        has_sign = Signal()
        sign_char = Signal(8)
        prefix = Signal()
        o_r0 = Signal(64)
        o_fault = Signal()
        m.d.comb += [self.r0.eq(o_r0), self.fault.eq(o_fault)]

        # --- mem port: one byte of the fmt or of a %s string -------------------------------
        m.d.comb += [
            mem.addr.eq(Mux(in_string, value, self.r1) + Mux(in_string, idx, fpos)),
            mem.size.eq(Size.B), mem.we.eq(0), mem.raw.eq(0), mem.wdata.eq(0),
        ]
        byte = mem.rdata[:8]
        slot_bad = mem.fault | ((fpos != 0) & (mem.slot != first_slot))

        # --- the argument, masked to its length --------------------------------------------
        arg = Signal(64)
        m.d.comb += arg.eq(Mux(used == 0, self.r3, Mux(used == 1, self.r4, self.r5)))
        masked = Signal(64)
        extended = Signal(64)               # sign-extended from its length
        m.d.comb += [
            masked.eq(Mux(long, arg, Mux(short, arg[:16], arg[:32]))),
            extended.eq(Mux(long, arg, Mux(short, arg[:16].as_signed(), arg[:32].as_signed()))),
        ]
        magnitude = Mux(extended[63], -extended, extended)[:64]

        # --- digits ------------------------------------------------------------------------
        def nibble(i):
            return digits.word_select(i, 4)

        n_digits = Signal(range(_DIGITS + 1))   # without leading zeros, at least 1
        m.d.comb += n_digits.eq(1)
        for i in range(1, _DIGITS):
            with m.If(nibble(i) != 0):
                m.d.comb += n_digits.eq(i + 1)
        dabbled = Cat(*(Mux(nibble(i) >= 5, nibble(i) + 3, nibble(i))[:4]
                        for i in range(_DIGITS)))

        def digit_char(index):
            d = digits.word_select(index[:5], 4)
            letter = Mux(conv == Conv.HEX_UPPER, ord("A") - 10, ord("a") - 10)
            return Mux(d < 10, ord("0") + d, letter + d)[:8]

        # --- the field's layout (Python's %-formatting) ------------------------------------
        numeric = conv.as_value() <= Conv.HEX_UPPER.value
        hexadecimal = (conv == Conv.HEX) | (conv == Conv.HEX_UPPER)
        body = Signal(7)
        with m.Switch(conv):
            with m.Case(Conv.CHAR):
                m.d.comb += body.eq(1)
            with m.Case(Conv.STRING):
                m.d.comb += body.eq(Mux(has_prec & (prec < slen), prec, slen))
            with m.Case(Conv.POINTER):
                m.d.comb += body.eq(Mux(has_prec & (prec < n_digits + 2), prec, n_digits + 2))
            with m.Default():
                m.d.comb += body.eq(n_digits)
        signed_field = numeric & (neg | plus | space)
        prefixed = alt & hexadecimal
        prec_zeros = Signal(16)
        m.d.comb += prec_zeros.eq(Mux(numeric & has_prec & (prec > n_digits),
                                      prec - n_digits, 0))
        total = Signal(18)
        m.d.comb += total.eq(signed_field + 2 * prefixed + prec_zeros + body)
        pad = Signal(16)
        m.d.comb += pad.eq(Mux(width > total, width - total, 0))
        zero_fill = numeric & zero & ~minus

        # --- the text stream ---------------------------------------------------------------
        offer = Signal()                    # a transfer is on offer this cycle
        out_byte = Signal(8)
        out_end = Signal()
        put = offer & self.text.ready
        flip = (count == 0) if self.inject_bug == "printk_byte" else 0
        m.d.comb += [
            self.text.valid.eq(offer),
            self.text.payload.data.eq(Mux(out_end, 0, out_byte ^ flip)),
            self.text.payload.end.eq(out_end),
        ]
        with m.If(put & ~out_end):
            m.d.sync += count.eq(count + 1)

        def send(data, then):
            """Offer ``data``; once taken, go to state ``then``."""
            m.d.comb += [offer.eq(1), out_byte.eq(data)]
            with m.If(self.text.ready):
                m.next = then

        def finish(r0, fault=0):
            m.d.sync += [o_r0.eq(r0), o_fault.eq(fault)]
            m.next = "DONE"

        def einval():
            finish(-Errno.EINVAL & _M64)

        def read_next():
            m.next = "FMT_ISSUE"

        def digit_in(c):
            return (c >= ord("0")) & (c <= ord("9"))

        def times_ten_plus(reg, c):
            wide = reg * 10 + (c - ord("0"))[:4]
            return Mux(wide > MAX_FIELD, MAX_FIELD, wide)

        def start_string():
            m.d.sync += [in_string.eq(1), idx.eq(0)]
            m.next = "MEASURE_ISSUE"

        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [fpos.eq(0), nul_seen.eq(0), emit.eq(0), in_string.eq(0)]
                    with m.If(self.r2 == 0):
                        einval()
                    with m.Else():
                        m.next = "CHECK_ISSUE"

            # --- the whole fmt buffer, as one read_bytes(r1, r2) -------------------------------
            with m.State("CHECK_ISSUE"):
                m.d.comb += mem.en.eq(1)
                m.next = "CHECK_WAIT"
            with m.State("CHECK_WAIT"):
                with m.If(mem.done):
                    with m.If(slot_bad):
                        finish(0, fault=1)
                    with m.Elif(fpos + 1 == self.r2):
                        with m.If(nul_seen | (byte == 0)):
                            m.d.sync += [fpos.eq(0), used.eq(0), phase.eq(Phase.LITERAL)]
                            read_next()
                        with m.Else():
                            einval()
                    with m.Else():
                        m.d.sync += [fpos.eq(fpos + 1), nul_seen.eq(nul_seen | (byte == 0))]
                        with m.If(fpos == 0):
                            m.d.sync += first_slot.eq(mem.slot)
                        m.next = "CHECK_ISSUE"

            # --- the parser: one fmt character per visit of DISPATCH ---------------------------
            with m.State("FMT_ISSUE"):
                m.d.comb += mem.en.eq(1)
                m.next = "FMT_WAIT"
            with m.State("FMT_WAIT"):
                with m.If(mem.done):
                    m.d.sync += [ch.eq(byte), fpos.eq(fpos + 1)]
                    m.next = "DISPATCH"
            with m.State("DISPATCH"):
                # A character that ends a phase is examined again in the next one (DISPATCH
                # again, without a read).
                with m.Switch(phase):
                    with m.Case(Phase.LITERAL):
                        with m.If(ch == 0):
                            with m.If(emit):
                                m.next = "END"
                            with m.Else():
                                m.d.sync += [emit.eq(1), fpos.eq(0), used.eq(0), count.eq(0)]
                                read_next()
                        with m.Elif(ch == ord("%")):
                            m.d.sync += [phase.eq(Phase.FLAGS), minus.eq(0), plus.eq(0),
                                         space.eq(0), zero.eq(0), alt.eq(0), has_spec.eq(0),
                                         width.eq(0), prec.eq(0), has_prec.eq(0), long.eq(0),
                                         short.eq(0)]
                            read_next()
                        with m.Elif(emit):
                            m.next = "LITERAL_PUT"
                        with m.Else():
                            read_next()
                    with m.Case(Phase.FLAGS):
                        with m.Switch(ch):
                            for c, flag in (("-", minus), ("+", plus), (" ", space), ("0", zero),
                                            ("#", alt)):
                                with m.Case(ord(c)):
                                    m.d.sync += [flag.eq(1), has_spec.eq(1)]
                                    read_next()
                            with m.Default():
                                m.d.sync += phase.eq(Phase.WIDTH)
                    with m.Case(Phase.WIDTH):
                        with m.If(digit_in(ch)):
                            m.d.sync += [width.eq(times_ten_plus(width, ch)), has_spec.eq(1)]
                            read_next()
                        with m.Else():
                            m.d.sync += phase.eq(Phase.DOT)
                    with m.Case(Phase.DOT):
                        with m.If(ch == ord(".")):
                            m.d.sync += phase.eq(Phase.PREC_FIRST)
                            read_next()
                        with m.Else():
                            m.d.sync += phase.eq(Phase.LENGTH)
                    with m.Case(Phase.PREC_FIRST):
                        # "." without a digit: the regex leaves it, and "." is no conversion.
                        with m.If(digit_in(ch)):
                            m.d.sync += [prec.eq(ch - ord("0")), has_prec.eq(1), has_spec.eq(1),
                                         phase.eq(Phase.PREC)]
                            read_next()
                        with m.Else():
                            einval()
                    with m.Case(Phase.PREC):
                        with m.If(digit_in(ch)):
                            m.d.sync += prec.eq(times_ten_plus(prec, ch))
                            read_next()
                        with m.Else():
                            m.d.sync += phase.eq(Phase.LENGTH)
                    with m.Case(Phase.LENGTH):
                        with m.Switch(ch):
                            with m.Case(ord("l")):
                                m.d.sync += [long.eq(1), has_spec.eq(1), phase.eq(Phase.LENGTH_L)]
                                read_next()
                            with m.Case(ord("h")):
                                m.d.sync += [short.eq(1), has_spec.eq(1), phase.eq(Phase.CONV)]
                                read_next()
                            with m.Case(ord("z")):
                                m.d.sync += [long.eq(1), has_spec.eq(1), phase.eq(Phase.CONV)]
                                read_next()
                            with m.Default():
                                m.d.sync += phase.eq(Phase.CONV)
                    with m.Case(Phase.LENGTH_L):
                        m.d.sync += phase.eq(Phase.CONV)
                        with m.If(ch == ord("l")):
                            read_next()
                    with m.Case(Phase.CONV):
                        m.d.sync += phase.eq(Phase.LITERAL)
                        with m.Switch(ch):
                            with m.Case(ord("%")):
                                with m.If(has_spec):
                                    einval()
                                with m.Elif(emit):
                                    m.next = "LITERAL_PUT"
                                with m.Else():
                                    read_next()
                            for c, kind in _CONVS.items():
                                with m.Case(ord(c)):
                                    with m.If(used == 3):
                                        einval()
                                    with m.Else():
                                        m.d.sync += [conv.eq(kind), used.eq(used + 1), neg.eq(0)]
                                        self._start_conversion(
                                            m, kind, emit, masked, extended, magnitude, value,
                                            neg, digits, steps, start_string, read_next)
                            with m.Default():
                                einval()

            with m.State("LITERAL_PUT"):
                send(ch, "FMT_ISSUE")

            # --- a %s string: its length (up to the NUL or 64 bytes), faults --------------------
            with m.State("MEASURE_ISSUE"):
                m.d.comb += mem.en.eq(1)
                m.next = "MEASURE_WAIT"
            with m.State("MEASURE_WAIT"):
                with m.If(mem.done):
                    with m.If(mem.fault):
                        finish(0, fault=1)
                    with m.Elif((byte == 0) | (idx == STRING_MAX - 1)):
                        m.d.sync += [slen.eq(idx + (byte != 0)), in_string.eq(0)]
                        with m.If(emit):
                            m.next = "LAYOUT"
                        with m.Else():
                            read_next()
                    with m.Else():
                        m.d.sync += idx.eq(idx + 1)
                        m.next = "MEASURE_ISSUE"

            # --- decimal digits: double dabble, 64 steps ---------------------------------------
            with m.State("DABBLE"):
                with m.If(steps != 0):
                    m.d.sync += [digits.eq(Cat(value[63], dabbled[:-1])), value.eq(value << 1),
                                 steps.eq(steps - 1)]
                with m.Else():
                    m.next = "LAYOUT"

            # --- the field: spaces, sign, 0x, zeros, body, spaces -------------------------------
            with m.State("LAYOUT"):
                m.d.sync += [
                    lpad.eq(Mux(minus | zero_fill, 0, pad)),
                    zeros.eq(prec_zeros + Mux(zero_fill, pad, 0)),
                    rpad.eq(Mux(minus, pad, 0)),
                    blen.eq(body), has_sign.eq(signed_field), prefix.eq(prefixed),
                    sign_char.eq(Mux(neg, ord("-"), Mux(plus, ord("+"), ord(" ")))),
                    idx.eq(0),
                ]
                m.next = "LEFT"
            with m.State("LEFT"):
                with m.If(lpad != 0):
                    m.d.comb += [offer.eq(1), out_byte.eq(ord(" "))]
                    with m.If(put):
                        m.d.sync += lpad.eq(lpad - 1)
                with m.Elif(has_sign):
                    m.next = "SIGN"
                with m.Else():
                    m.next = "PREFIX_0"
            with m.State("SIGN"):
                send(sign_char, "PREFIX_0")
            with m.State("PREFIX_0"):
                with m.If(prefix):
                    send(ord("0"), "PREFIX_X")
                with m.Else():
                    m.next = "ZEROS"
            with m.State("PREFIX_X"):
                send(Mux(conv == Conv.HEX_UPPER, ord("X"), ord("x")), "ZEROS")
            with m.State("ZEROS"):
                with m.If(zeros != 0):
                    m.d.comb += [offer.eq(1), out_byte.eq(ord("0"))]
                    with m.If(put):
                        m.d.sync += zeros.eq(zeros - 1)
                with m.Else():
                    m.next = "BODY"
            with m.State("BODY"):
                with m.If(idx == blen):
                    m.next = "RIGHT"
                with m.Elif(conv == Conv.STRING):
                    m.d.sync += in_string.eq(1)
                    m.next = "STRING_ISSUE"
                with m.Else():
                    m.d.comb += offer.eq(1)
                    with m.Switch(conv):
                        with m.Case(Conv.CHAR):
                            m.d.comb += out_byte.eq(value[:8])
                        with m.Case(Conv.POINTER):
                            m.d.comb += out_byte.eq(
                                Mux(idx == 0, ord("0"),
                                    Mux(idx == 1, ord("x"), digit_char(n_digits + 1 - idx))))
                        with m.Default():
                            m.d.comb += out_byte.eq(digit_char(n_digits - 1 - idx))
                    with m.If(put):
                        m.d.sync += idx.eq(idx + 1)
            with m.State("STRING_ISSUE"):
                m.d.comb += mem.en.eq(1)
                m.next = "STRING_WAIT"
            with m.State("STRING_WAIT"):
                # Pass 1 read these bytes without a fault; memory has not changed since.
                with m.If(mem.done):
                    m.d.sync += [ch.eq(byte), in_string.eq(0)]
                    m.next = "STRING_PUT"
            with m.State("STRING_PUT"):
                m.d.comb += [offer.eq(1), out_byte.eq(ch)]
                with m.If(put):
                    m.d.sync += idx.eq(idx + 1)
                    m.next = "BODY"
            with m.State("RIGHT"):
                with m.If(rpad != 0):
                    m.d.comb += [offer.eq(1), out_byte.eq(ord(" "))]
                    with m.If(put):
                        m.d.sync += rpad.eq(rpad - 1)
                with m.Else():
                    read_next()

            with m.State("END"):
                m.d.comb += [offer.eq(1), out_end.eq(1)]
                with m.If(self.text.ready):
                    finish(count)
            with m.State("DONE"):
                m.d.comb += self.done.eq(1)
                m.next = "IDLE"
        return m

    @staticmethod
    def _start_conversion(m, kind, emit, masked, extended, magnitude, value, neg, digits, steps,
                          start_string, read_next):
        """Statements for conversion ``kind`` once its character is accepted: pass 1 only
        reads a ``%s`` string (for its faults); pass 2 prepares the digits or the string."""
        if kind == Conv.STRING:
            m.d.sync += value.eq(masked)
            start_string()
            return
        with m.If(~emit):
            read_next()
        with m.Else():
            if kind in (Conv.SIGNED, Conv.UNSIGNED):
                if kind == Conv.SIGNED:
                    m.d.sync += [value.eq(magnitude), neg.eq(extended[63])]
                else:
                    m.d.sync += value.eq(masked)
                m.d.sync += [digits.eq(0), steps.eq(64)]
                m.next = "DABBLE"
            else:
                m.d.sync += [value.eq(masked), digits.eq(masked)]
                m.next = "LAYOUT"
