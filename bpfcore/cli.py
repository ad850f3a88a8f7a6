"""The ``bpfcore`` command.

Subcommands live next to the code they drive: every module named in :data:`COMMAND_MODULES`
defines ``add_commands(subparsers)``, which adds its subcommands with ``set_defaults(func=...)``.
A subcommand function takes the parsed arguments and returns the exit code. User errors are raised
as :class:`bpfcore.errors.BpfcoreError` and printed as one line, without a traceback.
"""

import argparse
import importlib
import sys

from .errors import BpfcoreError

__all__ = ["main", "COMMAND_MODULES"]

#: Modules that contribute subcommands, in the order ``bpfcore --help`` lists them.
COMMAND_MODULES = (
    "bpfcore.sim.commands.asm",
    "bpfcore.sim.commands.conformance",
    "bpfcore.sim.commands.coverage",
    "bpfcore.sim.commands.demo",
    "bpfcore.sim.commands.run",
    "bpfcore.sim.commands.traffic",
    "bpfcore.sim.commands.throughput",
    "bpfcore.sim.commands.cpibudget",
    "bpfcore.boards.synth",
    "bpfcore.boards.build",
)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="bpfcore", description="eBPF/XDP offload core: golden VM, RTL benches, FPGA builds")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_commands(subparsers)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except BpfcoreError as error:
        print(f"bpfcore {args.command}: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"bpfcore {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 1
    except OSError as error:
        print(f"bpfcore {args.command}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
