"""The index-keyed map kinds: array, devmap and prog_array, rooms that add their ``DECODE``
branch to the sequencer (:mod:`.room`). The key is the slot (``seq.index``); these kinds have no
states of their own: they answer from ``DECODE`` or hand a slot to the value writer.
"""

from bpfcore.abi import MapType
from .layouts import Op, E_INVAL, E_NOENT, E_2BIG, E_EXIST
from .room import KindRoom

__all__ = ["ArrayKind", "FdArrayKind"]


class ArrayKind(KindRoom):
    """array maps: every index below max_entries is present; updates write the value (flags
    as the kernel's array map: ``BPF_NOEXIST`` is ``-EEXIST``, ``BPF_F_LOCK`` ``-EINVAL``),
    deletes are ``-EINVAL``.

    Parameters
    ----------
    seq : :class:`~.engine.Sequencer`
    """

    types = frozenset({MapType.ARRAY})

    def decode(self):
        m, seq = self.m, self.seq
        with m.Switch(seq.op):
            with m.Case(Op.LOOKUP, Op.PEEK):
                m.d.sync += [seq.o_found.eq(seq.in_range), seq.slot.eq(seq.index)]
                m.next = "RESULT"
            with m.Case(Op.UPDATE):
                with m.If(seq.f_array_bad):
                    m.d.sync += seq.fail(E_INVAL)
                    m.next = "RESPOND"
                with m.Elif(~seq.in_range):
                    m.d.sync += seq.fail(E_2BIG)
                    m.next = "RESPOND"
                with m.Elif(seq.f_noexist):
                    m.d.sync += seq.fail(E_EXIST)
                    m.next = "RESPOND"
                with m.Elif(seq.f_lock):
                    m.d.sync += seq.fail(E_INVAL)
                    m.next = "RESPOND"
                with m.Else():
                    m.d.sync += seq.slot.eq(seq.index)
                    m.next = "VALUE_SETUP"
            with m.Default():
                m.d.sync += seq.fail(E_INVAL)
                m.next = "RESPOND"


class FdArrayKind(KindRoom):
    """devmap and prog_array maps: an index is present if its used bit is set (host updates
    and deletes; programs may only look up, and prog_array lookups are the tail-call helper's,
    faulted by the sequencer).

    Parameters
    ----------
    seq : :class:`~.engine.Sequencer`
    """

    types = frozenset({MapType.DEVMAP, MapType.PROG_ARRAY})

    def decode(self):
        m, seq = self.m, self.seq
        index, in_range = seq.index, seq.in_range
        m.d.comb += seq.storage.u_at.eq(index)
        present = in_range & seq.storage.u_bit
        with m.Switch(seq.op):
            with m.Case(Op.LOOKUP, Op.PEEK):
                m.d.sync += [seq.o_found.eq(present), seq.slot.eq(index)]
                m.next = "RESULT"
            with m.Case(Op.UPDATE):
                devmap = seq.mtype == MapType.DEVMAP
                with m.If(devmap & seq.f_bad):
                    m.d.sync += seq.fail(E_INVAL)
                    m.next = "RESPOND"
                with m.Elif(~in_range):
                    m.d.sync += seq.fail(E_2BIG)
                    m.next = "RESPOND"
                with m.Elif(devmap & seq.f_noexist):
                    m.d.sync += seq.fail(E_EXIST)
                    m.next = "RESPOND"
                with m.Elif(devmap & (seq.vsize == 8) & seq.f_dev_high):
                    m.d.sync += seq.fail(E_INVAL)
                    m.next = "RESPOND"
                with m.Else():
                    m.d.sync += seq.slot.eq(index)
                    m.d.comb += seq.set_used(None, 1)
                    m.next = "VALUE_SETUP"
            with m.Default():
                with m.If(~in_range):
                    m.d.sync += seq.fail(E_2BIG)
                    m.next = "RESPOND"
                with m.Elif(~present):
                    m.d.sync += seq.fail(E_NOENT)
                    m.next = "RESPOND"
                with m.Else():
                    m.d.sync += [seq.slot.eq(index), seq.v_zero.eq(1)]
                    m.d.comb += seq.set_used(None, 0)
                    m.next = "VALUE_SETUP"
