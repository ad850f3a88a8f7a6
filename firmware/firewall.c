/* firewall: IPv4/IPv6 5-tuple firewall.
 *
 * For every IP packet:
 *   1. a source address inside a blocked prefix (LPM tries `blocked_v4`, `blocked_v6`) -> DROP;
 *   2. the exact 5-tuple in `fw_rules` (hash)                                   -> its action;
 *   3. the "service" wildcard (source address and port zero) in `fw_rules`      -> its action;
 *   4. otherwise PASS.
 * Non-IP frames pass; runts and truncated IP/L4 headers are dropped (a firewall does not let
 * through what it cannot read). Non-first IPv4 fragments and ICMP have ports 0. Every decision is
 * counted in `fw_stats` (array, index enum fw_stat) and in the hit counter of the rule or prefix
 * that made it.
 *
 * Map contents come from firmware/firewall.maps.json.
 */
#include <bpf/bpf_helpers.h>
#include <bpfcore/parse.h>
#include <bpfcore/util.h>

#define FAMILY_IPV4 4
#define FAMILY_IPV6 6

/* IPv4 addresses occupy the first 4 bytes of saddr/daddr; the rest stay zero. */
struct fw_key {
	__u8 saddr[16];
	__u8 daddr[16];
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 family;
	__u8 pad[2];
};

struct fw_rule {
	__u32 action;	/* an XDP verdict: XDP_DROP or XDP_PASS */
	__u32 pad;
	__u64 hits;
};

struct lpm_v4_key {
	__u32 prefixlen;
	__u8 addr[4];
};

struct lpm_v6_key {
	__u32 prefixlen;
	__u8 addr[16];
};

struct prefix_info {
	__u64 hits;
};

enum fw_stat {
	FW_PASS_DEFAULT = 0,	/* no rule matched */
	FW_PASS_NON_IP = 1,
	FW_DROP_PREFIX = 2,
	FW_DROP_RULE = 3,
	FW_PASS_RULE = 4,
	FW_DROP_MALFORMED = 5,
	FW_STAT_COUNT = 6,
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, struct fw_key);
	__type(value, struct fw_rule);
} fw_rules SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 64);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lpm_v4_key);
	__type(value, struct prefix_info);
} blocked_v4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 64);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lpm_v6_key);
	__type(value, struct prefix_info);
} blocked_v6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, FW_STAT_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} fw_stats SEC(".maps");

static __always_inline int count(__u32 stat, int verdict)
{
	stat_inc(&fw_stats, stat);
	return verdict;
}

/* Source and destination ports of a TCP or UDP header at the cursor; false if truncated. */
static __always_inline bool read_ports(struct cursor *c, int proto, struct fw_key *key)
{
	if (proto == IPPROTO_TCP) {
		struct tcphdr *th;
		if (!CURSOR_TAKE(c, struct tcphdr, th))
			return false;
		key->sport = th->source;
		key->dport = th->dest;
	} else if (proto == IPPROTO_UDP) {
		struct udphdr *uh;
		if (!CURSOR_TAKE(c, struct udphdr, uh))
			return false;
		key->sport = uh->source;
		key->dport = uh->dest;
	}
	return true;
}

static __always_inline int apply_rules(struct fw_key *key)
{
	struct fw_rule *rule = bpf_map_lookup_elem(&fw_rules, key);
	if (!rule) {
		__builtin_memset(key->saddr, 0, sizeof(key->saddr));
		key->sport = 0;
		rule = bpf_map_lookup_elem(&fw_rules, key);
	}
	if (!rule)
		return count(FW_PASS_DEFAULT, XDP_PASS);
	__sync_fetch_and_add(&rule->hits, 1);
	if (rule->action == XDP_PASS)
		return count(FW_PASS_RULE, XDP_PASS);
	return count(FW_DROP_RULE, XDP_DROP);
}

SEC("xdp")
int xdp_firewall(struct xdp_md *ctx)
{
	struct cursor c;
	struct ethhdr *eth;
	struct fw_key key;
	struct prefix_info *blocked;

	__builtin_memset(&key, 0, sizeof(key));
	cursor_init(&c, ctx);
	int proto = parse_ethhdr(&c, &eth);
	if (proto < 0)
		return count(FW_DROP_MALFORMED, XDP_DROP);

	if (proto == ETH_P_IP) {
		struct iphdr *iph;
		struct lpm_v4_key lpm;
		int l4 = parse_iphdr(&c, &iph);
		if (l4 < 0)
			return count(FW_DROP_MALFORMED, XDP_DROP);
		lpm.prefixlen = 32;
		__builtin_memcpy(lpm.addr, &iph->saddr, 4);
		blocked = bpf_map_lookup_elem(&blocked_v4, &lpm);
		if (blocked) {
			__sync_fetch_and_add(&blocked->hits, 1);
			return count(FW_DROP_PREFIX, XDP_DROP);
		}
		key.family = FAMILY_IPV4;
		key.proto = l4;
		__builtin_memcpy(key.saddr, &iph->saddr, 4);
		__builtin_memcpy(key.daddr, &iph->daddr, 4);
		if (!(iph->frag_off & bpf_htons(IP_OFFSET)) && !read_ports(&c, l4, &key))
			return count(FW_DROP_MALFORMED, XDP_DROP);
		return apply_rules(&key);
	}

	if (proto == ETH_P_IPV6) {
		struct ipv6hdr *ip6h;
		struct lpm_v6_key lpm;
		int l4 = parse_ip6hdr(&c, &ip6h);
		if (l4 < 0)
			return count(FW_DROP_MALFORMED, XDP_DROP);
		lpm.prefixlen = 128;
		__builtin_memcpy(lpm.addr, &ip6h->saddr, 16);
		blocked = bpf_map_lookup_elem(&blocked_v6, &lpm);
		if (blocked) {
			__sync_fetch_and_add(&blocked->hits, 1);
			return count(FW_DROP_PREFIX, XDP_DROP);
		}
		key.family = FAMILY_IPV6;
		key.proto = l4;
		__builtin_memcpy(key.saddr, &ip6h->saddr, 16);
		__builtin_memcpy(key.daddr, &ip6h->daddr, 16);
		if (!read_ports(&c, l4, &key))
			return count(FW_DROP_MALFORMED, XDP_DROP);
		return apply_rules(&key);
	}

	return count(FW_PASS_NON_IP, XDP_PASS);
}

BPF_LICENSE("Dual BSD/GPL");
