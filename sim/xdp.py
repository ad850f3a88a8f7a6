"""Run an XDP program over packets on an engine, and collect what a datapath would see.

An engine takes a loaded object (:class:`~bpfcore.sim.elf.ElfObject`) and one of its programs,
sets up the maps, and runs the program once per packet, building ``struct xdp_md`` and the packet
buffer each time. It reports, per packet, the verdict, the packet that leaves (for ``TX``, ``PASS``
and ``REDIRECT``) and the port it leaves by, and at the end the contents of every map.

Engines:

* ``vm``: the golden VM (:mod:`bpfcore.sim.vm`) with the helpers of :mod:`bpfcore.sim.helpers`
  and the maps of :mod:`bpfcore.sim.maps`;
* ``kernel``: the Linux kernel through ``bpf()`` (:mod:`bpfcore.sim.kernel`): maps created in the
  kernel, map fds patched into ``lddw``, the program loaded as XDP and run with
  ``BPF_PROG_TEST_RUN``, maps read back at the end. It cannot know where a ``REDIRECT`` goes.

Both produce a :class:`RunReport` whose :meth:`RunReport.to_json` has the same shape, so the two
compare equal when the engines agree. Packets the datapath cannot take (shorter than an Ethernet
header, longer than the XDP buffer) are not run: their verdict is ``REJECTED``.
"""

import ctypes
import errno
import json
import os
from dataclasses import dataclass, field
from typing import Optional

from bpfcore import abi
from bpfcore.abi import ETH_HLEN, KERNEL_FRAME_LIMIT, MapType, XdpAction
from bpfcore.errors import BpfcoreError
from .helpers import XdpEnv
from .maps import ProgArrayMap, create_map
from .program import validate
from .vm import Vm

__all__ = ["PacketResult", "RunReport", "VmEngine", "KernelEngine", "make_engine", "ENGINES",
           "VERDICTS", "MAX_PACKET", "parse_map_setting", "dump_map_entries", "run_packets",
           "load_map_file", "MAP_FILE_FORMAT", "compare_reports"]

#: The format of map initialisation files (``firmware/NAME.maps.json``, see firmware/mapspec.py).
MAP_FILE_FORMAT = "bpfcore-maps/1"

#: Verdict names, in the order ``counts`` lists them.
VERDICTS = ("ABORTED", "DROP", "PASS", "TX", "REDIRECT", "REJECTED")

#: Longest packet an engine accepts: what fits a kernel test-run XDP buffer after the headroom.
MAX_PACKET = KERNEL_FRAME_LIMIT - abi.PKT_HEADROOM

HOST_PORT = "host"


@dataclass
class PacketResult:
    """What happened to one packet.

    Members
    -------
    action : str
        One of :data:`VERDICTS`.
    r0 : int or None
        The program's return value (None when the packet was rejected or the program faulted).
    data : bytes or None
        The packet as it leaves (TX, PASS, REDIRECT), else None.
    port : int, str or None
        Where it leaves: the ingress ifindex for TX, ``"host"`` for PASS, the target ifindex for
        REDIRECT (None when unknown).
    message : str
        Why the packet was rejected or aborted by a fault, else empty.
    """
    action: str
    r0: Optional[int] = None
    data: Optional[bytes] = None
    port: object = None
    message: str = ""


@dataclass
class RunReport:
    """The outcome of a run over a list of packets.

    Members
    -------
    engine : str
    program : str
    packets : list of PacketResult
    maps : dict
        ``{map name: {"type", "key_size", "value_size", "max_entries", "entries"}}`` where
        ``entries`` is a list of ``{"key": hex, "value": hex}`` sorted by key (array maps list
        only non-zero values; a prog_array's value is the program's name).
    log : list of str
        ``trace_printk`` output (the VM's; the ``rtl`` engine's equals it).
    cycles, retired : list of int or None
        Per packet run on the cycle-accurate core (``rtl`` engine only): cycles from start to
        done, instructions retired.
    """
    engine: str
    program: str
    packets: list = field(default_factory=list)
    maps: dict = field(default_factory=dict)
    log: list = field(default_factory=list)
    cycles: Optional[list] = None
    retired: Optional[list] = None

    @property
    def verdicts(self):
        return [p.action for p in self.packets]

    @property
    def counts(self):
        counts = dict.fromkeys(VERDICTS, 0)
        for p in self.packets:
            counts[p.action] += 1
        return counts

    def to_json(self):
        """The ``--json`` object: engine, program, verdicts, counts, maps."""
        return {"engine": self.engine, "program": self.program, "packets": len(self.packets),
                "verdicts": self.verdicts, "counts": self.counts, "maps": self.maps}


