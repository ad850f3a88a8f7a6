/* ratelimit: per-source token-bucket rate limiter (IPv4 and IPv6).
 *
 * Each source address owns a bucket in `rl_buckets` (LRU hash: the least recently seen sources are
 * evicted when it is full). Tokens are kept in nanoseconds of credit: a packet costs
 * `interval_ns` (= 1e9 / rate) and the bucket holds at most `burst * interval_ns`. Time comes from
 * bpf_ktime_get_ns. A packet with enough credit passes, one without is dropped; a new source
 * starts with a full bucket. Non-IP frames pass. Rate and burst come from `rl_config`
 * (firmware/ratelimit.maps.json); without a config the defaults below apply.
 */
#include <bpf/bpf_helpers.h>
#include <bpfcore/parse.h>

#define DEFAULT_INTERVAL_NS 1000000ULL	/* 1000 packets per second */
#define DEFAULT_BURST 8ULL

struct rl_config {
	__u64 interval_ns;	/* cost of one packet */
	__u64 burst;		/* bucket depth, in packets */
};

/* IPv4 sources as IPv4-mapped IPv6 (::ffff:a.b.c.d). */
struct rl_key {
	__u8 addr[16];
};

struct rl_bucket {
	__u64 credit_ns;
	__u64 last_ns;
	__u64 passed;
	__u64 dropped;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct rl_config);
} rl_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1024);
	__type(key, struct rl_key);
	__type(value, struct rl_bucket);
} rl_buckets SEC(".maps");

SEC("xdp")
int xdp_ratelimit(struct xdp_md *ctx)
{
	struct cursor c;
	struct ethhdr *eth;
	struct rl_key key;
	__u32 zero = 0;

	cursor_init(&c, ctx);
	int proto = parse_ethhdr(&c, &eth);
	if (proto == ETH_P_IP) {
		struct iphdr *iph;
		if (parse_iphdr(&c, &iph) < 0)
			return XDP_PASS;
		__builtin_memset(&key, 0, 10);
		key.addr[10] = 0xff;
		key.addr[11] = 0xff;
		__builtin_memcpy(&key.addr[12], &iph->saddr, 4);
	} else if (proto == ETH_P_IPV6) {
		struct ipv6hdr *ip6h;
		if (parse_ip6hdr(&c, &ip6h) < 0)
			return XDP_PASS;
		__builtin_memcpy(&key.addr, &ip6h->saddr, 16);
	} else {
		return XDP_PASS;
	}

	__u64 interval = DEFAULT_INTERVAL_NS, burst = DEFAULT_BURST;
	struct rl_config *cfg = bpf_map_lookup_elem(&rl_config, &zero);
	if (cfg && cfg->interval_ns && cfg->burst) {
		interval = cfg->interval_ns;
		burst = cfg->burst;
	}
	__u64 depth = interval * burst;
	__u64 now = bpf_ktime_get_ns();

	struct rl_bucket *b = bpf_map_lookup_elem(&rl_buckets, &key);
	if (!b) {
		struct rl_bucket fresh = {
			.credit_ns = depth - interval,
			.last_ns = now,
			.passed = 1,
			.dropped = 0,
		};
		bpf_map_update_elem(&rl_buckets, &key, &fresh, BPF_ANY);
		return XDP_PASS;
	}

	__u64 credit = b->credit_ns + (now - b->last_ns);
	if (credit > depth)
		credit = depth;
	b->last_ns = now;
	if (credit >= interval) {
		b->credit_ns = credit - interval;
		__sync_fetch_and_add(&b->passed, 1);
		return XDP_PASS;
	}
	b->credit_ns = credit;
	__sync_fetch_and_add(&b->dropped, 1);
	return XDP_DROP;
}

BPF_LICENSE("Dual BSD/GPL");
