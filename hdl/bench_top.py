"""The top that the RTL benches simulate: the CPU plus the conformance profile's helper unit.

:class:`BenchTop` has every port of :class:`bpfcore.hdl.cpu.Cpu` except the helper port, which it
connects to :class:`ConformanceHelpers`: helper 5 is the conformance suite's "unwind" helper
(r0 = r1; the program ends normally with r0 = 0 when r1 == 0), any other id answers with
``Fault.BAD_CALL``.
"""

from amaranth import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from bpfcore import abi
from .ports import pass_through
from .unused import unelaborated

__all__ = ["ConformanceHelpers", "BenchTop"]


class ConformanceHelpers(wiring.Component):
    """Helper unit of the conformance profile.

    Members
    -------
    req : In(stream.Signature(HelperRequest))
        Helper calls from the CPU; accepted one at a time.
    resp : Out(stream.Signature(HelperResponse))
        One response per request, one cycle after it was accepted at the earliest.
    """

    def __init__(self):
        from .layouts import HelperRequest, HelperResponse
        super().__init__({
            "req": In(stream.Signature(HelperRequest)),
            "resp": Out(stream.Signature(HelperResponse)),
        })

    def elaborate(self, platform):
        m = Module()
        req, resp = self.req, self.resp
        # One response register: a new request is taken only once the last answer was taken.
        m.d.comb += req.ready.eq(~resp.valid)
        with m.If(resp.valid & resp.ready):
            m.d.sync += resp.valid.eq(0)
        with m.If(req.valid & req.ready):
            m.d.sync += resp.valid.eq(1)
            with m.If(req.payload.id == abi.CONFORMANCE_UNWIND_HELPER):
                m.d.sync += [resp.payload.r0.eq(req.payload.r1),
                             resp.payload.fault.eq(abi.Fault.NONE),
                             resp.payload.halt.eq(req.payload.r1 == 0)]
            with m.Else():
                m.d.sync += [resp.payload.r0.eq(0),
                             resp.payload.fault.eq(abi.Fault.BAD_CALL),
                             resp.payload.halt.eq(0)]
        return m


class BenchTop(wiring.Component):
    """The CPU with the conformance helpers attached: what the cocotb benches simulate.

    Parameters
    ----------
    program_slots, frames, with_divider, with_atomics, inject_bug
        Passed to :class:`bpfcore.hdl.cpu.Cpu` (which validates them).

    Members
    -------
    Every member of the Cpu's signature except those in ``_HELPER_PORTS``, with the same names,
    directions and shapes.
    """

    #: CPU ports the bench top keeps inside: the helper streams (answered by
    #: :class:`ConformanceHelpers`), the helper memory port (unused: ``en`` stays low) and the
    #: map value port (no map memory: ``ok`` stays low, so map accesses fault as out of bounds).
    _HELPER_PORTS = ("helper_req", "helper_resp", "hmem", "maps")

    def __init__(self, *, program_slots=4096, frames=8, with_divider=True, with_atomics=True,
                 inject_bug=None):
        from .cpu import Cpu
        self._cpu = Cpu(program_slots=program_slots, frames=frames, with_divider=with_divider,
                        with_atomics=with_atomics, inject_bug=inject_bug)
        # The Cpu is elaborated with this top; a top built only for its signature must not warn.
        unelaborated(self._cpu)
        members = {name: member for name, member in self._cpu.signature.members.items()
                   if name not in self._HELPER_PORTS}
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        m.submodules.cpu = cpu = self._cpu
        m.submodules.helpers = helpers = ConformanceHelpers()
        wiring.connect(m, cpu.helper_req, helpers.req)
        wiring.connect(m, helpers.resp, cpu.helper_resp)
        pass_through(m, self, lambda name: (cpu, name))
        return m
