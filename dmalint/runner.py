"""Run the checker over files: discovery, (parallel) analysis, and the combined result.

No input stops a run: a file that cannot be read, does not finish within the time limit, nests too
deeply, or trips an internal error becomes an error notice naming the file, and every other file is
still analysed and reported.  The output does not depend on -j or on file system order.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from pathlib import Path

from dmalint.analysis import FileResult, analyse_source
from dmalint.cache import Cache
from dmalint.contracts.loader import load_contracts, load_macro_tables, load_registry
from dmalint.engine.explore import DEFAULT_BUDGET
from dmalint.findings import Finding, Notice
from dmalint.source import MAX_FILE_BYTES, SourceError, read_source
from dmalint.workers import TIMED_OUT, call_with_limit, map_with_limits

SOURCE_SUFFIXES = (".c", ".h")
DEFAULT_FILE_TIMEOUT = 20.0


@dataclass
class RunResult:
    """All files' findings and notices, in a deterministic order."""

    findings: list[Finding] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)
    files: int = 0
    functions: int = 0
    damaged: int = 0
    analysed: int = 0
    cached: int = 0  # files whose result came from the cache
    # Wall and CPU seconds per analysed file (display path): for benchmarks, never reported,
    # as they differ between runs.
    file_seconds: dict[str, float] = field(default_factory=dict, compare=False)
    file_cpu: dict[str, float] = field(default_factory=dict, compare=False)

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
            for root, dirs, names in os.walk(p, followlinks=False, onerror=_walk_error(notices)):
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


def _walk_error(notices: list[Notice]):
    def record(exc: OSError) -> None:
        where = os.path.normpath(exc.filename) if exc.filename else "?"
        notices.append(Notice(where, 0, "error",
                              f"directory not searched: {exc.strerror or exc}"))
    return record


def analyse_file(path: Path, display: str, cache: Cache | None = None) -> FileResult:
    """One file, never raising for a problem with the input or an error in the analysis."""
    return _analyse(path, display, cache)[0]


def _analyse(path: Path, display: str, cache: Cache | None) -> tuple[FileResult, bool]:
    """(result, True when it came from the cache)."""
    key = None
    if cache is not None:
        raw = _read_for_key(path)
        if raw is not None:
            key = cache.key(display, raw)
            hit = cache.get(key, display)
            if hit is not None:
                return hit, True
    try:
        src = read_source(path, display, load_macro_tables())
    except SourceError as exc:
        return _failed(display, str(exc)), False
    except RecursionError:
        return _failed(display, _too_deep("source")), False
    except Exception as exc:
        return _failed(display, _internal(exc)), False
    try:
        result = analyse_source(src, load_contracts(), load_registry())
    except RecursionError:
        # cfg.py (CFGBuilder.stmt/seq/cond) and engine/evaluate.py (Evaluator.eval and its
        # helpers) recurse over the syntax tree; a function nested some hundreds of levels deep
        # exhausts Python's stack.  Until they are iterative, the file is reported, not analysed.
        return _failed(display, _too_deep("analysis")), False
    except Exception as exc:
        return _failed(display, _internal(exc)), False
    if cache is not None:
        if key is None or src.raw != raw:  # unreadable for the key, or changed since
            key = cache.key(display, src.raw)
        cache.put(key, result)
    return result, False


def _read_for_key(path: Path) -> bytes | None:
    """The bytes to key the cache by; None leaves every check and message to read_source."""
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            return None
        return path.read_bytes()
    except OSError:
        return None


def _failed(display: str, message: str) -> FileResult:
    result = FileResult(display)
    result.notices.append(Notice(display, 0, "error", message))
    return result


def _too_deep(stage: str) -> str:
    return f"not analysed: code nested too deeply for the {stage} (Python recursion limit)"


def _internal(exc: BaseException) -> str:
    msg = " ".join(str(exc).split())
    if len(msg) > 200:
        msg = msg[:197] + "..."
    return f"internal error: {type(exc).__name__}: {msg}; please report"


def _analyse_task(item: tuple[str, str], cache: Cache | None = None) -> tuple[FileResult, bool]:
    return _analyse(Path(item[0]), item[1], cache)


def run(paths: list[str], jobs: int | None = None, timeout: float | None = DEFAULT_FILE_TIMEOUT,
        cache: Cache | None = None) -> RunResult:
    """Analyse every file under paths with jobs worker processes (default: all cores).

    timeout limits each file's analysis in seconds (None or 0: no limit).  A limit needs a worker
    process even with jobs=1; only an unlimited single-job run stays in this process.  The result
    is the same whatever jobs is.  Raises RuleFileError when the rules do not load."""
    # Loaded once, here: forked workers inherit them, so every file of the run sees the same
    # rules even if rules/ changes meanwhile, and a broken rule file fails the run at once
    # (RuleFileError) instead of every file.
    load_macro_tables(), load_contracts(), load_registry()
    files, notices = discover(paths)
    result = RunResult(notices=list(notices))
    jobs = jobs or os.cpu_count() or 1
    items = [(str(p), d) for p, d in files]
    task = functools.partial(_analyse_task, cache=cache)
    if jobs == 1 and not timeout:
        outcomes = (call_with_limit(task, item, i, None) for i, item in enumerate(items))
    else:
        outcomes = map_with_limits(task, items, jobs, timeout)
    slots: list[FileResult | None] = [None] * len(items)
    for out in outcomes:
        display = items[out.index][1]
        result.file_seconds[display] = out.seconds
        result.file_cpu[display] = out.cpu
        if out.failure is not None:
            message = out.failure
            if message == TIMED_OUT:
                message = f"analysis timed out after {timeout:g} s"
            slots[out.index] = _failed(display, message)
        else:
            slots[out.index], from_cache = out.value
            result.cached += from_cache
    for out in slots:
        assert out is not None
        result.files += 1
        result.findings.extend(out.findings)
        result.notices.extend(out.notices)
        result.functions += out.functions
        result.damaged += out.damaged
        result.analysed += out.analysed
    result.findings.sort(key=_finding_order)
    result.notices.sort(key=lambda n: (n.path, n.line, n.kind, n.message))
    return result


def _finding_order(f: Finding) -> tuple:
    """A total order, so that equal sort keys from different functions cannot swap places."""
    return (*f.sort_key(), f.function, f.fingerprint,
            tuple((s.line, s.kind, s.message, s.path or "") for s in f.trace))


def default_cache_options() -> dict:
    """The configuration that changes results, for the cache key."""
    return {"budget": DEFAULT_BUDGET, "max_file_bytes": MAX_FILE_BYTES}
