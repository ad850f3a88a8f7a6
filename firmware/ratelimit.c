/* ratelimit: per-source token-bucket rate limiter (IPv4 and IPv6).
 *
 * Each source address owns a bucket in `rl_buckets` (LRU hash: the least recently seen sources are
 * evicted when it is full). The bucket holds whole tokens, at most `burst`; a packet costs one
 * token, and one token is earned per `interval_ns` (= 1e9 / rate). A packet that finds a token
 * passes, one that does not is dropped. Non-IP frames pass. Rate and burst come from `rl_config`
 * (firmware/ratelimit.maps.json); without a config the defaults below apply.
 *
 * Time (bpf_ktime_get_ns) is quantised to whole intervals: `last_ns` is always a multiple of
 * `interval_ns`, never a raw clock reading. A new source starts with a full bucket and
 * `last_ns = now - now % interval`; later, `(now - last_ns) / interval` whole tokens are earned
 * and `last_ns` moves forward by exactly that many intervals (the bucket is then capped at
 * `burst`). So the state only changes when an interval boundary is crossed, and with an interval
 * longer than any clock reading (firmware/ratelimit.frozen.maps.json: 1 << 62 ns, about 146
 * years) no token is ever earned and `last_ns` stays 0: verdicts and map contents are then the
 * same whatever the clock says (the VM's fixed clock, the kernel's real one).
 */
#include <bpf/bpf_helpers.h>
#include <bpfcore/parse.h>

#define DEFAULT_INTERVAL_NS 1000000ULL	/* 1000 packets per second */
#define DEFAULT_BURST 8ULL

struct rl_config {
	__u64 interval_ns;	/* time to earn one token */
	__u64 burst;		/* bucket depth, in tokens (packets) */
};

/* IPv4 sources as IPv4-mapped IPv6 (::ffff:a.b.c.d). */
struct rl_key {
	__u8 addr[16];
};

struct rl_bucket {
	__u64 tokens;		/* whole tokens left, 0..burst */
	__u64 last_ns;		/* tokens are earned up to here: a multiple of interval_ns */
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
	__u64 now = bpf_ktime_get_ns();

	struct rl_bucket *b = bpf_map_lookup_elem(&rl_buckets, &key);
	if (!b) {
		struct rl_bucket fresh = {
			.tokens = burst - 1,	/* full, less this packet's token */
			.last_ns = now - now % interval,
			.passed = 1,
			.dropped = 0,
		};
		bpf_map_update_elem(&rl_buckets, &key, &fresh, BPF_ANY);
		return XDP_PASS;
	}

	__u64 tokens = b->tokens, last = b->last_ns;
	if (now > last) {		/* a clock behind `last` earns nothing */
		__u64 earned = (now - last) / interval;
		last += earned * interval;
		tokens += earned;
		if (tokens < earned)	/* wrapped around */
			tokens = burst;
	}
	if (tokens > burst)		/* also after the config lowered burst */
		tokens = burst;
	b->last_ns = last;
	if (tokens) {
		b->tokens = tokens - 1;
		__sync_fetch_and_add(&b->passed, 1);
		return XDP_PASS;
	}
	b->tokens = 0;
	__sync_fetch_and_add(&b->dropped, 1);
	return XDP_DROP;
}

BPF_LICENSE("Dual BSD/GPL");
