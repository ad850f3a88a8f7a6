/* Fixed-width types for freestanding BPF programs (no system headers needed).
 *
 * Names follow the Linux UAPI (<linux/types.h>) so that code written for libbpf reads the same.
 * The __be and __le types are plain integers here: byte order is the programmer's business
 * (see <bpf/bpf_endian.h>).
 */
#ifndef BPFCORE_TYPES_H
#define BPFCORE_TYPES_H

typedef __INT8_TYPE__ __s8;
typedef __UINT8_TYPE__ __u8;
typedef __INT16_TYPE__ __s16;
typedef __UINT16_TYPE__ __u16;
typedef __INT32_TYPE__ __s32;
typedef __UINT32_TYPE__ __u32;
typedef __INT64_TYPE__ __s64;
typedef __UINT64_TYPE__ __u64;

typedef __u16 __be16;
typedef __u32 __be32;
typedef __u64 __be64;
typedef __u16 __le16;
typedef __u32 __le32;
typedef __u64 __le64;
typedef __u16 __sum16;
typedef __u32 __wsum;

typedef __u8 u8;
typedef __u16 u16;
typedef __u32 u32;
typedef __u64 u64;

typedef _Bool bool;
#define true 1
#define false 0

#ifndef NULL
#define NULL ((void *)0)
#endif

#endif /* BPFCORE_TYPES_H */
