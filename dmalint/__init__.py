"""dmalint: a static checker for the Linux kernel DMA API contract."""

__version__ = "0.1.0"
