/* lb: L4 load balancer for one virtual service (IPv4 and IPv6).
 *
 * TCP and UDP packets to the virtual IP and port in `lb_config` are spread over the backends in
 * `backends` (array) by a hash of the flow's 5-tuple, so every packet of a flow reaches the same
 * backend. The frame's destination MAC becomes the backend's, the source MAC the balancer's, and
 * the packet leaves through `bpf_redirect_map` on the devmap `tx_ports` slot the backend names
 * (XDP_DROP if that slot is empty). Other traffic passes. Per-backend packet and byte counters.
 *
 * Map contents come from firmware/lb.maps.json.
 */
#include <bpf/bpf_helpers.h>
#include <bpfcore/parse.h>
#include <bpfcore/util.h>

#define MAX_BACKENDS 16

struct lb_config {
	__be32 vip4;		/* IPv4 virtual address (network order) */
	__u8 vip6[16];		/* IPv6 virtual address */
	__be16 vport;		/* service port (network order) */
	__u16 n_backends;	/* backends[0 .. n_backends) are in use */
	__u8 lb_mac[ETH_ALEN];	/* source MAC of forwarded frames */
	__u8 pad[2];
};

struct backend {
	__u8 mac[ETH_ALEN];
	__u16 tx_port;		/* key into tx_ports */
	__u64 packets;
	__u64 bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct lb_config);
} lb_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct backend);
} backends SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u32);	/* egress ifindex (bpfcore: port number) */
} tx_ports SEC(".maps");

static __always_inline __u32 finish(__u32 h)
{
	h ^= h >> 16;
	h *= 0x85ebca6b;
	h ^= h >> 13;
	h *= 0xc2b2ae35;
	h ^= h >> 16;
	return h;
}

/* memcmp() is a libc call that BPF does not have; compare the four words instead. */
static __always_inline bool same_addr6(const struct in6_addr *a, const __u8 *b)
{
	const __u32 *w = (const __u32 *)b;
	__u32 diff = 0;

#pragma unroll
	for (int i = 0; i < 4; i++)
		diff |= a->in6_u.u6_addr32[i] ^ w[i];
	return diff == 0;
}

/* The ports of the TCP/UDP header at the cursor as one word; false if truncated or not TCP/UDP. */
static __always_inline bool l4_ports(struct cursor *c, int proto, __u32 *ports, __be16 *dport)
{
	struct udphdr *uh;	/* source and dest sit at the same offsets in TCP and UDP */

	if (proto != IPPROTO_TCP && proto != IPPROTO_UDP)
		return false;
	if (c->pos + (proto == IPPROTO_TCP ? sizeof(struct tcphdr) : sizeof(struct udphdr)) > c->end)
		return false;
	uh = c->pos;
	*dport = uh->dest;
	*ports = (__u32)uh->source << 16 | uh->dest;
	return true;
}

SEC("xdp")
int xdp_lb(struct xdp_md *ctx)
{
	struct cursor c;
	struct ethhdr *eth;
	__u32 zero = 0, hash, ports;
	__be16 dport;

	struct lb_config *cfg = bpf_map_lookup_elem(&lb_config, &zero);
	if (!cfg || cfg->n_backends == 0 || cfg->n_backends > MAX_BACKENDS)
		return XDP_PASS;

	cursor_init(&c, ctx);
	int proto = parse_ethhdr(&c, &eth);
	if (proto == ETH_P_IP) {
		struct iphdr *iph;
		int l4 = parse_iphdr(&c, &iph);
		if (l4 < 0 || iph->daddr != cfg->vip4 || (iph->frag_off & bpf_htons(IP_MF | IP_OFFSET)))
			return XDP_PASS;
		if (!l4_ports(&c, l4, &ports, &dport) || dport != cfg->vport)
			return XDP_PASS;
		hash = hash_mix(hash_mix(hash_mix(0x4c42, iph->saddr), iph->daddr), ports);
		hash = finish(hash_mix(hash, l4));
	} else if (proto == ETH_P_IPV6) {
		struct ipv6hdr *ip6h;
		int l4 = parse_ip6hdr(&c, &ip6h);
		if (l4 < 0 || !same_addr6(&ip6h->daddr, cfg->vip6))
			return XDP_PASS;
		if (!l4_ports(&c, l4, &ports, &dport) || dport != cfg->vport)
			return XDP_PASS;
		hash = 0x4c42;
#pragma unroll
		for (int i = 0; i < 4; i++)
			hash = hash_mix(hash, ip6h->saddr.in6_u.u6_addr32[i]);
#pragma unroll
		for (int i = 0; i < 4; i++)
			hash = hash_mix(hash, ip6h->daddr.in6_u.u6_addr32[i]);
		hash = finish(hash_mix(hash_mix(hash, ports), l4));
	} else {
		return XDP_PASS;
	}

	__u32 index = hash % cfg->n_backends;
	struct backend *be = bpf_map_lookup_elem(&backends, &index);
	if (!be)
		return XDP_ABORTED;
	__sync_fetch_and_add(&be->packets, 1);
	__sync_fetch_and_add(&be->bytes, ctx->data_end - ctx->data);
	__builtin_memcpy(eth->h_dest, be->mac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, cfg->lb_mac, ETH_ALEN);
	return bpf_redirect_map(&tx_ports, be->tx_port, XDP_DROP);
}

BPF_LICENSE("Dual BSD/GPL");
