/* calls: a flow classifier built from bpf-to-bpf calls.
 *
 * The work is split into __noinline static functions, which clang places in `.text` and calls
 * with `call` (src 1): each call gets its own 512-byte stack frame, r6-r9 are preserved across it,
 * and the deepest chain (xdp_calls -> flow_hash -> hash_words -> mix) is four frames. Arguments
 * include the context, packet pointers, and pointers into the caller's stack frame.
 *
 * Verdict: flows hash into 64 buckets of `flow_buckets` (array, packet counts); UDP to the
 * discard port (9) and TCP to telnet (23) are dropped, packets that cannot be parsed are dropped,
 * everything else passes. `call_stats` counts verdicts (index = XDP action).
 */
#include <bpf/bpf_helpers.h>
#include <bpfcore/parse.h>
#include <bpfcore/util.h>

#define N_BUCKETS 64

struct flow {
	__u32 saddr[4];		/* IPv4 uses word 0 */
	__u32 daddr[4];
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 family;
	__u16 l4_off;		/* offset of the L4 header from data */
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, N_BUCKETS);
	__type(key, __u32);
	__type(value, __u64);
} flow_buckets SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 5);
	__type(key, __u32);
	__type(value, __u64);
} call_stats SEC(".maps");

static __noinline __u32 mix(__u32 h, __u32 k)
{
	return hash_mix(h, k);
}

static __noinline __u32 hash_words(const __u32 *w, __u32 h)
{
	for (int i = 0; i < 4; i++)
		h = mix(h, w[i]);
	return h;
}

static __noinline __u32 flow_hash(const struct flow *f)
{
	__u32 h = hash_words(f->saddr, 0x5eed);
	h = hash_words(f->daddr, h);
	h = mix(h, (__u32)f->sport << 16 | f->dport);
	return mix(h, f->proto);
}

/* Fill f->saddr..proto from the IP header; returns 0, or -1 for a packet to drop, 1 to pass. */
static __noinline int parse_l3(struct xdp_md *ctx, struct flow *f)
{
	struct cursor c;
	struct ethhdr *eth;
	void *data = (void *)(long)ctx->data;

	cursor_init(&c, ctx);
	int proto = parse_ethhdr(&c, &eth);
	if (proto < 0)
		return -1;
	if (proto == ETH_P_IP) {
		struct iphdr *iph;
		int l4 = parse_iphdr(&c, &iph);
		if (l4 < 0)
			return -1;
		f->family = 4;
		f->proto = l4;
		f->saddr[0] = iph->saddr;
		f->daddr[0] = iph->daddr;
		if (iph->frag_off & bpf_htons(IP_OFFSET))
			f->proto = 0;	/* later fragments carry no ports */
	} else if (proto == ETH_P_IPV6) {
		struct ipv6hdr *ip6h;
		int l4 = parse_ip6hdr(&c, &ip6h);
		if (l4 < 0)
			return -1;
		f->family = 6;
		f->proto = l4;
#pragma unroll
		for (int i = 0; i < 4; i++) {
			f->saddr[i] = ip6h->saddr.in6_u.u6_addr32[i];
			f->daddr[i] = ip6h->daddr.in6_u.u6_addr32[i];
		}
	} else {
		return 1;
	}
	f->l4_off = c.pos - data;
	return 0;
}

/* Ports from the TCP/UDP header at [l4, end); -1 if it is truncated. */
static __noinline int parse_l4(void *l4, void *end, struct flow *f)
{
	if (f->proto == IPPROTO_TCP) {
		struct tcphdr *th = l4;
		if ((void *)(th + 1) > end)
			return -1;
		f->sport = th->source;
		f->dport = th->dest;
	} else if (f->proto == IPPROTO_UDP) {
		struct udphdr *uh = l4;
		if ((void *)(uh + 1) > end)
			return -1;
		f->sport = uh->source;
		f->dport = uh->dest;
	}
	return 0;
}

static __noinline int verdict(const struct flow *f)
{
	if (f->proto == IPPROTO_UDP && f->dport == bpf_htons(9))
		return XDP_DROP;
	if (f->proto == IPPROTO_TCP && f->dport == bpf_htons(23))
		return XDP_DROP;
	return XDP_PASS;
}

static __noinline int account(__u32 action)
{
	stat_inc(&call_stats, action);
	return action;
}

SEC("xdp")
int xdp_calls(struct xdp_md *ctx)
{
	struct flow f;

	__builtin_memset(&f, 0, sizeof(f));
	int r = parse_l3(ctx, &f);
	if (r < 0)
		return account(XDP_DROP);
	if (r > 0)
		return account(XDP_PASS);

	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u16 off = f.l4_off;
	if (off > 1500)		/* bounds the offset for the verifier: headers end well before */
		return account(XDP_DROP);
	if (parse_l4(data + off, end, &f) < 0)
		return account(XDP_DROP);

	stat_inc(&flow_buckets, flow_hash(&f) % N_BUCKETS);
	return account(verdict(&f));
}

BPF_LICENSE("Dual BSD/GPL");
