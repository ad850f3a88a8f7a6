"""Map memory: descriptors, block-RAM storage, lookup engine (see README.md)."""

from .engine import MapMemory, CpuValueSignature

__all__ = ["MapMemory", "CpuValueSignature"]
