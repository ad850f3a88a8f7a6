"""Clang-built XDP programs on the cycle-accurate core (CPU + map memory + helper units), in
lockstep with the golden VM: every retire record, every verdict, every packet that leaves, and
every map at the end (``bpfcore run --engine rtl``).

The simulator is BPFCORE_RTL_SIMULATOR (icarus or verilator; default icarus); packets per
program BPFCORE_RTL_XDP_PACKETS (default 12), from the traffic generator with BPFCORE_SEED.
BPFCORE_BENCH_PATTERN (always, random, slow; see bpfcore.sim.rtl.drivers) sets the flow pattern
of the map host port for every test here; one test runs all three.
"""

import json
import os
from pathlib import Path

import pytest

from bpfcore.errors import BpfcoreError
from bpfcore.sim.gen import traffic
from bpfcore.sim.load.pcap import write_pcap
from bpfcore.sim.load.elf import load_elf
from bpfcore.sim.load.mapfile import load_map_file

pytest.importorskip("bpfcore.hdl.xdpcore", reason="the XDP core (hdl/xdpcore.py) is not there")

from bpfcore.sim.engines.rtl import RtlEngine  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FIRMWARE = ROOT / "firmware"
SIMULATOR = os.environ.get("BPFCORE_RTL_SIMULATOR", "icarus")
PACKETS = int(os.environ.get("BPFCORE_RTL_XDP_PACKETS", "12"))


def _objects():
    return sorted(p.stem for p in (FIRMWARE / "build").glob("*.o"))


def _engine(name, **options):
    obj = load_elf(str(FIRMWARE / "build" / f"{name}.o"))
    settings, entry = [], None
    map_file = FIRMWARE / f"{name}.frozen.maps.json"
    if not map_file.exists():
        map_file = FIRMWARE / f"{name}.maps.json"
    if map_file.exists():
        settings, entry = load_map_file(str(map_file))
    return RtlEngine(obj, obj.find(entry), map_settings=settings, simulator=SIMULATOR,
                        **options)


def _packets(seed, count=PACKETS):
    return [p.frame for p in traffic.generate(count, seed=seed)]


@pytest.mark.parametrize("name", _objects() or ["(no firmware built)"])
def test_firmware_in_lockstep(name, seed):
    if name.startswith("("):
        pytest.skip("firmware/build/*.o not built (make firmware)")
    engine = _engine(name)
    report = engine.run(_packets(seed))          # raises at the first difference
    ran = [p for p in report.packets if p.action != "REJECTED"]
    assert len(report.cycles) == len(ran) > 0, f"seed {seed}"
    assert all(c > 0 for c in report.cycles)
    print(f"{name}: {sum(report.cycles) / len(report.cycles):.1f} cycles/packet "
          f"({SIMULATOR}, seed {seed})")


def test_helper_outside_the_build_is_rejected_at_load():
    with pytest.raises(BpfcoreError, match="cannot run on the core"):
        _engine("ratelimit", core={"helpers": [1, 2, 3]})


def test_lockstep_catches_an_injected_cpu_bug(seed):
    engine = _engine("counter", core={"inject_bug": "wrong_rd"})
    with pytest.raises(BpfcoreError, match="lockstep"):
        engine.run(_packets(seed, 4))


