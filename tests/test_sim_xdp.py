"""XDP runs: the VM against the Linux kernel (same verdicts, packets out and maps), and the CLI.

The C programs below are compiled in the test (skipped with the reason when no BPF compiler
works); the firmware objects are used when ``make firmware`` has built them. Kernel runs are
skipped with the reason when ``bpf()`` is not usable (not root, no x86_64 Linux). Helpers whose
results the kernel cannot reproduce (ktime, prandom) are kept out of the differential programs.

Every firmware object is compared over generated traffic: ``BPFCORE_TRAFFIC_COUNT`` packets
(default 800; the acceptance run uses 2000) with ``BPFCORE_SEED``. Programs that read the clock
are compared with their clock-independent map file (``firmware/NAME.frozen.maps.json``);
the rate limiter's real limiting is checked on the VM alone with the capture's clock.
"""

import json
import os
import random
import struct
from pathlib import Path

import dpkt
import pytest

from bpfcore.cli import main as cli_main
from bpfcore.sim.load.elf import compile_c, find_bpf_compiler, load_elf
from bpfcore.sim.load.kernel import kernel_available
from bpfcore.sim.load.pcap import read_pcap, write_pcap
from bpfcore.sim.model.xdp import MAX_PACKET, compare_reports
from bpfcore.sim.load.mapfile import load_map_file
from bpfcore.sim.engines import run_packets

ROOT = Path(__file__).resolve().parent.parent
FIRMWARE = sorted((ROOT / "firmware" / "build").glob("*.o"))
TRAFFIC_COUNT = int(os.environ.get("BPFCORE_TRAFFIC_COUNT", 800))
needs_firmware = pytest.mark.skipif(not FIRMWARE,
                                    reason="firmware/build/*.o not built (make firmware)")
COMPILER = find_bpf_compiler()
needs_cc = pytest.mark.skipif(COMPILER is None, reason="no BPF C compiler (clang or ziglang)")
KERNEL_OK, KERNEL_WHY = kernel_available()
needs_kernel = pytest.mark.skipif(not KERNEL_OK, reason=f"kernel engine unusable: {KERNEL_WHY}")

PRELUDE = r"""
typedef unsigned char __u8; typedef unsigned short __u16; typedef unsigned int __u32;
typedef unsigned long long __u64; typedef long long __s64;
#define SEC(n) __attribute__((section(n), used))
#define __uint(name, val) int (*name)[val]
#define __type(name, val) __typeof__(val) *name
#define __array(name, val) __typeof__(val) *name[]
#define DATA(ctx) ((__u8 *)(long)(ctx)->data)
#define END(ctx) ((__u8 *)(long)(ctx)->data_end)
struct xdp_md { __u32 data, data_end, data_meta, ingress_ifindex, rx_queue_index, egress_ifindex; };
static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;
static long (*bpf_map_update_elem)(void *map, const void *key, const void *value,
				   __u64 flags) = (void *)2;
static long (*bpf_map_delete_elem)(void *map, const void *key) = (void *)3;
static long (*bpf_trace_printk)(const char *fmt, __u32 fmt_size, ...) = (void *)6;
static __u32 (*bpf_get_smp_processor_id)(void) = (void *)8;
static long (*bpf_tail_call)(void *ctx, void *map, __u32 index) = (void *)12;
static long (*bpf_redirect)(__u32 ifindex, __u64 flags) = (void *)23;
static __s64 (*bpf_csum_diff)(__u32 *from, __u32 from_size, __u32 *to, __u32 to_size,
			      __u32 seed) = (void *)28;
static long (*bpf_xdp_adjust_head)(struct xdp_md *ctx, int delta) = (void *)44;
static long (*bpf_redirect_map)(void *map, __u64 key, __u64 flags) = (void *)51;
static long (*bpf_xdp_adjust_tail)(struct xdp_md *ctx, int delta) = (void *)65;
char _license[] SEC("license") = "GPL";
struct { __uint(type, 2); __uint(max_entries, 16); __type(key, __u32); __type(value, __u64); }
	results SEC(".maps");
static __attribute__((noinline)) void record(__u32 slot, __u64 value)
{
	__u64 *v = bpf_map_lookup_elem(&results, &slot);
	if (v)
		*v = *v * 31 + value;
}
"""

