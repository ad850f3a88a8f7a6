"""Test traffic for the firmware programs: a deterministic mixed capture.

:func:`generate` builds a list of Ethernet frames from a seed: IPv4 and IPv6, TCP, UDP, ICMP and
ICMPv6 echo, ARP and other EtherTypes, 802.1Q and 802.1ad (QinQ) tags, runts, truncated and
malformed headers, IP options and fragments, and a few jumbo frames. The mix is aimed at the
programs in ``firmware/`` through one shared :data:`SCENARIO` (the addresses, rules and limits
that ``firmware/mapspec.py`` also writes into the programs' ``.maps.json`` files), so that:

* ``firewall`` sees packets that hit exact 5-tuple rules, service (wildcard-source) rules and
  blocked source prefixes, and many that match nothing;
* ``echo`` sees echo requests (with and without IPv4 options, to unicast and to broadcast or
  multicast), echo replies and other ICMP types;
* ``lb`` sees a pool of flows to the virtual service, each several packets long;
* ``ratelimit`` sees a few heavy sources sending bursts well above the configured rate;
* ``tailcall`` and ``calls`` see every EtherType branch, expiring TTLs and discard-port traffic.

Frames are built byte by byte here (checksums included, RFC 1071); captures are read and written
by :mod:`bpfcore.sim.load.pcap`, and ``bpfcore gen-traffic`` is
:mod:`bpfcore.sim.commands.traffic`.
"""

import ipaddress
import random
import struct
from dataclasses import dataclass

from bpfcore.errors import BpfcoreError

__all__ = ["SCENARIO", "Packet", "generate", "generate_sized", "inet_checksum", "DEFAULT_SEED",
           "SIZED_MIN", "SIZED_MAX"]

DEFAULT_SEED = 1

#: Largest frame the generator writes (a 9000-byte MTU jumbo frame plus Ethernet and two tags).
MAX_FRAME = 9000 + 14 + 8
#: Shortest frame on the wire without FCS; shorter non-runt frames are zero-padded to it.
MIN_FRAME = 60

ETH_P_IP = 0x0800
ETH_P_ARP = 0x0806
ETH_P_8021Q = 0x8100
ETH_P_8021AD = 0x88A8
ETH_P_IPV6 = 0x86DD
ETH_P_LLDP = 0x88CC
ETH_P_LOCAL_EXP = 0x88B5

PROTO_ICMP = 1
PROTO_TCP = 6
PROTO_UDP = 17
PROTO_ICMPV6 = 58


def _ip(text):
    return ipaddress.ip_address(text)


def _net(text):
    return ipaddress.ip_network(text)


#: The network the firmware programs and the traffic agree on. ``firmware/mapspec.py`` turns the
#: rule, prefix, service and limit entries into initial map contents.
SCENARIO = {
    "router_mac": bytes.fromhex("020000000001"),
    "servers4": [_ip(f"10.0.0.{i}") for i in range(1, 10)],
    "servers6": [_ip(f"2001:db8::{i}") for i in range(1, 10)],
    "clients4": [_net("192.0.2.0/24"), _net("198.51.100.0/24")],
    "clients6": [_net("2001:db8:1::/64"), _net("2001:db8:2::/64")],
    # firewall: blocked source prefixes (LPM tries)
    "blocked4": [_net("203.0.113.0/24"), _net("198.51.100.128/26")],
    "blocked6": [_net("2001:db8:bad::/48")],
    # firewall: (proto, saddr or None, sport or None, daddr, dport, action). None = wildcard:
    # a rule with no source matches any source address and port ("service" rule).
    "rules": [
        (PROTO_TCP, None, None, _ip("10.0.0.1"), 23, "drop"),
        (PROTO_TCP, None, None, _ip("10.0.0.1"), 22, "pass"),
        (PROTO_UDP, _ip("192.0.2.66"), 4444, _ip("10.0.0.2"), 53, "drop"),
        (PROTO_TCP, None, None, _ip("2001:db8::1"), 23, "drop"),
        (PROTO_UDP, None, None, _ip("2001:db8::2"), 53, "pass"),
        (PROTO_TCP, _ip("2001:db8:1::66"), 5555, _ip("2001:db8::1"), 80, "drop"),
    ],
    # lb: the virtual service and its backends (MAC, devmap slot)
    "vip4": _ip("10.0.0.100"),
    "vip6": _ip("2001:db8::100"),
    "vport": 80,
    "lb_mac": bytes.fromhex("0200000000fe"),
    "backends": [(bytes.fromhex(f"0200000001{i:02x}"), i % 2) for i in range(4)],
    # lb: devmap slot -> egress ifindex (bpfcore: port number). 1 and 2 exist on any Linux host
    # (lo and the first NIC), so the kernel accepts the entries.
    "tx_ports": {0: 1, 1: 2},
    # ratelimit: one packet per interval_ns per source, bursts of up to `burst`
    "rl_interval_ns": 1_000_000,
    "rl_burst": 8,
    "heavy4": [_ip("192.0.2.200"), _ip("198.51.100.77")],
    "heavy6": [_ip("2001:db8:1::bad:1")],
}

