/* Small pieces several firmware programs share: statistics counters and a flow-hash mix. */
#ifndef BPFCORE_UTIL_H
#define BPFCORE_UTIL_H

#include <bpf/bpf_helpers.h>

/* Add one to the __u64 at `index` of an array map of counters (atomic, as every CPU may count). */
static __always_inline void stat_inc(void *map, __u32 index)
{
	__u64 *n = bpf_map_lookup_elem(map, &index);
	if (n)
		__sync_fetch_and_add(n, 1);
}

/* Murmur3-style mix of a 32-bit word into a running hash. */
static __always_inline __u32 hash_mix(__u32 h, __u32 k)
{
	k *= 0xcc9e2d51;
	k = (k << 15) | (k >> 17);
	k *= 0x1b873593;
	h ^= k;
	h = (h << 13) | (h >> 19);
	return h * 5 + 0xe6546b64;
}

#endif