def test_cli_run_engine_rtl_json(capsys, tmp_path, seed):
    from bpfcore.cli import main
    pcap = tmp_path / "in.pcap"
    write_pcap(str(pcap), traffic.generate(6, seed=seed))
    assert main(["run", str(FIRMWARE / "build" / "counter.o"), "--pcap", str(pcap),
                 "--maps", str(FIRMWARE / "counter.maps.json"), "--engine", "rtl",
                 "--simulator", SIMULATOR, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["engine"] == "rtl" and len(out["cycles_per_packet"]) == out["packets"] == 6
    assert main(["run", str(FIRMWARE / "build" / "counter.o"), "--pcap", str(pcap),
                 "--maps", str(FIRMWARE / "counter.maps.json"), "--json"]) == 0
    vm = json.loads(capsys.readouterr().out)
    assert (vm["verdicts"], vm["maps"]) == (out["verdicts"], out["maps"])
    assert main(["run", str(FIRMWARE / "build" / "counter.o"), "--pcap", str(pcap),
                 "--simulator", SIMULATOR]) != 0
    assert "--simulator chooses the simulator of --engine rtl" in capsys.readouterr().err


def test_cli_maps_dump_engine_rtl_reads_the_core_back(capsys, monkeypatch):
    """Without a capture, ``maps dump --engine rtl`` loads the maps into the core and reads them
    back through its host port (one simulation with no packet): the same entries as the VM's."""
    from bpfcore.cli import main
    from bpfcore.sim.rtl.runner import Bench
    batches = []
    real_run = Bench.run

    def run(bench, items, **kwargs):
        batch = real_run(bench, items, **kwargs)
        batches.append((len(items), batch.maps))
        return batch

    monkeypatch.setattr(Bench, "run", run)
    args = ["maps", "dump", str(FIRMWARE / "build" / "firewall.o"), "--maps",
            str(FIRMWARE / "firewall.maps.json"), "--json"]
    assert main(args + ["--engine", "rtl", "--simulator", SIMULATOR]) == 0
    rtl = json.loads(capsys.readouterr().out)
    assert [(n, maps is not None) for n, maps in batches] == [(0, True)]
    assert main(args) == 0
    vm = json.loads(capsys.readouterr().out)
    assert rtl == vm and any(m["entries"] for m in vm.values())


def test_host_port_under_every_flow_pattern(seed, monkeypatch):
    """Maps loaded and read back through the map host port with its requests and responses
    under each bench pattern (always ready, seeded random idle cycles and back-pressure, one
    cycle in three): the same verdicts, cycles per packet and maps, and the pattern reached
    the port (the setup before the first packet takes more cycles)."""
    from bpfcore.sim.rtl.drivers import PATTERNS
    from bpfcore.sim.rtl.runner import Bench
    starts = {}
    real_run = Bench.run

    def run(bench, items, **kwargs):
        batch = real_run(bench, items, **kwargs)
        starts[os.environ["BPFCORE_BENCH_PATTERN"]] = batch.runs[0].start_cycle
        return batch

    monkeypatch.setattr(Bench, "run", run)
    results = {}
    for pattern in PATTERNS:
        monkeypatch.setenv("BPFCORE_BENCH_PATTERN", pattern)
        report = _engine("firewall").run(_packets(seed, 4))     # maps checked against the VM
        results[pattern] = ([p.action for p in report.packets], report.cycles, report.maps)
    assert all(result == results["always"] for result in results.values()), f"seed {seed}"
    assert starts["always"] < min(starts["random"], starts["slow"]), f"seed {seed}: {starts}"


PRINTK_C = r"""
typedef unsigned char __u8; typedef unsigned int __u32; typedef long long __s64;
#define SEC(n) __attribute__((section(n), used))
struct xdp_md { __u32 data, data_end, data_meta, ingress_ifindex, rx_queue_index, egress_ifindex; };
static long (*bpf_trace_printk)(const char *fmt, __u32 fmt_size, ...) = (void *)6;
char _license[] SEC("license") = "GPL";

SEC("xdp")
int printk(struct xdp_md *ctx)
{
	__u8 *data = (__u8 *)(long)ctx->data, *end = (__u8 *)(long)ctx->data_end;
	if (data + 16 > end)
		return 1;
	char name[] = "pkt";
	char first[] = "%s len %u first %02x\n";
	bpf_trace_printk(first, sizeof(first), name, end - data, data[0]);
	static const char fields[] = "%-6d|%+5lld|%.6s";    /* .rodata: a map value */
	__s64 v = ((__s64)data[12] << 56) | data[13];
	bpf_trace_printk(fields, sizeof(fields), (int)data[14] - 100, v,
			 data + 64 <= end ? data : (__u8 *)name);
	char bad[] = "%d %q";
	long r = bpf_trace_printk(bad, sizeof(bad), 1);
	char last[] = "r=%ld %c%c";
	bpf_trace_printk(last, sizeof(last), r, 'o', data[15] | 0x40);
	char pointers[] = "%#lx %p";
	bpf_trace_printk(pointers, sizeof(pointers), v, data);
	return 2;
}
"""


def _printk_engine(tmp_path, **core):
    from bpfcore.sim.load.elf import compile_c, find_bpf_compiler
    from bpfcore.sim.engines.rtl import DEFAULT_CORE
    if find_bpf_compiler() is None:
        pytest.skip("no BPF C compiler (clang or ziglang)")
    source = tmp_path / "printk.c"
    source.write_text(PRINTK_C)
    obj = load_elf(str(compile_c(source, tmp_path / "printk.o")))
    return RtlEngine(obj, obj.find(None), simulator=SIMULATOR,
                     core=dict(DEFAULT_CORE, **core))


def test_trace_printk_in_lockstep(tmp_path, seed):
    """bpf_trace_printk on the core: every message (stack and .rodata formats, %s from the
    packet, an -EINVAL call) equals the VM's, with back-pressure on the text stream."""
    engine = _printk_engine(tmp_path)
    report = engine.run(_packets(seed, 6))       # raises at the first difference
    printed = [p for p in report.packets if p.action == "PASS"]      # 16 bytes or more
    assert report.log == engine.vm.env.log, f"seed {seed}"
    assert len(report.log) == 4 * len(printed) > 0, f"seed {seed}: {report.log}"
    assert report.log[0].startswith("pkt len ") and "r=-22 o" in report.log[2]


def test_trace_printk_lockstep_catches_an_injected_bug(tmp_path, seed):
    engine = _printk_engine(tmp_path, helper_options={"inject_bug": "printk_byte"})
    with pytest.raises(BpfcoreError, match="trace_printk message 0: the core printed 'qkt"):
        engine.run(_packets(seed, 2))


def test_trace_printk_outside_the_build_is_rejected_at_load(tmp_path):
    from bpfcore.hdl.helpers import DEFAULT_HELPERS
    with pytest.raises(BpfcoreError, match="cannot run on the core .*helper id 6"):
        _printk_engine(tmp_path, helpers=sorted(DEFAULT_HELPERS))


MAP_FAULTS_C = r"""
typedef unsigned char __u8; typedef unsigned int __u32; typedef unsigned long long __u64;
#define SEC(n) __attribute__((section(n), used))
struct xdp_md { __u32 data, data_end, data_meta, ingress_ifindex, rx_queue_index, egress_ifindex; };
struct bpf_map_def { __u32 type, key_size, value_size, max_entries, map_flags; };
static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;
char _license[] SEC("license") = "GPL";
/* One 16-byte value each; "ro" is read-only to programs (BPF_F_RDONLY_PROG). */
struct bpf_map_def SEC("maps") rw = {2, 4, 16, 1, 0};
struct bpf_map_def SEC("maps") ro = {2, 4, 16, 1, 1 << 7};

SEC("xdp")
int map_faults(struct xdp_md *ctx)
{
	__u8 *data = (__u8 *)(long)ctx->data, *end = (__u8 *)(long)ctx->data_end;
	__u32 k = 0;
	volatile __u64 *v = bpf_map_lookup_elem(&rw, &k);
	volatile __u64 *r = bpf_map_lookup_elem(&ro, &k);
	__u64 x = 0;
	if (!v || !r || data + 4 > end)
		return 2;
	switch (data[0]) {
	case 1: x = v[1 + (data[1] & 1)]; break;                      /* LOAD_OOB when odd */
	case 2: if (data[1] & 1) r[0] = data[2]; break;               /* STORE_RO */
	case 3: __sync_fetch_and_add(&v[1 + (data[1] & 1)], 1); break; /* atomic, OOB when odd */
	}
	data[3] = 0x55;         /* stores right behind the faulting access: must not happen */
	v[0] += 1;
	return (x & 1) ? 1 : 2;
}
"""


def test_map_value_faults_stop_the_younger_instructions(tmp_path):
    """A load, store or atomic that faults on a map value (out of bounds, read-only) ends the
    program exactly there: the stores right behind it leave no trace in the packet, the maps
    or the retire records (the map memory's answer comes late, so the core stops them a cycle
    after the faulting access; lockstep with the VM checks it)."""
    from bpfcore.sim.load.elf import compile_c, find_bpf_compiler
    if find_bpf_compiler() is None:
        pytest.skip("no BPF C compiler (clang or ziglang)")
    source = tmp_path / "map_faults.c"
    source.write_text(MAP_FAULTS_C)
    obj = load_elf(str(compile_c(source, tmp_path / "map_faults.o")))
    engine = RtlEngine(obj, obj.find(None), simulator=SIMULATOR)
    packets = [bytes([case, odd, 7]) + bytes(61) for case in range(4) for odd in (0, 1)]
    report = engine.run(packets)                 # raises at the first difference
    actions = [p.action for p in report.packets]
    assert actions.count("ABORTED") == 3, actions  # the three odd cases 1-3
    assert engine.vm.dump_maps() == report.maps
