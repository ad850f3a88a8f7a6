"""Colorlight 5A-75B (revision 7.0): Lattice ECP5 LFE5U-25F-6 in CABGA256, two RGMII ports.

The platform is amaranth-boards' ``Colorlight_5A75B_R70Platform`` (it works with Amaranth 0.5 once
pins are requested with ``dir="-"`` and driven through ``amaranth.lib.io`` buffers). The build runs
the yowasp tools from PyPI locally; programming the board (openFPGALoader) is not part of a build,
so it is not required for one.

:class:`SocTop` is the board: both RGMII PHYs (their RXC pins clock ``rx0``/``rx1``), the PLL
(``tx`` 125 MHz, ``sync`` the core clock), the board-independent
:class:`~bpfcore.hdl.soc.Soc`, a program preloaded at reset (:mod:`bpfcore.boards.loader`,
until the control plane exists) and the LED. :class:`HeartbeatTop` is the bring-up top: it only
blinks the user LED from the 25 MHz board clock, which proves pins, clock, toolchain and
bitstream. Boards stay thin (STYLE.md lesson 12): pins, clocks and one board-independent design,
nothing else. ``bpfcore build`` (:mod:`bpfcore.boards.build`) builds :class:`SocTop`.
"""

from pathlib import Path

from amaranth import Module, Signal
from amaranth.lib import io, wiring
from amaranth.build import Attrs, Resource
from amaranth_boards.colorlight_5a75b_r7_0 import Colorlight_5A75B_R70Platform

from bpfcore.errors import BpfcoreError
from bpfcore.hdl.unused import rejecting

__all__ = ["Colorlight5A75BPlatform", "HeartbeatTop", "SocTop", "SOC_OPTIONS", "build_bitstream"]


