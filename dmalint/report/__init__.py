"""Reporters: one module per output format, each with report(result, stream, options)."""
