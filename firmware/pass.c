/* pass: every packet goes to the host (XDP_PASS). The smallest possible XDP program. */
#include <bpf/bpf_helpers.h>

SEC("xdp")
int xdp_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

BPF_LICENSE("Dual BSD/GPL");
