"""The Linux kernel as a run engine: maps created in the kernel, map fds patched into ``lddw``,
the program loaded as XDP and run with ``BPF_PROG_TEST_RUN`` (:mod:`bpfcore.sim.load.kernel`), maps
read back at the end. It cannot know where a ``REDIRECT`` goes."""

import ctypes
import errno
import os

from bpfcore.abi import KERNEL_FRAME_LIMIT, MapType
from bpfcore.errors import BpfcoreError
from bpfcore.sim.model.xdp import PacketResult, RunReport, check_packet, dump_map_entries, \
    finished_packet

__all__ = ["KernelEngine"]

BPF_MAP_FREEZE = 22


class _FdAttr(ctypes.Structure):
    _fields_ = [("map_fd", ctypes.c_uint32)]


def _kernel_name(name):
    return "".join(c if c.isalnum() or c in "_." else "_" for c in name)[:15]


class KernelEngine:
    """Runs a program in the Linux kernel with ``BPF_PROG_TEST_RUN`` (same parameters as
    :class:`~bpfcore.sim.engines.vm.VmEngine`; ``seed`` and ``clock`` cannot be set in the kernel).

    Raises
    ------
    BpfcoreError
        ``bpf()`` is not usable here (the reason says why), or the kernel refused a map or the
        program (with the verifier's last lines).
    """
    name = "kernel"

    def __init__(self, obj, prog, *, seed=1, clock=0, ingress_ifindex=1, rx_queue_index=0,
                 map_settings=(), budget=None, on_retire=None):
        from bpfcore.sim.load import kernel
        ok, why = kernel.kernel_available()
        if not ok:
            raise BpfcoreError(f"engine kernel: {why}")
        self.kernel = kernel
        self.obj = obj
        self.prog = prog
        self.ingress_ifindex = ingress_ifindex
        self.rx_queue_index = rx_queue_index
        self.maps = []
        self.progs = []
        self.prog_names = {}
        self.devmap_values = {}
        try:
            self._setup(map_settings)
        except BaseException:
            self.close()
            raise

    def _setup(self, map_settings):
        kernel = self.kernel
        for spec in self.obj.maps:
            m = kernel.KernelMap(spec.type, spec.key_size, spec.value_size, spec.max_entries,
                                 flags=spec.flags, name=_kernel_name(spec.name))
            self.maps.append(m)
            if spec.initial is not None:
                m.update(bytes(4), bytes(spec.initial).ljust(spec.value_size, b"\0"))
            if spec.read_only:
                kernel.bpf(BPF_MAP_FREEZE, _FdAttr(map_fd=m.fd))
        fds = [m.fd for m in self.maps]
        license = self.obj.license or "GPL"
        self.main = self._load(self.prog, fds, license)
        by_name = self.obj.programs_by_name
        loaded = {self.prog.name: self.main}
        for spec, m in zip(self.obj.maps, self.maps):
            names = {}
            for slot, prog_name in sorted(spec.init_progs.items()):
                if prog_name not in loaded:
                    loaded[prog_name] = self._load(by_name[prog_name], fds, license)
                m.update(slot.to_bytes(4, "little"), loaded[prog_name].fd.to_bytes(4, "little"))
                names[slot] = prog_name
            if spec.type == MapType.PROG_ARRAY:
                self.prog_names[spec.name] = names
        for name, key, value in map_settings:
            self._set(name, key, value)

    def _load(self, prog, fds, license):
        slots = self.kernel.patch_map_refs(prog.program.slots, fds)
        p = self.kernel.KernelProgram(slots, name=_kernel_name(prog.name), license=license)
        self.progs.append(p)
        return p

    def _set(self, name, key, value):
        for spec, m in zip(self.obj.maps, self.maps):
            if spec.name == name:
                if spec.type == MapType.PROG_ARRAY:
                    raise BpfcoreError(f"map '{name}': prog_array slots are set by the object's "
                                       "__array(values, ...) initialiser")
                if spec.type == MapType.DEVMAP:
                    # The kernel wants an existing device: every slot points at the loopback
                    # (ifindex 1); the requested values are kept for the map dump.
                    if len(key) != 4 or len(value) != spec.value_size:
                        raise BpfcoreError(f"map '{name}': devmap entries need a 4-byte key and "
                                           f"a {spec.value_size}-byte value")
                    self.devmap_values.setdefault(name, {})[key] = value
                    value = (1).to_bytes(4, "little") + value[4:]
                try:
                    m.update(key, value)
                except self.kernel.KernelError as error:
                    raise BpfcoreError(f"map '{name}': update of key {key.hex()} failed: "
                                       f"{error}") from None
                return
        raise BpfcoreError(f"no map named '{name}'; maps: "
                           f"{', '.join(s.name for s in self.obj.maps) or 'none'}")

    def run_packet(self, index, data):
        problem = check_packet(index, data)
        if problem:
            return PacketResult("REJECTED", message=problem)
        ctx = None
        if self.ingress_ifindex != 1 or self.rx_queue_index:
            ctx = self.kernel.XdpMd(data=0, data_end=len(data), data_meta=0,
                                    ingress_ifindex=self.ingress_ifindex,
                                    rx_queue_index=self.rx_queue_index)
        run = self.main.test_run(bytes(data), ctx=ctx, data_out_size=KERNEL_FRAME_LIMIT)
        # The kernel cannot tell where a REDIRECT goes.
        return finished_packet(run.retval, lambda: run.data_out, self.ingress_ifindex, None)

    def _entries(self, spec, m):
        if spec.type in (MapType.ARRAY, MapType.DEVMAP, MapType.PROG_ARRAY):
            keys = [i.to_bytes(4, "little") for i in range(spec.max_entries)]
        else:
            keys = list(m.keys())
        entries = []
        for key in keys:
            if spec.type == MapType.PROG_ARRAY:
                if int.from_bytes(key, "little") in self.prog_names.get(spec.name, {}):
                    entries.append((key, b""))
                continue
            try:
                value = m.lookup(key)
            except self.kernel.KernelError as error:
                if error.errno == errno.ENOENT:
                    continue
                raise
            if value is not None:
                value = self.devmap_values.get(spec.name, {}).get(key, value)
                entries.append((key, value))
        return entries

    def dump_maps(self):
        return {spec.name: dump_map_entries(spec, self._entries(spec, m),
                                            self.prog_names.get(spec.name))
                for spec, m in zip(self.obj.maps, self.maps)}

    def run(self, packets, times_ns=None):
        """Run every packet (``times_ns`` is ignored: the kernel's clock cannot be set)."""
        report = RunReport(self.name, self.prog.name)
        # Pin to CPU 0 so that get_smp_processor_id agrees with the VM (cpu 0).
        old = os.sched_getaffinity(0)
        try:
            os.sched_setaffinity(0, {0})
            for index, data in enumerate(packets):
                report.packets.append(self.run_packet(index, data))
        finally:
            os.sched_setaffinity(0, old)
        report.maps = self.dump_maps()
        return report

    def close(self):
        for p in self.progs:
            p.close()
        for m in self.maps:
            m.close()
        self.progs, self.maps = [], []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
