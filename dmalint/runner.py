"""Run the checker over files: discovery, (parallel) analysis, and the combined result.

No input stops a run: a file that cannot be read, does not finish within the time limit, nests too
deeply, or trips an internal error becomes an error notice naming the file, and every other file is
still analysed and reported.  The output does not depend on -j or on file system order.
"""

from __future__ import annotations

import functools
import gc
import hashlib
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from typing import Callable

from dmalint.analysis import FileResult, analyse_unit, mention_test, mentioning
from dmalint.cache import Cache
from dmalint.config import Config
from dmalint.consteval import Target
from dmalint.contracts.loader import load_contracts, load_macro_tables, load_registry
from dmalint.contracts.macros import MacroTables
from dmalint.engine.explore import DEFAULT_BUDGET
from dmalint.findings import Finding, Notice
from dmalint.parse import memo
from dmalint.source import (MAX_FILE_BYTES, Define, SourceError, check_text, driver_macros,
                            read_source)
from dmalint.workers import TIMED_OUT, call_with_limit, map_with_limits

SOURCE_SUFFIXES = (".c", ".h")
DEFAULT_FILE_TIMEOUT = 20.0
MAX_UNIT_FILES = 64  # files of one directory analysed together (a driver); larger ones are split
MAX_UNIT_BYTES = 32 * 1024 * 1024  # ... and so are directories with more source than this (in
# drivers/ only register-header directories of amdgpu have more, 40-120 MB, and no DMA API)


@dataclass(frozen=True)
class Settings:
    """What the analysis of a unit needs besides its files: the configuration's share of it.
    Passed to the task functions (workers are forked after it is built), never a global."""

    tables: MacroTables
    target: Target = Target()
    include_dirs: tuple[str, ...] = ()
    defines: tuple[Define, ...] = ()  # the command line's, seen before each file's own

    @classmethod
    def of(cls, config: Config | None) -> "Settings":
        config = config or Config()
        return cls(config.tables(load_macro_tables()), config.target(), config.include_dirs,
                   config.defines)


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
    paths: list[str] = field(default_factory=list)  # every file of the run, in order
    # Wall and CPU seconds per analysed file (display path): for benchmarks, never reported,
    # as they differ between runs.
    file_seconds: dict[str, float] = field(default_factory=dict, compare=False)
    file_cpu: dict[str, float] = field(default_factory=dict, compare=False)

    @property
    def errors(self) -> list[Notice]:
        return [n for n in self.notices if n.kind == "error"]


def discover(paths: list[str], excluded: Callable[[str], bool] | None = None,
             ) -> tuple[list[tuple[Path, str]], list[Notice]]:
    """Files to analyse, as (path on disk, path to display), and notices for bad arguments.

    Directories are walked in sorted order without following symlinked directories (loops);
    files named explicitly are analysed whatever their suffix.  `excluded(path)` drops files
    and prunes directories, named explicitly or found in a walk."""
    excluded = excluded or (lambda _: False)
    files: list[tuple[Path, str]] = []
    notices: list[Notice] = []
    seen: set[str] = set()
    for arg in paths:
        p = Path(arg)
        if not p.exists() and not p.is_symlink():
            notices.append(Notice(arg, 0, "error", "no such file or directory"))
            continue
        if excluded(arg):
            continue
        if p.is_dir():
            for root, dirs, names in os.walk(p, followlinks=False, onerror=_walk_error(notices)):
                dirs[:] = sorted(d for d in dirs if not excluded(os.path.join(root, d)))
                for name in sorted(names):
                    if name.endswith(SOURCE_SUFFIXES):
                        fp = Path(root) / name
                        key = os.path.normpath(str(fp))
                        if key not in seen and not excluded(key):
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


def analyse_file(path: Path, display: str, cache: Cache | None = None,
                 settings: Settings | None = None) -> FileResult:
    """One file, never raising for a problem with the input or an error in the analysis."""
    return _analyse(path, display, cache, settings)[0]


def _analyse(path: Path, display: str, cache: Cache | None,
             settings: Settings | None = None) -> tuple[FileResult, bool]:
    """(result, True when it came from the cache)."""
    return _analyse_unit([(str(path), display)], cache, settings)[0]


def _analyse_unit(items: list[tuple[str, str]], cache: Cache | None,
                  settings: Settings | None = None) -> list[tuple[FileResult, bool]]:
    """The files of one driver directory, analysed together (helpers, struct members and
    call graph span them); each result is cached under its own content and its siblings'.
    Each file (and header) is read, neutralised and parsed once for the whole unit."""
    with memo():
        return _analyse_unit_once(items, cache, settings)


