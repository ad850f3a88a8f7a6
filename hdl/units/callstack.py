"""Call/frame stack of bpf-to-bpf calls: return pc and r6-r9 per frame, and r10.

``call local`` pushes a frame and moves r10 down by ``abi.STACK_FRAME_SIZE``; ``exit`` in a
called function pops it. r10 is not stored: it is ``STACK_TOP - depth * STACK_FRAME_SIZE``.
The frames live in block RAM (272 bits x ``frames``), read synchronously at ``depth - 1``: the
top frame is valid from the second cycle after a push or pop. A ``call local`` or a return
redirects the fetch, so the next ``exit`` reaches execute three cycles later at the earliest.
In LUT RAM the same frames cost 68 TRELLIS_DPR16X4, 408 placed COMB sites.
"""

from amaranth.hdl import Module
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from bpfcore import abi
from ..ram import NO_RW_CHECK, registered_read_port

__all__ = ["CallStack"]


class CallStack(wiring.Component):
    """Frame stack.

    Parameters
    ----------
    frames : int
        Call frames, the entry program's included: ``depth`` goes from 0 to ``frames - 1``.

    Members
    -------
    x_reset : In(1)
        Back to depth 0 (start of a run).
    x_push : In(1)
        Push ``x_ret_pc`` and ``x_saved`` (r6-r9); the caller checks ``x_full`` first.
    x_pop : In(1)
        Pop the top frame (only when ``depth`` > 0).
    x_ret_pc : In(16)
    x_saved : In(ArrayLayout(64, 4))
    depth : Out(range(frames))
    x_full : Out(1)
        A push would exceed ``frames`` (the call faults with ``Fault.CALL_DEPTH``).
    fp : Out(32)
        r10 of the current frame.
    top_ret_pc : Out(16)
    top_saved : Out(ArrayLayout(64, 4))
        The top frame (valid when ``depth`` > 0, from the second cycle after a push or pop).
    """

    def __init__(self, frames):
        self._frames = frames
        super().__init__({
            "x_reset": In(1),
            "x_push": In(1),
            "x_pop": In(1),
            "x_ret_pc": In(16),
            "x_saved": In(data.ArrayLayout(64, 4)),
            "depth": Out(range(frames)),
            "x_full": Out(1),
            "fp": Out(32),
            "top_ret_pc": Out(16),
            "top_saved": Out(data.ArrayLayout(64, 4)),
        })

    def elaborate(self, platform):
        m = Module()
        frames = self._frames
        entry = data.StructLayout({"ret_pc": 16, "saved": data.ArrayLayout(64, 4)})
        # One row per depth (frames rows; the last is never written) so that the read address
        # depth - 1, which wraps at depth 0, always names a row: no X in the generated Verilog.
        m.submodules.mem = mem = memory.Memory(shape=entry, depth=1 << (frames - 1).bit_length(),
                                               init=[], attrs={"ram_style": "block", **NO_RW_CHECK})
        wp = mem.write_port()
        # A push writes row ``depth`` while the port reads row ``depth - 1``: never the same row.
        rp = registered_read_port(m, mem, "frame")
        m.d.comb += [
            wp.addr.eq(self.depth),
            wp.data.ret_pc.eq(self.x_ret_pc),
            wp.data.saved.eq(self.x_saved),
            wp.en.eq(self.x_push),
            rp.addr.eq(self.depth - 1),
            self.top_ret_pc.eq(rp.data.ret_pc),
            self.top_saved.eq(rp.data.saved),
            self.x_full.eq(self.depth + 1 >= frames),
            self.fp.eq(abi.STACK_TOP - self.depth * abi.STACK_FRAME_SIZE),
        ]
        with m.If(self.x_reset):
            m.d.sync += self.depth.eq(0)
        with m.Elif(self.x_push):
            m.d.sync += self.depth.eq(self.depth + 1)
        with m.Elif(self.x_pop):
            m.d.sync += self.depth.eq(self.depth - 1)
        return m
