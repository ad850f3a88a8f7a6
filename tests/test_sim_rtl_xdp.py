"""Clang-built XDP programs on the cycle-accurate core (CPU + map memory + helper units), in
lockstep with the golden VM: every retire record, every verdict, every packet that leaves, and
every map at the end (``bpfcore run --engine rtl``).

The simulator is BPFCORE_RTL_SIMULATOR (icarus or verilator; default icarus); packets per
program BPFCORE_RTL_XDP_PACKETS (default 12), from the traffic generator with BPFCORE_SEED.
"""

import json
import os
from pathlib import Path

import pytest

from bpfcore.errors import BpfcoreError
from bpfcore.sim import traffic
from bpfcore.sim.elf import load_elf
from bpfcore.sim.xdp import load_map_file

pytest.importorskip("bpfcore.hdl.xdpcore", reason="the XDP core (hdl/xdpcore.py) is not there")

from bpfcore.sim.rtl.xdp_engine import XdpRtlEngine  # noqa: E402

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
    return XdpRtlEngine(obj, obj.find(entry), map_settings=settings, simulator=SIMULATOR,
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
    traffic.write_pcap(str(pcap), traffic.generate(6, seed=seed))
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



def test_cli_maps_dump_engine_rtl_reads_the_core_back(capsys):
    """Without a capture, ``maps dump --engine rtl`` loads the maps into the core and reads them
    back through its host port: the same entries as the VM's."""
    from bpfcore.cli import main
    args = ["maps", "dump", str(FIRMWARE / "build" / "firewall.o"), "--maps",
            str(FIRMWARE / "firewall.maps.json"), "--json"]
    assert main(args + ["--engine", "rtl", "--simulator", SIMULATOR]) == 0
    rtl = json.loads(capsys.readouterr().out)
    assert main(args) == 0
    vm = json.loads(capsys.readouterr().out)
    assert rtl == vm and any(m["entries"] for m in vm.values())

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
    from bpfcore.sim.elf import compile_c, find_bpf_compiler
    from bpfcore.sim.rtl.xdp_engine import DEFAULT_CORE
    if find_bpf_compiler() is None:
        pytest.skip("no BPF C compiler (clang or ziglang)")
    source = tmp_path / "printk.c"
    source.write_text(PRINTK_C)
    obj = load_elf(str(compile_c(source, tmp_path / "printk.o")))
    return XdpRtlEngine(obj, obj.find(None), simulator=SIMULATOR,
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