#: Kinds of packet in the mix, with their weights (per 100 choices). A "heavy" choice emits a
#: burst of several packets from one heavy source.
MIX = (
    ("tcp4", 16), ("udp4", 7), ("lb4", 12), ("lb6", 5), ("fw_rule4", 4), ("fw_rule6", 2),
    ("blocked4", 3), ("blocked6", 2), ("echo4", 6), ("icmp4", 2), ("echo6", 4), ("icmp6", 1),
    ("tcp6", 7), ("udp6", 4), ("arp", 3), ("other_l2", 2), ("ttl_expired", 2), ("frag4", 1),
    ("heavy", 1), ("runt", 2), ("truncated", 3), ("malformed", 1), ("jumbo", 1),
)

#: Share of IP packets given one 802.1Q tag, and share given an 802.1ad + 802.1Q pair.
VLAN_SHARE = 0.10
QINQ_SHARE = 0.03


@dataclass(frozen=True)
class Packet:
    """One generated frame.

    Members
    -------
    kind : str
        Which entry of :data:`MIX` made it (``+vlan`` / ``+qinq`` appended when tagged).
    ts_us : int
        Capture time in microseconds since the start of the capture.
    frame : bytes
        The Ethernet frame, without FCS.
    """
    kind: str
    ts_us: int
    frame: bytes


# --- Frame building ------------------------------------------------------------------------------

def inet_checksum(data, initial=0):
    """RFC 1071 Internet checksum of ``data`` (odd lengths padded with a zero byte)."""
    if len(data) % 2:
        data += b"\0"
    total = initial + sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xffff) + (total >> 16)
    return ~total & 0xffff


def _ethernet(dst, src, ethertype, payload, pad=True):
    frame = dst + src + struct.pack("!H", ethertype) + payload
    if pad and len(frame) < MIN_FRAME:
        frame += bytes(MIN_FRAME - len(frame))
    return frame


def _ipv4(src, dst, proto, payload, *, ttl=64, ident=0, frag=0, options=b"", total_len=None):
    ihl = 5 + len(options) // 4
    length = total_len if total_len is not None else 20 + len(options) + len(payload)
    header = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, length, ident, frag, ttl, proto, 0,
                         src.packed, dst.packed) + options
    header = header[:10] + struct.pack("!H", inet_checksum(header)) + header[12:]
    return header + payload


def _ipv6(src, dst, nexthdr, payload, *, hop_limit=64, flow=0):
    return struct.pack("!IHBB16s16s", 0x6000_0000 | flow, len(payload), nexthdr, hop_limit,
                       src.packed, dst.packed) + payload


def _pseudo_sum(src, dst, proto, length):
    """Unfolded sum of the IPv4 or IPv6 pseudo-header."""
    if src.version == 4:
        pseudo = src.packed + dst.packed + struct.pack("!BBH", 0, proto, length)
    else:
        pseudo = src.packed + dst.packed + struct.pack("!IxxxB", length, proto)
    return sum(struct.unpack(f"!{len(pseudo) // 2}H", pseudo))


def _with_checksum(segment, offset, src, dst, proto):
    check = inet_checksum(segment, _pseudo_sum(src, dst, proto, len(segment)))
    if proto == PROTO_UDP and check == 0:
        check = 0xffff
    return segment[:offset] + struct.pack("!H", check) + segment[offset + 2:]


