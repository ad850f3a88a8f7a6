"""Helper port: one stream request {id, r1..r5} and one stream response {r0, fault, halt} per call.

The pipe stalls in execute while the helper works. Stream rules (Amaranth ``lib.stream``): the
request's ``valid`` never waits for ``ready``, and its payload holds still while ``valid`` is up.
"""

from amaranth.hdl import Module
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from bpfcore.abi import Fault
from ..layouts import HelperRequest, HelperResponse

__all__ = ["HelperPort"]


class HelperPort(wiring.Component):
    """Helper call sequencer.

    Members
    -------
    x_start : In(1)
        Issue a call with ``x_id`` and ``x_args`` (restarts the sequencer).
    x_bad : In(1)
        The id is not a helper (a ``callx`` register above 32 bits): finish at once with
        ``Fault.BAD_CALL``, without a request.
    x_id : In(32)
    x_args : In(ArrayLayout(64, 5))
        r1..r5.
    x_done : Out(1)
        The response arrived; ``x_r0``, ``x_fault``, ``x_halt`` hold it until the next start.
    x_r0 : Out(64)
    x_fault : Out(4)
    x_halt : Out(1)
    x_ctx_we, x_data, x_data_end : Out
        The packet bounds the helper moved (``xdp_adjust_head``/``xdp_adjust_tail``), taken
        when ``x_ctx_we``.
    x_nested : In(1)
        The call comes from inside a bpf-to-bpf call (sent with the request).
    x_tail, x_prog_base, x_prog_len : Out
        ``tail_call`` taken: continue in the program at ``x_prog_base`` of ``x_prog_len``
        slots.
    req : Out(stream.Signature(HelperRequest))
    resp : In(stream.Signature(HelperResponse))
    """

    x_start: In(1)
    x_bad: In(1)
    x_id: In(32)
    x_args: In(data.ArrayLayout(64, 5))
    x_done: Out(1)
    x_r0: Out(64)
    x_fault: Out(4)
    x_halt: Out(1)
    x_ctx_we: Out(1)
    x_data: Out(32)
    x_data_end: Out(32)
    x_nested: In(1)
    x_tail: Out(1)
    x_prog_base: Out(16)
    x_prog_len: Out(16)
    req: Out(stream.Signature(HelperRequest))
    resp: In(stream.Signature(HelperResponse))

    def elaborate(self, platform):
        m = Module()
        payload = self.req.payload
        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.x_start):
                    m.next = "REQUEST"
                with m.If(self.x_start & self.x_bad):
                    m.next = "DONE"
            with m.State("REQUEST"):
                m.d.comb += self.req.valid.eq(1)
                with m.If(self.req.ready):
                    m.next = "RESPONSE"
            with m.State("RESPONSE"):
                m.d.comb += self.resp.ready.eq(1)
                with m.If(self.resp.valid):
                    m.d.sync += [
                        self.x_r0.eq(self.resp.payload.r0),
                        self.x_fault.eq(self.resp.payload.fault),
                        self.x_halt.eq(self.resp.payload.halt),
                        self.x_ctx_we.eq(self.resp.payload.ctx_we),
                        self.x_data.eq(self.resp.payload.data),
                        self.x_data_end.eq(self.resp.payload.data_end),
                        self.x_tail.eq(self.resp.payload.tail),
                        self.x_prog_base.eq(self.resp.payload.prog_base),
                        self.x_prog_len.eq(self.resp.payload.prog_len),
                    ]
                    m.next = "DONE"
            with m.State("DONE"):
                m.d.comb += self.x_done.eq(1)
                with m.If(self.x_start):
                    m.next = "REQUEST"
                with m.If(self.x_start & self.x_bad):
                    m.next = "DONE"
        with m.If(self.x_start & self.x_bad):
            m.d.sync += [self.x_r0.eq(0), self.x_fault.eq(Fault.BAD_CALL), self.x_halt.eq(0),
                         self.x_ctx_we.eq(0), self.x_tail.eq(0)]
        with m.If(self.x_start):
            m.d.sync += [
                payload.id.eq(self.x_id),
                payload.r1.eq(self.x_args[0]),
                payload.r2.eq(self.x_args[1]),
                payload.r3.eq(self.x_args[2]),
                payload.r4.eq(self.x_args[3]),
                payload.r5.eq(self.x_args[4]),
                payload.nested.eq(self.x_nested),
            ]
        return m
