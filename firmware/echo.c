/* echo: ICMP and ICMPv6 echo responder.
 *
 * An echo request to a unicast address is turned into the reply in place and sent back out of
 * the port it came in on (XDP_TX): MAC and IP addresses swapped, TTL / hop limit reset to 64, type
 * changed to echo reply. Checksums are fixed without re-summing the payload:
 *   - ICMP and ICMPv6: RFC 1624 incremental update for the type word (swapping addresses does not
 *     change a ones'-complement sum, so the ICMPv6 pseudo-header needs no update);
 *   - IPv4 header: recomputed with bpf_csum_diff over the 20-byte header when it has no options,
 *     else updated incrementally for the TTL word.
 * Everything else passes. Counters in `echo_stats` (array, index enum echo_stat).
 */
#include <bpf/bpf_helpers.h>
#include <bpfcore/parse.h>
#include <bpfcore/util.h>

#define REPLY_TTL 64

enum echo_stat {
	ECHO_REPLIED_V4 = 0,
	ECHO_REPLIED_V6 = 1,
	ECHO_PASSED = 2,
	ECHO_STAT_COUNT = 3,
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, ECHO_STAT_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} echo_stats SEC(".maps");

static __always_inline int count(__u32 stat, int verdict)
{
	stat_inc(&echo_stats, stat);
	return verdict;
}

static __always_inline void swap_mac(struct ethhdr *eth)
{
	__u8 tmp[ETH_ALEN];

	__builtin_memcpy(tmp, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, tmp, ETH_ALEN);
}

static __always_inline int echo_v4(struct cursor *c, struct ethhdr *eth)
{
	struct iphdr *iph;
	struct icmphdr *icmp;

	if (parse_iphdr(c, &iph) != IPPROTO_ICMP)
		return count(ECHO_PASSED, XDP_PASS);
	if (iph->frag_off & bpf_htons(IP_MF | IP_OFFSET))
		return count(ECHO_PASSED, XDP_PASS);
	if (!CURSOR_TAKE(c, struct icmphdr, icmp) || icmp->type != ICMP_ECHO || icmp->code != 0)
		return count(ECHO_PASSED, XDP_PASS);
	__u32 daddr = bpf_ntohl(iph->daddr);
	if ((daddr >> 28) == 0xe || daddr == 0xffffffff)	/* multicast or broadcast */
		return count(ECHO_PASSED, XDP_PASS);

	swap_mac(eth);
	__be32 addr = iph->saddr;
	iph->saddr = iph->daddr;
	iph->daddr = addr;
	icmp->checksum = csum_replace2(icmp->checksum, bpf_htons(ICMP_ECHO << 8),
				       bpf_htons(ICMP_ECHOREPLY << 8));
	icmp->type = ICMP_ECHOREPLY;

	if (iph->ihl == 5) {
		iph->ttl = REPLY_TTL;
		iph->check = 0;
		__s64 sum = bpf_csum_diff(NULL, 0, (__be32 *)iph, sizeof(*iph), 0);
		if (sum < 0)
			return XDP_ABORTED;
		iph->check = csum_fold((__u32)sum);
	} else {
		/* TTL shares its 16-bit word with the protocol byte */
		__u16 old = bpf_htons((__u16)iph->ttl << 8 | iph->protocol);
		__u16 new = bpf_htons(REPLY_TTL << 8 | iph->protocol);
		iph->ttl = REPLY_TTL;
		iph->check = csum_replace2(iph->check, old, new);
	}
	return count(ECHO_REPLIED_V4, XDP_TX);
}

static __always_inline int echo_v6(struct cursor *c, struct ethhdr *eth)
{
	struct ipv6hdr *ip6h;
	struct icmp6hdr *icmp6;
	struct in6_addr addr;

	if (parse_ip6hdr(c, &ip6h) != IPPROTO_ICMPV6)
		return count(ECHO_PASSED, XDP_PASS);
	if (!CURSOR_TAKE(c, struct icmp6hdr, icmp6) || icmp6->icmp6_type != ICMPV6_ECHO_REQUEST ||
	    icmp6->icmp6_code != 0)
		return count(ECHO_PASSED, XDP_PASS);
	if (ip6h->daddr.in6_u.u6_addr8[0] == 0xff)	/* multicast */
		return count(ECHO_PASSED, XDP_PASS);

	swap_mac(eth);
	addr = ip6h->saddr;
	ip6h->saddr = ip6h->daddr;
	ip6h->daddr = addr;
	ip6h->hop_limit = REPLY_TTL;
	icmp6->icmp6_cksum = csum_replace2(icmp6->icmp6_cksum, bpf_htons(ICMPV6_ECHO_REQUEST << 8),
					   bpf_htons(ICMPV6_ECHO_REPLY << 8));
	icmp6->icmp6_type = ICMPV6_ECHO_REPLY;
	return count(ECHO_REPLIED_V6, XDP_TX);
}

SEC("xdp")
int xdp_echo(struct xdp_md *ctx)
{
	struct cursor c;
	struct ethhdr *eth;

	cursor_init(&c, ctx);
	int proto = parse_ethhdr(&c, &eth);
	if (proto == ETH_P_IP)
		return echo_v4(&c, eth);
	if (proto == ETH_P_IPV6)
		return echo_v6(&c, eth);
	return count(ECHO_PASSED, XDP_PASS);
}

BPF_LICENSE("Dual BSD/GPL");