def _tcp(src, dst, sport, dport, payload=b"", *, seq=0, ack=0, flags=0x18, window=65535):
    segment = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, window, 0, 0)
    return _with_checksum(segment + payload, 16, src, dst, PROTO_TCP)


def _udp(src, dst, sport, dport, payload=b""):
    segment = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    return _with_checksum(segment, 6, src, dst, PROTO_UDP)


def _icmp4(icmp_type, code, rest, payload=b""):
    message = struct.pack("!BBH", icmp_type, code, 0) + rest + payload
    return message[:2] + struct.pack("!H", inet_checksum(message)) + message[4:]


def _icmp6(src, dst, icmp_type, code, rest, payload=b""):
    message = struct.pack("!BBH", icmp_type, code, 0) + rest + payload
    return _with_checksum(message, 2, src, dst, PROTO_ICMPV6)


def _l3_frame(src_mac, dst_mac, l3):
    ethertype = ETH_P_IP if l3[0] >> 4 == 4 else ETH_P_IPV6
    return _ethernet(dst_mac, src_mac, ethertype, l3)


def _tag(frame, tags):
    """Insert VLAN tags ((tpid, tci), outermost first) after the MAC addresses."""
    inserted = b"".join(struct.pack("!HH", tpid, tci) for tpid, tci in tags)
    return frame[:12] + inserted + frame[12:]


