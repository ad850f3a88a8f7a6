"""The generated Verilog as a run engine, in lockstep with the golden VM (``--engine rtl``).

:class:`RtlEngine` runs a capture through :class:`bpfcore.hdl.xdpcore.XdpCore` (CPU, map
memory, helper units) under cocotb, one simulator invocation for the whole capture, and through
the golden VM (:class:`bpfcore.sim.engines.vm.VmEngine`) with the same maps, seed and clock. It
compares, packet by packet, every retire record, the ``trace_printk`` messages (the core's
``printk`` stream, logged by the bench, against the VM's ``XdpEnv.log``), the verdict, the
bytes of the packet that leaves and its port, and at the end every map, read back through the
map memory's host port. The first difference stops the run with a report naming the packet
(and, for records, the retirement, both records and the disassembly around the pc).

The helper units' clock is frozen during a packet (``ns_per_cycle=0``) and set before each one,
so ``ktime_get_ns`` returns the same value as the VM's clock.

:class:`RtlConformance` runs conformance cases on :class:`bpfcore.hdl.bench_top.BenchTop` (the CPU
with the conformance profile's helper), the whole batch in one simulator invocation, comparing
the two retire-record streams in lockstep. Cycle figures per case (in
:class:`bpfcore.sim.load.conformance.Outcome`) count from the cycle at which ``start`` was
sampled: ``cycles`` to the ``done`` pulse, ``first_retire_cycle`` and ``last_retire_cycle`` to the
first and last retirement (``retirements``: every one, with its record), ``retired`` the records
seen. CPI = (last_retire_cycle - first_retire_cycle) / (retired - 1).
"""

from bpfcore import abi
from bpfcore.errors import BpfcoreError
from bpfcore.hdl.helpers import BUILDABLE_HELPERS
from bpfcore.errors import ProgramError
from bpfcore.sim.engines.vm import VmEngine
from bpfcore.sim.load.conformance import Outcome, conformance_helpers, conformance_start
from bpfcore.sim.load.program import Program, validate
from bpfcore.sim.model.vm import Vm
from bpfcore.sim.model.xdp import PacketResult, RunReport, check_packet, dump_map_entries, \
    finished_packet
from bpfcore.sim.rtl.mapdrv import plan
from bpfcore.sim.rtl.lockstep import first_mismatch
from bpfcore.sim.rtl.runner import SIMULATORS, BatchItem, Bench
from bpfcore.sim.rtl.verilog import TopSpec

__all__ = ["RtlEngine", "RtlConformance", "xdp_core_spec", "bench_top_spec", "printk_mismatch",
           "DEFAULT_CORE"]

#: The core the engine simulates (XdpCore keyword arguments): map memory big enough for every
#: firmware program (firewall's 40-byte keys, ratelimit's 1024-entry lru_hash), and every
#: helper, ``trace_printk`` included (the bench drains its text stream).
DEFAULT_CORE = {"max_key_size": 40, "slots": 2048, "buckets": 4096, "value_bytes": 65536,
                "helpers": sorted(BUILDABLE_HELPERS)}

_BENCHES = {}


def _bench(spec, simulator):
    """The :class:`Bench` of ``spec`` on ``simulator``, built once per process."""
    key = (spec.digest(), simulator)
    if key not in _BENCHES:
        _BENCHES[key] = Bench(spec, simulator)
    return _BENCHES[key]


def bench_top_spec(**cpu_kwargs):
    """The :class:`TopSpec` of the conformance bench top with these Cpu constructor arguments."""
    return TopSpec("bpfcore.hdl.bench_top:BenchTop", dict(cpu_kwargs), "bench_top")


def xdp_core_spec(**kwargs):
    """The :class:`TopSpec` of :class:`~bpfcore.hdl.xdpcore.XdpCore` with these arguments."""
    return TopSpec("bpfcore.hdl.xdpcore:XdpCore", dict(kwargs), "xdp_core")


def printk_mismatch(want, run):
    """The first difference between the VM's ``trace_printk`` messages ``want`` and those of
    :class:`~bpfcore.sim.rtl.trace.TraceRun` ``run`` (as one line), or None."""
    got = run.printk
    for i, (vm_text, core_text) in enumerate(zip(want, got.messages)):
        if vm_text != core_text:
            return (f"trace_printk message {i}: the core printed {core_text!r}, the VM "
                    f"{vm_text!r}")
    if len(want) != len(got.messages):
        return (f"trace_printk: the core printed {len(got.messages)} message(s), the VM "
                f"{len(want)}")
    if got.pending:
        return (f"trace_printk: the core left the message {bytes(got.pending)!r} "
                "without its end")
    return None


