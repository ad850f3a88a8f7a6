"""bpfcore cpi-budget: the hazard counts on small programs, and the branch predictor model
against the RTL's own cycles over the conformance suite (simulator: BPFCORE_RTL_SIMULATOR,
default icarus)."""

import json
import os
from collections import Counter
from pathlib import Path

import pytest

from bpfcore import cli
from bpfcore.sim.commands import cpibudget
from bpfcore.sim.load.asm import assemble
from bpfcore.sim.load.program import Program
from bpfcore.sim.model.vm import Vm

SIMULATOR = os.environ.get("BPFCORE_RTL_SIMULATOR", "icarus")
SUITE = Path(__file__).resolve().parents[2] / "shared" / "conformance" / "bpf_conformance"


def trace(text):
    records = []
    Vm(Program(assemble(text, "t"), "t"), on_retire=records.append).run()
    return records


LOOP = """
        mov %r0, 0
        mov %r1, 3
loop:
        add %r0, 1
        sub %r1, 1
        jne %r1, 0, loop           # backward: taken, taken (history), then not taken: wrong
        jeq %r0, 3, out            # forward, first run: predicted not taken, taken: wrong
        mov %r0, 9
out:
        exit
"""


def test_mispredictions_follow_the_cpus_predictor():
    records = trace(LOOP)
    found = cpibudget.mispredictions(records)
    assert [(records[i].pc, wrong, first) for i, wrong, first in found] == [
        (4, False, True), (4, False, False), (4, True, False), (5, True, True)]


def test_hazards_count_load_and_alu_uses():
    records = trace("""
        mov %r1, 7
        stxdw [%r10-8], %r1
        ldxdw %r2, [%r10-8]
        add %r2, 1                 # load used at distance 1
        ldxdw %r3, [%r10-8]
        mov %r4, 1
        add %r4, %r3               # load used at distance 2; ALU result (mov) used next
        lsh %r4, 2
        mov %r0, %r4               # shift result used next
        exit
""")
    counts = cpibudget.hazards(records)
    assert counts["load_use_1"] == 1 and counts["load_use_2"] == 1
    assert counts["shift_use_1"] == 1
    # mov r1 -> stxdw, add r2 is not read, mov r4 -> add, add -> lsh, lsh -> mov r0, mov r0 -> exit
    assert counts["alu_use_1"] == 5
    assert counts["branches"] == 0


def test_budget_sums_selections_and_bounds_the_registered_memory_pipeline():
    rows = [(cpibudget.hazards(trace(LOOP)), 20, 10, False),
            (Counter(load_use_1=3, load_use_2=1, mispredicted=2), 30, 10, True)]
    figures = cpibudget.budget(rows)
    assert figures["nodiv"]["intervals"] == 10 and figures["all"]["intervals"] == 20
    assert figures["all"]["span"] == 50 and figures["all"]["mispredicted"] == 4
    # 50 - 2 x 4 + 3 + 1; the ceiling at CPI 1.5 is 30 cycles: none left.
    assert figures["all"]["registered_memory"] == 46
    assert figures["all"]["budget"] == -20 and figures["all"]["mispredictions_allowed"] == 0
    # nodiv: 20 - 2 x 2 = 16 over 10 intervals, ceiling 12.5.
    assert figures["nodiv"]["registered_memory"] == 16
    assert figures["nodiv"]["mispredictions_allowed"] == 0
    # LOOP's first runs (jne backward taken, jeq forward taken) each fit a class of their own;
    # the jne's last run stays wrong; the second row's two mispredictions are not first runs.
    assert figures["nodiv"]["best_static_mispredicted"] == 1
    assert figures["all"]["best_static_mispredicted"] == 3
    assert figures["all"]["fitted_offset_mispredicted"] == 3


needs_suite = pytest.mark.skipif(not SUITE.is_dir(),
                                 reason=f"the conformance suite is not at {SUITE}")


@pytest.fixture(scope="module")
def suite_runs():
    """The whole suite on the RTL, once for this module's tests."""
    return cpibudget.collect([SUITE], SIMULATOR)


@needs_suite
def test_the_predictor_model_matches_the_rtl_over_the_suite(suite_runs, monkeypatch):
    figures, checked, disagreements = cpibudget.summarise(suite_runs)
    print(figures)
    assert disagreements == [] and checked > 400
    nodiv = figures["nodiv"]
    assert nodiv["cpi"] <= 1.25 and nodiv["branches"] > 300
    assert nodiv["mispredicted_first"] <= nodiv["mispredicted"] <= nodiv["branches"]
    # The check bites: a model with a 2-entry history table disagrees with the CPU.
    monkeypatch.setattr(cpibudget, "BHT_ENTRIES", 2)
    _, _, disagreements = cpibudget.summarise(suite_runs)
    assert disagreements


@needs_suite
def test_cpi_budget_command(capsys):
    files = [str(SUITE / name) for name in ("jeq-imm.data", "ldxb.data", "mov.data")]
    assert cli.main(["cpi-budget", *files, "--simulator", SIMULATOR, "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["predictor_disagreements"] == 0
    assert figures["all"]["intervals"] > 0 and figures["all"]["limit"] == 1.5
    assert cli.main(["cpi-budget", *files, "--simulator", SIMULATOR]) == 0
    out = capsys.readouterr().out
    assert out.startswith("all: CPI ") and "0 disagree" in out


def test_cpi_budget_reports_bad_input(capsys, tmp_path):
    assert cli.main(["cpi-budget", "/nonexistent/suite"]) == 1
    assert capsys.readouterr().err.strip() == \
        "bpfcore cpi-budget: /nonexistent/suite: no such file or folder"
    assert cli.main(["cpi-budget", str(tmp_path)]) == 1
    assert capsys.readouterr().err.strip() == \
        f"bpfcore cpi-budget: no .data files found in {tmp_path}"
    (tmp_path / "bad.data").write_text("-- asm\nfoo %r0\n-- result\n0x0\n")
    assert cli.main(["cpi-budget", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip()
    assert err == "bpfcore cpi-budget: bad.data:1: unknown instruction 'foo'"
    (tmp_path / "bad.data").write_text("-- asm\nmov %r0, 1\nexit\n-- result\n0x2\n")
    assert cli.main(["cpi-budget", str(tmp_path), "--simulator", SIMULATOR]) == 1
    assert capsys.readouterr().err.strip() == \
        "bpfcore cpi-budget: bad.data: r0=0x1, expected 0x2"