def _action_name(r0):
    r0 &= 0xffff_ffff                   # the kernel's retval is 32 bits
    try:
        return XdpAction(r0).name
    except ValueError:
        return "ABORTED"                 # drivers treat an unknown action as aborted


#: Names of the verdicts whose packet leaves (:data:`bpfcore.abi.LEAVING_ACTIONS`).
LEAVING = tuple(action.name for action in abi.LEAVING_ACTIONS)


def finished_packet(r0, packet_bytes, ingress_ifindex, redirect_port):
    """The :class:`PacketResult` of a run that ended normally with ``r0``: the verdict and, for
    a packet that leaves, its bytes (``packet_bytes()``) and port (the ingress for TX, the host
    for PASS, ``redirect_port`` for REDIRECT)."""
    action = _action_name(r0)
    out = PacketResult(action, r0=r0 & 0xffff_ffff)
    if action in LEAVING:
        out.data = packet_bytes()
        out.port = {"TX": ingress_ifindex, "PASS": HOST_PORT}.get(action, redirect_port)
    return out


def _check_packet(index, data):
    if len(data) < ETH_HLEN:
        return f"packet {index}: {len(data)} bytes, shorter than an Ethernet header"
    if len(data) > MAX_PACKET:
        return f"packet {index}: {len(data)} bytes, longer than the {MAX_PACKET}-byte XDP buffer"
    return ""


def parse_map_setting(text):
    """``NAME:KEYHEX=VALUEHEX`` (a ``--set`` option) as (name, key bytes, value bytes)."""
    name, colon, rest = text.partition(":")
    key, eq, value = rest.partition("=")
    if not colon or not eq or not name:
        raise BpfcoreError(f"map setting {text!r} is not NAME:KEYHEX=VALUEHEX")
    try:
        return name, bytes.fromhex(key), bytes.fromhex(value)
    except ValueError:
        raise BpfcoreError(f"map setting {text!r}: key and value must be hex bytes") from None


