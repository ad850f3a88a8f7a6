"""The RTL conformance engine: every case runs on the golden VM and on the generated Verilog of
:class:`bpfcore.hdl.bench_top.BenchTop`, the whole batch in one simulator invocation, and the two
retire-record streams are compared in lockstep.

Cycle figures per case (in :class:`bpfcore.sim.conformance.Outcome`), counted from the cycle at
which ``start`` was sampled: ``cycles`` to the ``done`` pulse, ``first_retire_cycle`` and
``last_retire_cycle`` to the first and last retirement (``retirements``: every one, with its
record), ``retired`` the records seen.
CPI = (last_retire_cycle - first_retire_cycle) / (retired - 1).
"""

from bpfcore import abi
from bpfcore.errors import BpfcoreError, ProgramError
from ..conformance import Outcome, conformance_helpers, conformance_start
from ..program import Program
from ..vm import Vm
from .lockstep import first_mismatch
from .runner import SIMULATORS, BatchItem, Bench
from .verilog import TopSpec

__all__ = ["RtlEngine", "bench_top_spec", "context_bytes"]

_BENCHES = {}


def bench_top_spec(**cpu_kwargs):
    """The :class:`TopSpec` of the bench top with these Cpu constructor arguments."""
    return TopSpec("bpfcore.hdl.bench_top:BenchTop", dict(cpu_kwargs), "bench_top")


#: ``struct xdp_md`` as the CPU presents it (one definition, in :mod:`bpfcore.abi`).
context_bytes = abi.xdp_md_bytes


class RtlEngine:
    """Conformance engine running the Cpu's Verilog in lockstep with the VM.

    Parameters
    ----------
    simulator : str
        ``"icarus"`` or ``"verilator"``.
    budget : int
        Instruction budget of every run (VM and RTL), unless the program has its own ``budget``
        attribute (generated programs do).
    cpu_kwargs
        Passed to the Cpu (``program_slots``, ``frames``, ``with_divider``, ``with_atomics``,
        ``inject_bug``).
    """

    name = "rtl"

    def __init__(self, simulator="icarus", *, budget=abi.DEFAULT_BUDGET, **cpu_kwargs):
        if simulator not in SIMULATORS:
            raise BpfcoreError(f"unknown simulator {simulator!r}; choose "
                               f"{' or '.join(SIMULATORS)}")
        self.simulator = simulator
        self.budget = budget
        self.spec = bench_top_spec(**cpu_kwargs)
        self.helpers = conformance_helpers()

    def bench(self):
        """The (cached, per process) :class:`Bench` of this engine's design."""
        key = (self.spec.digest(), self.simulator)
        if key not in _BENCHES:
            _BENCHES[key] = Bench(self.spec, self.simulator)
        return _BENCHES[key]

    def _reference(self, program, mem):
        """(VM records, VM RunResult, BatchItem) or an Outcome for a case that does not run."""
        if len(mem) > abi.PKT_BUF_SIZE - abi.PKT_HEADROOM:
            return Outcome(error=f"mem of {len(mem)} bytes does not fit the packet buffer")
        records = []
        # A generated program (bpfcore.sim.progen.GenProgram) carries its own budget.
        budget = getattr(program, "budget", None) or self.budget
        try:
            vm = Vm(program, helpers=self.helpers, budget=budget, on_retire=records.append)
        except ProgramError as error:
            return Outcome(error=f"rejected: {error}")
        r1, r2 = conformance_start(mem)
        item = BatchItem(list(program.slots), packet=bytes(mem), r1=r1, r2=r2, budget=budget)
        ctx = context_bytes(item.data, item.data_end)
        result = vm.run(r1=r1, r2=r2, ctx=ctx, packet=bytes(mem))
        # Generous: the divider and helper calls take many cycles per instruction.
        item.timeout_cycles = 10_000 + 200 * result.retired
        return records, result, item

    def run_many(self, cases):
        outcomes = [None] * len(cases)
        pending = []
        for i, case in enumerate(cases):
            program = case.program
            if not isinstance(program, Program):
                program = Program(program)
            ref = self._reference(program, case.mem)
            if isinstance(ref, Outcome):
                outcomes[i] = ref
            else:
                pending.append((i, program, ref))
        if pending:
            bench = self.bench()
            too_long = [p for p in pending if len(p[1].slots) > bench.program_slots]
            for i, program, _ in too_long:
                outcomes[i] = Outcome(error=f"rejected: program of {len(program.slots)} slots "
                                            f"exceeds the {bench.program_slots}-slot program "
                                            "memory")
            pending = [p for p in pending if p not in too_long]
        if pending:
            try:
                batch = bench.run([ref[2] for _, _, ref in pending])
            except BpfcoreError as error:
                for i, _, _ in pending:
                    outcomes[i] = Outcome(error=f"rtl: {error}")
                return outcomes
            runs = {run.index: run for run in batch.runs}
            for n, (i, program, (records, result, item)) in enumerate(pending):
                outcomes[i] = self._judge(program, records, result, runs.get(n),
                                          batch.status[n] if n < len(batch.status) else None,
                                          item)
        return outcomes

    def _judge(self, program, records, result, run, status, item):
        if run is None:
            return Outcome(error=f"rtl: the program was never started ({status or 'no status'})")
        outcome = Outcome(retired=len(run.records), cycles=run.cycles,
                          retirements=[(cycle - run.start_cycle, record)
                                       for cycle, record in run.records])
        mismatch = first_mismatch(records, [rec for _, rec in run.records], program.slots)
        if mismatch:
            outcome.error = mismatch
        elif status != "done" or run.end is None:
            outcome.error = (f"rtl: no done pulse within {item.timeout_cycles} cycles after "
                             f"{len(run.records)} retirements")
        else:
            _, r0, fault, pc = run.end
            if fault != result.fault or (fault and pc != result.fault_pc) or r0 != result.r0:
                outcome.error = (f"rtl: done reports r0={r0:#x} fault={fault} pc={pc}, the VM "
                                 f"r0={result.r0:#x} fault={int(result.fault)} "
                                 f"pc={result.fault_pc}")
            elif not result.ok:
                outcome.error = f"fault {result.fault.name}: {result.message}"
            else:
                outcome.r0 = r0
        return outcome
