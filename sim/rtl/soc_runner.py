"""Run captures through the SoC's Verilog: the wrapper (:mod:`bpfcore.sim.rtl.soc_tb`), its frame
players, and the log of what the SoC did.

A :class:`SocBench` owns one generated SoC and its simulator model (built once per design hash
and simulator, like :class:`bpfcore.sim.rtl.runner.Bench`). :meth:`SocBench.run` plays frames
into the ports and returns a :class:`SocResult`: the runs in dispatch order (port, retirements,
result), the frames each port sent (checked: preamble, SFD, FCS), the counters and the maps.
"""

import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from bpfcore.abi import Fault
from bpfcore.errors import BpfcoreError
from bpfcore.sim.rtl.runner import build_model, get_runner
from bpfcore.sim.rtl.soc_tb import PLAYER_WAIT, PORTS, SOC_TB_NAME, soc_wrapper_verilog
from bpfcore.sim.rtl.trace import TraceRun, record_line
from bpfcore.sim.rtl.verilog import generate

__all__ = ["SocBench", "SocResult", "SocRun", "gmii_frame", "player_entries", "IFG_BYTES",
           "PACED_GAP_BYTES"]

PREAMBLE = bytes([0x55] * 7 + [0xD5])
#: Idle byte times after each frame at line rate (the 802.3 inter-frame gap).
IFG_BYTES = 12
#: Idle byte times after each frame when frames are paced one at a time: long enough for the
#: frame to cross the MAC's FIFO and take its slot before the next frame waits for an idle SoC.
PACED_GAP_BYTES = 256


def gmii_frame(frame, bad_fcs=False):
    """The bytes of ``frame`` (no FCS) on GMII: preamble, SFD, the frame, its FCS."""
    fcs = zlib.crc32(frame) ^ (0xffff_ffff if bad_fcs else 0)
    return PREAMBLE + bytes(frame) + fcs.to_bytes(4, "little")


def player_entries(frames, paced):
    """The players' memories: one list of 16-bit entries per port.

    ``frames`` is ``[(port, frame bytes, bad_fcs)]`` in the order they are offered. Paced: each
    frame waits for its turn (every earlier frame played) and an idle SoC; else each port plays
    its frames back to back, 12 idle byte times apart.
    """
    entries = [[] for _ in range(PORTS)]
    for turn, (port, frame, bad_fcs) in enumerate(frames):
        out = entries[port]
        if paced:
            if turn >= PLAYER_WAIT:
                raise BpfcoreError(f"at most {PLAYER_WAIT - 1} frames can be paced, "
                                   f"not {len(frames)}")
            out.append(PLAYER_WAIT | turn)
        out += [0x100 | byte for byte in gmii_frame(frame, bad_fcs)]
        out += [0] * (PACED_GAP_BYTES if paced else IFG_BYTES)
    return entries


@dataclass
class SocRun(TraceRun):
    """One run of the core (:class:`~bpfcore.sim.rtl.trace.TraceRun`, ``index`` its place in
    the dispatch order), on a frame received on ``port``."""
    port: int = 0


@dataclass
class SocResult:
    """What the SoC did with a capture.

    Members
    -------
    runs : list of SocRun
        In dispatch order.
    outcomes : list of str
        Per port, one letter per frame that ended on its receive stream, in order: ``Q``
        queued for the core, ``X`` refused.
    sent : list of list of bytes
        Per port, the frames it sent (without preamble, SFD and FCS), in order.
    counters : list of dict
        Per port, :data:`bpfcore.hdl.soc.COUNTER_NAMES` -> value.
    maps : list or None
        Per map, ``[[key hex, value hex], ...]`` read back through the host port.
    drained : bool
        Every slot was free and the core idle at the end.
    """
    runs: list
    outcomes: list
    sent: list
    counters: list
    maps: Optional[list]
    drained: bool


