"""What the checker tells the user: findings with their witness path, and per-file notices."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from dmalint.engine.state import Step


@dataclass(frozen=True)
class Event:
    """What the engine raises: an event kind at a place, with the fields its message needs."""

    kind: str
    line: int
    column: int
    function: str
    fields: dict
    trace: tuple[Step, ...]
    related: tuple[tuple[int, str], ...] = ()  # (line, message): e.g. the acquire site
    anchor: str = ""  # a line-independent key for the fingerprint (the acquire's call text)


@dataclass
class Finding:
    """One diagnostic, ready for any reporter."""

    path: str
    line: int
    column: int
    code: str
    name: str
    severity: str
    confidence: str
    message: str
    function: str
    trace: tuple[Step, ...]
    related: tuple[tuple[int, str], ...] = ()
    fingerprint: str = ""
    verdict: str | None = None
    extra: dict = field(default_factory=dict)

    def sort_key(self) -> tuple:
        return (self.path, self.line, self.column, self.code, self.message)

    def to_dict(self) -> dict:
        out = {
            "path": self.path, "line": self.line, "column": self.column, "code": self.code,
            "name": self.name, "severity": self.severity, "confidence": self.confidence,
            "message": self.message, "function": self.function, "fingerprint": self.fingerprint,
            "trace": [{"path": s.path or self.path, "line": s.line, "kind": s.kind,
                       "message": s.message} for s in self.trace],
            "related": [{"path": self.path, "line": line, "message": msg}
                        for line, msg in self.related],
        }
        if self.verdict is not None:
            out["verdict"] = self.verdict
            if "verdict_reason" in self.extra:
                out["verdict_reason"] = self.extra["verdict_reason"]
            if "dmesg" in self.extra:
                out["dmesg"] = self.extra["dmesg"].split("\n")
        return out


@dataclass(frozen=True)
class Notice:
    """Something the user must know about a file that was (partly) not analysed."""

    path: str
    line: int
    kind: str  # "error": the file was not analysed; "skipped": a function was not
    message: str

    def to_dict(self) -> dict:
        return {"path": self.path, "line": self.line, "kind": self.kind, "reason": self.message}


def fingerprint(code: str, path: str, function: str, line_text: str, anchor: str) -> str:
    """A key that survives unrelated line shifts: no line numbers, whitespace-insensitive."""
    norm = " ".join(line_text.split())
    h = hashlib.sha256("\0".join((code, path, function, norm, " ".join(anchor.split()))).encode())
    return h.hexdigest()[:20]