class _Generator:
    """The state of one capture: a seeded RNG, the LB flow pool, the clock."""

    def __init__(self, seed):
        self.rng = random.Random(seed)
        s = SCENARIO
        self.lb_flows = [self._lb_flow(version) for version in [4] * 32 + [6] * 12]
        self.router = s["router_mac"]

    # addresses and ports
    def mac(self):
        return bytes([0x02]) + self.rng.randbytes(5)

    def client4(self):
        net = self.rng.choice(SCENARIO["clients4"])
        while True:
            addr = net[self.rng.randrange(1, net.num_addresses - 1)]
            if not any(addr in blocked for blocked in SCENARIO["blocked4"]):
                return addr

    def client6(self):
        net = self.rng.choice(SCENARIO["clients6"])
        return net[self.rng.randrange(1, 1 << 32)]

    def port(self):
        return self.rng.randrange(1024, 65536)

    def payload(self, low=0, high=1400):
        # mostly small (ACKs, requests), some full-size segments
        size = self.rng.choice([0, 0, 6, 32, 64, 100, 200, 512]) if self.rng.random() < 0.7 \
            else self.rng.randrange(low, high + 1)
        return self.rng.randbytes(size)

    def _lb_flow(self, version):
        src = self.client4() if version == 4 else self.client6()
        proto = PROTO_TCP if self.rng.random() < 0.8 else PROTO_UDP
        return src, self.port(), proto, self.mac()

    def l4(self, src, dst, proto, sport, dport, payload):
        if proto == PROTO_TCP:
            return _tcp(src, dst, sport, dport, payload, seq=self.rng.getrandbits(32),
                        ack=self.rng.getrandbits(32), flags=self.rng.choice([0x02, 0x10, 0x18]))
        return _udp(src, dst, sport, dport, payload)

    def ip_packet(self, src, dst, proto, sport, dport, payload=None, **ip_args):
        if payload is None:
            payload = self.payload()
        segment = self.l4(src, dst, proto, sport, dport, payload)
        if src.version == 4:
            l3 = _ipv4(src, dst, proto, segment, ident=self.rng.getrandbits(16), **ip_args)
        else:
            l3 = _ipv6(src, dst, proto, segment, flow=self.rng.getrandbits(20), **ip_args)
        return _l3_frame(self.mac(), self.router, l3)

    # one builder per MIX kind; each returns a list of frames
    def tcp4(self):
        dst = self.rng.choice(SCENARIO["servers4"])
        dport = self.rng.choice([80, 443, 443, 8080, 25, 22, 3306])
        return [self.ip_packet(self.client4(), dst, PROTO_TCP, self.port(), dport)]

    def udp4(self):
        dst = self.rng.choice(SCENARIO["servers4"])
        dport = self.rng.choice([53, 53, 123, 9, 514, 4789])
        return [self.ip_packet(self.client4(), dst, PROTO_UDP, self.port(), dport)]

    def tcp6(self):
        dst = self.rng.choice(SCENARIO["servers6"])
        dport = self.rng.choice([80, 443, 443, 22, 23, 8080])
        return [self.ip_packet(self.client6(), dst, PROTO_TCP, self.port(), dport)]

    def udp6(self):
        dst = self.rng.choice(SCENARIO["servers6"])
        dport = self.rng.choice([53, 123, 9, 443])
        return [self.ip_packet(self.client6(), dst, PROTO_UDP, self.port(), dport)]

    def lb4(self):
        return self._lb(4)

    def lb6(self):
        return self._lb(6)

    def _lb(self, version):
        src, sport, proto, mac = self.rng.choice([f for f in self.lb_flows
                                                  if f[0].version == version])
        vip = SCENARIO["vip4"] if version == 4 else SCENARIO["vip6"]
        dport = SCENARIO["vport"] if self.rng.random() < 0.9 else 443   # 443 is not balanced
        frame = self.ip_packet(src, vip, proto, sport, dport)
        return [frame[:6] + mac + frame[12:]]     # one client MAC per flow

    def fw_rule4(self):
        return self._fw_rule(4)

    def fw_rule6(self):
        return self._fw_rule(6)

    def _fw_rule(self, version):
        rules = [r for r in SCENARIO["rules"] if r[3].version == version]
        proto, saddr, sport, daddr, dport, _ = self.rng.choice(rules)
        if saddr is None:
            saddr = self.client4() if version == 4 else self.client6()
        if sport is None:
            sport = self.port()
        elif self.rng.random() < 0.25:
            sport += 1      # a near miss: same hosts, another source port
        return [self.ip_packet(saddr, daddr, proto, sport, dport)]

    def blocked4(self):
        return self._blocked(SCENARIO["blocked4"], SCENARIO["servers4"])

    def blocked6(self):
        return self._blocked(SCENARIO["blocked6"], SCENARIO["servers6"])

    def _blocked(self, nets, servers):
        net = self.rng.choice(nets)
        src = net[self.rng.randrange(1, min(net.num_addresses - 1, 1 << 32))]
        dst = self.rng.choice(servers)
        kind = self.rng.random()
        if kind < 0.2:
            return self._echo(src, dst)
        proto = PROTO_TCP if kind < 0.7 else PROTO_UDP
        return [self.ip_packet(src, dst, proto, self.port(), self.rng.choice([80, 443, 53]))]

    def echo4(self):
        src = self.client4()
        r = self.rng.random()
        if r < 0.08:
            dst = _ip("255.255.255.255")
        elif r < 0.14:
            dst = _ip("224.0.0.1")
        else:
            dst = self.rng.choice(SCENARIO["servers4"])
        options = b""
        if self.rng.random() < 0.15:     # record-route style padding: 4 or 8 bytes of options
            options = b"\x01" * (4 * self.rng.randrange(1, 3) - 1) + b"\x00"
        return self._echo(src, dst, options=options)

    def echo6(self):
        src = self.client6()
        dst = _ip("ff02::1") if self.rng.random() < 0.1 else self.rng.choice(SCENARIO["servers6"])
        return self._echo(src, dst)

    def _echo(self, src, dst, options=b""):
        rest = struct.pack("!HH", self.rng.getrandbits(16), self.rng.randrange(1, 1000))
        data = self.rng.randbytes(self.rng.choice([0, 8, 32, 56, 56, 56, 1000, 1472]))
        if src.version == 4:
            l3 = _ipv4(src, dst, PROTO_ICMP, _icmp4(8, 0, rest, data),
                       ident=self.rng.getrandbits(16), options=options)
        else:
            l3 = _ipv6(src, dst, PROTO_ICMPV6, _icmp6(src, dst, 128, 0, rest, data))
        return [_l3_frame(self.mac(), self.router, l3)]

    def icmp4(self):
        src, dst = self.client4(), self.rng.choice(SCENARIO["servers4"])
        icmp_type, code = self.rng.choice([(0, 0), (3, 3), (11, 0), (13, 0), (5, 1)])
        l3 = _ipv4(src, dst, PROTO_ICMP, _icmp4(icmp_type, code, self.rng.randbytes(4),
                                               self.rng.randbytes(28)))
        return [_l3_frame(self.mac(), self.router, l3)]

    def icmp6(self):
        src, dst = self.client6(), self.rng.choice(SCENARIO["servers6"])
        icmp_type = self.rng.choice([129, 135, 136, 1])
        l3 = _ipv6(src, dst, PROTO_ICMPV6, _icmp6(src, dst, icmp_type, 0, bytes(4),
                                                 dst.packed if icmp_type in (135, 136) else
                                                 self.rng.randbytes(40)), hop_limit=255)
        return [_l3_frame(self.mac(), self.router, l3)]

    def arp(self):
        sender, target = self.client4(), self.rng.choice(SCENARIO["servers4"])
        mac = self.mac()
        body = struct.pack("!HHBBH6s4s6s4s", 1, ETH_P_IP, 6, 4, 1, mac, sender.packed, bytes(6),
                           target.packed)
        return [_ethernet(b"\xff" * 6, mac, ETH_P_ARP, body)]

    def other_l2(self):
        ethertype = self.rng.choice([ETH_P_LLDP, ETH_P_LOCAL_EXP, 0x88F7, 0x0842])
        return [_ethernet(bytes.fromhex("0180c200000e"), self.mac(), ethertype,
                          self.rng.randbytes(self.rng.randrange(20, 200)))]

    def ttl_expired(self):
        if self.rng.random() < 0.6:
            dst = self.rng.choice(SCENARIO["servers4"])
            proto = self.rng.choice([PROTO_TCP, PROTO_UDP])
            return [self.ip_packet(self.client4(), dst, proto, self.port(), 33434,
                                   ttl=self.rng.choice([0, 1]))]
        dst = self.rng.choice(SCENARIO["servers6"])
        return [self.ip_packet(self.client6(), dst, PROTO_UDP, self.port(), 33434, hop_limit=1)]

    def frag4(self):
        src, dst = self.client4(), self.rng.choice(SCENARIO["servers4"])
        data = self.rng.randbytes(self.rng.choice([64, 512, 1000]))
        offset = self.rng.randrange(1, 400)     # in 8-byte units: a later fragment, no L4 header
        more = 0x2000 if self.rng.random() < 0.5 else 0
        l3 = _ipv4(src, dst, self.rng.choice([PROTO_UDP, PROTO_TCP]), data,
                   ident=self.rng.getrandbits(16), frag=more | offset)
        return [_l3_frame(self.mac(), self.router, l3)]

    def heavy(self):
        src = self.rng.choice(SCENARIO["heavy4"] + SCENARIO["heavy6"])
        servers = SCENARIO["servers4"] if src.version == 4 else SCENARIO["servers6"]
        sport = self.port()
        dst = self.rng.choice(servers)
        proto = self.rng.choice([PROTO_TCP, PROTO_UDP])
        return [self.ip_packet(src, dst, proto, sport, 80, self.payload(0, 600))
                for _ in range(self.rng.randrange(8, 21))]

    def runt(self):
        return [self.rng.randbytes(self.rng.randrange(1, 14))]

    def truncated(self):
        """A well-formed frame cut short inside its IP or L4 header, then zero-padded to the
        shortest frame, as a sender pads it on the wire (no port takes a shorter one)."""
        frame = self.rng.choice([self.tcp4, self.udp4, self.tcp6, self.udp6, self.echo4,
                                 self.echo6])()[0]
        l3_header = 20 if frame[12:14] == b"\x08\x00" else 40
        cut = self.rng.randrange(14, 14 + l3_header + 8)
        if self.rng.random() < 0.2:
            frame = _tag(frame[:12], [(ETH_P_8021Q, 7)])[:14 + self.rng.randrange(0, 4)]
        else:
            frame = frame[:cut]
        return [frame.ljust(MIN_FRAME, b"\0")]

    def malformed(self):
        """Complete frames whose IP header lies: bad IHL, wrong version, length beyond the frame."""
        src, dst = self.client4(), self.rng.choice(SCENARIO["servers4"])
        frame = self.ip_packet(src, dst, PROTO_UDP, self.port(), 53)
        choice = self.rng.randrange(3)
        if choice == 0:       # IHL below 5
            frame = frame[:14] + bytes([0x40 | self.rng.randrange(0, 5)]) + frame[15:]
        elif choice == 1:     # IPv6 version nibble under the IPv4 EtherType
            frame = frame[:14] + bytes([0x65]) + frame[15:]
        else:                 # IHL larger than what the frame holds
            frame = (frame[:14] + bytes([0x4f]) + frame[15:14 + 32]).ljust(MIN_FRAME, b"\0")
        return [frame]

    def jumbo(self):
        size = self.rng.choice([9000, 9000, self.rng.randrange(1501, 9001)])
        if self.rng.random() < 0.5:
            src, dst = self.client4(), self.rng.choice(SCENARIO["servers4"])
            payload = self.rng.randbytes(size - 20 - 8)
        else:
            src, dst = self.client6(), self.rng.choice(SCENARIO["servers6"])
            payload = self.rng.randbytes(size - 40 - 8)
        return [self.ip_packet(src, dst, PROTO_UDP, self.port(), 4789, payload)]

    def tagged(self, frame):
        """Maybe give an IP frame VLAN tags; returns (frame, suffix for the kind)."""
        if frame[12:14] not in (b"\x08\x00", b"\x86\xdd"):
            return frame, ""
        r = self.rng.random()
        if r < QINQ_SHARE:
            tags = [(ETH_P_8021AD, self.rng.randrange(1, 4095)),
                    (ETH_P_8021Q, self.rng.randrange(1, 4095))]
            return _tag(frame, tags), "+qinq"
        if r < QINQ_SHARE + VLAN_SHARE:
            return _tag(frame, [(ETH_P_8021Q, self.rng.randrange(1, 4095))]), "+vlan"
        return frame, ""


