"""A finding's witness read as instructions for the replay: one segment per function entered.

The static engine's trace is text (dmalint.findings.Step); this module is the one place that
reads it.  Each `enter f()` step starts a segment: the function, its file, the branch decisions
in order, the result chosen for each DMA API call (by the acquire's line), the driver helpers
the witness says release something, and the struct members it says keep the region.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from dmalint.findings import Finding

_BRANCH = re.compile(r"^'(.*)' is (true|false)$", re.S)
_ASSUME = re.compile(r"^(\w+)\(\) at line (\d+) (succeeded|failed)")
_ENTER = re.compile(r"^enter (\w+)\(\)")
_CALL = re.compile(r"^(\w+)\(\) calls (\w+)\(\)")
_STORE = re.compile(r"kept in struct \S+?\.(\S+?)(?:\[\])?(?:;|$)")


def norm(s: str) -> str:
    return "".join(s.split())


@dataclass
class Segment:
    function: str
    path: str
    branches: list[tuple[int, str, bool]] = field(default_factory=list)
    outcomes: dict[int, list[bool]] = field(default_factory=dict)
    calls: dict[int, list[tuple[str, str]]] = field(default_factory=dict)  # line -> helper, api
    stores: list[tuple[int, str]] = field(default_factory=list)  # acquire line, member

    def hint(self, line: int, helper: str) -> str | None:
        """The API call the witness says `helper`, called at `line`, makes."""
        return next((api for h, api in self.calls.get(line, []) if h == helper), None)


def segments(f: Finding) -> list[Segment]:
    out: list[Segment] = []
    for s in f.trace:
        path = s.path or f.path
        if s.kind == "enter" and (m := _ENTER.match(s.message)):
            out.append(Segment(m.group(1), path))
            continue
        if s.kind == "note":
            continue  # about another function, not a step of this path
        if not out:
            out.append(Segment(f.function, f.path))
        seg = out[-1]
        if s.kind == "branch" and (m := _BRANCH.match(s.message)):
            seg.branches.append((s.line, norm(m.group(1)), m.group(2) == "true"))
        elif s.kind == "assume" and (m := _ASSUME.match(s.message)):
            seg.outcomes.setdefault(int(m.group(2)), []).append(m.group(3) == "succeeded")
        elif s.kind == "call" and (m := _CALL.match(s.message)):
            seg.calls.setdefault(s.line, []).append((m.group(1), m.group(2)))
        elif s.kind == "store" and (m := _STORE.search(s.message)):
            seg.stores.append((s.line, m.group(1).split(".")[-1]))
    if not out:
        out.append(Segment(f.function, f.path))
    return out


_CACHE_CLAIM = re.compile(
    r"^'(?P<handle>.+?)' \((?P<struct>[^,]+?)\.(?P<member>[\w.\[\]]+), bytes (?P<lo>\d+)-(?P<hi>\d+)\)"
    r" shares (?P<granule>\d+)-byte cache lines with (?P<neighbours>.*?)"
    r"(?:; the CPU writes '(?P<written>[\w.\[\]]+)' in (?P<writer>\w+)\(\) \(line (?P<line>\d+)\))?"
    r"(?: while the device may own the line)?; align", re.S)
_NEIGHBOUR = re.compile(r"'([\w.\[\]]+)' \(bytes (\d+)-(\d+)\)")
_GRANULE = re.compile(r"(\d+)-byte (?:cache )?lines")


@dataclass(frozen=True)
class CacheClaim:
    """What a DMA024 finding claims: the buffer (its expression and struct member, its bytes by
    the static layout), the granule, the neighbours sharing its lines, and a CPU write to one of
    them somewhere in the driver (function and line), when the driver has one."""

    handle: str
    struct: str
    member: str
    static_range: tuple[int, int]
    granule: int
    neighbours: tuple[tuple[str, int, int], ...]
    written: str | None = None
    writer: str | None = None
    writer_line: int | None = None


def cache_claim(f: Finding) -> CacheClaim | None:
    m = _CACHE_CLAIM.match(f.message)
    if m is None:
        return None
    return CacheClaim(m["handle"], m["struct"], m["member"], (int(m["lo"]), int(m["hi"])),
                      int(m["granule"]),
                      tuple((n, int(a), int(b)) for n, a, b in _NEIGHBOUR.findall(m["neighbours"])),
                      m["written"], m["writer"], int(m["line"]) if m["line"] else None)


def cache_granule(f: Finding, default: int = 64) -> int:
    """The DMA granule the analysis used (a DMA024 finding says it); the default otherwise."""
    if f.code == "DMA024":
        m = _GRANULE.search(f.message)
        if m:
            return int(m.group(1))
    return default
