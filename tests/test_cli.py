"""The bpfcore command: one clear line on bad input, never a traceback."""

import subprocess
import sys

from bpfcore.cli import main


def bpfcore(*args):
    return subprocess.run([sys.executable, "-m", "bpfcore.cli", *args], capture_output=True,
                          text=True)


def test_asm_typo_names_the_line(tmp_path):
    source = tmp_path / "prog.s"
    source.write_text("mov %r0, 1\n\nadd %r0, %r11\nexit\n")
    done = bpfcore("asm", str(source))
    assert done.returncode == 1
    assert done.stderr == f"bpfcore asm: {source}:3: expected a register %r0..%r10, got '%r11'\n"


def test_asm_disasm_exec_round_trip(tmp_path, capsys):
    source = tmp_path / "prog.s"
    source.write_text("ldxb %r0, [%r1+1]\nlddw %r2, 0x100\nadd %r0, %r2\nexit\n")
    binary = tmp_path / "prog.bin"
    assert main(["asm", str(source), "-o", str(binary)]) == 0
    assert main(["disasm", str(binary)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "    0: ldxb %r0, [%r1+1]", "    1: lddw %r2, 0x100", "    3: add %r0, %r2", "    4: exit"]
    assert main(["exec", str(binary), "--mem", "00 07"]) == 0
    assert capsys.readouterr().out == "0x107\n"


def test_bad_inputs_give_one_line(tmp_path):
    (tmp_path / "bad.bin").write_bytes(b"\xff" * 8 + b"\x95" + b"\0" * 7)
    (tmp_path / "text.bin").write_bytes(b"12345")
    cases = [
        (["asm", str(tmp_path / "missing.s")], f"{tmp_path / 'missing.s'}: no such file"),
        (["exec", str(tmp_path / "bad.bin")], f"rejected: {tmp_path / 'bad.bin'}: pc 0: "
                                              "unknown opcode 0xff"),
        (["disasm", str(tmp_path / "text.bin")], f"{tmp_path / 'text.bin'}: program is 5 bytes "
                                                 "long, not a multiple of 8"),
        (["exec", str(tmp_path / "bad.bin"), "--mem", "zz"], "--mem: not hex bytes: 'zz'"),
    ]
    for args, message in cases:
        done = bpfcore(*args)
        assert done.returncode == 1, args
        assert done.stderr == f"bpfcore {args[0]}: {message}\n"


def test_demo_runs():
    done = bpfcore("demo", "--count", "12")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [line[:5] for line in lines if line.startswith("[")] == [
        "[1/5]", "[2/5]", "[3/5]", "[4/5]", "[5/5]"]
    assert any(line.startswith("xdp_l3_filter ") for line in lines)
    assert any(line.strip().startswith("total ") for line in lines)     # the board's counters
    assert lines[-1] in ("demo: VM, board, RTL and kernel agree", "demo: VM, board and RTL agree")
