"""The transmit side of one port: frames read out of packet slots onto the MAC's word stream."""

from amaranth import Cat, Module, Signal, Mux
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO, SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from .layouts import TxWord, tx_job_layout

__all__ = ["TxReader"]

#: Words read ahead of the transmit stream (room for the read port's one-cycle latency and the
#: realigner's extra word).
_READ_AHEAD = 4


class TxReader(wiring.Component):
    """Sends the bytes ``[start, end)`` of a slot as one frame, then frees the slot.

    Jobs wait in a queue of ``slots`` entries (so pushing never blocks: no more frames than slots
    are ever in flight). The reader asks the shared read port for the job's words, keeps up to
    four of them ahead of the stream, and realigns them: output word ``k`` is bytes
    ``start + 8k ..`` taken from read words ``k`` and ``k + 1`` (``start`` need not be aligned).
    With the read port to itself it sends one word per cycle.

    Parameters
    ----------
    slots : int
        Number of packet slots (and queue entries).
    slot_bytes : int
        Bytes per slot.

    Members
    -------
    job : In(stream.Signature(tx_job_layout(slots, slot_bytes)))
        Frames to send (``end > start``).
    tx : Out(stream.Signature(TxWord))
        The frames sent.
    rvalid : Out(1)
        The reader asks to read word ``raddr`` of ``rslot``.
    rslot, raddr : Out
    rgrant : In(1)
        The read happens this cycle; ``rdata`` holds the word the next cycle.
    rdata : In(64)
    free : Out(1)
        ``free_slot`` is sent and free again (pulse).
    free_slot : Out(range(slots))
    """

    def __init__(self, *, slots, slot_bytes):
        self.slots, self.slot_bytes = slots, slot_bytes
        self._job_layout = tx_job_layout(slots, slot_bytes)
        super().__init__({
            "job": In(stream.Signature(self._job_layout)),
            "tx": Out(stream.Signature(TxWord)),
            "rvalid": Out(1), "rslot": Out(range(slots)), "raddr": Out(range(slot_bytes // 8)),
            "rgrant": In(1), "rdata": In(64),
            "free": Out(1), "free_slot": Out(range(slots)),
        })

    def elaborate(self, platform):
        m = Module()
        words = self.slot_bytes // 8

        m.submodules.queue = queue = SyncFIFOBuffered(
            width=self._job_layout.size, depth=self.slots)
        m.submodules.ahead = ahead = SyncFIFO(width=64, depth=_READ_AHEAD)
        m.d.comb += [queue.w_data.eq(self.job.payload), queue.w_en.eq(self.job.valid),
                     self.job.ready.eq(queue.w_rdy)]
        job = data.View(self._job_layout, queue.r_data)

        active = Signal()
        shift = Signal(3)           # start % 8
        to_read = Signal(range(words + 2))
        inflight = Signal()         # a read was granted last cycle: rdata holds its word
        remaining = Signal(range(self.slot_bytes + 1))
        prev = Signal(64)
        prev_valid = Signal()

        with m.If(~active & queue.r_rdy):
            m.d.comb += queue.r_en.eq(1)
            m.d.sync += [
                active.eq(1), self.rslot.eq(job.slot), shift.eq(job.start[:3]),
                self.raddr.eq(job.start >> 3),
                to_read.eq(((job.end - 1) >> 3) - (job.start >> 3) + 1),
                remaining.eq(job.end - job.start), prev_valid.eq(0),
            ]

        m.d.comb += self.rvalid.eq(active & (to_read != 0)
                                   & (ahead.level + inflight < _READ_AHEAD))
        m.d.sync += inflight.eq(self.rvalid & self.rgrant)
        with m.If(self.rvalid & self.rgrant):
            m.d.sync += [self.raddr.eq(self.raddr + 1), to_read.eq(to_read - 1)]
        m.d.comb += [ahead.w_data.eq(self.rdata), ahead.w_en.eq(inflight)]

        # Aligned (start % 8 == 0): output word k is read word k. Otherwise output word k is
        # bytes shift.. of read word k (held in prev) then bytes ..shift of read word k + 1.
        out = self.tx.payload
        with m.Switch(shift):
            with m.Case(0):
                m.d.comb += out.data.eq(ahead.r_data)
            for sh in range(1, 8):
                with m.Case(sh):
                    m.d.comb += out.data.eq(Cat(prev[8 * sh:], ahead.r_data[:8 * sh]))
        m.d.comb += [out.count.eq(Mux(remaining > 8, 8, remaining)),
                     out.last.eq(remaining <= 8)]
        need_next = remaining > 8 - shift
        sent = self.tx.valid & self.tx.ready

        with m.If(active & (shift == 0)):
            m.d.comb += [self.tx.valid.eq(ahead.r_rdy), ahead.r_en.eq(sent)]
        with m.Elif(active & prev_valid):
            m.d.comb += self.tx.valid.eq(~need_next | ahead.r_rdy)
            with m.If(sent):
                with m.If(need_next):
                    m.d.comb += ahead.r_en.eq(1)
                    m.d.sync += prev.eq(ahead.r_data)
                with m.Else():
                    m.d.sync += prev_valid.eq(0)
        with m.Elif(active & ahead.r_rdy):
            m.d.comb += ahead.r_en.eq(1)
            m.d.sync += [prev.eq(ahead.r_data), prev_valid.eq(1)]

        with m.If(sent):
            m.d.sync += remaining.eq(remaining - out.count)
            with m.If(out.last):
                m.d.sync += [active.eq(0), prev_valid.eq(0)]
                m.d.comb += [self.free.eq(1), self.free_slot.eq(self.rslot)]
        return m