PACKETS = r"""
SEC("xdp/adjust")
int adjust(struct xdp_md *ctx)
{
	__u8 *data = DATA(ctx), *end = END(ctx);
	if (data + 16 > end)
		return 1;
	int head = 40 - (int)data[14] - 100 * (data[15] >> 7);
	int tail = (int)(data[15] & 0x7f) - 64;
	record(0, bpf_xdp_adjust_head(ctx, head) & 0xff);
	data = DATA(ctx); end = END(ctx);
	if (data + 14 > end)
		return 0;
	data[0] = 0xaa;
	record(1, bpf_xdp_adjust_tail(ctx, tail) & 0xff);
	data = DATA(ctx); end = END(ctx);
	if (data + 14 > end)
		return 0;
	data[13] = (__u8)(end - data);
	record(2, end - data);
	return 3;
}

SEC("xdp/csum")
int csum(struct xdp_md *ctx)
{
	__u8 *data = DATA(ctx), *end = END(ctx);
	if (data + 48 > end)
		return 2;
	__u32 n = (data[0] & 7) * 4, m = (data[1] & 7) * 4;
	__s64 a = bpf_csum_diff(0, 0, (__u32 *)(data + 4), n, data[2]);
	__s64 b = bpf_csum_diff((__u32 *)(data + 20), m, 0, 0, data[3] * 0x01010101u);
	__s64 c = bpf_csum_diff((__u32 *)(data + 20), m, (__u32 *)(data + 4), n, data[5]);
	record(data[12] & 15, (a & 0xffffffffULL) ^ ((b & 0xffffffffULL) << 16) ^ ((__u64)c << 32));
	((__u16 *)data)[2] = (__u16)~c;
	return 3;
}

struct { __uint(type, 14); __uint(max_entries, 4); __type(key, __u32); __type(value, __u32); }
	ports SEC(".maps");

SEC("xdp/redirect")
int redirect(struct xdp_md *ctx)
{
	__u8 *data = DATA(ctx), *end = END(ctx);
	if (data + 14 > end)
		return 1;
	if (data[0] & 0x80)
		return bpf_redirect(1, data[0] & 0x40);
	return bpf_redirect_map(&ports, data[0] & 7, data[1] & 3);
}

SEC("xdp/cpu")
int cpu(struct xdp_md *ctx)
{
	char fmt[] = "cpu %d len %u\n";
	__u32 c = bpf_get_smp_processor_id();
	bpf_trace_printk(fmt, sizeof(fmt), c, ctx->data_end - ctx->data);
	record(3, c + 1 + ctx->ingress_ifindex * 16 + ctx->rx_queue_index * 256);
	return ctx->data_meta == ctx->data ? 2 : 0;
}
"""

