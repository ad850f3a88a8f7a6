"""Generators: random programs under the ISA table's legality rows, and deterministic test traffic."""
