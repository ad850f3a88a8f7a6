"""bpfcore-plugin: the upstream runner's protocol, in process and as a real process."""

import subprocess
import sys

import pytest

from bpfcore.plugin import run
from bpfcore.sim.load.conformance import parse_data

from conftest import CONFORMANCE

FILES = sorted(CONFORMANCE.glob("*.data"))


def hex_bytes(data):
    return " ".join(f"{b:02x}" for b in data)


def test_every_conformance_program_through_the_protocol():
    for path in FILES:
        case = parse_data(path.read_text(), path.name)
        argv = [hex_bytes(case.mem)] if case.mem else []
        code, out, err = run(argv + ["--engine", "vm"], hex_bytes(case.program.to_bytes()))
        assert (code, err) == (0, ""), path.name
        assert int(out, 16) == case.expected, path.name


@pytest.mark.parametrize("argv,stdin,message", [
    ([], "", "no program on standard input"),
    ([], "zz", "the program on standard input is not space-separated hex bytes"),
    (["qq"], "95 00 00 00 00 00 00 00", "the memory argument is not space-separated hex bytes"),
    (["--engine", "gpu"], "95 00 00 00 00 00 00 00", "unknown engine 'gpu'; choose vm or rtl"),
    ([], "95 00 00", "<stdin>: program is 3 bytes long, not a multiple of 8"),
    ([], "ff 00 00 00 00 00 00 00 95 00 00 00 00 00 00 00",
     "rejected: <stdin>: pc 0: unknown opcode 0xff"),
    (["01"], "61 10 00 00 00 00 00 00 95 00 00 00 00 00 00 00",
     "fault LOAD_OOB: pc 0: load of 4 bytes at 0x40100 is out of bounds"),
])
def test_errors_exit_1_with_reason(argv, stdin, message):
    assert run(argv, stdin) == (1, "", message + "\n")


def test_as_a_process():
    program = "b7 00 00 00 2a 00 00 00 95 00 00 00 00 00 00 00"
    done = subprocess.run([sys.executable, "-m", "bpfcore.plugin", "", "--engine", "vm"],
                          input=program, capture_output=True, text=True)
    assert (done.returncode, done.stdout, done.stderr) == (0, "2a\n", "")
    done = subprocess.run([sys.executable, "-m", "bpfcore.plugin"], input="95",
                          capture_output=True, text=True)
    assert done.returncode == 1 and "Traceback" not in done.stderr
