"""The board-independent SoC: two Ethernet ports, the packet datapath, one XDP core.

::

    PHY 0 -- EthPort(rx0, tx) --rx words--> Datapath --slots--> XdpCore (packet slots)
    PHY 1 -- EthPort(rx1, tx) <--tx words--          <--verdict--

Frames are written by the datapath straight into the core's packet slots; the core runs one
slot while the next frames arrive in others, and the verdict sends the slot out on a port (see
:mod:`bpfcore.hdl.datapath`). Port ``p`` is ifindex ``p + 1``.

Clock domains (ARCHITECTURE.md, "Clock domains"; :data:`CLOCK_DOMAINS`): ``rx0`` and ``rx1``
from the PHYs' receive clocks, ``tx`` from the board PLL, all 125 MHz; ``sync``, the core, at
the build's clock (62.5 MHz is the target, 50 MHz the floor). Only the MACs' byte paths and one
side of their FIFOs run at 125 MHz.

The host side (program memory, the map memory's host streams, the helper settings, the retire
trace) is the core's, passed through: a bench or, later, the control unit drives it.
"""

from amaranth import Module
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from bpfcore import abi
from .datapath import Datapath
from .eth.layouts import COUNTER_NAMES as MAC_COUNTER_NAMES
from .eth.layouts import GmiiSignature, RgmiiSignature
from .eth.port import EthPort
from .ports import pass_through
from .unused import rejecting, unelaborated
from .xdpcore import XdpCore

__all__ = ["Soc", "CLOCK_DOMAINS", "COUNTER_NAMES", "SocCounters", "PORTS"]

PORTS = 2

#: Every clock domain of the SoC: (name, what drives it, frequency in MHz; None: the build's).
CLOCK_DOMAINS = (
    ("rx0", "port 0 PHY receive clock (RGMII RXC)", 125.0),
    ("rx1", "port 1 PHY receive clock (RGMII RXC)", 125.0),
    ("tx", "board PLL, shared by both transmitters", 125.0),
    ("sync", "board PLL: the core, the datapath, the MACs' core side", None),
)

#: Per-port counters of the SoC: the datapath's (by ingress port; the invariant
#: ``received = pass + tx + redirect + drop + aborted + rejected + no_buffer`` holds once traffic
#: has drained) and, from the MAC, why frames were bad. A frame the MAC drops whole (four bytes
#: or fewer, or no room at all in its FIFO) never reaches the datapath: it shows in ``runt`` or
#: ``overflow`` only.
COUNTER_NAMES = ("received", "bytes_received", "pass", "tx", "redirect", "drop", "aborted",
                 "rejected", "no_buffer", "fcs_error", "runt", "oversize", "rx_error",
                 "overflow", "frames_tx", "bytes_tx")

#: The counters of one port.
SocCounters = data.StructLayout({name: 32 for name in COUNTER_NAMES})

#: Core ports the datapath drives (run control and the packet slots) or that stay inside.
_DATAPATH_DRIVES = ("start", "start_slot", "start_r1", "start_r2", "budget", "data", "data_end",
                    "ingress_ifindex", "rx_queue_index", "dp")


