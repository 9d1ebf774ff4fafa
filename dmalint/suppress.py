"""Inline suppressions: `/* dmalint: ignore[DMA001] reason */` or `// dmalint: ignore[...] reason`.

Where a suppression applies, exactly:

  - A comment that shares its line with code covers findings on that line.
  - A comment alone on its line (only blanks and other comments around it) covers the next
    line that holds code (blank and comment-only lines in between are skipped, so several
    suppressions can be stacked above one statement).
  - When the covered line belongs to a function definition's head (from the first line of the
    definition to the line of its opening brace), the suppression covers every line of the
    function instead: put it on the line above the function or on its signature.

Inside the brackets: codes (DMA001), rule names (unchecked-dma-mapping), groups or prefixes,
comma-separated.  The text after the brackets is the reason; a suppression without one still
works, but is reported (as a notice of kind "suppression"), as is a rule name that does not
exist.  Suppressions are read from the original file, so lines are those the findings carry.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from dmalint.contracts.macros import MacroTables
from dmalint.contracts.model import Registry
from dmalint.findings import Finding, Notice
from dmalint.select import SelectorError, parse_selector

KIND = "suppression"  # the Notice kind of everything this module reports
_MARK = b"dmalint:"
_LEXICAL = re.compile(
    rb"//(?:[^\n\\]|\\.)*|/\*.*?(?:\*/|\Z)|\"(?:\\.|[^\"\\\n])*\"?|'(?:\\.|[^'\\\n])*'?", re.S)
_DIRECTIVE = re.compile(rb"dmalint:[ \t]*ignore\b(\[[^\]\n]*\])?([^\n]*)")
_NOT_NEWLINE = re.compile(rb"[^\n]")


@dataclass
class Suppression:
    """One `dmalint: ignore[...]` comment and what it covers."""

    path: str
    line: int  # where the comment is
    rules: tuple[str, ...]  # as written
    codes: frozenset[str]  # what they name
    reason: str
    first: int  # the lines it covers, inclusive
    last: int
    function: str | None = None  # set when it covers a whole function
    used: set[str] = field(default_factory=set)

    def covers(self, f: Finding) -> bool:
        return f.code in self.codes and self.first <= f.line <= self.last

    def spelled(self) -> str:
        return f"dmalint: ignore[{','.join(self.rules)}]"


def scan(path: str, raw: bytes, registry: Registry,
         tables: MacroTables | None = None) -> tuple[list[Suppression], list[Notice]]:
    """The suppressions of one file, and notices for those without a reason or naming no rule."""
    if _MARK not in raw:
        return [], []
    comments = [m for m in _LEXICAL.finditer(raw) if raw.startswith((b"//", b"/*"), m.start())]
    blanked = bytearray(raw)
    for m in comments:
        blanked[m.start() : m.end()] = _NOT_NEWLINE.sub(b" ", m.group(0))
    code_lines = [bool(line.strip()) for line in bytes(blanked).split(b"\n")]
    out: list[Suppression] = []
    notices: list[Notice] = []
    for m in comments:
        for d in _DIRECTIVE.finditer(m.group(0)):
            line = raw.count(b"\n", 0, m.start() + d.start()) + 1
            s = _suppression(path, line, d, registry, notices)
            if s is None:
                continue
            if code_lines[line - 1]:
                s.first = s.last = line
            else:
                end_line = raw.count(b"\n", 0, m.end()) + 1
                nxt = next((i + 1 for i in range(end_line, len(code_lines)) if code_lines[i]), None)
                if nxt is None:
                    continue
                s.first = s.last = nxt
            out.append(s)
    if out:
        _widen_to_functions(out, raw, tables)
    return out, notices


def _suppression(path: str, line: int, d: re.Match, registry: Registry,
                 notices: list[Notice]) -> Suppression | None:
    if d.group(1) is None:
        notices.append(Notice(path, line, KIND, "'dmalint: ignore' needs the rules it suppresses "
                                                "in brackets, e.g. dmalint: ignore[DMA001] reason; "
                                                "it suppresses nothing"))
        return None
    rules = tuple(r.strip() for r in d.group(1)[1:-1].decode("utf-8", "replace").split(",")
                  if r.strip())
    reason = d.group(2).decode("utf-8", "replace")
    reason = reason.split("*/")[0].strip()
    codes: set[str] = set()
    for r in rules:
        try:
            codes |= parse_selector(r, registry).codes
        except SelectorError as exc:
            notices.append(Notice(path, line, KIND, f"suppression names {exc}"))
    if not rules:
        notices.append(Notice(path, line, KIND, "suppression names no rule; it suppresses nothing"))
        return None
    if not reason:
        notices.append(Notice(path, line, KIND,
                              f"suppression '{'dmalint: ignore[' + ','.join(rules) + ']'}' gives "
                              f"no reason: say after the brackets why the finding is wrong here"))
    return Suppression(path, line, rules, frozenset(codes), reason, line, line)


def _widen_to_functions(sups: list[Suppression], raw: bytes, tables: MacroTables | None) -> None:
    """A suppression covering a line of a function's head covers the whole function."""
    from dmalint.contracts.loader import load_macro_tables
    from dmalint.parse import iter_functions, parse
    from dmalint.source import make_source

    src = make_source(raw, "", tables or load_macro_tables())
    heads = []
    for fn in iter_functions(parse(src.code).root_node):
        heads.append((fn.node.start_point[0] + 1, fn.body.start_point[0] + 1,
                      fn.node.end_point[0] + 1, fn.name))
    for s in sups:
        for start, brace, end, name in heads:
            if start <= s.first <= brace:
                s.first, s.last, s.function = start, end, name
                break


@dataclass
class Outcome:
    """What applying suppressions did."""

    kept: list[Finding]
    suppressed: int
    notices: list[Notice]  # missing reasons, unknown rules, and (when asked) unused ones
    unused: int


class Suppressor:
    """Reads each file's suppressions once and applies them to a run's findings."""

    def __init__(self, registry: Registry, tables: MacroTables | None = None) -> None:
        self.registry = registry
        self.tables = tables
        self._files: dict[str, tuple[list[Suppression], list[Notice]]] = {}

    def of(self, path: str) -> tuple[list[Suppression], list[Notice]]:
        if path not in self._files:
            try:
                raw = Path(path).read_bytes()
            except OSError:
                raw = b""
            self._files[path] = scan(path, raw, self.registry, self.tables)
        return self._files[path]

    def apply(self, findings: Iterable[Finding], paths: Iterable[str],
              enabled: frozenset[str] | None = None, report_unused: bool = False) -> Outcome:
        """Drop covered findings.  paths: every file of the run (their suppressions are
        checked even when they have no finding left).  A suppression is unused when none of
        its enabled codes matched; rules not enabled are not held against it."""
        kept, suppressed = [], 0
        for f in findings:
            hit = [s for s in self.of(f.path)[0] if s.covers(f)]
            for s in hit:
                s.used.add(f.code)
            if hit:
                suppressed += 1
            else:
                kept.append(f)
        notices: list[Notice] = []
        unused = 0
        for path in dict.fromkeys(list(paths) + [f.path for f in kept]):
            sups, found = self.of(path)
            notices.extend(found)
            if not report_unused:
                continue
            for s in sups:
                live = s.codes & enabled if enabled is not None else s.codes
                if live and not s.used:
                    unused += 1
                    where = f"in function {s.function}()" if s.function else f"on line {s.first}"
                    notices.append(Notice(path, s.line, KIND,
                                          f"unused suppression '{s.spelled()}': nothing to "
                                          f"suppress {where}"))
        return Outcome(kept, suppressed, notices, unused)
