/* drop: every packet is dropped (XDP_DROP). */
#include <bpf/bpf_helpers.h>

SEC("xdp")
int xdp_drop(struct xdp_md *ctx)
{
	return XDP_DROP;
}

BPF_LICENSE("Dual BSD/GPL");
