"""The Ethernet MAC alone on the Colorlight 5A-75B: a build target for its timing and size.

:class:`EthPortTop` is one :class:`~bpfcore.hdl.eth.port.EthPort` on the board's first RGMII
PHY with the real ECP5 DDR primitives, its TX (125 MHz) and core (62.5 MHz) clocks from the
PLL, the RX clock from the PHY's RXC pin, and the core side looped back (every received frame,
good or bad, is sent again) so that nothing is optimised away; the counters fold into the LED.
:func:`build` runs the board flow (:func:`bpfcore.boards.flow.run_flow`: yosys, nextpnr-ecp5
with ``--report``, ecppack) and returns its summary with the bitstream's path and size.
nextpnr cannot place IDDRX1F/ODDRX1F out of context (they belong to I/O pads), which is why
this target is a board build rather than a ``synth-report`` target.
"""

import hashlib
import json
from pathlib import Path

from amaranth import Module, Signal
from amaranth.lib import io, wiring

from bpfcore.boards import flow
from bpfcore.boards.flow import add_domain, pll

__all__ = ["EthPortTop", "DOMAINS", "domain_fmax", "cache_folder", "build"]

#: Every clock domain of the target: (source, constraint in MHz).
DOMAINS = {"rx0": ("PHY 0 RXC pin", 125.0), "tx": ("PLL CLKOP", 125.0),
           "sync": ("PLL CLKOS", 62.5)}


def domain_fmax(summary):
    """``{domain: achieved MHz}`` from a build summary (:func:`~bpfcore.boards.flow.domain_fmax`
    over :data:`DOMAINS`)."""
    return flow.domain_fmax(summary, DOMAINS)


class EthPortTop(wiring.Component):
    """One RGMII port looped back through the core domain (see the module docstring).

    Parameters
    ----------
    rx_delay, tx_delay : int
        ``DELAYG`` taps given to the port's RGMII adapter.
    """

    def __init__(self, rx_delay=0, tx_delay=0):
        self._rx_delay = rx_delay
        self._tx_delay = tx_delay
        super().__init__({})

    def elaborate(self, platform):
        from bpfcore.hdl.eth.port import EthPort
        m = Module()
        clk25 = io.Buffer("i", platform.request("clk25", 0, dir="-"))
        m.submodules.clk25 = clk25
        pins = platform.request("eth_rgmii", 0, dir={
            "rst": "-", "mdc": "-", "mdio": "-", "tx_clk": "-", "tx_ctl": "-", "tx_data": "-",
            "rx_clk": "-", "rx_ctl": "-", "rx_data": "-"})
        buffers = {}
        for name, direction in (("rx_clk", "i"), ("rx_ctl", "i"), ("rx_data", "i"),
                                ("tx_clk", "o"), ("tx_ctl", "o"), ("tx_data", "o"),
                                ("rst", "o")):
            buffers[name] = m.submodules[f"{name}_buf"] = io.Buffer(direction, getattr(pins, name))
        platform.add_clock_constraint(pins.rx_clk.io, 125e6)

        # tx 125 MHz (CLKOP), sync 62.5 MHz (CLKOS); rx0 from the PHY.
        locked = pll(m, clk25.i, 25.0, DOMAINS["sync"][1], DOMAINS["tx"][1])
        add_domain(m, "rx0", buffers["rx_clk"].i, locked)

        m.submodules.port = port = EthPort(rx_domain="rx0", tx_domain="tx", primitives="ecp5",
                                           rx_delay=self._rx_delay, tx_delay=self._tx_delay)
        m.d.comb += [
            port.rgmii.rx_data.eq(buffers["rx_data"].i),
            port.rgmii.rx_ctl.eq(buffers["rx_ctl"].i),
            buffers["tx_data"].o.eq(port.rgmii.tx_data),
            buffers["tx_ctl"].o.eq(port.rgmii.tx_ctl),
            buffers["tx_clk"].o.eq(port.rgmii.tx_clk),
            buffers["rst"].o.eq(~locked),     # PinsN: the PHY leaves reset on lock
            # Loopback: what comes in goes out again.
            port.tx.payload.data.eq(port.rx.payload.data),
            port.tx.payload.count.eq(port.rx.payload.count),
            port.tx.payload.last.eq(port.rx.payload.last),
            port.tx.valid.eq(port.rx.valid),
            port.rx.ready.eq(port.tx.ready),
        ]
        m.submodules.led = led = io.Buffer("o", platform.request("led", 0, dir="-"))
        folded = Signal()
        m.d.sync += folded.eq(port.counters.as_value().xor())
        m.d.comb += led.o.eq(folded)
        return m


def cache_folder(rx_delay=0, tx_delay=0, seed=1):
    """Where :func:`build` keeps the results for the current sources and these settings
    (``<build>/board/eth_port-<hash>``: a hash of the design sources, this file and the tools)."""
    import amaranth
    from bpfcore.sim.rtl.verilog import build_root, design_sources
    h = hashlib.sha256(json.dumps([rx_delay, tx_delay, seed, amaranth.__version__]).encode())
    for path in design_sources() + [Path(__file__).resolve(), Path(flow.__file__).resolve()]:
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return build_root() / "board" / f"eth_port-{h.hexdigest()[:16]}"


def build(rx_delay=0, tx_delay=0, seed=1, force=False):
    """Build :class:`EthPortTop` for the Colorlight 5A-75B (or reuse the cached build of the
    same sources); return the report summary plus ``bitstream`` (path) and
    ``bitstream_bytes``."""
    from bpfcore.boards.colorlight_5a75b import Colorlight5A75BPlatform
    build_dir = cache_folder(rx_delay, tx_delay, seed)
    summary_path = build_dir / "summary.json"
    if summary_path.exists() and not force:
        return json.loads(summary_path.read_text())
    summary = flow.run_flow(Colorlight5A75BPlatform(), EthPortTop(rx_delay, tx_delay),
                            "eth_port", build_dir, seed=seed)
    summary_path.write_text(json.dumps(summary, indent=1) + "\n")
    return summary
