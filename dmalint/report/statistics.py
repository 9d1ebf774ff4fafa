"""`--statistics`: how many findings each rule produced, most frequent first (as ruff prints)."""

from __future__ import annotations

from collections import Counter
from typing import Iterable, TextIO

from dmalint.findings import Finding


def rows(findings: Iterable[Finding]) -> list[tuple[int, str, str]]:
    """(count, code, name) per rule that has findings, by count, then code."""
    names: dict[str, str] = {}
    counts: Counter[str] = Counter()
    for f in findings:
        counts[f.code] += 1
        names[f.code] = f.name
    return sorted(((n, code, names[code]) for code, n in counts.items()),
                  key=lambda r: (-r[0], r[1]))


def report(findings: Iterable[Finding], stream: TextIO) -> None:
    table = rows(findings)
    width = max((len(str(n)) for n, _, _ in table), default=1)
    for n, code, name in table:
        stream.write(f"{n:>{width}}  {code}  {name}\n")
