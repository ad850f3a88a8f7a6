"""Loaders: assembly text, program validation, clang ELF objects, captures (pcap, pcapng), map
files, the conformance suite's ``.data`` files, and the Linux kernel's ``bpf()`` calls."""
