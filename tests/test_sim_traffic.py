"""The traffic generator (deterministic, realistic, aimed at the firmware) and the pcap reader."""

import ipaddress
import struct
from collections import Counter

import dpkt
import pytest

from bpfcore.cli import main
from bpfcore.errors import BpfcoreError
from bpfcore.sim.gen.traffic import (MAX_FRAME, MIX, SCENARIO, Packet, generate, generate_sized,
                                      inet_checksum)
from bpfcore.sim.load.pcap import read_pcap, read_pcap_records, write_pcap


def l3_offset(frame):
    """Offset of the L3 header and its EtherType, skipping VLAN tags."""
    off = 12
    while frame[off:off + 2] in (b"\x81\x00", b"\x88\xa8"):
        off += 4
    return off + 2, struct.unpack_from("!H", frame, off)[0]


# --- generation ----------------------------------------------------------------------------------

def test_same_seed_same_capture_other_seed_other_capture(tmp_path, seed):
    a, b, c = tmp_path / "a.pcap", tmp_path / "b.pcap", tmp_path / "c.pcap"
    assert main(["gen-traffic", "--count", "400", "--seed", str(seed), "--out", str(a)]) == 0
    assert main(["gen-traffic", "--count", "400", "--seed", str(seed), "--out", str(b)]) == 0
    assert main(["gen-traffic", "--count", "400", "--seed", str(seed + 1), "--out", str(c)]) == 0
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()
    assert len(read_pcap(a)) == 400


def test_count_is_exact_and_every_kind_appears(seed):
    packets = generate(2000, seed)
    assert len(packets) == 2000
    kinds = Counter(p.kind.split("+")[0] for p in packets)
    assert set(kinds) == {kind for kind, _ in MIX}
    tags = Counter(p.kind.partition("+")[2] for p in packets)
    assert tags["vlan"] > 0 and tags["qinq"] > 0
    assert generate(1, seed)[0] == packets[0]     # a prefix of a longer run


def test_timestamps_increase_and_bursts_are_tight(seed):
    packets = generate(1500, seed)
    times = [p.ts_us for p in packets]
    assert times == sorted(times) and len(set(times)) == len(times)
    heavy = [p for p in packets if p.kind.startswith("heavy")]
    gaps = [b.ts_us - a.ts_us for a, b in zip(packets, packets[1:]) if b.kind.startswith("heavy")
            and a.kind.startswith("heavy")]
    assert heavy and max(gaps) <= 3


def test_sizes_are_mostly_realistic_with_runts_and_jumbos(seed):
    packets = generate(3000, seed)
    sizes = [len(p.frame) for p in packets]
    assert max(sizes) <= MAX_FRAME
    assert sum(s <= 1522 for s in sizes) / len(sizes) > 0.95
    assert any(s > 8000 for s in sizes)
    assert all(len(p.frame) < 14 for p in packets if p.kind == "runt")
    assert all(s >= 60 for p, s in zip(packets, sizes) if p.kind != "runt")  # as on a wire


def test_checksums_agree_with_dpkt(seed):
    """dpkt recomputes every IP, TCP, UDP, ICMP and ICMPv6 checksum when it is zeroed."""
    checked = Counter()
    for packet in generate(800, seed):
        kind = packet.kind.split("+")[0]
        if kind in ("runt", "truncated", "malformed", "arp", "other_l2", "frag4"):
            continue
        off, ethertype = l3_offset(packet.frame)
        l3 = packet.frame[off:]
        if ethertype == 0x0800:
            ip = dpkt.ip.IP(l3)
            sent = (ip.sum, ip.data.sum)
            ip.sum = 0
            ip.data.sum = 0
            if isinstance(ip.data, dpkt.icmp.ICMP):
                ip.data = dpkt.icmp.ICMP(bytes(ip.data))
            again = dpkt.ip.IP(bytes(ip))
            assert (again.sum, again.data.sum) == sent, (kind, packet.frame.hex())
        else:
            ip6 = dpkt.ip6.IP6(l3)
            sent = ip6.data.sum
            ip6.data.sum = 0
            assert dpkt.ip6.IP6(bytes(ip6)).data.sum == sent, (kind, packet.frame.hex())
        checked[ethertype] += 1
    assert checked[0x0800] > 100 and checked[0x86dd] > 50


def test_rfc1071_checksum_examples():
    # RFC 1071 section 3 example: the sum of these words is 0xddf2, the checksum its complement
    assert inet_checksum(bytes.fromhex("0001f203f4f5f6f7")) == ~0xddf2 & 0xffff
    assert inet_checksum(b"\xff") == 0x00ff     # odd length: padded with a zero byte
    header = bytes.fromhex("450000730000400040110000c0a80001c0a800c7")
    assert inet_checksum(header) == 0xb861       # the classic Wikipedia IPv4 example


