"""Run the checker over files: discovery, (parallel) analysis, and the combined result."""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from dmalint.analysis import FileResult, analyse_source
from dmalint.contracts.loader import load_contracts, load_macro_tables, load_registry
from dmalint.findings import Finding, Notice
from dmalint.source import SourceError, read_source

SOURCE_SUFFIXES = (".c", ".h")


@dataclass
class RunResult:
    """All files' findings and notices, in a deterministic order."""

    findings: list[Finding] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)
    files: int = 0
    functions: int = 0
    damaged: int = 0
    analysed: int = 0

    @property
    def errors(self) -> list[Notice]:
        return [n for n in self.notices if n.kind == "error"]


def discover(paths: list[str]) -> tuple[list[tuple[Path, str]], list[Notice]]:
    """Files to analyse, as (path on disk, path to display), and notices for bad arguments.

    Directories are walked in sorted order without following symlinked directories (loops);
    files named explicitly are analysed whatever their suffix."""
    files: list[tuple[Path, str]] = []
    notices: list[Notice] = []
    seen: set[str] = set()
    for arg in paths:
        p = Path(arg)
        if not p.exists() and not p.is_symlink():
            notices.append(Notice(arg, 0, "error", "no such file or directory"))
            continue
        if p.is_dir():
            for root, dirs, names in os.walk(p, followlinks=False):
                dirs.sort()
                for name in sorted(names):
                    if name.endswith(SOURCE_SUFFIXES):
                        fp = Path(root) / name
                        key = os.path.normpath(str(fp))
                        if key not in seen:
                            seen.add(key)
                            files.append((fp, key))
        else:
            key = os.path.normpath(arg)
            if key not in seen:
                seen.add(key)
                files.append((p, key))
    return files, notices


def analyse_file(path: Path, display: str) -> FileResult:
    """One file, never raising for a problem with the input."""
    try:
        src = read_source(path, display, load_macro_tables())
    except SourceError as exc:
        result = FileResult(display)
        result.notices.append(Notice(display, 0, "error", str(exc)))
        return result
    return analyse_source(src, load_contracts(), load_registry())


def _analyse_task(item: tuple[str, str]) -> FileResult:
    return analyse_file(Path(item[0]), item[1])


def run(paths: list[str], jobs: int | None = None) -> RunResult:
    """Analyse every file under paths; jobs > 1 uses a process pool (same output)."""
    files, notices = discover(paths)
    result = RunResult(notices=list(notices))
    jobs = jobs or os.cpu_count() or 1
    items = [(str(p), d) for p, d in files]
    if jobs > 1 and len(items) > 1:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            outputs = list(pool.map(_analyse_task, items, chunksize=max(1, min(32, len(items) // (jobs * 8) or 1))))
    else:
        outputs = [_analyse_task(i) for i in items]
    for out in outputs:
        result.files += 1
        result.findings.extend(out.findings)
        result.notices.extend(out.notices)
        result.functions += out.functions
        result.damaged += out.damaged
        result.analysed += out.analysed
    result.findings.sort(key=Finding.sort_key)
    result.notices.sort(key=lambda n: (n.path, n.line, n.kind, n.message))
    return result
