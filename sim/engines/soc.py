"""The whole board in simulation as a run engine (``--engine soc``).

:class:`SocEngine` plays a capture into the Ethernet ports of the SoC's Verilog
(:class:`bpfcore.hdl.soc.Soc` with GMII ports, under cocotb; frames are played and collected by
the HDL wrapper, so Python sleeps while they flow), then runs the golden VM on the packets in the
order the SoC dispatched them and compares, packet by packet, every retire record, the verdict,
and each frame that leaves with its port and bytes; at the end every map (read back through the
map memory's host port). The first difference is the error.

Frames go on the wire as the capture holds them, FCS added. The MACs take 60 to
``MAX_PACKET`` bytes (the XDP buffer): shorter frames are runts and longer ones oversize, both
counted and never run, as the VM's ``REJECTED``. ``ports`` picks where the capture enters:
``"0"``, ``"1"``, or ``"both"`` (packet ``i`` on port ``i % 2``). Paced (the default), each frame
waits until the SoC is idle, so the dispatch order is the capture order; with ``line_rate`` the
ports play their frames back to back at 1 Gb/s and the report adds the offered and sustained
packet rates.
"""

from bpfcore.errors import BpfcoreError
from bpfcore.sim.engines import SOC_PORTS, SOC_SYNC_MHZ
from bpfcore.sim.engines.rtl import RtlEngine
from bpfcore.sim.model.xdp import MAX_PACKET, PacketResult, RunReport
from bpfcore.sim.rtl.drivers import bench_pattern
from bpfcore.sim.rtl.lockstep import first_mismatch
from bpfcore.sim.rtl.soc_runner import IFG_BYTES, SocBench
from bpfcore.sim.rtl.verilog import TopSpec

__all__ = ["SocEngine", "PORT_CHOICES", "DEFAULT_SYNC_MHZ", "COUNTER_KEYS", "SLOTS"]

PORT_CHOICES = SOC_PORTS
DEFAULT_SYNC_MHZ = SOC_SYNC_MHZ
#: Packet slots of the simulated SoC.
SLOTS = 4
#: Counters in the report, per port and in total.
COUNTER_KEYS = ("received", "bytes_received", "pass", "tx", "redirect", "drop", "aborted",
                "rejected", "no_buffer", "fcs_error", "runt", "oversize")
#: Shortest frame a MAC takes, without FCS.
MIN_FRAME = 60
#: Bytes a frame takes on the wire beyond its own: preamble and SFD, FCS, inter-frame gap.
WIRE_OVERHEAD = 8 + 4 + IFG_BYTES

_BENCHES = {}


