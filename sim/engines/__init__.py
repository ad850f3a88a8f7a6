"""Run engines: where a program runs, chosen by name from one table.

An engine runs one of two workloads:

* **xdp**: an XDP program of a loaded ELF object over packets. ``make_engine(name, obj, prog,
  **options)`` returns an object with ``name``, ``run(packets, times_ns=None)`` (a
  :class:`~bpfcore.sim.model.xdp.RunReport`), ``run_packet(index, data)``, ``dump_maps()`` and
  ``close()``. Options: ``seed``, ``clock``, ``ingress_ifindex``, ``rx_queue_index``,
  ``map_settings``, ``budget``; the RTL engine also takes ``simulator`` and ``core``.
* **conformance**: conformance cases. ``make_conformance_engine(name, simulator=None)`` returns an
  object with ``name`` and ``run_many(cases)`` (one
  :class:`~bpfcore.sim.load.conformance.Outcome` per case).

| name | module | xdp | conformance |
| --- | --- | --- | --- |
| ``vm`` | :mod:`bpfcore.sim.engines.vm` | the golden VM | the golden VM |
| ``kernel`` | :mod:`bpfcore.sim.engines.kernel` | ``BPF_PROG_TEST_RUN`` | |
| ``rtl`` | :mod:`bpfcore.sim.engines.rtl` | the XDP core's Verilog, in lockstep with the VM | the CPU's |
| ``soc`` | :mod:`bpfcore.sim.engines.soc` | the whole board (MACs, datapath, core), frames on its ports | |

Modules are imported when an engine is made: the RTL engine needs Amaranth and cocotb, the
kernel engine the ``bpf()`` system call, the VM nothing.
"""

import importlib
from dataclasses import dataclass
from typing import Optional

from bpfcore.errors import BpfcoreError

__all__ = ["ENGINES", "EngineEntry", "engine_names", "make_engine", "make_conformance_engine",
           "run_packets", "SOC_PORTS", "SOC_SYNC_MHZ"]

#: Where a capture enters the ``soc`` engine's board: port 0, port 1, or both (packet ``i`` on
#: port ``i % 2``).
SOC_PORTS = ("0", "1", "both")
#: The core clock the ``soc`` engine simulates by default, in MHz (half the RGMII clock).
SOC_SYNC_MHZ = 62.5


@dataclass(frozen=True)
class EngineEntry:
    """Where an engine lives: its module and the class for each workload it runs (None when it
    does not run that workload)."""
    module: str
    xdp: Optional[str] = None
    conformance: Optional[str] = None
    #: Whether the engine runs a simulator (``--simulator`` applies).
    simulated: bool = False


#: Engine name -> where it lives.
ENGINES = {
    "vm": EngineEntry("bpfcore.sim.engines.vm", xdp="VmEngine", conformance="VmConformance"),
    "kernel": EngineEntry("bpfcore.sim.engines.kernel", xdp="KernelEngine"),
    "rtl": EngineEntry("bpfcore.sim.engines.rtl", xdp="RtlEngine", conformance="RtlConformance",
                       simulated=True),
    "soc": EngineEntry("bpfcore.sim.engines.soc", xdp="SocEngine", simulated=True),
}


def engine_names(workload):
    """Names of the engines that run ``workload`` (``"xdp"`` or ``"conformance"``), sorted."""
    return sorted(name for name, entry in ENGINES.items() if getattr(entry, workload))


def _engine_class(name, workload):
    names = engine_names(workload)
    entry = ENGINES.get(name)
    if entry is None or getattr(entry, workload) is None:
        raise BpfcoreError(f"unknown {workload} engine {name!r}; choose {' or '.join(names)}")
    try:
        module = importlib.import_module(entry.module)
    except ImportError as error:
        raise BpfcoreError(f"engine {name!r} is not available: {error}") from None
    return entry, getattr(module, getattr(entry, workload))


def make_engine(name, obj, prog, **options):
    """The xdp engine ``name`` for program ``prog`` of ELF object ``obj``.

    ``simulator`` (None for the default) is passed on only to engines that simulate.
    """
    entry, cls = _engine_class(name, "xdp")
    simulator = options.pop("simulator", None)
    if entry.simulated and simulator is not None:
        options["simulator"] = simulator
    return cls(obj, prog, **options)


def make_conformance_engine(name, simulator=None):
    """The conformance engine ``name`` (``simulator`` for the engines that simulate)."""
    entry, cls = _engine_class(name, "conformance")
    return cls(simulator=simulator) if entry.simulated and simulator else cls()


def run_packets(obj, prog, packets, engine="vm", times_ns=None, **options):
    """Run ``packets`` through ``prog`` on ``engine``; returns a :class:`RunReport`."""
    eng = make_engine(engine, obj, prog, **options)
    try:
        return eng.run(packets, times_ns)
    finally:
        eng.close()
