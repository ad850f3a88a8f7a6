"""The external conformance suite on the golden VM, and the runner's reporting."""

import pytest

from bpfcore.cli import main
from bpfcore.sim.load.conformance import judge, parse_data, run_case_vm

from conftest import CONFORMANCE

FILES = sorted(CONFORMANCE.glob("*.data"))


def test_suite_is_complete():
    assert len(FILES) == 313


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_conformance_file_on_vm(path):
    case = parse_data(path.read_text(), path.name)
    assert case.error is None
    ok, reason = judge(case, run_case_vm(case.program, case.mem))
    assert ok, reason


def test_command_summary_line(capsys):
    assert main(["conformance", str(CONFORMANCE)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == "313 passed, 0 failed"
    assert len([line for line in out if line.startswith("PASS ")]) == 313


def test_failures_and_error_sections(tmp_path, capsys):
    (tmp_path / "a_wrong.data").write_text("-- asm\nmov %r0, 1\nexit\n-- result\n0x2\n")
    (tmp_path / "b_error_expected.data").write_text(
        "-- asm\nldxw %r0, [%r1]\nexit\n-- error\nout of bounds\n")
    (tmp_path / "c_bad_asm.data").write_text("-- asm\nmvo %r0, 1\nexit\n-- result\n0\n")
    assert main(["conformance", str(tmp_path)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "FAIL a_wrong.data: r0=0x1, expected 0x2",
        "PASS b_error_expected.data",
        "FAIL c_bad_asm.data: c_bad_asm.data:1: unknown instruction 'mvo'",
        "1 passed, 2 failed",
    ]


def test_missing_path_is_one_clear_error(capsys):
    assert main(["conformance", "/nonexistent/x.data"]) == 1
    assert capsys.readouterr().err == \
        "bpfcore conformance: /nonexistent/x.data: no such file or folder\n"


def test_coverage_report_names_unexercised_forms(capsys):
    assert main(["coverage", str(CONFORMANCE)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "base32     66/67  forms executed; never: call btf"
    assert lines[2] == "atomic32   10/10  forms executed"