def _analyse_unit_once(items: list[tuple[str, str]], cache: Cache | None,
                       settings: Settings | None = None) -> list[tuple[FileResult, bool]]:
    settings = settings or Settings.of(None)
    raws = {display: _read_for_key(Path(path)) for path, display in items}
    keys: dict[str, str] = {}
    hits: dict[str, FileResult] = {}
    headers: dict[str, bytes | None] | None = None  # the local headers, read when first needed
    if cache is not None:
        headers = _local_headers(items, raws)
        digests = {**_digests(raws), **_digests(headers),
                   **_header_digests(raws, settings.include_dirs)}
        for path, display in items:
            if raws[display] is None:
                continue
            keys[display] = file_cache_key(cache, display, raws, digests)
            hit = cache.get(keys[display], display)
            if hit is not None:
                hits[display] = hit
    out: dict[str, FileResult] = {}
    if hits and all(_fails_to_read(Path(p), d, out, settings) for p, d in items if d not in hits):
        # Every readable file is cached; the others fail to read again (failures are never cached).
        return [(hits[d], True) if d in hits else (out[d], False) for _, d in items]
    out.clear()
    # Only the files that mention the DMA API are read first; the others join when they call a
    # function of those (analyse_unit asks); the rest of the directory is never parsed.
    api = mention_test(load_contracts().api_names())
    first = [(p, d) for p, d in items if raws[d] is None or api(raws[d])]
    if any(raws[d] is not None for _, d in first):
        if headers is None:
            headers = _local_headers(items, raws)
        settings = _with_driver_macros(settings, [*raws.values(), *headers.values()], api)
    chosen_first = set(first)
    rest = [item for item in items if item not in chosen_first]
    sources, disk = _read_all(first, out, settings)

    joined = []  # files read because they call the driver's DMA functions: the simulator
    #              replays findings in them too

    def more_sources(names: frozenset[str]):
        if not names or not rest:
            return []
        hits = mentioning(names, [raws[d] for _, d in rest])
        chosen = [item for item, hit in zip(rest, hits) if hit]
        extra, extra_disk = _read_all(chosen, out, settings)
        disk.update(extra_disk)
        joined.extend(extra)
        return extra

    whole = True
    if len(sources) == 1 and not rest:
        out[sources[0].path] = _analyse_alone(sources[0], disk[sources[0].path], settings)
    elif sources:
        try:
            results = analyse_unit(sources, load_contracts(), load_registry(), DEFAULT_BUDGET, disk,
                                   settings.target, more_sources=more_sources,
                                   tables=settings.tables, include_dirs=settings.include_dirs)
            out.update((r.path, r) for r in results)
            _simulate(results, sources + joined, settings)
        except (Exception, RecursionError):
            # Something in one file broke the driver-level analysis: every file on its own
            # instead, so one file cannot cost its neighbours their findings.  Those results
            # lack the cross-file view, so they are not cached.
            whole = False
            for src in sources:
                out[src.path] = _analyse_alone(src, disk[src.path], settings)
    for _, d in items:
        if d not in out:  # no DMA API and no caller of a function that has it: not parsed
            try:
                check_text(raws[d])
                out[d] = FileResult(d)
            except SourceError as exc:
                out[d] = _failed(d, str(exc))
    if cache is not None and whole:
        raws.update((src.path, src.raw) for src in sources)  # what was analysed, if it changed
        digests = {**_digests(raws), **_digests(headers or {}),
                   **_header_digests(raws, settings.include_dirs)}
        for _, display in items:
            if raws[display] is None or any(n.kind == "error" for n in out[display].notices):
                continue  # failures are never cached
            cache.put(file_cache_key(cache, display, raws, digests), out[display])
    return [(out[d], False) for _, d in items]


