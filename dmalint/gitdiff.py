"""`--diff REV`: keep only the findings on lines changed since a git revision.

The lines come from `git diff -U0 REV -- PATHS` (the working tree against REV, staged or not),
run in the repository that holds the first path.  A finding is kept when its own line, or one of
its related lines (the map site of a leak), was added or changed.  A hunk that only deletes
lines marks the lines on both sides of the cut, so removing a `dma_mapping_error()` check brings
back the finding on the unchanged line below it.  Untracked files (not ignored) count as wholly
changed.
"""

from __future__ import annotations

import codecs
import os
import re
import subprocess
from typing import Iterable

from dmalint.findings import Finding

_HUNK = re.compile(r"^@@ -\d+(?:,\d+)? \+(\d+)(?:,(\d+))? @@")
_ALL = None  # marks a file whose every line is new


class DiffError(Exception):
    """Not a git repository, an unknown revision, or git itself failing."""


def _git(args: list[str], cwd: str) -> str:
    try:
        proc = subprocess.run(["git", "-c", "core.quotePath=false", *args], cwd=cwd,
                              capture_output=True, text=True, errors="surrogateescape")
    except FileNotFoundError:
        raise DiffError("--diff needs git, which is not installed") from None
    if proc.returncode != 0:
        raise DiffError(proc.stderr.strip().splitlines()[-1] if proc.stderr.strip()
                        else f"git {args[0]} failed (exit {proc.returncode})")
    return proc.stdout


class ChangedLines:
    """Lines changed since a revision, per file (absolute real path)."""

    def __init__(self, files: dict[str, set[int] | None]) -> None:
        self.files = files

    @classmethod
    def since(cls, rev: str, paths: list[str]) -> "ChangedLines":
        start = os.path.realpath(paths[0] if paths else ".")
        where = start if os.path.isdir(start) else os.path.dirname(start)
        try:
            top = _git(["rev-parse", "--show-toplevel"], where).strip()
        except DiffError:
            raise DiffError(f"--diff: {where} is not in a git repository") from None
        try:
            _git(["rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}"], top)
        except DiffError:
            raise DiffError(f"--diff: unknown revision '{rev}' in {top}") from None
        specs = [os.path.realpath(p) for p in paths] or [top]
        diff = _git(["diff", "-U0", "--no-color", "--no-ext-diff", "--no-renames",
                     rev, "--", *specs], top)
        files = parse_diff(diff, top)
        for name in _git(["ls-files", "--others", "--exclude-standard", "-z", "--", *specs],
                         top).split("\0"):
            if name:
                files[os.path.realpath(os.path.join(top, name))] = _ALL
        return cls(files)

    def touches(self, path: str, line: int) -> bool:
        lines = self.files.get(os.path.realpath(path), set())
        return lines is _ALL or line in lines

    def keep(self, findings: Iterable[Finding]) -> list[Finding]:
        """The findings whose line, or one of whose related lines, changed."""
        return [f for f in findings
                if self.touches(f.path, f.line) or any(self.touches(f.path, ln) for ln, _ in f.related)]


def parse_diff(text: str, top: str) -> dict[str, set[int] | None]:
    """Added or changed lines per file (absolute real path) from `git diff -U0` output."""
    files: dict[str, set[int] | None] = {}
    current: set[int] | None = None
    for line in text.splitlines():
        if line.startswith("+++ "):
            name = _unquote(line[4:].rstrip("\t"))
            if name == "/dev/null":
                current = None
                continue
            name = name[2:] if name.startswith("b/") else name
            current = files.setdefault(os.path.realpath(os.path.join(top, name)), set())
            continue
        m = _HUNK.match(line)
        if m and current is not None:
            start, count = int(m.group(1)), int(m.group(2) if m.group(2) is not None else 1)
            if count == 0:  # a deletion after line `start`: mark both sides of the cut
                current.update({start, start + 1})
            else:
                current.update(range(start, start + count))
    return files


def _unquote(name: str) -> str:
    """A file name as git prints it: C-quoted when it holds quotes, backslashes or controls."""
    if len(name) >= 2 and name[0] == name[-1] == '"':
        raw = codecs.escape_decode(name[1:-1].encode("utf-8", "surrogateescape"))[0]
        return raw.decode("utf-8", "surrogateescape")
    return name
