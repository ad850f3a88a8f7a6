/* counter: per-protocol packet and byte counters; every packet passes.
 *
 * Map `proto_stats` (array, indexed by enum proto_class) counts with __sync_fetch_and_add, which
 * compiles to BPF atomic adds. The fetched value of the packet counter is used (it numbers the
 * packet within its class and feeds `last_seen`), so both the plain and the fetch form of the
 * atomic add appear in the program.
 */
#include <bpf/bpf_helpers.h>
#include <bpfcore/parse.h>

enum proto_class {
	CLASS_RUNT = 0,		/* shorter than an Ethernet header, or a truncated VLAN tag */
	CLASS_OTHER_L2 = 1,	/* any other EtherType */
	CLASS_ARP = 2,
	CLASS_IPV4_OTHER = 3,
	CLASS_TCP4 = 4,
	CLASS_UDP4 = 5,
	CLASS_ICMP4 = 6,
	CLASS_IPV6_OTHER = 7,
	CLASS_TCP6 = 8,
	CLASS_UDP6 = 9,
	CLASS_ICMP6 = 10,
	CLASS_BAD_L3 = 11,	/* IPv4/IPv6 EtherType with a truncated or malformed IP header */
	CLASS_COUNT = 12,
};

struct counters {
	__u64 packets;
	__u64 bytes;
	__u64 last_seen;	/* packet count of the class when its latest packet arrived */
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, CLASS_COUNT);
	__type(key, __u32);
	__type(value, struct counters);
} proto_stats SEC(".maps");

static __always_inline __u32 classify(struct xdp_md *ctx)
{
	struct cursor c;
	struct ethhdr *eth;
	struct iphdr *iph;
	struct ipv6hdr *ip6h;

	cursor_init(&c, ctx);
	int proto = parse_ethhdr(&c, &eth);
	if (proto < 0)
		return CLASS_RUNT;
	if (proto == ETH_P_ARP)
		return CLASS_ARP;
	if (proto == ETH_P_IP) {
		switch (parse_iphdr(&c, &iph)) {
		case -1: return CLASS_BAD_L3;
		case IPPROTO_TCP: return CLASS_TCP4;
		case IPPROTO_UDP: return CLASS_UDP4;
		case IPPROTO_ICMP: return CLASS_ICMP4;
		default: return CLASS_IPV4_OTHER;
		}
	}
	if (proto == ETH_P_IPV6) {
		switch (parse_ip6hdr(&c, &ip6h)) {
		case -1: return CLASS_BAD_L3;
		case IPPROTO_TCP: return CLASS_TCP6;
		case IPPROTO_UDP: return CLASS_UDP6;
		case IPPROTO_ICMPV6: return CLASS_ICMP6;
		default: return CLASS_IPV6_OTHER;
		}
	}
	return CLASS_OTHER_L2;
}

SEC("xdp")
int xdp_counter(struct xdp_md *ctx)
{
	__u32 key = classify(ctx);
	__u64 len = ctx->data_end - ctx->data;
	struct counters *cnt = bpf_map_lookup_elem(&proto_stats, &key);
	if (!cnt)
		return XDP_ABORTED;
	__u64 seen = __sync_fetch_and_add(&cnt->packets, 1);
	__sync_fetch_and_add(&cnt->bytes, len);
	cnt->last_seen = seen + 1;
	return XDP_PASS;
}

BPF_LICENSE("Dual BSD/GPL");