MAPS = r"""
struct { __uint(type, 1); __uint(max_entries, 8); __type(key, __u32); __type(value, __u32); }
	small SEC(".maps");
struct { __uint(type, 9); __uint(max_entries, 512); __type(key, __u64); __type(value, __u64); }
	lru SEC(".maps");
struct lpm_key { __u32 prefixlen; __u8 addr[4]; };
struct { __uint(type, 11); __uint(max_entries, 16); __uint(map_flags, 1);
	 __type(key, struct lpm_key); __type(value, __u32); } routes SEC(".maps");
struct { __uint(type, 2); __uint(max_entries, 20); __type(key, __u32); __type(value, __u64); }
	arr SEC(".maps");
struct bpf_map_def { unsigned int type, key_size, value_size, max_entries, map_flags; };
struct bpf_map_def SEC("maps") legacy = { .type = 1, .key_size = 2, .value_size = 4,
					  .max_entries = 32 };

SEC("xdp/hash")
int hash(struct xdp_md *ctx)
{
	__u8 *data = DATA(ctx), *end = END(ctx);
	if (data + 16 > end)
		return 1;
	__u32 key = data[0] & 15, value = data[1];
	long r;
	if (data[3] & 1)
		r = bpf_map_delete_elem(&small, &key);
	else
		r = bpf_map_update_elem(&small, &key, &value, data[2] & 7);
	record(0, r & 0xffff);
	__u32 *v = bpf_map_lookup_elem(&small, &key);
	if (v) {
		*v += 1000;
		record(1, *v);
	}
	__u16 lk = data[4] & 7;
	__u32 *lv = bpf_map_lookup_elem(&legacy, &lk);
	if (lv)
		__sync_fetch_and_add(lv, 1);
	else
		bpf_map_update_elem(&legacy, &lk, &value, 0);
	__u64 k64 = data[5], val64 = ctx->data_end - ctx->data;
	record(2, bpf_map_update_elem(&lru, &k64, &val64, data[9] & 7) & 0xffff);
	__u32 ak = data[6] & 31;
	if (data[8] & 1)
		record(3, bpf_map_delete_elem(&arr, &ak) & 0xffff);
	else
		record(3, bpf_map_update_elem(&arr, &ak, &k64, data[7] & 7) & 0xffff);
	return v ? 2 : 1;
}

SEC("xdp/lpm")
int lpm(struct xdp_md *ctx)
{
	__u8 *data = DATA(ctx), *end = END(ctx);
	if (data + 16 > end)
		return 1;
	struct lpm_key k = { .prefixlen = data[0] % 34 };
	k.addr[0] = data[1] & 0xc3; k.addr[1] = data[2] & 0x81; k.addr[2] = data[3];
	k.addr[3] = data[4];
	__u32 value = data[5];
	if (data[6] % 3 == 0) {
		record(0, bpf_map_update_elem(&routes, &k, &value, data[7] & 3) & 0xffff);
		return 2;
	}
	if (data[6] % 3 == 1) {
		record(1, bpf_map_delete_elem(&routes, &k) & 0xffff);
		return 2;
	}
	k.prefixlen = 30 + (data[8] & 3);
	__u32 *v = bpf_map_lookup_elem(&routes, &k);
	if (!v)
		return 1;
	record(2, *v);
	return 3;
}
"""

TAIL = r"""
__u64 hits[4] = {0};
const volatile __u32 bias = 7;
int entry_a(struct xdp_md *ctx);
int entry_b(struct xdp_md *ctx);
struct { __uint(type, 3); __uint(max_entries, 4); __uint(key_size, 4); __uint(value_size, 4);
	 __array(values, int (void *)); } jumps SEC(".maps") = {
	.values = { [0] = (void *)&entry_a, [2] = (void *)&entry_b } };

SEC("xdp")
int entry(struct xdp_md *ctx)
{
	__u8 *data = DATA(ctx), *end = END(ctx);
	if (data + 14 > end)
		return 1;
	hits[0]++;
	bpf_tail_call(ctx, &jumps, data[0] & 3);
	static const char msg[] = "no program in slot %d\n";
	bpf_trace_printk(msg, sizeof(msg), data[0] & 3);
	return 1;
}

SEC("xdp/a")
int entry_a(struct xdp_md *ctx)
{
	__u8 *data = DATA(ctx), *end = END(ctx);
	hits[1] += bias;
	if (data + 14 > end)
		return 1;
	if (data[1] & 1)
		bpf_tail_call(ctx, &jumps, 2);
	data[0] ^= 0xff;
	return 2;
}

SEC("xdp/b")
int entry_b(struct xdp_md *ctx)
{
	__u8 *data = DATA(ctx), *end = END(ctx);
	hits[2]++;
	if (data + 14 <= end && (data[2] & 1))
		bpf_tail_call(ctx, &jumps, 2);         /* until the tail-call limit stops it */
	return 3;
}
"""

SOURCES = {"packets": PACKETS, "maps": MAPS, "tail": TAIL}


@pytest.fixture(scope="module")
def objects(tmp_path_factory):
    if COMPILER is None:
        pytest.skip("no BPF C compiler (clang or ziglang)")
    out = tmp_path_factory.mktemp("xdp")
    objs = {}
    for name, body in SOURCES.items():
        (out / f"{name}.c").write_text(PRELUDE + body)
        objs[name] = load_elf(compile_c(out / f"{name}.c", out / f"{name}.o"))
    return objs