class Soc(wiring.Component):
    """Two MAC ports, the packet datapath and one XDP core.

    Parameters
    ----------
    interface : str
        ``"rgmii"`` (the board: PHY pins) or ``"gmii"`` (benches: GMII in the RX and TX domains).
    primitives : str
        The RGMII adapters' DDR registers: ``"ecp5"`` or ``"model"`` (simulation).
    rx_delay, tx_delay : int
        ``DELAYG`` taps of the RGMII adapters (0: none).
    max_length : int
        Longest frame the MACs take, FCS included.
    slots : int
        Packet slots (frames in flight: one running, the others arriving or leaving).
    budget : int
        Instructions a program may retire per packet.
    core : dict
        :class:`~bpfcore.hdl.xdpcore.XdpCore` arguments (sizes, helpers); ``pkt_slots`` is set
        from ``slots``.

    Members
    -------
    rgmii0, rgmii1 : Out(RgmiiSignature)
        With ``interface="rgmii"``.
    gmii0_rx, gmii1_rx : In(GmiiSignature); gmii0_tx, gmii1_tx : Out(GmiiSignature)
        With ``interface="gmii"`` (in ``rx0``/``rx1`` and ``tx``).
    counters : Out(ArrayLayout(SocCounters, 2))
        Per-port counters (:data:`COUNTER_NAMES`).
    free_slots : Out(range(slots + 1))
        Packet slots free now (all of them once traffic has drained).
    run_start, run_port : Out(1)
        A run starts this cycle, on a frame of that port (benches log the dispatch order).
    rx_queued, rx_refused : Out(2)
        Bit ``p``: a frame of port ``p`` was queued for the core / refused this cycle
        (:class:`~bpfcore.hdl.datapath.Datapath`'s ``queued`` and ``refused``).
    (core ports)
        Every port of the core that the datapath does not drive: program memory, map host
        streams, helper settings and results, ``printk``, ``trace``, ``busy``, ``done``, the
        results.

    Raises
    ------
    ValueError
        An argument out of range (the message echoes it).
    """

    def __init__(self, *, interface="rgmii", primitives="ecp5", rx_delay=0, tx_delay=0,
                 max_length=1518, slots=4, budget=abi.DEFAULT_BUDGET, core=None):
        with rejecting(self):
            if interface not in ("rgmii", "gmii"):
                raise ValueError(f"Soc: interface must be 'rgmii' or 'gmii', not {interface!r}")
            if core is not None and not isinstance(core, dict):
                raise ValueError(f"Soc: core must be a dict of XdpCore arguments, not {core!r}")
            options = dict(core or {})
            options["pkt_slots"] = slots
            self.datapath = Datapath(ports=PORTS, slots=slots, slot_bytes=abi.PKT_SLOT_SIZE,
                                     budget=budget)
            self.macs = [EthPort(rx_domain=f"rx{p}", tx_domain="tx", interface=interface,
                                 primitives=primitives, rx_delay=rx_delay, tx_delay=tx_delay,
                                 max_length=max_length)
                         for p in range(PORTS)]
            self.core = XdpCore(**options)
        unelaborated(self.datapath, self.core, *self.macs)
        self.interface = interface
        self.slots = slots
        members = {}
        for p in range(PORTS):
            if interface == "rgmii":
                members[f"rgmii{p}"] = Out(RgmiiSignature)
            else:
                members[f"gmii{p}_rx"] = In(GmiiSignature)
                members[f"gmii{p}_tx"] = Out(GmiiSignature)
        members["counters"] = Out(data.ArrayLayout(SocCounters, PORTS))
        members["free_slots"] = Out(range(slots + 1))
        members["run_start"] = Out(1)
        members["run_port"] = Out(1)
        members["rx_queued"] = Out(PORTS)
        members["rx_refused"] = Out(PORTS)
        self._core_outside = [name for name in self.core.signature.members
                              if name not in _DATAPATH_DRIVES]
        for name in self._core_outside:
            members[name] = self.core.signature.members[name]
        super().__init__(members)

    @property
    def helper_ids(self):
        """The helpers the core answers (a program calling another is refused at load)."""
        return self.core.helper_ids

    def elaborate(self, platform):
        m = Module()
        dp, core, macs = self.datapath, self.core, self.macs
        m.submodules.datapath = dp
        m.submodules.core = core
        for p, mac in enumerate(macs):
            m.submodules[f"mac{p}"] = mac
            if self.interface == "rgmii":
                wiring.connect(m, wiring.flipped(getattr(self, f"rgmii{p}")), mac.rgmii)
            else:
                wiring.connect(m, wiring.flipped(getattr(self, f"gmii{p}_rx")), mac.gmii_rx)
                wiring.connect(m, mac.gmii_tx, wiring.flipped(getattr(self, f"gmii{p}_tx")))
            wiring.connect(m, mac.rx, dp.rx[p])
            wiring.connect(m, dp.tx[p], mac.tx)

        # The datapath runs the core: run control and the packet slots.
        run = dp.core
        wiring.connect(m, dp.mem, core.dp)
        m.d.comb += [
            core.start.eq(run.start), core.start_slot.eq(run.start_slot),
            core.data.eq(run.data), core.data_end.eq(run.data_end),
            core.ingress_ifindex.eq(run.ingress_ifindex), core.budget.eq(run.budget),
            core.start_r1.eq(abi.CTX_BASE), core.start_r2.eq(0), core.rx_queue_index.eq(0),
            run.busy.eq(core.busy), run.done.eq(core.done),
            run.result_r0.eq(core.result_r0), run.result_fault.eq(core.result_fault),
            run.result_data.eq(core.result_data), run.result_data_end.eq(core.result_data_end),
            run.redirect_kind.eq(core.redirect_kind),
            run.redirect_ifindex.eq(core.redirect_ifindex),
            self.run_start.eq(run.start), self.run_port.eq(run.ingress_ifindex == 2),
            self.free_slots.eq(dp.free_slots),
            self.rx_queued.eq(dp.queued), self.rx_refused.eq(dp.refused),
        ]

        for p, mac in enumerate(macs):
            out, dpc, macc = self.counters[p], dp.counters[p], mac.counters
            for name in COUNTER_NAMES:
                if name in MAC_COUNTER_NAMES:
                    m.d.comb += getattr(out, name).eq(getattr(macc, name))
                else:
                    m.d.comb += getattr(out, name).eq(getattr(dpc, name))

        pass_through(m, self, lambda name: (core, name), self._core_outside)
        return m
