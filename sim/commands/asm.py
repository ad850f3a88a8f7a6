"""``bpfcore asm``, ``bpfcore disasm`` and ``bpfcore exec``: assembly files and raw programs."""

from pathlib import Path

from bpfcore.errors import BpfcoreError, read_input
from bpfcore.sim.load.asm import assemble, disassemble
from bpfcore.sim.load.conformance import run_case_vm
from bpfcore.sim.load.program import Program, validate
from bpfcore.sim.load.conformance import conformance_helpers

__all__ = ["add_commands", "read_program"]


def _read(path, mode="r"):
    return read_input(path, binary=(mode != "r"), what="program file")


def read_program(path):
    """A Program from an assembly file, or from raw bytes when the name ends in .bin."""
    if str(path).endswith(".bin"):
        return Program.from_bytes(_read(path, "rb"), str(path))
    return Program(assemble(_read(path), str(path)), str(path))


def add_commands(subparsers):
    p = subparsers.add_parser("asm", help="assemble a program to raw bytes")
    p.add_argument("source", help="assembly file")
    p.add_argument("-o", "--output", help="write raw bytes here (default: hex slots on stdout)")
    p.set_defaults(func=_asm)
    p = subparsers.add_parser("disasm", help="disassemble raw program bytes")
    p.add_argument("binary", help="raw program (.bin)")
    p.set_defaults(func=_disasm)
    p = subparsers.add_parser("exec", help="run a program on the VM in the conformance profile")
    p.add_argument("program", help="assembly file, or raw program (.bin)")
    p.add_argument("--mem", default="", help="input memory as hex bytes")
    p.set_defaults(func=_exec)


def _asm(args):
    program = read_program(args.source)
    validate(program, helpers=set(conformance_helpers()))
    if args.output:
        Path(args.output).write_bytes(program.to_bytes())
    else:
        for slot in program.slots:
            print(f"{slot:#018x}")
    return 0


def _disasm(args):
    program = Program.from_bytes(_read(args.binary, "rb"), args.binary)
    pc = 0
    for line in disassemble(program.slots):
        print(f"{pc:5d}: {line}")
        pc += 2 if line.startswith("lddw") else 1
    return 0


def _exec(args):
    try:
        mem = bytes.fromhex(args.mem)
    except ValueError:
        raise BpfcoreError(f"--mem: not hex bytes: {args.mem!r}") from None
    outcome = run_case_vm(read_program(args.program), mem)
    if outcome.error:
        raise BpfcoreError(outcome.error)
    print(f"{outcome.r0:#x}")
    return 0
