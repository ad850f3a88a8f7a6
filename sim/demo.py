"""``bpfcore demo``: the main job, end to end on the software side.

Assembles ``firmware/asm/l2_filter.s``, runs it on the golden VM over a handful of packets and
prints each verdict and the totals.
"""

import struct
from pathlib import Path

from bpfcore import abi
from .asm import assemble
from .program import Program
from .vm import Vm

__all__ = ["add_commands", "demo_packets", "xdp_ctx"]

FIRMWARE = Path(__file__).resolve().parent.parent / "firmware"


def xdp_ctx(data, data_end, ingress_ifindex=1, rx_queue_index=0):
    """Bytes of ``struct xdp_md`` for a packet at ``[data, data_end)``."""
    return struct.pack("<6I", data, data_end, data, ingress_ifindex, rx_queue_index, 0)


def _eth(ethertype, payload):
    return (b"\x02\x00\x00\x00\x00\x01" + b"\x02\x00\x00\x00\x00\x02"
            + struct.pack(">H", ethertype) + payload)


def _ipv4(proto, ttl, payload=b"\0" * 8):
    header = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 1, 0, ttl, proto, 0,
                         bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]))
    return header + payload


def demo_packets():
    """(description, frame) pairs that take every path of l2_filter."""
    return [
        ("IPv4 UDP, ttl 64", _eth(0x0800, _ipv4(17, 64))),
        ("IPv4 ICMP, ttl 1", _eth(0x0800, _ipv4(1, 1))),
        ("IPv4 TCP, ttl 1", _eth(0x0800, _ipv4(6, 1))),
        ("IPv6", _eth(0x86dd, b"\x60" + b"\0" * 39)),
        ("ARP request", _eth(0x0806, b"\0\x01\x08\x00\x06\x04\0\x01" + b"\0" * 20)),
        ("runt, 10 bytes", b"\xff" * 10),
        ("IPv4 header cut short", _eth(0x0800, b"\x45\0\0")),
        ("LLDP", _eth(0x88cc, b"\0" * 30)),
    ]


def add_commands(subparsers):
    p = subparsers.add_parser("demo", help="run the sample XDP program over sample packets")
    p.set_defaults(func=_demo)


def _demo(args):
    source = FIRMWARE / "asm" / "l2_filter.s"
    program = Program(assemble(source.read_text(), str(source)), source.name)
    vm = Vm(program)
    print(f"{source.name}: {len(program)} slots, running on the golden VM")
    counts = {}
    for description, frame in demo_packets():
        data = abi.PKT_BASE + abi.PKT_HEADROOM
        result = vm.run(r1=abi.CTX_BASE, ctx=xdp_ctx(data, data + len(frame)), packet=frame)
        verdict = abi.XdpAction(result.r0).name if result.ok else "ABORTED"
        counts[verdict] = counts.get(verdict, 0) + 1
        print(f"  {description:<24} {len(frame):5d} bytes  {result.retired:3d} insns  {verdict}")
    print("verdicts: " + ", ".join(f"{name} {n}" for name, n in sorted(counts.items())))
    return 0