def _parse_sent(port, data, er):
    """One frame a port sent on GMII: checked, returned without preamble, SFD and FCS."""
    if er:
        raise BpfcoreError(f"port {port} sent a frame with TX_ER")
    if data[:8] != PREAMBLE:
        raise BpfcoreError(f"port {port} sent a frame without preamble and SFD: {data[:8].hex()}")
    body, fcs = data[8:-4], data[-4:]
    if len(body) < 60:
        raise BpfcoreError(f"port {port} sent a {len(body)}-byte frame (padding to 60 missing)")
    if zlib.crc32(body).to_bytes(4, "little") != fcs:
        raise BpfcoreError(f"port {port} sent a frame with a bad FCS")
    return body


def parse_soc_log(path, layout):
    """``(runs, outcomes, sent)`` from the wrapper's log (see
    :mod:`bpfcore.sim.rtl.soc_tb`)."""
    runs, sent = [], [[] for _ in range(PORTS)]
    outcomes = ["" for _ in range(PORTS)]
    pending = [bytearray() for _ in range(PORTS)]
    with open(path) as log:
        for number, line in enumerate(log, 1):
            parts = line.split()
            if not parts:
                continue
            try:
                tag = parts[0]
                if tag == "S":
                    runs.append(SocRun(len(runs), int(parts[1]), port=int(parts[2])))
                elif tag in ("Q", "X"):
                    outcomes[int(parts[2])] += tag
                elif tag == "T":
                    pending[int(parts[1])].append(int(parts[2], 16))
                elif tag == "E":
                    port = int(parts[1])
                    sent[port].append(_parse_sent(port, bytes(pending[port]), int(parts[2])))
                    pending[port] = bytearray()
                elif not runs:
                    raise ValueError("event before the first run")
                elif tag == "R":
                    runs[-1].records.append(record_line(parts[1], parts[2], layout))
                elif tag == "D":
                    runs[-1].end = (int(parts[1]), int(parts[2], 16), Fault(int(parts[3], 16)),
                                    int(parts[4], 16))
                elif tag == "P":
                    runs[-1].add_printk(int(parts[2], 16))
                else:
                    raise ValueError(f"unknown event {tag!r}")
            except BpfcoreError:
                raise
            except (ValueError, IndexError) as error:
                raise BpfcoreError(f"{path}:{number}: bad SoC log line {line.strip()!r}: "
                                   f"{error}") from None
    for port, rest in enumerate(pending):
        if rest:
            raise BpfcoreError(f"port {port} was still sending a frame at the end of the run")
    return runs, outcomes, sent


