/* Byte order for BPF programs: the BPF target is little-endian (bpfel), network order is big.
 *
 * bpf_htons/bpf_ntohs/bpf_htonl/bpf_ntohl/bpf_cpu_to_be64/bpf_be64_to_cpu compile to one `be`
 * (byte swap) instruction for run-time values and fold at compile time for constants, so the
 * bpf_ and bpf_const_ spellings libbpf users know both work in case labels and initializers.
 */
#ifndef BPFCORE_BPF_ENDIAN_H
#define BPFCORE_BPF_ENDIAN_H

#include <bpfcore/types.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "bpfcore firmware is built for little-endian BPF (clang -target bpf / bpfel)"
#endif

#define ___bpf_swab16(x) ((__u16)((((__u16)(x) & 0x00ffU) << 8) | (((__u16)(x) & 0xff00U) >> 8)))
#define ___bpf_swab32(x) ((__u32)((((__u32)(x) & 0x000000ffUL) << 24) | \
				  (((__u32)(x) & 0x0000ff00UL) << 8) |  \
				  (((__u32)(x) & 0x00ff0000UL) >> 8) |  \
				  (((__u32)(x) & 0xff000000UL) >> 24)))

#define bpf_const_htons(x) ___bpf_swab16(x)
#define bpf_const_ntohs(x) ___bpf_swab16(x)
#define bpf_const_htonl(x) ___bpf_swab32(x)
#define bpf_const_ntohl(x) ___bpf_swab32(x)

#define bpf_htons(x) (__builtin_constant_p(x) ? ___bpf_swab16(x) : __builtin_bswap16(x))
#define bpf_ntohs(x) (__builtin_constant_p(x) ? ___bpf_swab16(x) : __builtin_bswap16(x))
#define bpf_htonl(x) (__builtin_constant_p(x) ? ___bpf_swab32(x) : __builtin_bswap32(x))
#define bpf_ntohl(x) (__builtin_constant_p(x) ? ___bpf_swab32(x) : __builtin_bswap32(x))
#define bpf_cpu_to_be64(x) __builtin_bswap64(x)
#define bpf_be64_to_cpu(x) __builtin_bswap64(x)

#endif /* BPFCORE_BPF_ENDIAN_H */
