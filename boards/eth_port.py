"""The Ethernet MAC alone on the Colorlight 5A-75B: a build target for its timing and size.

:class:`EthPortTop` is one :class:`~bpfcore.hdl.eth.port.EthPort` on the board's first RGMII
PHY with the real ECP5 DDR primitives, its TX (125 MHz) and core (62.5 MHz) clocks from the
PLL, the RX clock from the PHY's RXC pin, and the core side looped back (every received frame,
good or bad, is sent again) so that nothing is optimised away; the counters fold into the LED.
:func:`build` runs the board flow (yosys, nextpnr-ecp5 with ``--report``, ecppack) and returns
:func:`~bpfcore.boards.synth.parse_report`'s summary with the bitstream's path and size.
nextpnr cannot place IDDRX1F/ODDRX1F out of context (they belong to I/O pads), which is why
this target is a board build rather than a ``synth-report`` target.
"""

import hashlib
import json
from pathlib import Path

from amaranth import ClockDomain, ClockSignal, Const, Instance, Module, Signal
from amaranth.lib import cdc, io, wiring

from bpfcore.errors import BpfcoreError

__all__ = ["EthPortTop", "DOMAINS", "domain_fmax", "cache_folder", "build"]

#: Every clock domain of the target: (source, constraint in MHz).
DOMAINS = {"rx0": ("PHY 0 RXC pin", 125.0), "tx": ("PLL CLKOP", 125.0),
           "sync": ("PLL CLKOS", 62.5)}


def domain_fmax(summary):
    """``{domain: achieved MHz}`` from a build summary: nextpnr names each clock after its
    global net (``$glbnet$port.rgmii.rx0_clk``), whose last part is the domain's clock signal
    (``rx0_clk``; ``clk`` for ``sync``)."""
    found = {}
    for net, figures in summary["clocks"].items():
        signal = net.rsplit("$", 1)[-1].rsplit(".", 1)[-1]
        domain = "sync" if signal == "clk" else signal.removesuffix("_clk")
        if domain in DOMAINS:
            found[domain] = figures["achieved_mhz"]
    return found


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

        # 25 MHz x 25 = 625 MHz VCO; CLKOP / 5 = 125 MHz (tx), CLKOS / 10 = 62.5 MHz (sync).
        clkop, clkos, locked = Signal(), Signal(), Signal()
        m.submodules.pll = Instance(
            "EHXPLLL",
            p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
            p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA", p_OUTDIVIDER_MUXB="DIVB",
            p_CLKI_DIV=1, p_CLKFB_DIV=5, p_FEEDBK_PATH="CLKOP",
            p_CLKOP_ENABLE="ENABLED", p_CLKOP_DIV=5, p_CLKOP_CPHASE=4, p_CLKOP_FPHASE=0,
            p_CLKOS_ENABLE="ENABLED", p_CLKOS_DIV=10, p_CLKOS_CPHASE=9, p_CLKOS_FPHASE=0,
            i_CLKI=clk25.i, i_CLKFB=clkop, i_RST=Const(0), i_STDBY=Const(0),
            i_PHASESEL0=Const(0), i_PHASESEL1=Const(0), i_PHASEDIR=Const(0),
            i_PHASESTEP=Const(0), i_PHASELOADREG=Const(0), i_PLLWAKESYNC=Const(0),
            i_ENCLKOP=Const(0), i_ENCLKOS=Const(0),
            o_CLKOP=clkop, o_CLKOS=clkos, o_LOCK=locked)
        for name, clock in (("tx", clkop), ("sync", clkos), ("rx0", buffers["rx_clk"].i)):
            m.domains += ClockDomain(name)
            m.d.comb += ClockSignal(name).eq(clock)
            m.submodules[f"reset_{name}"] = cdc.ResetSynchronizer(~locked, domain=name)

        m.submodules.port = port = EthPort(rx_domain="rx0", tx_domain="tx", primitives="ecp5",
                                           rx_delay=self._rx_delay, tx_delay=self._tx_delay)
        m.d.comb += [
            port.rgmii.rx_data.eq(buffers["rx_data"].i),
            port.rgmii.rx_ctl.eq(buffers["rx_ctl"].i),
            buffers["tx_data"].o.eq(port.rgmii.tx_data),
            buffers["tx_ctl"].o.eq(port.rgmii.tx_ctl),
            buffers["tx_clk"].o.eq(port.rgmii.tx_clk),
            buffers["rst"].o.eq(locked),
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
    for path in design_sources() + [Path(__file__).resolve()]:
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return build_root() / "board" / f"eth_port-{h.hexdigest()[:16]}"


def build(rx_delay=0, tx_delay=0, seed=1, force=False):
    """Build :class:`EthPortTop` for the Colorlight 5A-75B (or reuse the cached build of the
    same sources); return the report summary plus ``bitstream`` (path) and
    ``bitstream_bytes``."""
    from bpfcore.boards.colorlight_5a75b import Colorlight5A75BPlatform, _tool_env
    from bpfcore.boards.synth import DEFAULT_PART, SYNTH_OPTS, parse_report
    build_dir = cache_folder(rx_delay, tx_delay, seed)
    summary_path = build_dir / "summary.json"
    if summary_path.exists() and not force:
        return json.loads(summary_path.read_text())
    _tool_env()
    platform = Colorlight5A75BPlatform()
    try:
        plan = platform.build(EthPortTop(rx_delay, tx_delay), name="eth_port", do_build=False,
                              synth_opts=SYNTH_OPTS,
                              nextpnr_opts=f"--report report.json --timing-allow-fail "
                                           f"--seed {seed}")
        products = plan.execute_local(str(build_dir))
    except Exception as error:        # toolchain failures surface as several exception types
        raise BpfcoreError(f"eth_port build failed: {type(error).__name__}: {error}; "
                           f"see {build_dir}") from None
    try:
        report = json.loads((build_dir / "report.json").read_text())
    except (OSError, ValueError) as error:
        raise BpfcoreError(f"cannot read the nextpnr report in {build_dir}: {error}") from None
    summary = parse_report(report, DEFAULT_PART, "eth_port")
    bitstream = build_dir / "eth_port.bit"
    summary["seed"] = seed
    summary["bitstream"] = str(bitstream)
    summary["bitstream_bytes"] = bitstream.stat().st_size if bitstream.exists() else 0
    summary_path.write_text(json.dumps(summary, indent=1) + "\n")
    return summary
