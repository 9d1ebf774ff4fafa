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
}
