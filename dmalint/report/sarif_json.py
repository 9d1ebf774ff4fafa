"""Turn sarif-om objects into SARIF JSON without losing values that happen to be defaults.

sarif-om's classes are attrs classes whose fields carry their JSON name in
metadata["schema_property_name"]. The serializer usually paired with them (jschema_to_python)
drops every value equal to the schema default, which is right for noise such as
`"rank": -1.0` but wrong for `level`: a result without a level takes its rule's
defaultConfiguration.level, so a "warning" result of a rule whose default is "error" would
silently become an error. Levels are therefore always written; other defaults are dropped.
"""

from __future__ import annotations

import json
from typing import Any, TextIO

import attr

# Fields written even when equal to their default, because a reader's fallback differs.
ALWAYS_WRITTEN = frozenset({"level"})
# JSON keys put first (attrs orders fields alphabetically) so a person reading the log sees
# what a result is before its locations.
LEADING_KEYS = ("$schema", "version", "id", "ruleId", "ruleIndex", "level", "name", "message")


def to_jsonable(obj: Any) -> Any:
    """A plain JSON value (dict/list/str/number/bool) for a sarif-om object tree."""
    if attr.has(type(obj)):
        out: dict[str, Any] = {}
        for f in attr.fields(type(obj)):
            value = getattr(obj, f.name)
            if value is None:
                continue
            if f.name not in ALWAYS_WRITTEN and f.default is not attr.NOTHING:
                default = f.default.factory() if isinstance(f.default, attr.Factory) else f.default
                if value == default:
                    continue
            out[f.metadata.get("schema_property_name", f.name)] = to_jsonable(value)
        return _leading_first(out)
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items() if v is not None}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    return obj


def _leading_first(obj: dict[str, Any]) -> dict[str, Any]:
    lead = {k: obj[k] for k in LEADING_KEYS if k in obj}
    return {**lead, **{k: v for k, v in obj.items() if k not in lead}}


def dump(obj: Any, stream: TextIO) -> None:
    """Write obj as indented JSON; ASCII-only so any stream encoding can carry it."""
    json.dump(to_jsonable(obj), stream, indent=2, ensure_ascii=True)
    stream.write("\n")