def random_packets(seed, count=150):
    rng = random.Random(seed)
    packets = [rng.randbytes(rng.randrange(14, 200)) for _ in range(count)]
    # Near the end of the XDP buffer (adjust_tail bounds) and past it (rejected), plus a runt.
    packets += [rng.randbytes(n) for n in (MAX_PACKET, MAX_PACKET + 1, 13)]
    # adjust_tail to exactly the end of the buffer, and one byte more; adjust_head to exactly
    # the end of the headroom (256 - sizeof(struct xdp_frame)), and one byte more.
    packets += [bytes(15) + bytes([64 + 40]) + bytes(MAX_PACKET - 56),
                bytes(15) + bytes([64 + 41]) + bytes(MAX_PACKET - 56),
                bytes(14) + bytes([156, 0xc0]) + bytes(50),
                bytes(14) + bytes([157, 0xc0]) + bytes(50)]
    return packets


DEVMAP_SETTINGS = [("ports", (i).to_bytes(4, "little"), (1).to_bytes(4, "little"))
                   for i in (0, 2, 3)]


def compare_engines(obj, prog, packets, **options):
    vm = run_packets(obj, prog, packets, "vm", **options)
    kernel = run_packets(obj, prog, packets, "kernel", **options)
    differences = compare_reports(vm, kernel)
    assert not differences, f"{len(differences)} differences, first: {differences[:5]}"
    a, b = vm.to_json(), kernel.to_json()
    assert a.pop("engine") == "vm" and b.pop("engine") == "kernel"
    assert a["verdicts"] == b["verdicts"]
    for i, (x, y) in enumerate(zip(vm.packets, kernel.packets)):
        assert x.data == y.data, f"packet {i} ({x.action}) leaves with different bytes"
    assert a == b
    return vm


@needs_kernel
@pytest.mark.parametrize("obj_name,prog_name", [
    ("packets", "adjust"), ("packets", "csum"), ("packets", "redirect"), ("packets", "cpu"),
    ("maps", "hash"), ("maps", "lpm"), ("tail", "entry"),
])
def test_vm_matches_kernel(objects, obj_name, prog_name, seed):
    obj = objects[obj_name]
    settings = DEVMAP_SETTINGS if prog_name == "redirect" else []
    report = compare_engines(obj, obj.find(prog_name), random_packets(seed),
                             map_settings=settings)
    counts = report.counts
    assert counts["REJECTED"] == 2
    if prog_name == "adjust":
        last = report.packets[-2:]                     # the adjust_head boundary packets
        assert len(last[0].data) == 66 + 216 and len(last[1].data) == 66
    # The programs must reach their interesting paths, or the comparison proves little.
    if prog_name == "redirect":
        assert counts["REDIRECT"] and counts["DROP"] and counts["ABORTED"]
    if prog_name == "tail":
        assert counts["TX"] and counts["PASS"] and counts["DROP"]
    results = {e["key"]: e["value"] for e in report.maps.get("results", {}).get("entries", [])}
    if prog_name in ("adjust", "hash", "lpm"):
        assert len(results) >= 2


@needs_kernel
def test_comparison_catches_an_injected_helper_bug(objects, seed, monkeypatch):
    from bpfcore.sim.model.helpers import XdpEnv
    original = XdpEnv.csum_diff

    def off_by_one(self, vm, *args):
        return original(self, vm, *args) + 1
    monkeypatch.setattr(XdpEnv, "csum_diff", off_by_one)
    obj = objects["packets"]
    with pytest.raises(AssertionError):
        compare_engines(obj, obj.find("csum"), random_packets(seed, 20))


@needs_kernel
def test_context_fields_match_kernel(objects, seed):
    obj = objects["packets"]
    compare_engines(obj, obj.find("cpu"), random_packets(seed, 5), ingress_ifindex=1,
                    rx_queue_index=0)


def firmware_map_file(path):
    """The map file to compare ``path`` (firmware/build/NAME.o) with: the clock-independent
    ``NAME.frozen.maps.json`` if there is one, else ``NAME.maps.json`` (or None)."""
    firmware = path.parent.parent
    for candidate in (f"{path.stem}.frozen.maps.json", f"{path.stem}.maps.json"):
        if (firmware / candidate).exists():
            return firmware / candidate
    return None


@needs_firmware
def test_firmware_that_reads_the_clock_has_a_frozen_map_file():
    """Otherwise the differential test below would compare clock-dependent results."""
    for path in FIRMWARE:
        source = path.parent.parent / f"{path.stem}.c"
        if source.exists() and "ktime_get_ns" in source.read_text():
            assert firmware_map_file(path).name == f"{path.stem}.frozen.maps.json", path.stem


