"""The golden model: the eBPF VM (RFC 9669), maps with kernel semantics, the XDP helpers, and what
a datapath sees of a run (verdicts, packets out, maps)."""