class RtlEngine:
    """Runs an XDP program on the cycle-accurate core, checked against the VM.

    Parameters
    ----------
    obj, prog, seed, clock, ingress_ifindex, rx_queue_index, map_settings, budget
        As :class:`bpfcore.sim.engines.vm.VmEngine` (the VM reference gets the same).
    simulator : str
        ``"icarus"`` or ``"verilator"``.
    core : dict
        :class:`~bpfcore.hdl.xdpcore.XdpCore` arguments (default :data:`DEFAULT_CORE`).

    Raises
    ------
    BpfcoreError
        The maps do not fit the map memory, the program calls a helper the core does not
        build, or it is longer than the program memory.
    """
    name = "rtl"

    def __init__(self, obj, prog, *, seed=1, clock=0, ingress_ifindex=1, rx_queue_index=0,
                 map_settings=(), budget=abi.DEFAULT_BUDGET, simulator="icarus", core=None):
        if simulator not in SIMULATORS:
            raise BpfcoreError(f"unknown simulator {simulator!r}; choose "
                               f"{' or '.join(SIMULATORS)}")
        self.obj, self.prog = obj, prog
        self.seed, self.clock, self.budget = seed, clock, budget
        self.ingress_ifindex, self.rx_queue_index = ingress_ifindex, rx_queue_index
        self.simulator = simulator
        self.spec = self.design(DEFAULT_CORE if core is None else core)
        self.records = []
        self.vm = VmEngine(obj, prog, seed=seed, clock=clock, ingress_ifindex=ingress_ifindex,
                           rx_queue_index=rx_queue_index, map_settings=map_settings,
                           budget=budget, on_retire=self.records.append)
        top = self.core_of(self.spec.make())
        self.helper_ids = top.helper_ids
        self.mm = top.maps
        # Program memory: the entry program from slot 0, then every tail-call target.
        by_name = {p.name: p for p in obj.programs}
        self.programs = [prog]
        for spec in obj.maps:
            for name in spec.init_progs.values():
                if by_name[name] not in self.programs:
                    self.programs.append(by_name[name])
        self.bases = {}
        self.slots = []
        for p in self.programs:
            where = f"program '{p.name}'"
            try:
                validate(p.program, helpers=set(self.helper_ids), n_maps=len(obj.maps))
            except ProgramError as error:
                raise BpfcoreError(f"{where} cannot run on the core (helpers built: "
                                   f"{', '.join(map(str, sorted(self.helper_ids)))}): {error}"
                                   ) from None
            self.bases[p.name] = len(self.slots)
            self.slots += list(p.program.slots)
        if len(self.slots) > top.cpu.program_slots:
            raise BpfcoreError(f"program '{prog.name}' and its tail-call targets take "
                               f"{len(self.slots)} slots, more than the core's "
                               f"{top.cpu.program_slots}-slot program memory")
        self.layouts = plan(obj.maps, self.mm)
        # A prog_array value in the map memory is where its program lies: first slot in the
        # low 16 bits, length in slots in the high 16 (what tail_call hands the CPU).
        prog_entries = []
        for spec in obj.maps:
            for slot, name in spec.init_progs.items():
                base, length = self.bases[name], len(by_name[name].program.slots)
                prog_entries.append((spec.name, slot.to_bytes(4, "little"),
                                     (base | length << 16).to_bytes(4, "little")))
        self.map_settings = prog_entries + list(map_settings)

    def design(self, core):
        """The :class:`TopSpec` this engine simulates, for XdpCore arguments ``core``."""
        return xdp_core_spec(**core)

    @staticmethod
    def core_of(top):
        """The :class:`~bpfcore.hdl.xdpcore.XdpCore` of the simulated top."""
        return top

    def bench(self):
        """The (cached, per process) :class:`Bench` of this engine's design."""
        return _bench(self.spec, self.simulator)

    def maps_section(self):
        index = {spec.name: i for i, spec in enumerate(self.obj.maps)}
        entries = [[index[name], bytes(key).hex(), bytes(value).hex()]
                   for name, key, value in self.map_settings]
        initial = [[i, spec.initial.hex()] for i, spec in enumerate(self.obj.maps)
                   if spec.initial]
        return {
            "map_bits": self.mm.map_bits, "max_key_size": self.mm.max_key_size,
            "max_value_size": self.mm.max_value_size,
            "layouts": [{"index": lay.index, "name": lay.name,
                         "fields": [[f.value, v] for f, v in lay.fields.items()]}
                        for lay in self.layouts],
            "initial": initial, "entries": entries, "seed": self.seed, "dump": True,
        }

    def run(self, packets, times_ns=None):
        """Run every packet on the VM and the core; returns the core's :class:`RunReport`
        (with ``cycles`` and ``retired`` per packet run). Raises :class:`BpfcoreError` at the
        first difference between them."""
        reference = []            # (index, records, log, PacketResult) of packets that run
        report = RunReport(self.name, self.prog.name, cycles=[], retired=[])
        slots = self.slots
        entry_len = len(self.prog.program.slots)
        items = []
        for index, data in enumerate(packets):
            data = bytes(data)
            problem = check_packet(index, data)
            if problem:
                report.packets.append(PacketResult("REJECTED", message=problem))
                continue
            if times_ns is not None:
                self.vm.env.clock = times_ns[index]
            clock = self.vm.env.clock
            self.records.clear()
            logged = len(self.vm.env.log)
            result = self.vm.run_packet(index, data)
            reference.append((index, list(self.records), self.vm.env.log[logged:], result))
            report.packets.append(None)
            items.append(BatchItem(slots, packet=data, r1=abi.CTX_BASE, budget=self.budget,
                                   ingress_ifindex=self.ingress_ifindex,
                                   rx_queue_index=self.rx_queue_index,
                                   time_ns=clock() if callable(clock) else clock,
                                   readback=True,
                                   entry_len=entry_len,
                                   timeout_cycles=20_000 + 200 * len(self.records)))
        batch = self.bench().run(items, maps=self.maps_section())
        runs = {run.index: run for run in batch.runs}
        for n, (index, records, want_log, want) in enumerate(reference):
            run = runs.get(n)
            status = batch.status[n] if n < len(batch.status) else None
            if run is None or status != "done" or run.end is None:
                raise BpfcoreError(f"packet {index}: the core did not finish "
                                   f"({status or 'never started'}) after "
                                   f"{len(run.records) if run else 0} retirements")
            got = [rec for _, rec in run.records]
            mismatch = first_mismatch(records, got, slots)
            if mismatch:
                raise BpfcoreError(f"packet {index}: {mismatch}")
            mismatch = printk_mismatch(want_log, run)
            if mismatch:
                raise BpfcoreError(f"packet {index}: {mismatch}")
            report.log += run.printk.messages
            out = self._result(run, batch.extras[n])
            if (out.action, out.r0, out.data, out.port) != (want.action, want.r0, want.data,
                                                              want.port):
                raise BpfcoreError(
                    f"packet {index}: the core gives {out.action} r0={out.r0} port={out.port} "
                    f"{len(out.data or b'')} B, the VM {want.action} r0={want.r0} "
                    f"port={want.port} {len(want.data or b'')} B"
                    + ("" if out.data == want.data else " (bytes differ)"))
            report.cycles.append(run.cycles)
            report.retired.append(len(got))
            report.packets[index] = out
        report.maps = self.dump_maps(batch)
        want_maps = self.vm.dump_maps()
        if report.maps != want_maps:
            names = [name for name in want_maps if report.maps.get(name) != want_maps[name]]
            raise BpfcoreError(f"after the capture, map(s) {', '.join(names)} differ between "
                               "the core and the VM")
        return report

    def _result(self, run, extra):
        _, r0, fault, _ = run.end
        if fault:
            return PacketResult("ABORTED", message=f"fault {fault} at pc {run.end[3]}")
        kind, ifindex = extra.get("redirect", [0, 0])[:2]
        return finished_packet(r0, lambda: bytes.fromhex(extra.get("packet", "")),
                               self.ingress_ifindex, ifindex if kind else None)

    def dump_maps(self, batch=None):
        """The maps as the core's host port reads them back after ``batch`` (by default after
        loading them, with no packet run)."""
        if batch is None:
            batch = self.bench().run([], maps=self.maps_section())
        out = {}
        for spec, entries in zip(self.obj.maps, batch.maps):
            pairs = [(bytes.fromhex(k), bytes.fromhex(v)) for k, v in entries]
            out[spec.name] = dump_map_entries(spec, pairs, self.vm.prog_names.get(spec.name))
        return out

    def close(self):
        pass


class RtlConformance:
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
        return _bench(self.spec, self.simulator)

    def _reference(self, program, mem):
        """(VM records, VM RunResult, BatchItem) or an Outcome for a case that does not run."""
        if len(mem) > abi.PKT_BUF_SIZE - abi.PKT_HEADROOM:
            return Outcome(error=f"mem of {len(mem)} bytes does not fit the packet buffer")
        records = []
        # A generated program (bpfcore.sim.gen.progen.GenProgram) carries its own budget.
        budget = getattr(program, "budget", None) or self.budget
        try:
            vm = Vm(program, helpers=self.helpers, budget=budget, on_retire=records.append)
        except ProgramError as error:
            return Outcome(error=f"rejected: {error}")
        r1, r2 = conformance_start(mem)
        item = BatchItem(list(program.slots), packet=bytes(mem), r1=r1, r2=r2, budget=budget)
        ctx = abi.xdp_md_bytes(item.data, item.data_end)
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