@needs_kernel
@needs_firmware
@pytest.mark.parametrize("path", FIRMWARE, ids=[p.stem for p in FIRMWARE])
def test_firmware_vm_matches_kernel(path, seed):
    from bpfcore.sim.gen.traffic import generate
    obj = load_elf(path)
    map_file = firmware_map_file(path)
    settings, entry = load_map_file(map_file) if map_file else ([], None)
    report = compare_engines(obj, obj.find(entry),
                             [p.frame for p in generate(TRAFFIC_COUNT, seed)],
                             map_settings=settings)
    assert report.counts["REJECTED"] < len(report.packets) / 10      # most packets ran
    if path.stem == "ratelimit":        # the comparison covers both verdicts and the buckets
        assert report.counts["DROP"] > 0 and report.maps["rl_buckets"]["entries"]


# --- the rate limiter on the capture's clock (VM only) -----------------------------------------

def bucket_key(frame):
    """The ``rl_buckets`` key firmware/ratelimit.c files an Ethernet frame under (its IP source,
    IPv4 as ::ffff:a.b.c.d), or None when the program passes the frame without a bucket (not IP,
    IP header truncated or malformed). Follows bpfcore/parse.h: up to two VLAN tags."""
    off = 12
    for _ in range(2):
        if frame[off:off + 2] not in (b"\x81\x00", b"\x88\xa8"):
            break
        off += 4
    ethertype, off = frame[off:off + 2], off + 2
    if ethertype == b"\x08\x00" and len(frame) >= off + 20:
        ihl, version = (frame[off] & 15) * 4, frame[off] >> 4
        if ihl >= 20 and version == 4 and len(frame) >= off + ihl:
            return bytes(10) + b"\xff\xff" + frame[off + 12:off + 16]
    if ethertype == b"\x86\xdd" and len(frame) >= off + 40 and frame[off] >> 4 == 6:
        return frame[off + 8:off + 24]
    return None


def token_bucket(events, interval, burst):
    """Reference model of firmware/ratelimit.c: verdicts of (source, now) events, and the final
    {source: [tokens, last_ns, passed, dropped]}."""
    buckets, verdicts = {}, []
    for source, now in events:
        b = buckets.get(source)
        if b is None:
            buckets[source] = [burst - 1, now - now % interval, 1, 0]
            verdicts.append("PASS")
            continue
        if now > b[1]:
            earned = (now - b[1]) // interval
            b[1] += earned * interval
            b[0] = min(burst, b[0] + earned)
        if b[0]:
            b[0] -= 1
            b[2] += 1
            verdicts.append("PASS")
        else:
            b[3] += 1
            verdicts.append("DROP")
    return verdicts, buckets


