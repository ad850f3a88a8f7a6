#!/usr/bin/env python3
"""Build the XDP firmware: every ``firmware/NAME.c`` to ``firmware/build/NAME.o``.

    python firmware/build.py [--cc auto|clang|zig] [--force] [--out DIR] [NAME ...]

The compiler is the system ``clang`` (``-target bpf``) when there is one, else the Zig toolchain
from PyPI (``python -m ziglang cc -target bpfel-freestanding-none``); ``--cc`` picks one. Both get
the same flags: ``-O2 -g -mcpu=v3`` (``-g`` makes clang emit the BTF that describes the ``.maps``
section; ``v3`` allows 32-bit jumps and atomics with fetch, which bpfcore implements). Objects are
rebuilt when the source or any header under ``firmware/include`` is newer, or when they were
built by the other compiler (``NAME.cc`` next to each object names its compiler).

Each object is checked after compiling: a little-endian 64-bit BPF ELF (e_machine 247) with a
``.BTF`` section whenever it defines ``.maps``. The initial map contents
(``firmware/NAME.maps.json``) are regenerated from ``bpfcore.sim.gen.traffic.SCENARIO`` by
``firmware/mapspec.py`` when that module can be imported.

Exit status 0 when every program built; otherwise each failure is reported as one line naming the
source, followed by the compiler's diagnostics, and the status is 1.
"""

import argparse
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
INCLUDE = HERE / "include"
FLAGS = ["-O2", "-g", "-mcpu=v3", "-Wall", "-Wno-unused-function", f"-I{INCLUDE}"]
EM_BPF = 247


class BuildError(Exception):
    """A build problem to report as one line (plus the compiler's own output, if any)."""

    def __init__(self, message, details=""):
        super().__init__(message)
        self.details = details


def compilers():
    """Available compilers as {name: command prefix}, in order of preference."""
    found = {}
    clang = shutil.which("clang")
    if clang:
        found["clang"] = [clang, "-target", "bpf"]
    try:
        import ziglang  # noqa: F401
        found["zig"] = [sys.executable, "-m", "ziglang", "cc", "-target", "bpfel-freestanding-none"]
    except ImportError:
        pass
    return found


def pick_compiler(choice):
    found = compilers()
    if choice == "auto":
        if not found:
            raise BuildError("no BPF C compiler: install clang, or the ziglang package "
                             "(pip install ziglang)")
        choice = next(iter(found))
    if choice not in found:
        available = ", ".join(found) or "none"
        raise BuildError(f"compiler '{choice}' is not available (found: {available})")
    return choice, found[choice]


def sources(names):
    everything = sorted(HERE.glob("*.c"))
    if not names:
        return everything
    chosen = []
    for name in names:
        path = HERE / (name if name.endswith(".c") else name + ".c")
        if not path.exists():
            known = ", ".join(p.stem for p in everything)
            raise BuildError(f"no firmware program '{name}' (known: {known})")
        chosen.append(path)
    return chosen


def out_of_date(source, obj, cc_name):
    """True if ``obj`` is missing, older than its inputs, or was built by another compiler."""
    stamp = obj.with_suffix(".cc")
    if not obj.exists() or not stamp.exists() or stamp.read_text() != cc_name:
        return True
    built = obj.stat().st_mtime
    inputs = [source, *INCLUDE.rglob("*.h")]
    return any(p.stat().st_mtime > built for p in inputs)


def check_object(path):
    """Raise BuildError unless ``path`` is a BPF ELF object with BTF for its maps."""
    data = path.read_bytes()
    where = f"{path.relative_to(HERE.parent) if path.is_relative_to(HERE.parent) else path}"
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise BuildError(f"{where}: not a 64-bit little-endian ELF file")
    machine, = struct.unpack_from("<H", data, 18)
    if machine != EM_BPF:
        raise BuildError(f"{where}: ELF machine {machine}, not BPF ({EM_BPF})")
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3a)
    headers = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
    strtab = headers[shstrndx]
    names = set()
    for header in headers:
        start = strtab[4] + header[0]
        names.add(data[start:data.index(b"\0", start)].decode())
    if ".maps" in names and ".BTF" not in names:
        raise BuildError(f"{where}: defines .maps but has no .BTF section (compile with -g)")
    if not any(n == "xdp" or n.startswith("xdp/") for n in names):
        raise BuildError(f"{where}: no program in an 'xdp' section")


def compile_one(cc_name, cc, source, obj):
    cmd = cc + FLAGS + ["-c", str(source), "-o", str(obj)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise BuildError(f"firmware/{source.name}: cannot run {cc_name}: {error}") from None
    if done.returncode:
        obj.unlink(missing_ok=True)
        errors = [line for line in done.stderr.splitlines() if "error" in line]
        first = errors[0] if errors else f"exit status {done.returncode}"
        raise BuildError(f"firmware/{source.name}: {cc_name} failed: {first}",
                         done.stderr.rstrip())
    check_object(obj)


def write_map_specs(quiet):
    """Regenerate NAME.maps.json from the shared scenario (skipped without the package)."""
    sys.path.insert(0, str(HERE))
    try:
        import mapspec
    except ImportError as error:
        if not quiet:
            print(f"map specs: skipped ({error})")
        return
    finally:
        sys.path.pop(0)
    for path in mapspec.write_all(HERE):
        print(f"wrote {path.relative_to(HERE.parent)}")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="firmware/build.py", description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", metavar="NAME", help="programs to build (default: all)")
    parser.add_argument("--cc", choices=("auto", "clang", "zig"),
                        default=os.environ.get("BPFCORE_CC", "auto"),
                        help="compiler (default: $BPFCORE_CC or auto = clang, else zig)")
    parser.add_argument("--out", type=Path, default=HERE / "build", help="output directory")
    parser.add_argument("--force", action="store_true", help="rebuild everything")
    parser.add_argument("--quiet", action="store_true", help="print failures only")
    args = parser.parse_args(argv)

    failures = 0
    try:
        cc_name, cc = pick_compiler(args.cc)
        todo = sources(args.names)
        args.out.mkdir(parents=True, exist_ok=True)
        if not args.names:
            write_map_specs(args.quiet)
    except BuildError as error:
        print(f"firmware build: {error}", file=sys.stderr)
        return 1
    for source in todo:
        obj = args.out / (source.stem + ".o")
        if not args.force and not out_of_date(source, obj, cc_name):
            continue
        try:
            obj.with_suffix(".cc").unlink(missing_ok=True)
            compile_one(cc_name, cc, source, obj)
            obj.with_suffix(".cc").write_text(cc_name)
        except BuildError as error:
            failures += 1
            print(f"firmware build: {error}", file=sys.stderr)
            if error.details:
                print("\n".join("    " + line for line in error.details.splitlines()),
                      file=sys.stderr)
            continue
        if not args.quiet:
            print(f"{cc_name:5s} {source.name} -> {obj}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
