"""The contract engine: handle tracking and path-sensitive typestate over the CFG."""
