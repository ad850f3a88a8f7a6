/* tailcall: a dispatcher that hands each packet to a per-protocol program with bpf_tail_call.
 *
 * One object, several programs, joined through the prog_array `jump_table`, whose slots are
 * filled by the object itself (libbpf's declarative `__array(values, ...)` initialiser: the ELF
 * relocations in `.rel.maps` name the program of each slot):
 *
 *   xdp          dispatcher: EtherType -> slot JT_IPV4, JT_IPV6 or JT_L2
 *   xdp/ipv4     drops TTL <= 1, sends ICMP on to slot JT_ICMP4 (a second tail call), passes the rest
 *   xdp/ipv6     drops hop limit <= 1, sends ICMPv6 on to slot JT_ICMP6, passes the rest
 *   xdp/icmp4    passes echo request/reply and unreachable/time-exceeded, drops other ICMP types
 *   xdp/l2       passes ARP, drops every other non-IP EtherType
 *
 * Slot JT_ICMP6 is left empty on purpose: a tail call to an empty slot returns to the caller,
 * which then passes the packet (the kernel's documented fall-through). Every program counts its
 * packets in `stage_hits` (array, index = slot; JT_DISPATCH counts the dispatcher, JT_MISS the
 * fall-throughs), so a run shows which path each packet took.
 */
#include <bpf/bpf_helpers.h>
#include <bpfcore/parse.h>
#include <bpfcore/util.h>

enum jump_slot {
	JT_IPV4 = 0,
	JT_IPV6 = 1,
	JT_L2 = 2,
	JT_ICMP4 = 3,
	JT_ICMP6 = 4,
	JT_SLOTS = 8,
	JT_DISPATCH = 8,	/* stage_hits only */
	JT_MISS = 9,		/* stage_hits only */
	STAGE_COUNT = 10,
};

int xdp_ipv4(struct xdp_md *ctx);
int xdp_ipv6(struct xdp_md *ctx);
int xdp_icmp4(struct xdp_md *ctx);
int xdp_l2(struct xdp_md *ctx);

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, JT_SLOTS);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
	__array(values, int(struct xdp_md *));
} jump_table SEC(".maps") = {
	.values = {
		[JT_IPV4] = (void *)&xdp_ipv4,
		[JT_IPV6] = (void *)&xdp_ipv6,
		[JT_L2] = (void *)&xdp_l2,
		[JT_ICMP4] = (void *)&xdp_icmp4,
		/* JT_ICMP6 stays empty: ICMPv6 falls through to XDP_PASS */
	},
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, STAGE_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} stage_hits SEC(".maps");

static __always_inline void hit(__u32 stage)
{
	stat_inc(&stage_hits, stage);
}

/* Tail-call slot `slot`; if it is empty, count the miss and return `fallback`. */
static __always_inline int jump(struct xdp_md *ctx, __u32 slot, int fallback)
{
	bpf_tail_call(ctx, &jump_table, slot);
	hit(JT_MISS);
	return fallback;
}

SEC("xdp")
int xdp_dispatch(struct xdp_md *ctx)
{
	struct cursor c;
	struct ethhdr *eth;

	hit(JT_DISPATCH);
	cursor_init(&c, ctx);
	int proto = parse_ethhdr(&c, &eth);
	if (proto < 0)
		return XDP_DROP;
	if (proto == ETH_P_IP)
		return jump(ctx, JT_IPV4, XDP_PASS);
	if (proto == ETH_P_IPV6)
		return jump(ctx, JT_IPV6, XDP_PASS);
	return jump(ctx, JT_L2, XDP_PASS);
}

SEC("xdp/ipv4")
int xdp_ipv4(struct xdp_md *ctx)
{
	struct cursor c;
	struct ethhdr *eth;
	struct iphdr *iph;

	hit(JT_IPV4);
	cursor_init(&c, ctx);
	if (parse_ethhdr(&c, &eth) != ETH_P_IP)
		return XDP_ABORTED;	/* the dispatcher sent something else */
	int l4 = parse_iphdr(&c, &iph);
	if (l4 < 0)
		return XDP_DROP;
	if (iph->ttl <= 1)
		return XDP_DROP;
	if (l4 == IPPROTO_ICMP)
		return jump(ctx, JT_ICMP4, XDP_PASS);
	return XDP_PASS;
}

SEC("xdp/ipv6")
int xdp_ipv6(struct xdp_md *ctx)
{
	struct cursor c;
	struct ethhdr *eth;
	struct ipv6hdr *ip6h;

	hit(JT_IPV6);
	cursor_init(&c, ctx);
	if (parse_ethhdr(&c, &eth) != ETH_P_IPV6)
		return XDP_ABORTED;
	int l4 = parse_ip6hdr(&c, &ip6h);
	if (l4 < 0)
		return XDP_DROP;
	if (ip6h->hop_limit <= 1)
		return XDP_DROP;
	if (l4 == IPPROTO_ICMPV6)
		return jump(ctx, JT_ICMP6, XDP_PASS);
	return XDP_PASS;
}

SEC("xdp/icmp4")
int xdp_icmp4(struct xdp_md *ctx)
{
	struct cursor c;
	struct ethhdr *eth;
	struct iphdr *iph;
	struct icmphdr *icmp;

	hit(JT_ICMP4);
	cursor_init(&c, ctx);
	if (parse_ethhdr(&c, &eth) != ETH_P_IP || parse_iphdr(&c, &iph) != IPPROTO_ICMP)
		return XDP_ABORTED;
	if (!CURSOR_TAKE(&c, struct icmphdr, icmp))
		return XDP_DROP;
	switch (icmp->type) {
	case 0:		/* echo reply */
	case 3:		/* destination unreachable */
	case 8:		/* echo request */
	case 11:	/* time exceeded */
		return XDP_PASS;
	default:
		return XDP_DROP;
	}
}

SEC("xdp/l2")
int xdp_l2(struct xdp_md *ctx)
{
	struct cursor c;
	struct ethhdr *eth;

	hit(JT_L2);
	cursor_init(&c, ctx);
	if (parse_ethhdr(&c, &eth) == ETH_P_ARP)
		return XDP_PASS;
	return XDP_DROP;
}

BPF_LICENSE("Dual BSD/GPL");
