"""What an XDP datapath sees of a program run: verdicts, packets that leave, maps, and how two
runs differ.

Every run engine (:mod:`bpfcore.sim.engines`) reports a capture as a :class:`RunReport`: per
packet the verdict, the packet that leaves (for ``TX``, ``PASS`` and ``REDIRECT``) and the port
it leaves by, and at the end the contents of every map. :meth:`RunReport.to_json` has the same
shape for every engine, so two reports compare equal when the engines agree
(:func:`compare_reports`). Packets the datapath cannot take (shorter than an Ethernet header,
longer than the XDP buffer, :func:`check_packet`) are not run: their verdict is ``REJECTED``.
"""

from dataclasses import dataclass, field
from typing import Optional

from bpfcore import abi
from bpfcore.abi import ETH_HLEN, KERNEL_FRAME_LIMIT, MapType, XdpAction

__all__ = ["PacketResult", "RunReport", "VERDICTS", "MAX_PACKET", "HOST_PORT", "LEAVING",
           "finished_packet", "check_packet", "dump_map_entries", "compare_reports"]

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
        Per packet run on the cycle-accurate core (``rtl`` and ``soc`` engines): cycles from
        start to done, instructions retired, in the order the packets ran.
    ports : list of (int or None), or None
        ``soc`` engine: per packet (capture order), the board port it left by, or None.
    counters : dict or None
        ``soc`` engine: the board's counters, ``{"port0": {...}, "port1": {...}, "total":
        {...}}``.
    rates : dict or None
        ``soc`` engine at line rate: ``offered_mpps`` and ``sustained_mpps``.
    """
    engine: str
    program: str
    packets: list = field(default_factory=list)
    maps: dict = field(default_factory=dict)
    log: list = field(default_factory=list)
    cycles: Optional[list] = None
    retired: Optional[list] = None
    ports: Optional[list] = None
    counters: Optional[dict] = None
    rates: Optional[dict] = None

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
        out = {"engine": self.engine, "program": self.program, "packets": len(self.packets),
               "verdicts": self.verdicts, "counts": self.counts, "maps": self.maps}
        if self.ports is not None:
            out["ports"] = self.ports
        if self.counters is not None:
            out["counters"] = self.counters
            out["no_buffer"] = self.counters["total"]["no_buffer"]
        if self.rates is not None:
            out.update(self.rates)
        return out


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


def check_packet(index, data):
    """Why the datapath cannot take packet ``index`` (too short, too long), or "" when it can."""
    if len(data) < ETH_HLEN:
        return f"packet {index}: {len(data)} bytes, shorter than an Ethernet header"
    if len(data) > MAX_PACKET:
        return f"packet {index}: {len(data)} bytes, longer than the {MAX_PACKET}-byte XDP buffer"
    return ""


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