class SocEngine(RtlEngine):
    """Runs a capture through the simulated board, checked against the VM.

    Parameters
    ----------
    obj, prog, seed, clock, rx_queue_index, map_settings, budget, core
        As :class:`bpfcore.sim.engines.rtl.RtlEngine` (``ingress_ifindex`` comes from the port
        a frame enters: port 0 is ifindex 1, port 1 ifindex 2).
    simulator : str
        ``"verilator"`` (default) or ``"icarus"``.
    ports : str
        One of :data:`PORT_CHOICES`.
    line_rate : bool
        Offer the frames back to back at 1 Gb/s instead of one at a time.
    sync_mhz : float
        The core clock simulated.
    bad_fcs : iterable of int
        Indices of packets sent with a corrupted FCS (tests of the MACs' accounting).
    """
    name = "soc"

    def __init__(self, obj, prog, *, ports="0", line_rate=False, sync_mhz=DEFAULT_SYNC_MHZ,
                 simulator="verilator", bad_fcs=(), ingress_ifindex=None, **options):
        if ports not in PORT_CHOICES:
            raise BpfcoreError(f"--ports must be one of {', '.join(PORT_CHOICES)}, not {ports!r}")
        self.ports = ports
        self.line_rate = line_rate
        self.sync_mhz = sync_mhz
        self.bad_fcs = frozenset(bad_fcs)
        super().__init__(obj, prog, simulator=simulator, **options)

    def design(self, core):
        return TopSpec("bpfcore.hdl.soc:Soc",
                       {"interface": "gmii", "primitives": "model", "slots": SLOTS,
                        "budget": self.budget, "max_length": MAX_PACKET + 4,
                        "core": dict(core)}, "soc")

    @staticmethod
    def core_of(top):
        return top.core

    def bench(self):
        key = (self.spec.digest(), self.simulator, self.sync_mhz)
        if key not in _BENCHES:
            _BENCHES[key] = SocBench(self.spec, self.simulator, self.sync_mhz)
        return _BENCHES[key]

    def port_of(self, index):
        return index % 2 if self.ports == "both" else int(self.ports)

    def run(self, packets, times_ns=None):
        """Run the capture through the SoC and the VM; returns the SoC's :class:`RunReport`
        with ``ports``, ``counters`` and (at line rate) the packet rates. Raises
        :class:`BpfcoreError` at the first difference."""
        packets = [bytes(p) for p in packets]
        clock = self.vm.env.clock
        if times_ns is not None and len(set(times_ns)) > 1:
            raise BpfcoreError("the soc engine keeps ktime constant during a capture: use a "
                               "fixed --clock, not the capture's timestamps")
        if times_ns:
            clock = self.vm.env.clock = times_ns[0]
        time_ns = clock() if callable(clock) else clock
        frames = [(self.port_of(i), data, i in self.bad_fcs) for i, data in enumerate(packets)]
        result = self.bench().run(slots=self.slots, entry_len=len(self.prog.program.slots),
                                  maps=self.maps_section(), time_ns=time_ns, frames=frames,
                                  paced=not self.line_rate, pattern=bench_pattern())
        if not result.drained:
            raise BpfcoreError("the SoC did not drain: slots still held or the core still "
                               "running after the capture")
        counters = result.counters
        no_buffer = sum(c["no_buffer"] for c in counters)
        if no_buffer and not self.line_rate:
            raise BpfcoreError(f"{no_buffer} frame(s) found no free slot although the capture "
                               "was paced one frame at a time")

        # Which frame each run is: per port, every frame ended on the receive stream with one
        # outcome (queued or refused), in order; runs take the queued ones of their port.
        report = RunReport(self.name, self.prog.name, cycles=[], retired=[])
        report.packets = [PacketResult("REJECTED", message=self._rejected(i, data, bad))
                          for i, (_, data, bad) in enumerate(frames)]
        queued = [[], []]
        for port in (0, 1):
            offered = [i for i, (p, _, _) in enumerate(frames) if p == port]
            outcome = result.outcomes[port]
            if len(outcome) != len(offered):
                raise BpfcoreError(f"port {port}: {len(offered)} frame(s) offered, "
                                   f"{len(outcome)} reached the datapath")
            queued[port] = [i for i, letter in zip(offered, outcome) if letter == "Q"]
            for i, letter in zip(offered, outcome):
                runnable = not frames[i][2] and MIN_FRAME <= len(packets[i]) <= MAX_PACKET
                if (letter == "Q") != runnable and not (runnable and no_buffer):
                    raise BpfcoreError(f"packet {i}: the datapath "
                                       f"{'queued' if letter == 'Q' else 'refused'} it")
        ports_out = [None] * len(frames)
        expected_out = [[], []]
        taken = [0, 0]
        for n, run in enumerate(result.runs):
            port = run.port
            if taken[port] >= len(queued[port]):
                raise BpfcoreError(f"run {n}: the SoC ran a frame of port {port} it never "
                                   "queued")
            index = queued[port][taken[port]]
            taken[port] += 1
            self.vm.ingress_ifindex = port + 1
            self.records.clear()
            want = self.vm.run_packet(index, packets[index])
            if run.end is None:
                raise BpfcoreError(f"packet {index}: the core did not finish")
            got = [rec for _, rec in run.records]
            mismatch = first_mismatch(self.records, got, self.slots)
            if mismatch:
                raise BpfcoreError(f"packet {index} (port {port}): {mismatch}")
            out = self._verdict(want, port)
            report.packets[index] = want
            ports_out[index] = out
            if out is not None:
                expected_out[out].append((index, want.data))
            report.cycles.append(run.cycles)
            report.retired.append(len(got))
        missing = [i for p in (0, 1) for i in queued[p][taken[p]:]]
        if missing:
            raise BpfcoreError(f"packet {missing[0]}: queued but never run ({len(missing)} such)")
        for port in (0, 1):
            sent = result.sent[port]
            want = expected_out[port]
            if len(sent) != len(want):
                raise BpfcoreError(f"port {port} sent {len(sent)} frame(s), the VM's verdicts "
                                   f"send {len(want)} there")
            for (index, data), frame in zip(want, sent):
                padded = data + bytes(max(0, MIN_FRAME - len(data)))
                if frame != padded:
                    raise BpfcoreError(f"packet {index}: port {port} sent {len(frame)} bytes "
                                       f"that differ from the VM's {len(data)}")
        report.maps = self.dump_maps_from(result.maps)
        want_maps = self.vm.dump_maps()
        if report.maps != want_maps:
            names = [name for name in want_maps if report.maps.get(name) != want_maps[name]]
            raise BpfcoreError(f"after the capture, map(s) {', '.join(names)} differ between "
                               "the SoC and the VM")
        report.ports = ports_out
        report.counters = self._counters(counters)
        if self.line_rate:
            report.rates = self._rates(frames, result)
        return report

    @staticmethod
    def _rejected(index, data, bad):
        if bad:
            return f"packet {index}: bad FCS"
        if len(data) < MIN_FRAME:
            return f"packet {index}: {len(data)} bytes, a runt (shorter than {MIN_FRAME})"
        if len(data) > MAX_PACKET:
            return f"packet {index}: {len(data)} bytes, longer than the {MAX_PACKET}-byte XDP buffer"
        return f"packet {index}: found no free packet slot"

    @staticmethod
    def _verdict(result, port):
        """The port a packet leaves by on the board (None: it does not leave)."""
        if result.action == "TX":
            return port
        if result.action == "PASS":
            return 1 - port
        if result.action == "REDIRECT" and result.port in (1, 2):
            return result.port - 1
        return None

    def dump_maps(self, batch=None):
        """The maps as the board's host port reads them back after loading them (no frame)."""
        result = self.bench().run(slots=self.slots, entry_len=len(self.prog.program.slots),
                                  maps=self.maps_section(), time_ns=0, frames=[], paced=True,
                                  pattern=bench_pattern())
        return self.dump_maps_from(result.maps)

    def dump_maps_from(self, maps):
        from bpfcore.sim.model.xdp import dump_map_entries
        out = {}
        for spec, entries in zip(self.obj.maps, maps or []):
            pairs = [(bytes.fromhex(k), bytes.fromhex(v)) for k, v in entries]
            out[spec.name] = dump_map_entries(spec, pairs, self.vm.prog_names.get(spec.name))
        return out

    @staticmethod
    def _counters(per_port):
        out = {}
        for port, counters in enumerate(per_port):
            out[f"port{port}"] = {key: counters[key] for key in COUNTER_KEYS}
        out["total"] = {key: sum(out[f"port{p}"][key] for p in (0, 1)) for key in COUNTER_KEYS}
        return out

    def _rates(self, frames, result):
        """Offered and sustained packet rates (Mpps) of a line-rate run."""
        byte_times = [0, 0]
        count = [0, 0]
        for port, data, _ in frames:
            byte_times[port] += max(len(data), MIN_FRAME) + WIRE_OVERHEAD
            count[port] += 1
        offered = sum(count[p] * 125.0 / byte_times[p] for p in (0, 1) if byte_times[p])
        done = [run for run in result.runs if run.end is not None]
        if len(done) > 1:
            span = done[-1].end[0] - done[0].start_cycle
            sustained = (len(done) - 1) * self.sync_mhz / span if span else None
        else:
            sustained = None
        return {"offered_mpps": round(offered, 4),
                "sustained_mpps": None if sustained is None else round(sustained, 4)}