def generate(count, seed=DEFAULT_SEED):
    """A deterministic list of ``count`` :class:`Packet` for ``seed``.

    Raises
    ------
    BpfcoreError
        If ``count`` is not a positive integer.
    """
    if not isinstance(count, int) or count < 1:
        raise BpfcoreError(f"packet count must be a positive integer, not {count!r}")
    gen = _Generator(seed)
    kinds = [kind for kind, _ in MIX]
    weights = [weight for _, weight in MIX]
    packets = []
    now_us = 0
    while len(packets) < count:
        kind = gen.rng.choices(kinds, weights)[0]
        frames = getattr(gen, kind)()
        for i, frame in enumerate(frames):
            if len(packets) == count:
                break
            frame, suffix = gen.tagged(frame) if kind not in ("runt", "truncated") else (frame, "")
            assert len(frame) <= MAX_FRAME, (kind, len(frame))
            # bursts arrive back to back (1-3 us apart); other packets ~20 us apart on average
            now_us += gen.rng.randrange(1, 4) if i else 1 + int(gen.rng.expovariate(1 / 20))
            packets.append(Packet(kind + suffix, now_us, frame))
    return packets


#: Frame sizes :func:`generate_sized` takes: on the wire, FCS included (64 to 1518 bytes).
SIZED_MIN = MIN_FRAME + 4
SIZED_MAX = 1518


