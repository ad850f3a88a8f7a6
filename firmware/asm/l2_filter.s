# l2_filter: a small XDP program in assembly.
# Drops runts (< 14 bytes) and IPv6, bounces ARP back out of the port (XDP_TX), passes IPv4 and
# counts the IPv4 bytes seen in r6 (returned in the upper half of nothing: just exercise ALU ops).
# r1 = struct xdp_md *: data at +0, data_end at +4.
        ldxw %r2, [%r1+0]          # data
        ldxw %r3, [%r1+4]          # data_end
        mov %r4, %r2
        add %r4, 14
        jgt %r4, %r3, drop         # runt: no room for an Ethernet header
        ldxh %r5, [%r2+12]         # EtherType, network order
        be16 %r5
        jeq %r5, 0x86dd, drop      # IPv6
        jeq %r5, 0x0806, bounce    # ARP
        jne %r5, 0x0800, pass      # anything else that is not IPv4 passes untouched
        mov %r4, %r2
        add %r4, 34
        jgt %r4, %r3, drop         # IPv4 header truncated
        ldxb %r6, [%r2+14]         # version/IHL
        rsh %r6, 4
        jne %r6, 4, drop           # not version 4
        ldxb %r7, [%r2+23]         # protocol
        jeq %r7, 1, pass           # ICMP passes
        ldxb %r8, [%r2+22]         # TTL
        jle %r8, 1, drop           # would expire
pass:
        mov %r0, 2                 # XDP_PASS
        exit
bounce:
        mov %r0, 3                 # XDP_TX
        exit
drop:
        mov %r0, 1                 # XDP_DROP
        exit
