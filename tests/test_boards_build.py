"""``bpfcore build``: the board top, its options, the command's errors; the full build on demand
(BPFCORE_SYNTH_BOARD=1: 5-15 minutes of yosys and nextpnr)."""

import json
import os

import pytest
from amaranth.back import rtlil
from amaranth.sim import Simulator

from bpfcore.boards import build, flow
from bpfcore.boards.colorlight_5a75b import Colorlight5A75BPlatform, SOC_OPTIONS, SocTop
from bpfcore.boards.loader import PASS_PROGRAM, ProgramLoader
from bpfcore.cli import main
from bpfcore.hdl.soc import CLOCK_DOMAINS

from conftest import ROOT

FIRMWARE = ROOT / "firmware" / "build"
needs_firmware = pytest.mark.skipif(not (FIRMWARE / "l3_filter.o").exists(),
                                    reason="firmware/build/*.o not built (make firmware)")


@pytest.mark.parametrize("argv, message", [
    (["--board", "versa"], "unknown board 'versa'; choose colorlight-5a75b"),
    (["--seed", "0"], "--seed must be a positive integer, got 0"),
    (["--seed", "x"], "--seed must be a positive integer, got 'x'"),
    (["--freq", "fast"], "--freq must be a number, got 'fast'"),
    (["--freq", "-5"], "--freq must be positive, got -5"),
    (["--freq", "55"], "the PLL cannot make a 55 MHz core clock"),
    (["--out", "/proc/bpfcore-build"], "cannot write to --out /proc/bpfcore-build"),
])
def test_build_rejects_bad_arguments_in_one_line(argv, message, capsys):
    assert main(["build", *argv]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("bpfcore build: ") and message in err, err
    assert err.count("\n") == 1


def test_program_that_cannot_be_read_is_refused(tmp_path, capsys):
    assert main(["build", "--out", str(tmp_path), "--program", str(tmp_path / "none.o")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("bpfcore build: cannot read ") and err.count("\n") == 1


@needs_firmware
def test_program_with_maps_is_refused(tmp_path, capsys):
    argv = ["build", "--out", str(tmp_path), "--program", str(FIRMWARE / "firewall.o")]
    assert main(argv) == 1
    assert "the program uses 4 map(s); the board has no control plane yet" in \
        capsys.readouterr().err


@needs_firmware
def test_preloaded_program_is_in_the_board_top():
    slots = build.program_slots(FIRMWARE / "l3_filter.o", frozenset(range(100)), 1024)
    top = SocTop(core_mhz=50, program=slots)
    assert top.loader.words == slots and len(slots) > 100
    plan = Colorlight5A75BPlatform().build(top, name="soc", do_build=False, synth_opts="")
    assert "EHXPLLL" in plan.files["soc.il"]


def test_out_that_is_a_file_is_refused(tmp_path, capsys):
    (tmp_path / "file").write_text("")
    assert main(["build", "--out", str(tmp_path / "file")]) == 1
    assert "cannot write to --out" in capsys.readouterr().err


@pytest.mark.parametrize("core_mhz, dividers", [
    (62.5, (5, 4, 8)), (50, (5, 4, 10)), (41.666666, (5, 4, 12)), (75, (5, 6, 10))])
def test_pll_dividers(core_mhz, dividers):
    # CLKFB_DIV, CLKOP_DIV (VCO = 125 MHz x CLKOP_DIV in 400-800 MHz), CLKOS_DIV
    assert flow.pll_dividers(25.0, 125.0, core_mhz) == dividers


def test_domains_follow_the_soc_table():
    assert build.domains(50.0) == {name: (50.0 if mhz is None else mhz)
                                   for name, _, mhz in CLOCK_DOMAINS}
    assert set(build.domains(50.0)) == {"rx0", "rx1", "tx", "sync"}


def test_domain_fmax_names_each_domain():
    summary = {"clocks": {"$glbnet$clk": {"achieved_mhz": 51.0},
                          "$glbnet$reset_tx.async_ff_clk": {"achieved_mhz": 130.0},
                          "$glbnet$soc.mac0.rgmii.rx0_clk": {"achieved_mhz": 140.0},
                          "$glbnet$rx1_clk.buf.i": {"achieved_mhz": 141.0},
                          "$glbnet$clk25_0__io": {"achieved_mhz": 300.0}}}
    assert flow.domain_fmax(summary, build.domains(50)) == {
        "sync": 51.0, "tx": 130.0, "rx0": 140.0, "rx1": 141.0}


def test_board_top_converts_to_rtlil_with_the_chosen_options():
    platform = Colorlight5A75BPlatform()
    plan = platform.build(SocTop(core_mhz=50), name="soc", do_build=False, synth_opts="")
    il = plan.files["soc.il"]
    assert "EHXPLLL" in il and "IDDRX1F" in il and "ODDRX1F" in il
    lpf = plan.files["soc.lpf"]
    for pin in ("M1", "M16", "P6", "P5", "P11"):      # both RXC, the oscillator, reset, LED
        assert f'SITE "{pin}"' in lpf
    assert lpf.count("125000000.0 HZ") == 2
    assert SOC_OPTIONS["slots"] == 3 and SOC_OPTIONS["core"]["program_slots"] == 1024


def test_soc_top_rejects_a_clock_the_pll_cannot_make():
    with pytest.raises(ValueError, match="SocTop: the PLL cannot make a 55 MHz core clock"):
        SocTop(core_mhz=55)


def test_loader_writes_the_program_once():
    words = [0x1111, 0x2222_0000_0000_0000, 3]
    loader = ProgramLoader(words, 16, opaque=False)
    written = []

    async def bench(ctx):
        for _ in range(6):
            if ctx.get(loader.prog_we):
                written.append((ctx.get(loader.prog_addr), ctx.get(loader.prog_wdata)))
            await ctx.tick()
        assert ctx.get(loader.loaded)

    sim = Simulator(loader)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert written == list(enumerate(words))


def test_loader_checks_its_program():
    with pytest.raises(ValueError, match="a program of 1..2 slots, not 3"):
        ProgramLoader([1, 2, 3], 2)
    with pytest.raises(ValueError, match="is not a 64-bit word"):
        ProgramLoader([1 << 64], 2)
    rtlil.convert(ProgramLoader(PASS_PROGRAM, 1024))        # the opaque LUT4 buffers


@pytest.mark.skipif(os.environ.get("BPFCORE_SYNTH_BOARD") != "1",
                    reason="the whole SoC through yosys and nextpnr takes 5-15 minutes on two "
                           "cores: set BPFCORE_SYNTH_BOARD=1 to run it")
def test_full_build_meets_every_clock_and_fits(tmp_path):
    result = build.build(seed=1, out=tmp_path)
    print(json.dumps(result))
    assert os.path.getsize(result["bitstream"]) > 10_000
    for name, figures in result["domains"].items():
        assert figures["fmax_mhz"] >= figures["constraint_mhz"], (name, figures)
    assert result["domains"]["sync"]["constraint_mhz"] >= 50
    for key in ("lut4", "bram", "dsp"):
        assert result[key] <= result[f"{key}_available"]
