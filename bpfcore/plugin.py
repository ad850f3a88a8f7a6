"""``bpfcore-plugin``: a plugin for the upstream bpf_conformance runner.

Protocol: the program arrives on standard input as space-separated hex bytes; input memory, when
given, arrives as space-separated hex bytes in the first argument; further arguments are options
(``--engine vm|rtl``, ``--simulator icarus|verilator``). The plugin prints r0 in hex on standard
output and exits 0, or prints the reason on standard error and exits 1.
"""

import sys

from bpfcore.errors import BpfcoreError

__all__ = ["main", "parse_hex_bytes"]

USAGE = "usage: bpfcore-plugin [MEMORY_HEX] [--engine vm|rtl] [--simulator icarus|verilator]"


def parse_hex_bytes(text, what):
    try:
        return bytes(int(token, 16) for token in text.split())
    except ValueError:
        raise BpfcoreError(f"{what} is not space-separated hex bytes") from None


def _parse_args(argv):
    mem_text, engine, simulator = "", "vm", None
    args = list(argv)
    if args and not args[0].startswith("--"):
        mem_text = args.pop(0)
    while args:
        option = args.pop(0)
        name, eq, value = option.partition("=")
        if name in ("--engine", "--simulator"):
            if not eq:
                if not args:
                    raise BpfcoreError(f"{name} needs a value\n{USAGE}")
                value = args.pop(0)
            if name == "--engine":
                if value not in ("vm", "rtl"):
                    raise BpfcoreError(f"unknown engine {value!r}; choose vm or rtl")
                engine = value
            else:
                if value not in ("icarus", "verilator"):
                    raise BpfcoreError(f"unknown simulator {value!r}; choose icarus or verilator")
                simulator = value
        else:
            raise BpfcoreError(f"unknown option {option!r}\n{USAGE}")
    return mem_text, engine, simulator


def run(argv, stdin_text):
    """The plugin's work, minus process plumbing: returns (exit code, stdout text, stderr text)."""
    from bpfcore.sim.load.conformance import Case
    from bpfcore.sim.engines import make_conformance_engine
    from bpfcore.sim.load.program import Program
    try:
        mem_text, engine_name, simulator = _parse_args(argv)
        if simulator and engine_name != "rtl":
            raise BpfcoreError("--simulator applies only to --engine rtl")
        mem = parse_hex_bytes(mem_text, "the memory argument")
        code = parse_hex_bytes(stdin_text, "the program on standard input")
        if not code:
            raise BpfcoreError("no program on standard input")
        program = Program.from_bytes(code, "<stdin>")
        engine = make_conformance_engine(engine_name, simulator)
        outcome = engine.run_many([Case("<stdin>", program, mem, expected=0)])[0]
    except BpfcoreError as error:
        return 1, "", f"{error}\n"
    if outcome.error:
        return 1, "", f"{outcome.error}\n"
    return 0, f"{outcome.r0:x}\n", ""


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__.strip() + "\n\n" + USAGE)
        return 0
    code, out, err = run(argv, sys.stdin.read())
    sys.stdout.write(out)
    sys.stderr.write(err)
    return code


if __name__ == "__main__":
    sys.exit(main())
