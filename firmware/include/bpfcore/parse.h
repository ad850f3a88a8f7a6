/* Bounds-checked header parsing shared by the firmware programs.
 *
 * Every parser takes a cursor (the next unparsed byte) and the packet end, checks that the whole
 * header fits before returning a pointer to it (the check the kernel verifier insists on, and the
 * one that keeps bpfcore programs from faulting on runts), and advances the cursor.
 */
#ifndef BPFCORE_PARSE_H
#define BPFCORE_PARSE_H

#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <bpfcore/net.h>

#define VLAN_MAX_DEPTH 2

struct cursor {
	void *pos;
	void *end;
};

static __always_inline void cursor_init(struct cursor *c, struct xdp_md *ctx)
{
	c->pos = (void *)(long)ctx->data;
	c->end = (void *)(long)ctx->data_end;
}

/* Point `var` (a `type *`) at the cursor and advance past it; false when the packet is too
 * short. (No NULL sentinel: the verifier refuses a NULL test of a packet pointer done in 32 bits,
 * which is what clang emits for one.) */
#define CURSOR_TAKE(c, type, var)                                                 \
	({                                                                        \
		bool __ok = (c)->pos + sizeof(type) <= (c)->end;                  \
		if (__ok) {                                                       \
			var = (type *)(c)->pos;                                   \
			(c)->pos += sizeof(type);                                 \
		}                                                                 \
		__ok;                                                             \
	})

/* Ethernet plus up to VLAN_MAX_DEPTH 802.1Q/802.1ad tags. Returns the EtherType of the payload
 * in host order, or -1 for a runt. */
static __always_inline int parse_ethhdr(struct cursor *c, struct ethhdr **eth)
{
	struct ethhdr *e;
	if (!CURSOR_TAKE(c, struct ethhdr, e))
		return -1;
	*eth = e;
	__u16 proto = e->h_proto;
#pragma unroll
	for (int i = 0; i < VLAN_MAX_DEPTH; i++) {
		if (proto != bpf_htons(ETH_P_8021Q) && proto != bpf_htons(ETH_P_8021AD))
			break;
		struct vlan_hdr *v;
		if (!CURSOR_TAKE(c, struct vlan_hdr, v))
			return -1;
		proto = v->h_vlan_encapsulated_proto;
	}
	return bpf_ntohs(proto);
}

/* IPv4 header including options. Returns the protocol, or -1 if truncated or malformed. */
static __always_inline int parse_iphdr(struct cursor *c, struct iphdr **iph)
{
	struct iphdr *h = c->pos;
	if ((void *)(h + 1) > c->end)
		return -1;
	int hlen = h->ihl * 4;
	if (hlen < (int)sizeof(*h) || h->version != 4)
		return -1;
	if (c->pos + hlen > c->end)
		return -1;
	c->pos += hlen;
	*iph = h;
	return h->protocol;
}

/* IPv6 fixed header (extension headers are not followed). Returns nexthdr, or -1. */
static __always_inline int parse_ip6hdr(struct cursor *c, struct ipv6hdr **ip6h)
{
	struct ipv6hdr *h;
	if (!CURSOR_TAKE(c, struct ipv6hdr, h) || h->version != 6)
		return -1;
	*ip6h = h;
	return h->nexthdr;
}

/* RFC 1624 incremental update of a ones'-complement checksum when a 16-bit word changes from
 * `old` to `new` (all in network order): HC' = ~(~HC + ~m + m'). */
static __always_inline __u16 csum_replace2(__u16 check, __u16 old, __u16 new)
{
	__u32 sum = (__u16)~check + (__u16)~old + (__u32) new;
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

/* Fold a 32-bit partial sum to the final 16-bit checksum. */
static __always_inline __u16 csum_fold(__u32 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

#endif /* BPFCORE_PARSE_H */