def test_traffic_hits_the_scenario(seed):
    """The mix reaches every rule, prefix, service and heavy source of the scenario."""
    packets = generate(3000, seed)
    sources, destinations, tuples = Counter(), Counter(), set()
    for p in packets:
        if p.kind.startswith(("runt", "truncated", "malformed")):
            continue
        off, ethertype = l3_offset(p.frame)
        if ethertype == 0x0800:
            ip = dpkt.ip.IP(p.frame[off:])
        elif ethertype == 0x86dd:
            ip = dpkt.ip6.IP6(p.frame[off:])
        else:
            continue
        src = ipaddress.ip_address(ip.src)
        dst = ipaddress.ip_address(ip.dst)
        sources[src] += 1
        ports = (getattr(ip.data, "sport", None), getattr(ip.data, "dport", None))
        destinations[(dst, ports[1])] += 1
        tuples.add((src, ports[0], dst, ports[1]))
    for net in SCENARIO["blocked4"] + SCENARIO["blocked6"]:
        assert any(src in net for src in sources), net
    for proto, saddr, sport, daddr, dport, _ in SCENARIO["rules"]:
        if saddr is None:
            assert destinations[(daddr, dport)] > 0, (daddr, dport)
        else:
            assert (saddr, sport, daddr, dport) in tuples, (saddr, sport, daddr, dport)
    assert destinations[(SCENARIO["vip4"], SCENARIO["vport"])] > 20
    assert destinations[(SCENARIO["vip6"], SCENARIO["vport"])] > 5
    limit = SCENARIO["rl_burst"]
    for heavy in SCENARIO["heavy4"] + SCENARIO["heavy6"]:
        assert sources[heavy] > 2 * limit, heavy


def test_generate_rejects_a_bad_count():
    with pytest.raises(BpfcoreError, match="positive integer"):
        generate(0)


# --- pcap reading ---------------------------------------------------------------------------------

def test_round_trip_keeps_frames_and_timestamps(tmp_path, seed):
    packets = generate(300, seed)
    path = tmp_path / "t.pcap"
    write_pcap(path, packets)
    records = read_pcap_records(path)
    assert [r.frame for r in records] == [p.frame for p in packets]
    start = records[0].ts_ns - packets[0].ts_us * 1000
    assert [r.ts_ns - start for r in records] == [p.ts_us * 1000 for p in packets]
    # dpkt reads the file back the same way
    with open(path, "rb") as f:
        assert [bytes(buf) for _, buf in dpkt.pcap.Reader(f)] == [p.frame for p in packets]


def test_reader_accepts_big_endian_and_nanosecond_files(tmp_path):
    frame = bytes(range(60))
    big = struct.pack(">IHHiIII", 0xa1b2c3d4, 2, 4, 0, 0, 65535, 1) \
        + struct.pack(">IIII", 5, 7, 60, 60) + frame
    nano = struct.pack("<IHHiIII", 0xa1b23c4d, 2, 4, 0, 0, 65535, 1) \
        + struct.pack("<IIII", 5, 7, 60, 60) + frame
    (tmp_path / "big.pcap").write_bytes(big)
    (tmp_path / "nano.pcap").write_bytes(nano)
    assert read_pcap_records(tmp_path / "big.pcap")[0].ts_ns == 5_000_007_000
    assert read_pcap_records(tmp_path / "nano.pcap")[0].ts_ns == 5_000_000_007
    assert read_pcap(tmp_path / "big.pcap") == [frame]


def good_pcap(n=3):
    header = struct.pack("<IHHiIII", 0xa1b2c3d4, 2, 4, 0, 0, 65535, 1)
    body = b"".join(struct.pack("<IIII", i, 0, 60, 60) + bytes([i]) * 60 for i in range(n))
    return header + body


RECORD = 16 + 60


