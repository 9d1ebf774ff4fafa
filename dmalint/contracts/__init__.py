"""Contracts: the DMA API rules and diagnostic registry, loaded from rules/ and validated."""