def load_map_file(path):
    """Map settings from a ``bpfcore-maps/1`` JSON file: (list of (name, key, value), entry).

    ``entry`` is the file's program section (or None). Raises :class:`BpfcoreError` naming the
    file and the entry that is wrong.
    """
    try:
        with open(path) as f:
            doc = json.load(f)
    except OSError as error:
        raise BpfcoreError(f"cannot read {path}: {error.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise BpfcoreError(f"{path}: not JSON: {error}") from None
    if not isinstance(doc, dict) or doc.get("format") != MAP_FILE_FORMAT:
        raise BpfcoreError(f"{path}: not a {MAP_FILE_FORMAT} file (no \"format\": "
                           f"\"{MAP_FILE_FORMAT}\")")
    maps = doc.get("maps", {})
    if not isinstance(maps, dict):
        raise BpfcoreError(f"{path}: \"maps\" must be an object of map name to entries")
    settings = []
    for name, entries in maps.items():
        if not isinstance(entries, list):
            raise BpfcoreError(f"{path}: map {name}: entries must be a list")
        for i, entry in enumerate(entries):
            try:
                settings.append((name, bytes.fromhex(entry["key"]),
                                 bytes.fromhex(entry["value"])))
            except (TypeError, KeyError, ValueError, AttributeError):
                raise BpfcoreError(f"{path}: map {name}, entry {i}: needs \"key\" and "
                                   "\"value\" as hex strings") from None
    entry = doc.get("entry")
    return settings, entry if isinstance(entry, str) else None


def dump_map_entries(spec, entries, prog_names=None):
    """The report form of one map from its (key, value) pairs."""
    rows = []
    for key, value in sorted(entries):
        if spec.type == MapType.ARRAY and not any(value):
            continue
        if spec.type == MapType.PROG_ARRAY:
            shown = (prog_names or {}).get(int.from_bytes(key, "little"), "?")
        else:
            shown = value.hex()
        rows.append({"key": key.hex(), "value": shown})
    return {"type": spec.type_name, "key_size": spec.key_size, "value_size": spec.value_size,
            "max_entries": spec.max_entries, "entries": rows}


def _programs_by_name(obj):
    return {p.name: p for p in obj.programs}


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
        by_name = _programs_by_name(obj)
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
        problem = _check_packet(index, data)
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


BPF_MAP_FREEZE = 22


class _FdAttr(ctypes.Structure):
    _fields_ = [("map_fd", ctypes.c_uint32)]


def _kernel_name(name):
    return "".join(c if c.isalnum() or c in "_." else "_" for c in name)[:15]


class KernelEngine:
    """Runs a program in the Linux kernel with ``BPF_PROG_TEST_RUN`` (same parameters as
    :class:`VmEngine`; ``seed`` and ``clock`` cannot be set in the kernel).

    Raises
    ------
    BpfcoreError
        ``bpf()`` is not usable here (the reason says why), or the kernel refused a map or the
        program (with the verifier's last lines).
    """
    name = "kernel"

    def __init__(self, obj, prog, *, seed=1, clock=0, ingress_ifindex=1, rx_queue_index=0,
                 map_settings=(), budget=None, on_retire=None):
        from . import kernel
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
        by_name = _programs_by_name(self.obj)
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
        problem = _check_packet(index, data)
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


def _rtl_engine(obj, prog, **options):
    # Imported on use: the RTL engine needs Amaranth and cocotb, the others do not.
    from .rtl.xdp_engine import XdpRtlEngine
    return XdpRtlEngine(obj, prog, **options)


ENGINES = {"vm": VmEngine, "kernel": KernelEngine, "rtl": _rtl_engine}


def make_engine(name, obj, prog, **options):
    """An engine by name (``vm``, ``kernel`` or ``rtl``; only ``rtl`` takes ``simulator``)."""
    try:
        cls = ENGINES[name]
    except KeyError:
        raise BpfcoreError(f"unknown engine {name!r}; choose {' or '.join(ENGINES)}") from None
    simulator = options.pop("simulator", None)
    if name == "rtl" and simulator is not None:
        options["simulator"] = simulator
    return cls(obj, prog, **options)


def _first_difference(a, b):
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return min(len(a), len(b))


def compare_reports(a, b):
    """The differences between two :class:`RunReport` s, one line each (empty when they agree).

    Compared: the number of packets, each packet's verdict and, for packets that leave, their
    bytes (not the port: the kernel cannot tell where a ``REDIRECT`` goes), and every map (type,
    sizes, entries). Lines name the packet index, or the map and key, and give ``a``'s side
    first, labelled with the reports' engine names.
    """
    na, nb = a.engine, b.engine
    out = []
    if len(a.packets) != len(b.packets):
        out.append(f"packets: {na} ran {len(a.packets)}, {nb} ran {len(b.packets)}")
    for i, (x, y) in enumerate(zip(a.packets, b.packets)):
        if x.action != y.action:
            out.append(f"packet {i}: verdict {na} {x.action}, {nb} {y.action}")
        elif x.data != y.data:
            x_data, y_data = x.data or b"", y.data or b""
            out.append(f"packet {i} ({x.action}): leaves with different bytes: {na} "
                       f"{len(x_data)} B, {nb} {len(y_data)} B, first difference at byte "
                       f"{_first_difference(x_data, y_data)}")
    for name in sorted(set(a.maps) | set(b.maps)):
        ma, mb = a.maps.get(name), b.maps.get(name)
        if ma is None or mb is None:
            out.append(f"map {name}: only on {na if mb is None else nb}")
            continue
        shape = ("type", "key_size", "value_size", "max_entries")
        if [ma[k] for k in shape] != [mb[k] for k in shape]:
            out.append(f"map {name}: {na} " + " ".join(str(ma[k]) for k in shape) +
                       f", {nb} " + " ".join(str(mb[k]) for k in shape))
            continue
        ea = {e["key"]: e["value"] for e in ma["entries"]}
        eb = {e["key"]: e["value"] for e in mb["entries"]}
        for key in sorted(set(ea) | set(eb)):
            va, vb = ea.get(key, "absent"), eb.get(key, "absent")
            if va != vb:
                out.append(f"map {name} key {key}: {na} {va}, {nb} {vb}")
    return out


def run_packets(obj, prog, packets, engine="vm", times_ns=None, **options):
    """Run ``packets`` through ``prog`` on ``engine``; returns a :class:`RunReport`."""
    eng = make_engine(engine, obj, prog, **options)
    try:
        return eng.run(packets, times_ns)
    finally:
        eng.close()


