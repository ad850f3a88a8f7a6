"""firmware/: every program compiles with every available compiler, loads, and does its job.

Objects are compiled into a temporary directory once per compiler (clang and/or PyPI ziglang),
checked by the build's own ELF check and by the project's ELF loader, run on the golden VM over
generated traffic with the initial maps of ``firmware/NAME.maps.json`` (per-program expectations
below), and, where ``bpf()`` works, loaded into the Linux kernel and run there too: the kernel's
verdicts must equal the VM's.
"""

import importlib.util
import ipaddress
import subprocess
import sys
from collections import Counter, defaultdict

import pytest

from bpfcore.sim.load.elf import load_elf
from bpfcore.sim.gen.traffic import SCENARIO, generate, inet_checksum
from bpfcore.sim.load import kernel
from bpfcore.sim.load.mapfile import load_map_file
from bpfcore.sim.engines import run_packets
from conftest import ROOT

FIRMWARE = ROOT / "firmware"


def load_module(name):
    spec = importlib.util.spec_from_file_location(f"firmware_{name}", FIRMWARE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


build = load_module("build")
mapspec = load_module("mapspec")

PROGRAMS = sorted(p.stem for p in FIRMWARE.glob("*.c"))
COMPILERS = list(build.compilers())
EXPECTED = {"pass", "drop", "counter", "firewall", "echo", "lb", "ratelimit", "tailcall", "calls"}
KERNEL_OK, KERNEL_WHY = kernel.kernel_available()


def test_every_program_is_there_and_a_compiler_exists():
    assert EXPECTED <= set(PROGRAMS)
    assert COMPILERS, "no BPF compiler (clang or ziglang)"


@pytest.fixture(scope="module", params=COMPILERS)
def objects(request, tmp_path_factory):
    """{program: object path}, all compiled with one compiler."""
    compiler = request.param
    out = tmp_path_factory.mktemp(compiler)
    _, cc = build.pick_compiler(compiler)
    built = {}
    for name in PROGRAMS:
        obj = out / f"{name}.o"
        build.compile_one(compiler, cc, FIRMWARE / f"{name}.c", obj)
        built[name] = obj
    return built


def test_objects_load_and_match_their_map_specs(objects):
    for name, path in objects.items():
        obj = load_elf(path)
        assert any(p.section == "xdp" for p in obj.programs), name
        settings, entry = load_map_file(FIRMWARE / f"{name}.maps.json")
        assert obj.find(entry).section == "xdp"
        specs = {m.name: m for m in obj.maps}
        for map_name, key, value in settings:
            assert map_name in specs, (name, map_name)
            assert (len(key), len(value)) == (specs[map_name].key_size,
                                              specs[map_name].value_size), (name, map_name)


def test_tailcall_object_fills_its_own_prog_array(objects):
    obj = load_elf(objects["tailcall"])
    sections = {p.section for p in obj.programs}
    assert {"xdp", "xdp/ipv4", "xdp/ipv6", "xdp/icmp4", "xdp/l2"} <= sections
    (jump_table,) = [m for m in obj.maps if m.name == "jump_table"]
    assert sorted(jump_table.init_progs.items()) == [
        (0, "xdp_ipv4"), (1, "xdp_ipv6"), (2, "xdp_l2"), (3, "xdp_icmp4")]


def test_calls_object_uses_bpf_to_bpf_calls(objects):
    (prog,) = load_elf(objects["calls"]).programs
    local_calls = [s for s in prog.program.slots if s & 0xff == 0x85 and (s >> 12) & 0xf == 1]
    assert len(local_calls) >= 6


def test_compile_error_is_reported_with_the_source_name(tmp_path):
    source = tmp_path / "broken.c"
    source.write_text("int f(void) { return undeclared; }\n")
    name, cc = build.pick_compiler("auto")
    with pytest.raises(build.BuildError) as info:
        build.compile_one(name, cc, source, tmp_path / "broken.o")
    assert str(info.value).startswith(f"firmware/broken.c: {name} failed: ")
    assert "undeclared" in str(info.value) and "\n" not in str(info.value)
    assert not (tmp_path / "broken.o").exists()


def test_build_script_builds_incrementally_and_rejects_unknown_names(tmp_path):
    script = [sys.executable, str(FIRMWARE / "build.py"), "--out", str(tmp_path)]
    first = subprocess.run(script + ["pass", "drop"], capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    assert sorted(p.name for p in tmp_path.glob("*.o")) == ["drop.o", "pass.o"]
    again = subprocess.run(script + ["pass", "drop"], capture_output=True, text=True)
    assert again.returncode == 0 and again.stdout == ""      # nothing out of date
    bad = subprocess.run(script + ["nope"], capture_output=True, text=True)
    assert bad.returncode == 1
    assert bad.stderr.strip().startswith("firmware build: no firmware program 'nope' (known: ")
    assert len(bad.stderr.strip().splitlines()) == 1


def test_map_spec_files_are_up_to_date():
    specs = {**mapspec.specs(PROGRAMS), **mapspec.variant_specs(PROGRAMS)}
    assert "ratelimit.frozen" in specs
    for name, spec in specs.items():
        text = (FIRMWARE / f"{name}.maps.json").read_text()
        assert text == mapspec.render(spec), f"{name}.maps.json is stale: run firmware/build.py"


# --- behaviour on the scenario traffic -----------------------------------------------------------

def run(objects, name, packets, engine="vm", map_file=None):
    obj = load_elf(objects[name])
    settings, entry = load_map_file(FIRMWARE / (map_file or f"{name}.maps.json"))
    report = run_packets(obj, obj.find(entry), [p.frame for p in packets], engine=engine,
                         map_settings=settings)
    by_kind = defaultdict(Counter)
    for packet, result in zip(packets, report.packets):
        by_kind[packet.kind.split("+")[0]][result.action] += 1
    return report, by_kind


@pytest.fixture(scope="module")
def packets():
    return generate(600, 11)


def only(counter, *actions):
    return set(counter) <= set(actions) and sum(counter.values()) > 0


def test_pass_drop_and_counter(objects, packets):
    _, kinds = run(objects, "pass", packets)
    assert all(only(c, "PASS", "REJECTED") for c in kinds.values())
    _, kinds = run(objects, "drop", packets)
    assert all(only(c, "DROP", "REJECTED") for c in kinds.values())
    report, kinds = run(objects, "counter", packets)
    ran = sum(c["PASS"] for c in kinds.values())
    stats = report.maps["proto_stats"]["entries"]
    assert sum(int.from_bytes(bytes.fromhex(e["value"])[:8], "little") for e in stats) == ran


def ref_firewall(frame):
    """The firewall's decision for ``frame``, written from its specification (firewall.c)."""
    off, ethertype = 12, None
    for _ in range(3):
        if len(frame) < off + 2:
            return "DROP"
        ethertype = int.from_bytes(frame[off:off + 2], "big")
        off += 2
        if ethertype not in (0x8100, 0x88A8) or off == 12 + 2 * 3 + 4:
            break
        off += 2
    if ethertype in (0x8100, 0x88A8):
        return "DROP" if len(frame) < off + 4 else "PASS"      # a third tag: not IP
    if ethertype == 0x0800:
        if len(frame) < off + 20 or frame[off] >> 4 != 4 or frame[off] & 15 < 5 \
                or len(frame) < off + 4 * (frame[off] & 15):
            return "DROP"
        proto, src = frame[off + 9], ipaddress.ip_address(frame[off + 12:off + 16])
        dst = ipaddress.ip_address(frame[off + 16:off + 20])
        later_fragment = int.from_bytes(frame[off + 6:off + 8], "big") & 0x1FFF
        l4 = off + 4 * (frame[off] & 15)
        blocked = SCENARIO["blocked4"]
    elif ethertype == 0x86DD:
        if len(frame) < off + 40 or frame[off] >> 4 != 6:
            return "DROP"
        proto, src = frame[off + 6], ipaddress.ip_address(frame[off + 8:off + 24])
        dst = ipaddress.ip_address(frame[off + 24:off + 40])
        later_fragment, l4, blocked = 0, off + 40, SCENARIO["blocked6"]
    else:
        return "PASS"
    if any(src in net for net in blocked):
        return "DROP"
    sport = dport = 0
    if proto in (6, 17) and not later_fragment:
        if len(frame) < l4 + (20 if proto == 6 else 8):
            return "DROP"
        sport, dport = int.from_bytes(frame[l4:l4 + 2], "big"), int.from_bytes(frame[l4 + 2:l4 + 4],
                                                                                   "big")
    for exact in (True, False):
        for rule_proto, saddr, rule_sport, daddr, rule_dport, action in SCENARIO["rules"]:
            if (rule_proto, daddr, rule_dport) != (proto, dst, dport):
                continue
            if (saddr, rule_sport) == ((src, sport) if exact else (None, None)):
                return action.upper()
    return "PASS"


def test_firewall_matches_its_reference(objects, packets):
    report, kinds = run(objects, "firewall", packets)
    for i, (packet, result) in enumerate(zip(packets, report.packets)):
        if result.action != "REJECTED":
            assert result.action == ref_firewall(packet.frame), (i, packet.kind,
                                                                 packet.frame.hex())
    assert only(kinds["blocked4"], "DROP") and only(kinds["blocked6"], "DROP")
    assert kinds["fw_rule4"]["DROP"] and kinds["fw_rule4"]["PASS"] and kinds["fw_rule6"]["DROP"]
    assert kinds["truncated"]["DROP"] and kinds["malformed"]["DROP"]
    hits = [int.from_bytes(bytes.fromhex(e["value"])[8:], "little")
            for e in report.maps["fw_rules"]["entries"]]
    assert sum(1 for h in hits if h) >= 4


def test_echo_replies_are_correct(objects, packets):
    report, kinds = run(objects, "echo", packets)
    assert kinds["echo4"]["TX"] and kinds["echo6"]["TX"]
    assert only(kinds["tcp4"], "PASS") and only(kinds["arp"], "PASS")
    replies = 0
    for packet, result in zip(packets, report.packets):
        if result.action != "TX":
            continue
        frame, sent = result.data, packet.frame
        off = 14 + 4 * sent[12:20].count(b"\x81\x00") + 4 * sent[12:20].count(b"\x88\xa8")
        assert frame[:6] == sent[6:12] and frame[6:12] == sent[:6]
        if frame[off - 2:off] == b"\x08\x00":
            ihl = (frame[off] & 15) * 4
            total = int.from_bytes(frame[off + 2:off + 4], "big")
            assert inet_checksum(frame[off:off + ihl]) == 0
            assert inet_checksum(frame[off + ihl:off + total]) == 0
            assert frame[off + ihl] == 0 and frame[off + 8] == 64
            assert frame[off + 12:off + 16] == sent[off + 16:off + 20]
        else:
            plen = int.from_bytes(frame[off + 4:off + 6], "big")
            pseudo = frame[off + 8:off + 40] + plen.to_bytes(4, "big") + b"\0\0\0\x3a"
            assert inet_checksum(pseudo + frame[off + 40:off + 40 + plen]) == 0
            assert frame[off + 40] == 129
        replies += 1
    assert replies == kinds["echo4"]["TX"] + kinds["echo6"]["TX"] + sum(
        kinds[k]["TX"] for k in ("blocked4", "blocked6"))


def test_lb_keeps_flows_on_one_backend(objects, packets):
    report, kinds = run(objects, "lb", packets)
    assert kinds["lb4"]["REDIRECT"] > 10 and kinds["lb6"]["REDIRECT"] > 3
    assert only(kinds["tcp4"], "PASS") and only(kinds["echo4"], "PASS")
    macs = {mac for mac, _ in SCENARIO["backends"]}
    backend_of = defaultdict(set)
    for packet, result in zip(packets, report.packets):
        if result.action == "REDIRECT":
            assert result.data[:6] in macs and result.data[6:12] == SCENARIO["lb_mac"]
            backend_of[packet.frame[6:12]].add(result.data[:6])   # client MAC = flow
    assert all(len(b) == 1 for b in backend_of.values())
    assert len(set().union(*backend_of.values())) == len(macs)


def test_ratelimit_drops_only_heavy_sources(objects, packets):
    _, kinds = run(objects, "ratelimit", packets)
    assert kinds["heavy"]["DROP"] > 0
    for kind in ("tcp4", "udp4", "echo4", "lb6", "arp"):
        assert only(kinds[kind], "PASS"), kind


def test_tailcall_paths(objects, packets):
    report, kinds = run(objects, "tailcall", packets)
    assert only(kinds["ttl_expired"], "DROP") and only(kinds["other_l2"], "DROP")
    assert only(kinds["arp"], "PASS") and only(kinds["echo6"], "PASS")
    assert kinds["icmp4"]["DROP"] and kinds["icmp4"]["PASS"]
    hits = {int(e["key"][:2], 16): int.from_bytes(bytes.fromhex(e["value"]), "little")
            for e in report.maps["stage_hits"]["entries"]}
    assert hits[8] == sum(1 for r in report.packets if r.action != "REJECTED")   # dispatcher
    assert hits[9] > 0      # ICMPv6 falls through the empty slot


def test_calls_drops_discard_and_telnet(objects, packets):
    report, kinds = run(objects, "calls", packets)
    for packet, result in zip(packets, report.packets):
        kind = packet.kind.split("+")[0]
        if kind in ("udp4", "tcp4", "lb4") and result.action == "DROP":
            off = 14 + 4 * packet.frame[12:20].count(b"\x81\x00") \
                + 4 * packet.frame[12:20].count(b"\x88\xa8")
            ihl = (packet.frame[off] & 15) * 4
            assert int.from_bytes(packet.frame[off + ihl + 2:off + ihl + 4], "big") in (9, 23)
    assert kinds["udp4"]["DROP"] + kinds["udp6"]["DROP"] > 0
    assert only(kinds["malformed"], "DROP")


@pytest.mark.skipif(not KERNEL_OK, reason=KERNEL_WHY or "bpf() not available")
def test_kernel_loads_every_program_and_agrees_with_the_vm(objects, packets):
    sample = packets[:200]
    for name in PROGRAMS:
        # The rate limiter's default config refills as the kernel's clock moves (the VM's does
        # not): compare it with the clock-independent one.
        map_file = "ratelimit.frozen.maps.json" if name == "ratelimit" else None
        vm, _ = run(objects, name, sample, map_file=map_file)
        real, _ = run(objects, name, sample, engine="kernel", map_file=map_file)
        assert real.verdicts == vm.verdicts, name
        assert real.maps == vm.maps, name
