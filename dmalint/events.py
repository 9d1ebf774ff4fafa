"""The vocabulary between the engine and the registry: event kinds and the fields each carries.

The engine raises events; the registry (rules/registry.toml) maps an event to a diagnostic code
and formats its message from these fields.  The loader checks every template against this table.
"""

from __future__ import annotations

_RES = ("handle", "acquire", "acquire_line")

EVENT_FIELDS: dict[str, tuple[str, ...]] = {
    "unchecked-use": _RES + ("check", "how"),
    "wrong-handle-checked": _RES + ("check", "checked", "reason"),
    "invalid-failure-test": _RES + ("check", "test", "why"),
    "leak": _RES + ("release",),
    "release-size-mismatch": _RES + ("release", "acquire_size", "release_size"),
    "release-direction-mismatch": _RES + ("release", "acquire_direction", "release_direction"),
    "release-family-mismatch": _RES + ("release", "acquire_family", "release_family"),
    "double-release": _RES + ("release", "first_line"),
    "release-after-failure": _RES + ("release", "check"),
    "unchecked-alloc-use": _RES + ("check", "how"),
    "managed-release": _RES + ("release", "reason"),
    "release-count-mismatch": _RES + ("call", "count", "reason"),
    "release-cpu-mismatch": _RES + ("release", "cpu", "other_line"),
    "pool-mismatch": _RES + ("release", "pool"),
    "pool-destroy-busy": _RES + ("release", "pool"),
    "sync-unmapped": _RES + ("sync", "reason"),
    "sync-direction-mismatch": _RES + ("sync", "reason", "acquire_direction", "sync_direction"),
    "sync-outside-region": _RES + ("sync", "acquire_size", "sync_size"),
    "sync-count-mismatch": _RES + ("call", "count", "reason"),
    "release-irqs-disabled": _RES + ("release",),
    "cookie-touched": _RES + ("how", "attribute"),
    "cookie-attrs-mismatch": _RES + ("call", "attribute"),
    "stack-dma": _RES + ("call", "variable"),
    "shared-cacheline": _RES + ("struct", "member", "range", "neighbours", "granule", "writes"),
    "small-coherent": _RES + ("size", "page", "how", "suggestion"),
    "never-released": _RES + ("member",),
    "cpu-write-unsynced": ("acquire", "acquire_line", "buffer", "direction", "written", "sync"),
    "cpu-read-unsynced": ("acquire", "acquire_line", "buffer", "direction", "read", "sync"),
}