@needs_firmware
def test_ratelimit_limits_heavy_sources_on_the_capture_clock(capsys, tmp_path, seed):
    from bpfcore.sim.gen.traffic import SCENARIO, Packet, generate
    from bpfcore.sim.load.pcap import write_pcap as write_traffic
    path = ROOT / "firmware" / "build" / "ratelimit.o"
    if not path.exists():
        pytest.skip("firmware/build/ratelimit.o not built (make firmware)")
    interval, burst = SCENARIO["rl_interval_ns"], SCENARIO["rl_burst"]
    assert (interval, burst) == (1_000_000, 8)          # the pattern below is worked out for it
    generated = generate(TRAFFIC_COUNT, seed)
    # Then, after a 10 ms pause (the bucket fills up), two bursts of 12 packets from one heavy
    # source, 1 us apart, starting 0.1 ms into an interval and 3 intervals apart: the first
    # passes 8 and drops 4, the second has earned exactly 3 tokens.
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 60, 1, 0, 64, 17, 0,
                     SCENARIO["heavy4"][0].packed, SCENARIO["servers4"][0].packed)
    pattern = bytes.fromhex("020000000001" "020000000002" "0800") + ip + bytes(40)
    start = (generated[-1].ts_us // 1000 + 10) * 1000 + 100
    generated += [Packet("pattern", start + gap + i, pattern)
                  for gap in (0, 3000) for i in range(12)]
    pcap = tmp_path / "t.pcap"
    write_traffic(pcap, generated)
    code, out, _ = cli(capsys, "run", path, "--maps", ROOT / "firmware" / "ratelimit.maps.json",
                       "--pcap", pcap, "--clock", "pcap", "--json")
    assert code == 0
    doc = json.loads(out)
    frames, times = read_pcap(pcap, with_times=True)
    heavy = {a.packed if a.version == 6 else
             bytes(10) + b"\xff\xff" + a.packed for a in SCENARIO["heavy4"] + SCENARIO["heavy6"]}
    events, indexes = [], []                    # every packet that reaches a heavy bucket
    for i, (packet, frame, now) in enumerate(zip(generated, frames, times)):
        key = bucket_key(frame)
        if packet.kind.startswith("heavy"):
            assert key in heavy, (i, packet.kind)
        if key in heavy:
            events.append((key, now))
            indexes.append(i)
    expected, buckets = token_bucket(events, interval, burst)
    assert [doc["verdicts"][i] for i in indexes] == expected
    assert doc["verdicts"][-24:] == ["PASS"] * 8 + ["DROP"] * 4 + ["PASS"] * 3 + ["DROP"] * 9
    stored = {e["key"]: e["value"] for e in doc["maps"]["rl_buckets"]["entries"]}
    for source, state in buckets.items():
        assert stored[source.hex()] == struct.pack("<4Q", *state).hex(), source.hex()
        assert state[1] % interval == 0


def test_vm_run_details(objects):
    obj = objects["packets"]
    packets = [bytes([0x02, 0]) + bytes(20), bytes([0x01, 1]) + bytes(20),
               bytes([0x81, 0]) + bytes(20), bytes([0xc1, 0]) + bytes(20)]
    report = run_packets(obj, obj.find("redirect"), packets, map_settings=DEVMAP_SETTINGS[1:])
    assert report.verdicts == ["REDIRECT", "DROP", "REDIRECT", "ABORTED"]
    assert [p.port for p in report.packets] == [1, None, 1, None]
    assert report.packets[0].data == packets[0]
    assert report.maps["ports"]["entries"] == [
        {"key": "02000000", "value": "01000000"}, {"key": "03000000", "value": "01000000"}]
    report = run_packets(obj, obj.find("cpu"), packets[:2])
    assert report.log == ["cpu 0 len 22\n"] * 2
    assert report.verdicts == ["PASS", "PASS"] and report.packets[0].port == "host"


def test_fault_gives_aborted(objects):
    obj = objects["tail"]
    report = run_packets(obj, obj.find("entry"), [bytes(20)], budget=3)
    assert report.verdicts == ["ABORTED"]
    assert "budget" in report.packets[0].message


# --- the command line ----------------------------------------------------------------------

def cli(capsys, *argv):
    code = cli_main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def files(objects, tmp_path, seed):
    pcap = tmp_path / "in.pcap"
    write_pcap(pcap, random_packets(seed, 40))
    return {"pcap": pcap, "tmp": tmp_path, "obj": objects["tail"].path,
            "count": len(random_packets(seed, 40))}


def test_cli_run_counts_and_json(capsys, files):
    code, out, err = cli(capsys, "run", files["obj"], "--pcap", files["pcap"])
    assert code == 0 and err == ""
    assert out.startswith(f"entry on vm: {files['count']} packets") and "REJECTED  2" in out
    assert "trace: no program in slot" in out
    code, out, _ = cli(capsys, "run", files["obj"], "--pcap", files["pcap"], "--json")
    doc = json.loads(out)
    assert doc["engine"] == "vm" and len(doc["verdicts"]) == files["count"]
    assert sum(doc["counts"].values()) == files["count"]
    assert set(doc["maps"]) == {"results", "jumps", ".bss", ".rodata"}
    assert doc["maps"]["jumps"]["entries"] == [{"key": "00000000", "value": "entry_a"},
                                               {"key": "02000000", "value": "entry_b"}]


@needs_kernel
def test_cli_json_same_on_both_engines(capsys, files):
    docs = []
    for engine in ("vm", "kernel"):
        code, out, _ = cli(capsys, "run", files["obj"], "--pcap", files["pcap"], "--json",
                           "--engine", engine)
        assert code == 0
        doc = json.loads(out)
        assert doc.pop("engine") == engine
        docs.append(doc)
    assert docs[0] == docs[1]


def test_cli_out_files(capsys, files):
    for name in ("out.pcap", "out.pcapng"):
        out_path = files["tmp"] / name
        code, _, _ = cli(capsys, "run", files["obj"], "--section", "entry", "--pcap",
                         files["pcap"], "--out", out_path)
        assert code == 0
        written = read_pcap(out_path)
        code, out, _ = cli(capsys, "run", files["obj"], "--pcap", files["pcap"], "--json")
        counts = json.loads(out)["counts"]
        assert len(written) == counts["TX"] + counts["PASS"] + counts["REDIRECT"]
    data = (files["tmp"] / "out.pcapng").read_bytes()
    comments = [comment for btype, comment in _pcapng_blocks(data) if btype == 6]
    assert comments and all(c.startswith(b"action=") for c in comments)
    assert b"action=TX port=1" in comments and b"action=PASS port=host" in comments
    with open(files["tmp"] / "out.pcapng", "rb") as f:
        names = [opt.data for opt in dpkt.pcapng.Reader(f).idb.opts if opt.code == 2]
    assert names and names[0] in (b"port1", b"host")


def _pcapng_blocks(data):
    """(block type, comment option) of each block of a pcapng file."""
    pos = 0
    while pos < len(data):
        btype, length = struct.unpack_from("<II", data, pos)
        comment = b""
        if btype == 6:
            caplen = struct.unpack_from("<I", data, pos + 20)[0]
            opt = pos + 28 + caplen + (-caplen % 4)
            code, olen = struct.unpack_from("<HH", data, opt)
            if code == 1:
                comment = data[opt + 4:opt + 4 + olen]
        yield btype, comment
        pos += length


def test_cli_maps_dump_and_settings(capsys, files, objects, tmp_path):
    code, out, _ = cli(capsys, "maps", "dump", files["obj"])
    assert code == 0 and "jumps: prog_array" in out and "00000000 = entry_a" in out
    code, out, _ = cli(capsys, "maps", "dump", files["obj"], "--pcap", files["pcap"], "--json")
    maps = json.loads(out)
    assert maps[".bss"]["entries"]                      # hits[] counted something
    map_file = tmp_path / "m.json"
    map_file.write_text(json.dumps({"format": "bpfcore-maps/1", "entry": "xdp/a", "maps": {
        "results": [{"key": "05000000", "value": "0900000000000000"}]}}))
    code, out, _ = cli(capsys, "maps", "dump", files["obj"], "--maps", map_file,
                       "--set", "results:06000000=0100000000000000", "--json")
    entries = json.loads(out)["results"]["entries"]
    assert entries == [{"key": "05000000", "value": "0900000000000000"},
                       {"key": "06000000", "value": "0100000000000000"}]


def test_compare_reports_names_each_difference():
    from bpfcore.sim.model.xdp import PacketResult, RunReport
    maps = {"m": {"type": "hash", "key_size": 1, "value_size": 1, "max_entries": 4,
                  "entries": [{"key": "01", "value": "aa"}, {"key": "02", "value": "bb"}]}}
    a = RunReport("vm", "p", [PacketResult("PASS", 2, b"abc", "host"),
                              PacketResult("DROP", 1), PacketResult("TX", 3, b"xy", 1)], maps)
    b = RunReport("kernel", "p", [PacketResult("PASS", 2, b"abd", "host"),
                                  PacketResult("PASS", 2, b"", "host"),
                                  PacketResult("TX", 3, b"xy", 1)],
                  {"m": dict(maps["m"], entries=[{"key": "01", "value": "ab"}])})
    assert compare_reports(a, a) == []
    assert compare_reports(a, b) == [
        "packet 0 (PASS): leaves with different bytes: vm 3 B, kernel 3 B, first difference at "
        "byte 2",
        "packet 1: verdict vm DROP, kernel PASS",
        "map m key 01: vm aa, kernel ab",
        "map m key 02: vm bb, kernel absent"]


@pytest.fixture
def heavy_pcap(tmp_path):
    """Five copies of one IPv4 frame: one source sending back to back."""
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 28, 1, 0, 64, 17, 0, bytes([192, 0, 2, 200]),
                     bytes([10, 0, 0, 1]))
    pcap = tmp_path / "heavy.pcap"
    write_pcap(pcap, [bytes(6) + bytes([2, 0, 0, 0, 0, 1]) + b"\x08\x00" + ip + bytes(8)] * 5)
    return pcap


