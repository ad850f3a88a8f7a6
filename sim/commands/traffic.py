"""``bpfcore gen-traffic``: write a deterministic mixed capture (:mod:`bpfcore.sim.gen.traffic`).

Also the argparse number types the other commands share (:func:`positive_int`).
"""

from bpfcore.sim.gen.traffic import DEFAULT_SEED, SIZED_MAX, SIZED_MIN, generate, generate_sized
from bpfcore.sim.load.pcap import write_pcap

__all__ = ["add_commands", "positive_int"]


def positive_int(text):
    """argparse type: an integer of at least 1 (decimal or 0x hex)."""
    import argparse
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _int(text):
    import argparse
    try:
        return int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None


def add_commands(subparsers):
    p = subparsers.add_parser(
        "gen-traffic", help="write a deterministic mixed test capture (pcap)",
        description="Write a deterministic mix of Ethernet frames aimed at the firmware programs.")
    p.add_argument("--count", type=positive_int, default=1000, help="frames (default 1000)")
    p.add_argument("--seed", type=_int, default=DEFAULT_SEED,
                   help=f"random seed (default {DEFAULT_SEED})")
    p.add_argument("--size", type=positive_int, default=None, metavar="N",
                   help=f"instead of the mix: well-formed UDP frames of exactly N bytes on the "
                        f"wire, FCS included ({SIZED_MIN}..{SIZED_MAX}; the capture holds N - 4)")
    p.add_argument("--out", required=True, help="pcap file to write")
    p.add_argument("--summary", action="store_true", help="print the count of each kind")
    p.set_defaults(func=_gen_traffic)


def _gen_traffic(args):
    packets = generate(args.count, args.seed) if args.size is None \
        else generate_sized(args.count, args.size, args.seed)
    write_pcap(args.out, packets)
    total = sum(len(p.frame) for p in packets)
    print(f"wrote {len(packets)} frames ({total} bytes, seed {args.seed}) to {args.out}")
    if args.summary:
        kinds = {}
        for packet in packets:
            kinds[packet.kind] = kinds.get(packet.kind, 0) + 1
        for kind, n in sorted(kinds.items()):
            print(f"  {kind:20s} {n}")
    return 0