@pytest.mark.parametrize("name, data, message", [
    ("empty", b"", "truncated pcap file header (0 of 24 bytes)"),
    ("short", b"hello", "not a pcap or pcapng file (too short: 5 bytes)"),
    ("magic", b"GIF89a" + bytes(40), "not a pcap or pcapng file (magic 47494638)"),
    ("pcapng", b"\x0a\x0d\x0d\x0a" + bytes(40), "not a valid pcapng file"),
    ("version", good_pcap()[:4] + struct.pack("<HH", 1, 0) + good_pcap()[8:],
     "unsupported pcap version 1.0"),
    ("linktype", good_pcap()[:20] + struct.pack("<I", 101) + good_pcap()[24:],
     "link type 101 is not Ethernet (1)"),
    ("record header", good_pcap()[:24 + 2 * RECORD + 9],
     f"packet 2 (byte offset {24 + 2 * RECORD}): truncated record header (9 of 16 bytes)"),
    ("record data", good_pcap()[:24 + RECORD + 16 + 59],
     f"packet 1 (byte offset {24 + RECORD}): truncated packet data (59 of 60 bytes)"),
    ("snaplen", good_pcap()[:16] + struct.pack("<I", 32) + good_pcap()[20:],
     "packet 0 (byte offset 24): captured length 60 exceeds the snapshot length 32"),
    ("caplen", good_pcap()[:24 + RECORD + 8] + struct.pack("<II", 70000, 70000)
     + good_pcap()[24 + RECORD + 16:],
     "packet 1 (byte offset 100): captured length 70000 exceeds the snapshot length 65535"),
    ("origlen", good_pcap()[:24 + 12] + struct.pack("<I", 10) + good_pcap()[24 + 16:],
     "packet 0 (byte offset 24): captured length 60 is larger than the original length 10"),
    ("usec", good_pcap()[:24 + 4] + struct.pack("<I", 1_000_000) + good_pcap()[24 + 8:],
     "packet 0 (byte offset 24): bad timestamp fraction 1000000"),
])
def test_reader_rejects_malformed_files_with_one_clear_line(tmp_path, name, data, message):
    path = tmp_path / f"{name}.pcap"
    path.write_bytes(data)
    with pytest.raises(BpfcoreError) as info:
        read_pcap(path)
    text = str(info.value)
    assert text.startswith(f"{path}: ") and message in text
    assert "\n" not in text


def test_reader_names_missing_files_and_directories(tmp_path):
    with pytest.raises(BpfcoreError, match="nope.pcap: no such file"):
        read_pcap(tmp_path / "nope.pcap")
    with pytest.raises(BpfcoreError, match="is a directory"):
        read_pcap(tmp_path)


def test_good_file_reads_every_record(tmp_path):
    path = tmp_path / "good.pcap"
    path.write_bytes(good_pcap(3))
    assert read_pcap(path) == [bytes([i]) * 60 for i in range(3)]


def test_write_accepts_plain_frames(tmp_path):
    path = tmp_path / "plain.pcap"
    write_pcap(path, [b"\x01" * 60, b"\x02" * 61])
    assert read_pcap(path) == [b"\x01" * 60, b"\x02" * 61]
    assert isinstance(generate(1)[0], Packet)


# --- command line ---------------------------------------------------------------------------------

def test_cli_summary_and_errors(tmp_path, capsys):
    out = tmp_path / "s.pcap"
    assert main(["gen-traffic", "--count", "50", "--seed", "7", "--out", str(out),
                 "--summary"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("wrote 50 frames (") and f"seed 7) to {out}" in printed
    assert sum(int(line.split()[-1]) for line in printed.splitlines()[1:]) == 50

    assert main(["gen-traffic", "--count", "5", "--out", str(tmp_path / "no" / "x.pcap")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("bpfcore gen-traffic: ") and "No such file" in err
    assert len(err.strip().splitlines()) == 1

    with pytest.raises(SystemExit) as info:
        main(["gen-traffic", "--count", "0", "--out", str(out)])
    assert info.value.code == 2
    assert "must be at least 1, not 0" in capsys.readouterr().err


@pytest.mark.parametrize("size", [64, 65, 128, 1518])
def test_sized_frames_are_well_formed_udp_of_exactly_that_size(size):
    packets = generate_sized(20, size, seed=3)
    assert len(packets) == 20
    for packet in packets:
        assert len(packet.frame) == size - 4          # the capture holds no FCS
        eth = dpkt.ethernet.Ethernet(packet.frame)
        ip = eth.data
        assert isinstance(ip, dpkt.ip.IP) and isinstance(ip.data, dpkt.udp.UDP)
        assert ip.len == size - 4 - 14
        assert inet_checksum(bytes(packet.frame[14:34])) == 0
        assert ip.dst in {a.packed for a in SCENARIO["servers4"]}
    assert generate_sized(20, size, seed=3) == packets


def test_gen_traffic_size_option(tmp_path, capsys):
    out = tmp_path / "s.pcap"
    assert main(["gen-traffic", "--size", "64", "--count", "7", "--out", str(out)]) == 0
    assert [len(f) for f in read_pcap(out)] == [60] * 7
    for bad in ("63", "1519"):
        assert main(["gen-traffic", "--size", bad, "--count", "7", "--out", str(out)]) == 1
        assert "frame size must be from 64 to 1518" in capsys.readouterr().err