@needs_kernel
@needs_firmware
def test_cli_compare(capsys, tmp_path, heavy_pcap):
    obj = ROOT / "firmware" / "build" / "ratelimit.o"
    pcap = tmp_path / "t.pcap"
    assert cli(capsys, "gen-traffic", "--count", 150, "--seed", 3, "--out", pcap)[0] == 0
    code, out, err = cli(capsys, "run", obj, "--maps", ROOT / "firmware" /
                         "ratelimit.frozen.maps.json", "--pcap", pcap, "--compare")
    assert (code, err) == (0, "")
    assert out.startswith("xdp_ratelimit: 150 packets, vm and kernel: identical verdicts, "
                          "packets out and maps\n") and "  seconds " in out
    # One token per ns: the kernel's clock earns tokens between packets, the VM's (fixed) does
    # not, so the VM drops what the kernel passes.
    fast = "rl_config:00000000=" + struct.pack("<QQ", 1, 1).hex()
    code, out, _ = cli(capsys, "run", obj, "--set", fast, "--pcap", heavy_pcap, "--compare",
                       "--json")
    doc = json.loads(out)
    assert code == 1 and doc["identical"] is False
    assert doc["engines"]["vm"]["counts"]["DROP"] == 4
    assert doc["engines"]["kernel"]["counts"]["PASS"] == 5
    assert doc["differences"][:4] == [f"packet {i}: verdict vm DROP, kernel PASS"
                                      for i in range(1, 5)]
    assert doc["differences"][4].startswith("map rl_buckets key 00000000000000000000ffffc00002c8")
    code, out, _ = cli(capsys, "run", obj, "--set", fast, "--pcap", heavy_pcap, "--compare")
    assert code == 1 and "vm and kernel: 5 difference(s)" in out
    assert "  differs: packet 1: verdict vm DROP, kernel PASS\n" in out


