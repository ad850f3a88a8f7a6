/* l3_filter: a stateless L2-L4 filter with no maps and no helpers, so it runs on the CPU as it
 * is today (no map memory, no helper units) and on the kernel's JIT alike: the program the
 * offload-vs-host throughput comparison (`bpfcore throughput`) is measured with.
 *
 * Parses Ethernet and up to two VLAN tags, IPv4 (with options) or IPv6, then TCP/UDP/ICMP:
 *   - runts, truncated or malformed IP headers: XDP_DROP;
 *   - IPv4 TTL or IPv6 hop limit of 0 or 1 (would expire at the next hop): XDP_DROP;
 *   - IPv4 with a martian source (0/8, 127/8, 224/4 and above): XDP_DROP;
 *   - TCP with SYN and FIN both set, or to telnet (23); UDP to discard (9): XDP_DROP;
 *   - ICMP echo requests to a broadcast-looking address (x.x.x.255): XDP_DROP (smurf);
 *   - later IPv4 fragments (no L4 header to look at) and everything else: XDP_PASS.
 */
#include <bpf/bpf_helpers.h>
#include <bpfcore/parse.h>

#define PORT_DISCARD 9
#define PORT_TELNET 23

static __always_inline int check_l4(struct cursor *c, int proto)
{
	if (proto == IPPROTO_TCP) {
		struct tcphdr *tcp;
		if (!CURSOR_TAKE(c, struct tcphdr, tcp))
			return XDP_DROP;
		if (tcp->syn && tcp->fin)
			return XDP_DROP;
		if (tcp->dest == bpf_htons(PORT_TELNET))
			return XDP_DROP;
	} else if (proto == IPPROTO_UDP) {
		struct udphdr *udp;
		if (!CURSOR_TAKE(c, struct udphdr, udp))
			return XDP_DROP;
		if (udp->dest == bpf_htons(PORT_DISCARD))
			return XDP_DROP;
	}
	return XDP_PASS;
}

static __always_inline int check_ipv4(struct cursor *c)
{
	struct iphdr *ip;
	int proto = parse_iphdr(c, &ip);
	if (proto < 0 || ip->ttl <= 1)
		return XDP_DROP;
	__u8 first = ((__u8 *)&ip->saddr)[0];
	if (first == 0 || first == 127 || first >= 224)
		return XDP_DROP;
	if (ip->frag_off & bpf_htons(IP_OFFSET))
		return XDP_PASS;
	if (proto == IPPROTO_ICMP) {
		struct icmphdr *icmp;
		if (!CURSOR_TAKE(c, struct icmphdr, icmp))
			return XDP_DROP;
		if (icmp->type == ICMP_ECHO && ((__u8 *)&ip->daddr)[3] == 255)
			return XDP_DROP;
		return XDP_PASS;
	}
	return check_l4(c, proto);
}

static __always_inline int check_ipv6(struct cursor *c)
{
	struct ipv6hdr *ip6;
	int proto = parse_ip6hdr(c, &ip6);
	if (proto < 0 || ip6->hop_limit <= 1)
		return XDP_DROP;
	return check_l4(c, proto);
}

SEC("xdp")
int xdp_l3_filter(struct xdp_md *ctx)
{
	struct cursor c;
	struct ethhdr *eth;
	cursor_init(&c, ctx);
	int ethertype = parse_ethhdr(&c, &eth);
	if (ethertype < 0)
		return XDP_DROP;
	if (ethertype == ETH_P_IP)
		return check_ipv4(&c);
	if (ethertype == ETH_P_IPV6)
		return check_ipv6(&c);
	return XDP_PASS;
}

BPF_LICENSE("Dual BSD/GPL");
