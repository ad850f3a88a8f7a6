/* BPF program basics, written for bpfcore (not copied from libbpf; libbpf users will find the names
 * they expect):
 *
 *   SEC(), __uint(), __type(), __array()   sections and BTF-defined maps (the `.maps` section;
 *                                          build with -g so clang emits the BTF that describes them)
 *   __always_inline, __noinline            inline control; __noinline static functions become
 *                                          bpf-to-bpf calls into `.text`
 *   helper prototypes                      exactly the helpers bpfcore implements, numbered as the
 *                                          Linux UAPI `enum bpf_func_id`
 *   map types, update flags, XDP actions   kernel UAPI numbering
 *   struct xdp_md                          the XDP context (every field 32 bits wide)
 */
#ifndef BPFCORE_BPF_HELPERS_H
#define BPFCORE_BPF_HELPERS_H

#include <bpfcore/types.h>

/* --- Sections and attributes ------------------------------------------------------------- */

#define SEC(name) __attribute__((section(name), used))

#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif
#ifndef __noinline
#define __noinline __attribute__((noinline))
#endif
#ifndef __weak
#define __weak __attribute__((weak))
#endif

#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
#define barrier() __asm__ __volatile__("" ::: "memory")
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* --- BTF-defined maps ----------------------------------------------------------------------
 *
 *   struct {
 *       __uint(type, BPF_MAP_TYPE_HASH);
 *       __uint(max_entries, 1024);
 *       __type(key, struct flow_key);
 *       __type(value, __u64);
 *   } flows SEC(".maps");
 *
 * A number travels as the element count of an array type (`int (*type)[1]`), a type as the
 * pointee of a pointer: the loader reads both back from the BTF of the `.maps` section.
 */
#define __uint(name, val) int (*name)[val]
#define __type(name, val) __typeof__(val) *name
#define __array(name, val) __typeof__(val) *name[]

/* enum bpf_map_type (subset bpfcore implements) */
enum {
	BPF_MAP_TYPE_HASH = 1,
	BPF_MAP_TYPE_ARRAY = 2,
	BPF_MAP_TYPE_PROG_ARRAY = 3,
	BPF_MAP_TYPE_LRU_HASH = 9,
	BPF_MAP_TYPE_LPM_TRIE = 11,
	BPF_MAP_TYPE_DEVMAP = 14,
};

/* map_update_elem flags */
enum {
	BPF_ANY = 0,		/* create or update */
	BPF_NOEXIST = 1,	/* create only */
	BPF_EXIST = 2,		/* update only */
};

/* map_flags: LPM tries must be created with BPF_F_NO_PREALLOC */
enum {
	BPF_F_NO_PREALLOC = 1U << 0,
};

/* The key layout an LPM trie expects: a prefix length in bits, then the address bytes. */
struct bpf_lpm_trie_key_hdr {
	__u32 prefixlen;
};

/* --- XDP ------------------------------------------------------------------------------------ */

enum xdp_action {
	XDP_ABORTED = 0,
	XDP_DROP = 1,
	XDP_PASS = 2,
	XDP_TX = 3,
	XDP_REDIRECT = 4,
};

/* The XDP context. `data` and `data_end` are pointers into the packet once loaded. */
struct xdp_md {
	__u32 data;
	__u32 data_end;
	__u32 data_meta;
	__u32 ingress_ifindex;
	__u32 rx_queue_index;
	__u32 egress_ifindex;
};

/* --- Helpers (Linux UAPI ids) --------------------------------------------------------------- */

/* 1: pointer to the value for key, or NULL */
static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;
/* 2: 0 or a negative errno */
static long (*bpf_map_update_elem)(void *map, const void *key, const void *value,
				   __u64 flags) = (void *)2;
/* 3: 0 or a negative errno */
static long (*bpf_map_delete_elem)(void *map, const void *key) = (void *)3;
/* 5: monotonic time in nanoseconds (bpfcore: a cycle-driven counter the bench controls) */
static __u64 (*bpf_ktime_get_ns)(void) = (void *)5;
/* 6: debug print, fmt must be a stack or read-only string of fmt_size bytes */
static long (*bpf_trace_printk)(const char *fmt, __u32 fmt_size, ...) = (void *)6;
/* 7: pseudo-random number (bpfcore: seeded by the bench) */
static __u32 (*bpf_get_prandom_u32)(void) = (void *)7;
/* 8: the CPU (bpfcore: core) number */
static __u32 (*bpf_get_smp_processor_id)(void) = (void *)8;
/* 12: jump to prog_array[index]; returns only if that slot is empty */
static long (*bpf_tail_call)(void *ctx, void *prog_array_map, __u32 index) = (void *)12;
/* 23: redirect to an interface index; returns XDP_REDIRECT or XDP_ABORTED */
static long (*bpf_redirect)(__u32 ifindex, __u64 flags) = (void *)23;
/* 28: ones'-complement sum of `to` minus `from` plus seed (unfolded, 32 bits) */
static __s64 (*bpf_csum_diff)(__be32 *from, __u32 from_size, __be32 *to, __u32 to_size,
			      __wsum seed) = (void *)28;
/* 44: move data by delta bytes (negative grows the head); 0 or a negative errno */
static long (*bpf_xdp_adjust_head)(struct xdp_md *xdp_md, int delta) = (void *)44;
/* 51: redirect through a devmap slot; the low bits of flags are the verdict if the slot is empty */
static long (*bpf_redirect_map)(void *map, __u64 key, __u64 flags) = (void *)51;
/* 65: move data_end by delta bytes; 0 or a negative errno */
static long (*bpf_xdp_adjust_tail)(struct xdp_md *xdp_md, int delta) = (void *)65;

/* The license string the kernel reads from the "license" section. */
#define BPF_LICENSE(text) char _license[] SEC("license") = text

#endif /* BPFCORE_BPF_HELPERS_H */