@pytest.mark.parametrize("make_args,message", [
    (lambda f: ["run", f["pcap"], "--pcap", f["pcap"]], "not a valid ELF file"),
    (lambda f: ["run", f["obj"], "--pcap", f["obj"]], "not a pcap or pcapng file"),
    (lambda f: ["run", f["obj"], "--pcap", f["tmp"] / "nope.pcap"], "nope.pcap: no such file"),
    (lambda f: ["run", f["obj"], "--pcap", f["pcap"], "--section", "zz"], "no program or section"),
    (lambda f: ["run", f["obj"], "--pcap", f["pcap"], "--set", "nomap:00=00"], "no map named"),
    (lambda f: ["run", f["obj"], "--pcap", f["pcap"], "--set", "results"], "NAME:KEYHEX"),
    (lambda f: ["run", f["obj"], "--pcap", f["pcap"], "--set", "results:00=00"], "key of 1 bytes"),
    (lambda f: ["run", f["obj"], "--pcap", f["pcap"], "--maps", f["pcap"]], "not JSON"),
    (lambda f: ["run", f["obj"], "--pcap", f["pcap"], "--clock", "soon"], "--clock"),
    (lambda f: ["run", f["obj"], "--pcap", f["pcap"], "--compare", "--engine", "kernel"],
     "--compare runs both engines"),
    (lambda f: ["run", f["obj"], "--pcap", f["pcap"], "--compare", "--out", f["tmp"] / "o.pcap"],
     "drop --out"),
])
def test_cli_errors_are_one_line(capsys, files, make_args, message):
    code, out, err = cli(capsys, *make_args(files))
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and message in err and "Traceback" not in err


def test_cli_truncated_pcap(capsys, files):
    data = Path(files["pcap"]).read_bytes()
    bad = files["tmp"] / "bad.pcap"
    bad.write_bytes(data[:len(data) - 7])
    code, _, err = cli(capsys, "run", files["obj"], "--pcap", bad)
    assert code == 1 and "bad.pcap" in err and err.count("\n") == 1