class Colorlight5A75BPlatform(Colorlight_5A75B_R70Platform):
    """The amaranth-boards platform, buildable without the programming tool installed.

    Both PHYs share their reset, MDC and MDIO pins, so ``eth_rgmii`` 0 and 1 cannot both be
    requested: ``eth_rgmii_data`` 0 and 1 are the same resources without those three pins, and
    ``eth_phy_rst`` 0 is the shared reset alone.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        shared = ("rst", "mdc", "mdio")
        for number in (0, 1):
            full = self.lookup("eth_rgmii", number)
            self.add_resources([Resource("eth_rgmii_data", number,
                                         *(io for io in full.ios if io.name not in shared),
                                         Attrs(**full.attrs))])
        full = self.lookup("eth_rgmii", 0)
        rst = next(io for io in full.ios if io.name == "rst")
        self.add_resources([Resource("eth_phy_rst", 0, *rst.ios, Attrs(**full.attrs))])

    @property
    def required_tools(self):
        return [tool for tool in super().required_tools if tool != "openFPGALoader"]


class HeartbeatTop(wiring.Component):
    """Bring-up top: the user LED toggles about every 0.7 s (bit 24 of a 25 MHz counter).

    Parameters
    ----------
    bits : int
        Counter width; the LED shows its top bit.
    """

    def __init__(self, bits=25):
        with rejecting(self):
            if not isinstance(bits, int) or bits < 1:
                raise ValueError(f"bits must be a positive integer, not {bits!r}")
        self.bits = bits
        super().__init__({})

    def elaborate(self, platform):
        m = Module()
        led = platform.request("led", 0, dir="-")
        m.submodules.led = led_buf = io.Buffer("o", led)
        count = Signal(self.bits)
        m.d.sync += count.eq(count + 1)
        m.d.comb += led_buf.o.eq(count[-1])
        return m


#: The SoC's build options on this board (see ``docs/board.md``): what fits the LFE5U-25F's
#: 24,288 LUT4 and 56 DP16KD beside two MACs.
SOC_OPTIONS = {
    "slots": 3,
    "core": {"program_slots": 1024},
}


class SocTop(wiring.Component):
    """The board: pins, clocks, :class:`~bpfcore.hdl.soc.Soc`, a preloaded program, the LED.

    The core's host side is tied off until the control plane exists: the program memory is
    written once after reset by :class:`~bpfcore.boards.loader.ProgramLoader`, the map host
    stream is idle. The LED blinks from a counter (bit 25 of ``sync``) and flickers with
    traffic: it also shows the parity of the SoC's counters, which keeps them in the design.

    Parameters
    ----------
    core_mhz : float
        The ``sync`` (core) clock made by the PLL (ValueError if it cannot make it).
    program : sequence of int
        The program's 64-bit slots (default: ``XDP_PASS``).
    soc : dict
        :class:`~bpfcore.hdl.soc.Soc` arguments (default :data:`SOC_OPTIONS`).
    """

    def __init__(self, core_mhz=62.5, program=None, soc=None):
        from bpfcore.boards.flow import pll_dividers
        from bpfcore.boards.loader import PASS_PROGRAM, ProgramLoader
        from bpfcore.hdl.soc import Soc
        from bpfcore.hdl.unused import unelaborated
        options = dict(SOC_OPTIONS if soc is None else soc)
        with rejecting(self):
            try:
                pll_dividers(25.0, 125.0, core_mhz)
            except BpfcoreError as error:
                raise ValueError(f"SocTop: {error}") from None
            self.soc = Soc(interface="rgmii", primitives="ecp5", **options)
            self.loader = ProgramLoader(PASS_PROGRAM if program is None else program,
                                        self.soc.signature.members["prog_addr"].shape.stop)
        unelaborated(self.soc, self.loader)
        self.core_mhz = core_mhz
        super().__init__({})

    def elaborate(self, platform):
        from bpfcore.boards.flow import add_domain, pll
        m = Module()
        m.submodules.clk25 = clk25 = io.Buffer("i", platform.request("clk25", 0, dir="-"))
        locked = pll(m, clk25.i, 25.0, self.core_mhz)

        m.submodules.soc = soc = self.soc
        for p in range(2):
            pins = platform.request("eth_rgmii_data", p, dir="-")
            buf = {}
            for name, direction in (("rx_clk", "i"), ("rx_ctl", "i"), ("rx_data", "i"),
                                    ("tx_clk", "o"), ("tx_ctl", "o"), ("tx_data", "o")):
                # The RXC buffer is named after its domain: nextpnr names the clock after it.
                label = f"rx{p}_clk" if name == "rx_clk" else f"eth{p}_{name}"
                buf[name] = m.submodules[label] = io.Buffer(direction, getattr(pins, name))
            platform.add_clock_constraint(pins.rx_clk.io, 125e6)
            add_domain(m, f"rx{p}", buf["rx_clk"].i, locked)
            rgmii = getattr(soc, f"rgmii{p}")
            m.d.comb += [
                rgmii.rx_data.eq(buf["rx_data"].i), rgmii.rx_ctl.eq(buf["rx_ctl"].i),
                buf["tx_data"].o.eq(rgmii.tx_data), buf["tx_ctl"].o.eq(rgmii.tx_ctl),
                buf["tx_clk"].o.eq(rgmii.tx_clk),
            ]

        m.submodules.loader = loader = self.loader
        m.d.comb += [
            soc.prog_we.eq(loader.prog_we), soc.prog_addr.eq(loader.prog_addr),
            soc.prog_wdata.eq(loader.prog_wdata),
            soc.map_host_req.valid.eq(0), soc.map_host_resp.ready.eq(1),
            soc.printk.ready.eq(1),
        ]

        # The PHYs share one reset pin: out of reset once the PLL locks.
        m.submodules.phy_rst = rst = io.Buffer("o", platform.request("eth_phy_rst", 0, dir="-"))
        m.d.comb += rst.o.eq(~locked)

        m.submodules.led = led = io.Buffer("o", platform.request("led", 0, dir="-"))
        count = Signal(26)
        parity = Signal()
        m.d.sync += [count.eq(count + 1), parity.eq(soc.counters.as_value().xor())]
        m.d.comb += led.o.eq(count[-1] ^ parity)
        return m


def build_bitstream(top, build_dir, name="top"):
    """Build ``top`` for the board in ``build_dir`` (:func:`bpfcore.boards.flow.run_flow`);
    return the path of the ``.bit`` file. nextpnr's log is ``<name>.tim`` there."""
    from bpfcore.boards.flow import run_flow
    summary = run_flow(Colorlight5A75BPlatform(), top, name, build_dir)
    if not summary["bitstream_bytes"]:
        raise BpfcoreError(f"Colorlight 5A-75B build wrote no bitstream in {build_dir}")
    return Path(summary["bitstream"])