class SocBench:
    """The SoC's Verilog with the wrapper, built for one simulator.

    Parameters
    ----------
    spec : bpfcore.sim.rtl.verilog.TopSpec
        The SoC (``interface="gmii"``).
    simulator : str
        ``"verilator"`` (the default: long captures) or ``"icarus"``.
    sync_mhz : float
        The core clock of the simulation (the RX and TX clocks run at 125 MHz).
    """

    def __init__(self, spec, simulator="verilator", sync_mhz=62.5):
        self.spec = spec
        self.simulator = simulator
        self.sync_mhz = sync_mhz
        self.folder, self.verilog_path, top = generate(spec)
        self.slots = top.slots
        self.layout = top.signature.members["trace"].signature.members["record"].shape
        self.counter_shape = top.signature.members["counters"].shape
        half = 1000 / sync_mhz / 2
        if half != int(half):
            raise BpfcoreError(f"the simulated core clock needs a whole half period in ns: "
                               f"{sync_mhz} MHz has {half}")
        self.sync_half_ns = int(half)
        # The wrapper's text names its files, so a change of the wrapper (or of its clock)
        # builds a new model instead of reusing a stale one.
        self.tb_name = SOC_TB_NAME
        text = soc_wrapper_verilog(top, spec.name, sync_half_ns=self.sync_half_ns,
                                   slots=self.slots, tb_name=self.tb_name)
        tag = hashlib.sha256(text.encode()).hexdigest()[:12]
        self.tb_path = self.folder / f"{SOC_TB_NAME}_{tag}.v"
        if not self.tb_path.exists():
            tmp = self.tb_path.with_name(f".{self.tb_path.name}.{os.getpid()}.tmp")
            tmp.write_text(text)
            os.replace(tmp, self.tb_path)
        self.sim_dir = self.folder / f"soc_{simulator}_{tag}"

    def build(self):
        marker = self.sim_dir / "built.ok"
        with open(self.folder / f".build_soc_{self.simulator}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not marker.exists():
                build_model(self.simulator, [self.verilog_path, self.tb_path], self.tb_name,
                            self.sim_dir, self.folder / f"build_soc_{self.simulator}.log",
                            "the SoC")
                marker.write_text("ok\n")

    def run(self, *, slots, entry_len, maps, time_ns, frames, paced, pattern=("always", 1)):
        """Play ``frames`` (``[(port, frame, bad_fcs)]``) into the SoC with the program
        ``slots`` and the map memory's ``maps`` section; return a :class:`SocResult`."""
        self.build()
        runs_root = self.folder / "soc_runs"
        runs_root.mkdir(exist_ok=True)
        workdir = Path(tempfile.mkdtemp(prefix=f"{self.simulator}-{os.getpid()}-",
                                        dir=runs_root))
        plusargs = [f"+trace={workdir / 'trace.log'}"]
        for port, entries in enumerate(player_entries(frames, paced)):
            path = workdir / f"play{port}.hex"
            path.write_text("".join(f"{e:04x}\n" for e in entries))
            plusargs += [f"+play{port}={path}", f"+len{port}={len(entries)}"]
        period = 2 * self.sync_half_ns
        played_bytes = sum(len(f) + 24 for _, f, _ in frames)
        run = {"slots": [int(s) for s in slots], "entry_len": entry_len, "time_ns": time_ns,
               "pattern": list(pattern), "slots_free": self.slots, "sync_period_ns": period,
               # Draining: at most a few thousand cycles per frame still queued.
               "drain_cycles": 200_000 + 5_000 * self.slots,
               "tail_ns": 8 * (1600 + 64), }
        if maps is not None:
            run["maps"] = maps
        (workdir / "run.json").write_text(json.dumps(run))
        env = {"BPFCORE_SOC_RUN": str(workdir / "run.json"),
               "BPFCORE_SOC_RESULTS": str(workdir / "results.json"), "COCOTB_RANDOM_SEED": "1"}
        runner = get_runner(self.simulator)
        sim_log = workdir / "sim.log"
        failure = None
        try:
            runner.test(test_module="bpfcore.sim.rtl.soc_bench", hdl_toplevel=self.tb_name,
                        hdl_toplevel_lang="verilog", build_dir=self.sim_dir, test_dir=workdir,
                        plusargs=plusargs, extra_env=env,
                        results_xml=str(workdir / "results.xml"), log_file=sim_log,
                        timescale=("1ns", "1ps"))
        except SystemExit as error:
            failure = f"exit status {error.code}"
        except Exception as error:          # the runner raises several types
            failure = f"{type(error).__name__}: {error}"
        results_path = workdir / "results.json"
        if not results_path.exists():
            raise BpfcoreError(f"{self.simulator} run of the SoC failed "
                               f"({failure or 'no results'}, {played_bytes} bytes played); "
                               f"see {sim_log}")
        results = json.loads(results_path.read_text())
        runs, outcomes, sent = parse_soc_log(workdir / "trace.log", self.layout)
        from bpfcore.hdl.soc import COUNTER_NAMES
        value = self.counter_shape.from_bits(int(results["counters"], 16))
        counters = [{name: int(getattr(value[port], name)) for name in COUNTER_NAMES}
                    for port in range(PORTS)]
        if not os.environ.get("BPFCORE_KEEP_RUNS"):
            shutil.rmtree(workdir, ignore_errors=True)
        return SocResult(runs, outcomes, sent, counters, results.get("maps"),
                         results["drained"])