def _with_driver_macros(settings: Settings, texts: list[bytes | None],
                        api: Callable[[bytes], bool]) -> Settings:
    """The settings with the macros the driver defines itself, in its files or in the headers
    they include from beside them (source.driver_macros), added to the tables for the whole
    unit: its loop macros (the tables' own entries win where both name one) and those it
    defines to nothing (never one whose other definition calls the API)."""
    loops: dict[str, tuple[int, ...]] = {}
    blank: set[str] = set()
    blank_calls: set[str] = set()
    for raw in texts:
        if raw is not None:
            found, names, calls = driver_macros(raw, keep=api)
            loops.update(found)
            blank |= names
            blank_calls |= calls
    tables = settings.tables
    loops = {name: cursors for name, cursors in loops.items()
             if name not in tables.iterators and name not in tables.cursors}
    if not (loops or blank or blank_calls):
        return settings
    return replace(settings, tables=tables.extended(MacroTables(
        iterators=frozenset(loops), cursors=dict(sorted(loops.items())),
        driver_blank=frozenset(blank - set(loops)),
        driver_blank_functions=frozenset(blank_calls - set(loops)))))


def _read_all(items, out: dict, settings: Settings):
    """Read and neutralise files; the failures go to out as error results."""
    sources, disk = [], {}
    for path, display in items:
        try:
            src = read_source(Path(path), display, settings.tables)
        except SourceError as exc:
            out[display] = _failed(display, str(exc))
            continue
        except RecursionError:
            out[display] = _failed(display, _too_deep("source"))
            continue
        except Exception as exc:
            out[display] = _failed(display, _internal(exc))
            continue
        if settings.defines:  # as the compiler sees them: before the file's own #defines
            src.defines = {**{d.name: d for d in settings.defines}, **src.defines}
        sources.append(src)
        disk[display] = Path(path)
    return sources, disk


def file_cache_key(cache: Cache, display: str, raws: dict[str, bytes | None],
                   digests: dict[str, str | None] | None = None) -> str:
    """A file's cache key: its content, and its driver siblings' (a change in any of them can
    change this file's cross-file findings).  Pass digests (_digests(raws)) when keying every
    file of a unit: hashing each sibling again for each file is quadratic in the unit's bytes."""
    if digests is None:
        digests = _digests(raws)
    deps = [(d, h) for d, h in sorted(digests.items()) if h is not None and d != display]
    return cache.key(display, raws[display], deps, digests.get(display))


# Found from the `#`, a literal the regex engine skips to (the scan runs over every file of
# every unit); one in a comment only adds a dependency to a cache key.
_QUOTED_INCLUDE = re.compile(rb'#[ \t]*include[ \t]*"([^"\n]+)"')


def _local_headers(items: list[tuple[str, str]], raws: dict[str, bytes | None],
                   ) -> dict[str, bytes | None]:
    """The headers the unit's files include as `#include "x.h"` from their own directory, by
    path, the unit's own files left out.  The struct index reads them and their loop macros
    count (a pre-commit run names one file, not its directory): each file's result depends on
    them, so they are part of its cache key."""
    members = {os.path.normpath(p) for p, _ in items}
    out: dict[str, bytes | None] = {}
    for path, display in items:
        raw = raws[display]
        if raw is None or b"include" not in raw:
            continue
        base = os.path.dirname(path)
        for m in _QUOTED_INCLUDE.finditer(raw):
            header = os.path.normpath(os.path.join(
                base, m.group(1).decode("utf-8", "surrogateescape")))
            if header not in members and header not in out and os.path.isfile(header):
                out[header] = _read_for_key(Path(header))
    return dict(sorted(out.items()))


def _header_digests(raws: dict[str, bytes | None], include_dirs) -> dict[str, str | None]:
    """Headers the unit's files include from the configured include directories (one level),
    by path: dependencies of every file of the unit, for the cache key."""
    out: dict[str, str | None] = {}
    if not include_dirs:
        return out
    names = {m.group(1).decode("utf-8", "surrogateescape")
             for raw in raws.values() if raw is not None for m in _QUOTED_INCLUDE.finditer(raw)}
    for name in sorted(names):
        for d in include_dirs:
            header = os.path.join(d, name)
            if os.path.isfile(header):
                out[header] = _digests({header: _read_for_key(Path(header))})[header]
    return out


def _digests(raws: dict[str, bytes | None]) -> dict[str, str | None]:
    return {d: hashlib.sha256(r).hexdigest() if r is not None else None for d, r in raws.items()}


def _fails_to_read(path: Path, display: str, out: dict, settings: Settings) -> bool:
    """True (with its error result in out) when a file cannot be read as a source."""
    try:
        read_source(path, display, settings.tables)
    except SourceError as exc:
        out[display] = _failed(display, str(exc))
        return True
    except Exception:
        return False
    return False


