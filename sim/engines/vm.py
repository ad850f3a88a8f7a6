"""The golden VM as a run engine: XDP programs over packets (:class:`VmEngine`) and conformance
cases (:class:`VmConformance`)."""

from bpfcore import abi
from bpfcore.errors import BpfcoreError
from bpfcore.sim.load.conformance import run_case_vm
from bpfcore.sim.load.program import validate
from bpfcore.sim.model.helpers import XdpEnv
from bpfcore.sim.model.maps import ProgArrayMap, create_map
from bpfcore.sim.model.vm import Vm
from bpfcore.sim.model.xdp import PacketResult, RunReport, check_packet, dump_map_entries, \
    finished_packet

__all__ = ["VmEngine", "VmConformance"]


class VmEngine:
    """Runs a program on the golden VM.

    Parameters
    ----------
    obj : ElfObject
    prog : ElfProgram
        The entry program (one of ``obj.programs``).
    seed : int
        ``get_prandom_u32`` seed.
    clock : int or callable
        ``ktime_get_ns`` value.
    ingress_ifindex, rx_queue_index : int
        ``struct xdp_md`` fields (the kernel test run uses the loopback device: 1, queue 0).
    map_settings : list of (name, key, value)
        Map entries written before the first packet.
    budget : int
        Instruction budget per packet.
    on_retire : callable, optional
        The VM's retire hook (one :class:`~bpfcore.abi.RetireRecord` per instruction).

    Raises
    ------
    BpfcoreError, ProgramError
        A map the VM cannot build, a setting that does not fit, a program the loader rejects.
    """
    name = "vm"

    def __init__(self, obj, prog, *, seed=1, clock=0, ingress_ifindex=1, rx_queue_index=0,
                 map_settings=(), budget=abi.DEFAULT_BUDGET, on_retire=None):
        self.obj = obj
        self.prog = prog
        self.ingress_ifindex = ingress_ifindex
        self.rx_queue_index = rx_queue_index
        self.maps = [create_map(spec) for spec in obj.maps]
        self.env = XdpEnv(self.maps, seed=seed, clock=clock)
        helpers = self.env.helpers()
        self.vm = Vm(prog.program, helpers=helpers, maps=self.maps, budget=budget,
                     on_retire=on_retire)
        self.prog_names = {}
        by_name = obj.programs_by_name
        for spec, m in zip(obj.maps, self.maps):
            if isinstance(m, ProgArrayMap):
                names = {}
                for slot, prog_name in spec.init_progs.items():
                    target = by_name[prog_name]
                    validate(target.program, helpers=set(helpers), n_maps=len(self.maps))
                    m.set_program(slot, target.program, obj.programs.index(target) + 1)
                    names[slot] = prog_name
                self.prog_names[spec.name] = names
        for name, key, value in map_settings:
            self._set(name, key, value)

    def _set(self, name, key, value):
        for spec, m in zip(self.obj.maps, self.maps):
            if spec.name == name:
                if isinstance(m, ProgArrayMap):
                    raise BpfcoreError(f"map '{name}': prog_array slots are set by the object's "
                                       "__array(values, ...) initialiser")
                result = m.update(key, value)
                if result:
                    raise BpfcoreError(f"map '{name}': update of key {key.hex()} failed with "
                                       f"errno {-result}")
                return
        raise BpfcoreError(f"no map named '{name}'; maps: "
                           f"{', '.join(s.name for s in self.obj.maps) or 'none'}")

    def _ctx(self, length):
        data = abi.PKT_BASE + abi.PKT_HEADROOM
        return abi.xdp_md_bytes(data, data + length, self.ingress_ifindex, self.rx_queue_index)

    def run_packet(self, index, data):
        problem = check_packet(index, data)
        if problem:
            return PacketResult("REJECTED", message=problem)
        self.env.start_run()
        if self.vm.program is not self.prog.program:      # a tail call switched programs
            self.vm.load_program(self.prog.program)
        result = self.vm.run(r1=abi.CTX_BASE, ctx=self._ctx(len(data)), packet=bytes(data))
        if not result.ok:
            return PacketResult("ABORTED", message=f"packet {index}: {result.message}")
        redirect = self.env.redirect
        return finished_packet(result.r0, self.vm.mem.packet_bytes, self.ingress_ifindex,
                               None if redirect is None else redirect[-1])

    def dump_maps(self):
        return {spec.name: dump_map_entries(spec, m.items(), self.prog_names.get(spec.name))
                for spec, m in zip(self.obj.maps, self.maps)}

    def run(self, packets, times_ns=None):
        """Run every packet; returns a :class:`RunReport`.

        ``times_ns``, when given, is one ``ktime_get_ns`` value per packet (e.g. the capture
        timestamps), replacing the engine's ``clock``.
        """
        report = RunReport(self.name, self.prog.name)
        for index, data in enumerate(packets):
            if times_ns is not None:
                self.env.clock = times_ns[index]
            report.packets.append(self.run_packet(index, data))
        report.maps = self.dump_maps()
        report.log = list(self.env.log)
        return report

    def close(self):
        pass


class VmConformance:
    """The golden VM as a conformance engine (the conformance profile of
    :mod:`bpfcore.sim.load.conformance`)."""

    name = "vm"

    def run_many(self, cases):
        return [run_case_vm(case.program, case.mem) for case in cases]
