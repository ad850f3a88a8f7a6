"""Initial map contents of the firmware programs: writes ``firmware/NAME.maps.json``.

The addresses, rules and limits come from ``bpfcore.sim.gen.traffic.SCENARIO``, the same table the
traffic generator aims its packets with, so the two cannot drift apart. ``firmware/build.py``
runs :func:`write_all`; the JSON files are kept in the source tree for runners that do not
import Python (the kernel harness, the board host tool).

File format (``"format": "bpfcore-maps/1"``)::

    {
      "format": "bpfcore-maps/1",
      "program": "firewall",                 # firmware/firewall.c
      "object": "build/firewall.o",          # relative to firmware/
      "entry": "xdp",                        # section of the program to run
      "maps": {                              # map name (the .maps symbol) -> entries to insert
        "fw_rules": [
          {"key": "<hex>", "value": "<hex>", "note": "tcp any -> 10.0.0.1:23 drop"}
        ]
      }
    }

Keys and values are the exact bytes the map stores (the C struct in memory: little-endian
integers, addresses and ports in network order), written with ``map_update_elem(..., BPF_ANY)``
before the first packet, in file order. A program with nothing to pre-populate has ``"maps": {}``.
A few programs also get variant files ``firmware/NAME.VARIANT.maps.json`` (:data:`VARIANTS`),
e.g. ``ratelimit.frozen.maps.json``, a rate-limiter configuration that does not depend on the
clock (for comparing the VM with the kernel). ``prog_array`` slots are not listed: the
objects fill them themselves (``__array(values, ...)``). Devmap values are egress ifindexes
(bpfcore: port numbers).
"""

import json
import struct
from pathlib import Path

from bpfcore.sim.gen.traffic import SCENARIO

__all__ = ["specs", "variant_specs", "render", "write_all", "FORMAT", "VARIANTS",
           "FROZEN_INTERVAL_NS"]

FORMAT = "bpfcore-maps/1"

XDP_DROP = 1
XDP_PASS = 2
PROTO_NAMES = {1: "icmp", 6: "tcp", 17: "udp", 58: "icmpv6"}


def _entry(key, value, note):
    return {"key": key.hex(), "value": value.hex(), "note": note}


def _addr16(addr):
    """An address in a 16-byte field: IPv4 in the first 4 bytes, the rest zero."""
    return addr.packed.ljust(16, b"\0")


def firewall_maps():
    rules = []
    for proto, saddr, sport, daddr, dport, action in SCENARIO["rules"]:
        family = daddr.version
        key = (_addr16(saddr) if saddr else bytes(16)) + _addr16(daddr) \
            + struct.pack("!HH", sport or 0, dport) + struct.pack("<BBxx", proto, family)
        value = struct.pack("<IIQ", XDP_DROP if action == "drop" else XDP_PASS, 0, 0)
        source = f"{saddr}:{sport}" if saddr else "any"
        rules.append(_entry(key, value, f"{PROTO_NAMES[proto]} {source} -> "
                                        f"{daddr}:{dport} {action}"))
    prefixes = {"blocked_v4": [], "blocked_v6": []}
    for name, nets in (("blocked_v4", SCENARIO["blocked4"]), ("blocked_v6", SCENARIO["blocked6"])):
        for net in nets:
            key = struct.pack("<I", net.prefixlen) + net.network_address.packed
            prefixes[name].append(_entry(key, struct.pack("<Q", 0), f"block {net}"))
    return {"fw_rules": rules, **prefixes}


def lb_maps():
    backends = SCENARIO["backends"]
    config = struct.pack("<4s16sHH6sxx", SCENARIO["vip4"].packed, SCENARIO["vip6"].packed,
                         0, len(backends), SCENARIO["lb_mac"])
    # the port is a network-order field inside a little-endian struct
    config = config[:20] + struct.pack("!H", SCENARIO["vport"]) + config[22:]
    return {
        "lb_config": [_entry(struct.pack("<I", 0), config,
                             f"vip {SCENARIO['vip4']} / {SCENARIO['vip6']} port "
                             f"{SCENARIO['vport']}, {len(backends)} backends")],
        "backends": [_entry(struct.pack("<I", i), struct.pack("<6sHQQ", mac, port, 0, 0),
                            f"backend {i}: mac {mac.hex(':')} via tx_ports[{port}]")
                     for i, (mac, port) in enumerate(backends)],
        "tx_ports": [_entry(struct.pack("<I", slot), struct.pack("<I", ifindex),
                            f"tx_ports[{slot}] -> ifindex {ifindex}")
                     for slot, ifindex in sorted(SCENARIO["tx_ports"].items())],
    }


def ratelimit_maps():
    interval, burst = SCENARIO["rl_interval_ns"], SCENARIO["rl_burst"]
    return {"rl_config": [_entry(struct.pack("<I", 0), struct.pack("<QQ", interval, burst),
                                 f"{1_000_000_000 // interval} packets/s per source, "
                                 f"burst {burst}")]}


#: ``rl_interval_ns`` of ``ratelimit.frozen.maps.json``: longer than any ``ktime_get_ns`` value
#: (2**62 ns is about 146 years of uptime), so no token is ever earned and the bucket state does
#: not depend on the clock.
FROZEN_INTERVAL_NS = 1 << 62


def ratelimit_frozen_maps():
    burst = SCENARIO["rl_burst"]
    return {"rl_config": [_entry(struct.pack("<I", 0),
                                 struct.pack("<QQ", FROZEN_INTERVAL_NS, burst),
                                 f"interval 2**62 ns (no refill: clock-independent), "
                                 f"burst {burst}")]}


#: Program name -> function giving its map entries (programs not listed start with empty maps).
_BUILDERS = {"firewall": firewall_maps, "lb": lb_maps, "ratelimit": ratelimit_maps}

#: Extra map files, ``firmware/STEM.maps.json``: stem -> (program, function giving its entries).
#: ``ratelimit.frozen`` makes the rate limiter's verdicts and maps independent of the clock, so
#: the VM and the kernel can be compared on it.
VARIANTS = {"ratelimit.frozen": ("ratelimit", ratelimit_frozen_maps)}


def _spec(program, maps):
    return {"format": FORMAT, "program": program, "object": f"build/{program}.o",
            "entry": "xdp", "maps": maps}


def specs(names):
    """{program name: spec dict} for the given program names."""
    return {name: _spec(name, _BUILDERS.get(name, dict)()) for name in names}


def variant_specs(names):
    """{file stem: spec dict} of the :data:`VARIANTS` of the given program names."""
    return {stem: _spec(program, build())
            for stem, (program, build) in VARIANTS.items() if program in names}


def render(spec):
    return json.dumps(spec, indent=2) + "\n"


def write_all(firmware_dir):
    """Write NAME.maps.json next to every NAME.c (and the variants' STEM.maps.json) whose
    content changed; return the paths written."""
    firmware_dir = Path(firmware_dir)
    names = sorted(p.stem for p in firmware_dir.glob("*.c"))
    written = []
    for name, spec in {**specs(names), **variant_specs(names)}.items():
        path = firmware_dir / f"{name}.maps.json"
        text = render(spec)
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            written.append(path)
    return written


if __name__ == "__main__":
    for written_path in write_all(Path(__file__).resolve().parent):
        print(f"wrote {written_path}")