def _simulate(results, sources, settings: Settings | None = None) -> None:
    """The reference simulator's verdicts, set before results are cached; never loses findings.

    The simulator is imported on the first finding: most files of a pre-commit run have none,
    and its modules take a twentieth of the start-up time."""
    if not any(result.findings for result in results):
        return
    from dmalint.simulate.verdict import simulate_findings

    by_path = {src.path: src for src in sources}
    include_dirs = settings.include_dirs if settings is not None else ()
    tables = settings.tables if settings is not None else None
    for result in results:
        try:
            simulate_findings(result.findings, by_path, include_dirs=include_dirs, tables=tables)
        except (Exception, RecursionError) as exc:
            for f in result.findings:
                if f.verdict is None:
                    f.verdict = "unknown"
                    f.extra["verdict_reason"] = f"simulator error: {type(exc).__name__}"


def _analyse_alone(src, disk: Path, settings: Settings) -> FileResult:
    try:
        result = analyse_unit([src], load_contracts(), load_registry(), DEFAULT_BUDGET,
                              {src.path: disk}, settings.target, tables=settings.tables,
                              include_dirs=settings.include_dirs)[0]
        _simulate([result], [src], settings)
        return result
    except RecursionError:
        # cfg.py (CFGBuilder.stmt/seq/cond) and engine/evaluate.py (Evaluator.eval and its
        # helpers) recurse over the syntax tree; a function nested some hundreds of levels deep
        # exhausts Python's stack.  Until they are iterative, the file is reported, not analysed.
        return _failed(src.path, _too_deep("analysis"))
    except Exception as exc:
        return _failed(src.path, _internal(exc))


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


UNIT_GC_THRESHOLD = 20000  # allocations between young collections while a unit is analysed


def _unit_task(unit: list[tuple[str, str]], cache: Cache | None = None,
               settings: Settings | None = None) -> list[tuple[FileResult, bool]]:
    # Parsing, neutralising and the driver passes allocate many small objects that live for the
    # whole unit; with the default threshold (700) the collector keeps walking them for nothing.
    saved = gc.get_threshold()
    gc.set_threshold(UNIT_GC_THRESHOLD, saved[1], saved[2])
    try:
        return _analyse_unit_guarded(unit, cache, settings)
    finally:
        gc.set_threshold(*saved)


def _analyse_unit_guarded(unit: list[tuple[str, str]], cache: Cache | None,
                          settings: Settings | None) -> list[tuple[FileResult, bool]]:
    try:
        return _analyse_unit(unit, cache, settings)
    except RecursionError:
        return [(_failed(d, _too_deep("analysis")), False) for _, d in unit]
    except Exception as exc:
        return [(_failed(d, _internal(exc)), False) for _, d in unit]


def units_of(items: list[tuple[str, str]], max_files: int = MAX_UNIT_FILES,
             max_bytes: int = MAX_UNIT_BYTES, size: Callable[[str], int] | None = None,
             ) -> list[list[tuple[str, str]]]:
    """Files grouped by directory (a driver), in discovery order, at most max_files a group and,
    past its first file, at most max_bytes of source (size(path) gives a file's bytes): a
    worker holds a unit's bytes while it analyses it."""
    size = size or _file_size
    groups: dict[str, list[tuple[str, str]]] = {}
    for item in items:
        groups.setdefault(os.path.dirname(item[1]), []).append(item)
    out = []
    for members in groups.values():
        unit: list[tuple[str, str]] = []
        held = 0
        for item in members:
            n = size(item[0])
            if unit and (len(unit) >= max_files or held + n > max_bytes):
                out.append(unit)
                unit, held = [], 0
            unit.append(item)
            held += n
        if unit:
            out.append(unit)
    return out


def _file_size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def largest_first(units: list[list[tuple[str, str]]],
                  size: Callable[[str], int] | None = None) -> list[list[tuple[str, str]]]:
    """Units in decreasing order of their files' bytes (ties in discovery order): the pool
    starts the long ones first, so that no core is left waiting for one at the end.  Results
    are placed by file, so the order changes nothing in the output."""
    size = size or _file_size
    weights = [sum(size(p) for p, _ in unit) for unit in units]
    order = sorted(range(len(units)), key=lambda i: -weights[i])
    return [units[i] for i in order]