def generate_sized(count, size, seed=DEFAULT_SEED):
    """``count`` well-formed IPv4 UDP frames of exactly ``size`` bytes on the wire (FCS included,
    as "64-byte frames" are counted: the capture holds ``size - 4`` bytes), from the scenario's
    clients to its servers, 1 us apart.

    Raises
    ------
    BpfcoreError
        ``count`` is not a positive integer, or ``size`` is not from 64 to 1518.
    """
    if not isinstance(count, int) or count < 1:
        raise BpfcoreError(f"packet count must be a positive integer, not {count!r}")
    if not isinstance(size, int) or not SIZED_MIN <= size <= SIZED_MAX:
        raise BpfcoreError(f"frame size must be from {SIZED_MIN} to {SIZED_MAX} bytes (FCS "
                           f"included), not {size!r}")
    gen = _Generator(seed)
    headers = 14 + 20 + 8
    packets = []
    for i in range(count):
        dst = gen.rng.choice(SCENARIO["servers4"])
        payload = gen.rng.randbytes(size - 4 - headers)
        frame = gen.ip_packet(gen.client4(), dst, PROTO_UDP, gen.port(),
                              gen.rng.choice([53, 123, 9, 4789]), payload)
        assert len(frame) == size - 4, len(frame)
        packets.append(Packet("sized", i + 1, frame))
    return packets
