"""DMA API contracts and the diagnostic registry, as data (TOML)."""