def run(paths: list[str], jobs: int | None = None, timeout: float | None = DEFAULT_FILE_TIMEOUT,
        cache: Cache | None = None, config: Config | None = None,
        progress: Callable[[int, int], None] | None = None) -> RunResult:
    """Analyse every file under paths with jobs worker processes (default: all cores).

    timeout limits each file's analysis in seconds (None or 0: no limit).  A limit needs a worker
    process even with jobs=1; only an unlimited single-job run stays in this process.  The result
    is the same whatever jobs is.  config supplies the macro tables, the target machine, include
    directories and excluded paths (rule selection is applied later, to the findings).
    progress(done, total) is called in this process as files finish.  Raises RuleFileError when
    the rules do not load."""
    # Loaded once, here: forked workers inherit them, so every file of the run sees the same
    # rules even if rules/ changes meanwhile, and a broken rule file fails the run at once
    # (RuleFileError) instead of every file.
    load_macro_tables(), load_contracts(), load_registry()
    settings = Settings.of(config)
    files, notices = discover(paths, config.is_excluded if config is not None else None)
    result = RunResult(notices=list(notices), paths=[d for _, d in files])
    jobs = jobs or os.cpu_count() or 1
    items = [(str(p), d) for p, d in files]
    position = {d: i for i, (_, d) in enumerate(items)}
    slots: list[FileResult | None] = [None] * len(items)
    sizes = {p: _file_size(p) for p, _ in items}
    units = largest_first(units_of(items, size=sizes.__getitem__), sizes.__getitem__)
    retry: list[tuple[str, str]] = []
    done = 0

    def finished(unit, out) -> None:
        nonlocal done
        if out.failure is None or len(unit) == 1:  # a failed larger unit is retried file by file
            done += len(unit)
            if progress is not None:
                progress(done, len(items))

    for unit, out in zip_outcomes(units, _unit_task, jobs, timeout, cache, weight=len,
                                  settings=settings, on_outcome=finished):
        if out.failure is not None:
            if len(unit) > 1:
                retry.extend(unit)  # one slow or crashing file: the others still get analysed
                continue
            display = unit[0][1]
            slots[position[display]] = _failed(display, _failure_message(out.failure, timeout))
            result.file_seconds[display], result.file_cpu[display] = out.seconds, out.cpu
            continue
        share = len(unit)
        for (_, display), (file_result, from_cache) in zip(unit, out.value):
            slots[position[display]] = file_result
            result.cached += from_cache
            result.file_seconds[display] = out.seconds / share
            result.file_cpu[display] = out.cpu / share
    for unit, out in zip_outcomes([[item] for item in retry], _unit_task, jobs, timeout, cache, settings=settings,
                                  on_outcome=finished):
        display = unit[0][1]
        result.file_seconds[display], result.file_cpu[display] = out.seconds, out.cpu
        if out.failure is not None:
            slots[position[display]] = _failed(display, _failure_message(out.failure, timeout))
        else:
            slots[position[display]] = out.value[0][0]
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


def zip_outcomes(units, task, jobs: int, timeout, cache, weight=None, settings=None,
                 on_outcome=None):
    """(unit, Outcome) pairs in unit order, analysed by up to `jobs` workers;
    on_outcome(unit, outcome) is called as each arrives."""
    fn = functools.partial(task, cache=cache, settings=settings)
    if jobs == 1 and not timeout:
        stream = (call_with_limit(fn, unit, i, None) for i, unit in enumerate(units))
    else:
        stream = map_with_limits(fn, units, jobs, timeout, weight=weight)
    outcomes = []
    for o in stream:
        outcomes.append(o)
        if on_outcome is not None:
            on_outcome(units[o.index], o)
    outcomes.sort(key=lambda o: o.index)
    return [(units[o.index], o) for o in outcomes]


def _failure_message(failure: str, timeout) -> str:
    return f"analysis timed out after {timeout:g} s" if failure == TIMED_OUT else failure


def _finding_order(f: Finding) -> tuple:
    """A total order, so that equal sort keys from different functions cannot swap places."""
    return (*f.sort_key(), f.function, f.fingerprint,
            tuple((s.line, s.kind, s.message, s.path or "") for s in f.trace))


def default_cache_options(config: Config | None = None) -> dict:
    """The configuration that changes results, for the cache key."""
    options = {"budget": DEFAULT_BUDGET, "max_file_bytes": MAX_FILE_BYTES,
               # verdicts are part of a cached result: a run without them must not serve one with
               "simulate": not os.environ.get("DMALINT_NO_SIMULATE")}
    if config is not None:
        options["config"] = config.cache_options()
    return options
