"""Incremental cache: a file whose analysis inputs have not changed is not analysed again.

An entry holds one file's FileResult.  Its key is a SHA-256 over everything the result depends on:

  - the tool key, computed once per run: the dmalint version, a digest of dmalint's own Python
    sources (so a development tree never serves results of older code under an unchanged version
    number), a digest of the rules/ data files, and the relevant configuration (the analysis
    budget; from .dmalint.toml the macro tables, include dirs, DMA granule and page size, but
    not rule selection, severities or suppressions, which apply to findings afterwards);
  - the path the result will be reported under (findings and fingerprints carry it);
  - the file's content;
  - dependency hashes: today none, as the analysis is per file.  A later driver-level analysis
    (function summaries from other files of the driver) passes ``deps``, a list of (path, content
    hash) of every file whose summaries it used; the key then changes whenever one of them does.
    Dependencies are sorted before hashing, so their order does not matter.

Entries are JSON, never pickle: the cache directory lives in the working tree, where anyone who
can commit a file could otherwise make dmalint run code.  Only the result dataclasses listed in
``_CLASSES`` can be rebuilt from an entry.  Each entry is a header line (format, tool key, entry
key, digest of the payload) followed by the payload; an entry whose header, digest or content does
not check out (truncated, corrupt, written by another version) is ignored and rewritten, never
trusted.  Entries are written to a temporary file in the same directory and renamed into place, so
a reader never sees half an entry and concurrent runs can share a cache.

Results that depend on the machine or on luck (a time-out, an unreadable file, an internal error)
are never stored: the runner only stores results of completed analyses.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import fields, is_dataclass
from importlib import resources
from pathlib import Path
from typing import Iterable, Mapping

from dmalint import __version__
from dmalint.analysis import FileResult
from dmalint.engine.state import Step
from dmalint.findings import Finding, Notice

FORMAT = 1
DEFAULT_DIR = ".dmalint_cache"
_CLASSES = {cls.__name__: cls for cls in (FileResult, Finding, Notice, Step)}


class Cache:
    """A directory of per-file results; every method is safe to call from worker processes."""

    def __init__(self, root: str | Path, tool_key: str) -> None:
        self.root = Path(root)
        self.tool_key = tool_key
        self._dir = self.root / f"v{FORMAT}"
        self._marked = False

    def _mark_root(self) -> None:
        """Keep the directory out of version control and backups, as pytest and ruff do."""
        self.root.mkdir(parents=True, exist_ok=True)
        for name, text in ((".gitignore", "# Created by dmalint automatically.\n*\n"),
                           ("CACHEDIR.TAG", "Signature: 8a477f597d28d172789f06886806bc55\n"
                                            "# This file is a cache directory tag created by dmalint.\n")):
            marker = self.root / name
            if not marker.exists():
                marker.write_text(text)
        self._marked = True

    @classmethod
    def open(cls, root: str | Path = DEFAULT_DIR, options: Mapping | None = None) -> "Cache":
        """A cache under root for this dmalint build, rules and configuration."""
        return cls(root, tool_key(options or {}))

    def key(self, display: str, content: bytes, deps: Iterable[tuple[str, str]] = (),
            content_digest: str | None = None) -> str:
        """The entry key of one file's result (see the module docstring).  content_digest,
        when the caller has it, is sha256(content).hexdigest(): not computed again."""
        h = hashlib.sha256()
        if content_digest is None:
            content_digest = hashlib.sha256(content).hexdigest()
        for part in (self.tool_key, display, content_digest):
            h.update(part.encode("utf-8", "surrogateescape") + b"\0")
        for path, digest in sorted(deps):
            h.update(f"dep\0{path}\0{digest}\0".encode("utf-8", "surrogateescape"))
        return h.hexdigest()

    def _path(self, key: str) -> Path:
        return self._dir / key[:2] / f"{key}.json"

    def get(self, key: str, display: str) -> FileResult | None:
        """The stored result, or None when there is none or it cannot be trusted."""
        try:
            data = self._path(key).read_bytes()
        except OSError:
            return None
        try:
            return _decode_entry(data, key, self.tool_key, display)
        except Exception:  # any damage at all: the entry is not trusted, and will be rewritten
            return None

    def put(self, key: str, result: FileResult) -> bool:
        """Store a result atomically; False (and nothing stored) when that is not possible."""
        try:
            payload = json.dumps(_encode(result), separators=(",", ":"), sort_keys=True,
                                 allow_nan=False).encode()
        except (TypeError, ValueError, RecursionError):  # a value we cannot store: not cached
            return False
        header = json.dumps({"format": FORMAT, "tool": self.tool_key, "key": key,
                             "sha256": hashlib.sha256(payload).hexdigest()}, sort_keys=True)
        target = self._path(key)
        try:
            if not self._marked:
                self._mark_root()
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=target.parent)
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(header.encode() + b"\n" + payload)
                os.replace(tmp, target)
            except BaseException:
                _unlink_quietly(tmp)
                raise
        except OSError:  # read-only or full disk: the cache is an optimisation, run on without it
            return False
        return True


def tool_key(options: Mapping) -> str:
    """A digest of the version, dmalint's code, the rules data and the configuration."""
    h = hashlib.sha256(f"dmalint {__version__} format {FORMAT}\0".encode())
    h.update(_tree_digest(Path(__file__).resolve().parent, ".py").encode())
    h.update(rules_digest().encode())
    h.update(json.dumps(options, sort_keys=True, default=str).encode())
    return h.hexdigest()


def rules_digest() -> str:
    """A digest of every data file in the installed rules package."""
    h = hashlib.sha256()
    root = resources.files("dmalint.rules")
    for res in sorted(root.iterdir(), key=lambda r: r.name):
        if res.name.endswith(".toml"):
            h.update(res.name.encode() + b"\0" + res.read_bytes() + b"\0")
    return h.hexdigest()


def _tree_digest(root: Path, suffix: str) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob(f"*{suffix}")):
        if "__pycache__" not in p.parts:
            h.update(str(p.relative_to(root)).encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


# --- the entry format -------------------------------------------------------------------------

def _encode(obj):
    """JSON-ready form: dataclasses of _CLASSES, tuples and dicts are tagged, so that decoding
    gives back exactly the same objects."""
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    if is_dataclass(obj) and not isinstance(obj, type):
        name = type(obj).__name__
        if _CLASSES.get(name) is not type(obj):
            raise TypeError(f"cannot cache a {name}")
        return {"$c": name, "f": {f.name: _encode(getattr(obj, f.name)) for f in fields(obj)}}
    if isinstance(obj, tuple):
        return {"$t": [_encode(x) for x in obj]}
    if isinstance(obj, list):
        return [_encode(x) for x in obj]
    if isinstance(obj, dict):
        if not all(isinstance(k, str) for k in obj):
            raise TypeError("cannot cache a dict with non-string keys")
        return {"$d": {k: _encode(v) for k, v in obj.items()}}
    raise TypeError(f"cannot cache a {type(obj).__name__}")


def _decode(obj):
    if isinstance(obj, list):
        return [_decode(x) for x in obj]
    if not isinstance(obj, dict):
        return obj
    if set(obj) == {"$t"} and isinstance(obj["$t"], list):
        return tuple(_decode(x) for x in obj["$t"])
    if set(obj) == {"$d"} and isinstance(obj["$d"], dict):
        return {k: _decode(v) for k, v in obj["$d"].items()}
    if set(obj) == {"$c", "f"} and obj["$c"] in _CLASSES and isinstance(obj["f"], dict):
        cls = _CLASSES[obj["$c"]]
        names = {f.name for f in fields(cls)}
        if set(obj["f"]) != names:  # another version's shape
            raise ValueError(f"fields of {cls.__name__} differ")
        return cls(**{k: _decode(v) for k, v in obj["f"].items()})
    raise ValueError("unknown object in cache entry")


def _decode_entry(data: bytes, key: str, tool: str, display: str) -> FileResult:
    head, sep, payload = data.partition(b"\n")
    if not sep:
        raise ValueError("no header")
    header = json.loads(head)
    if header != {"format": FORMAT, "tool": tool, "key": key,
                  "sha256": hashlib.sha256(payload).hexdigest()}:
        raise ValueError("header does not match")
    result = _decode(json.loads(payload))
    _check_result(result, display)
    return result


def _check_result(result, display: str) -> None:
    """The few invariants reporters rely on, so that a bad entry cannot crash them."""
    if not isinstance(result, FileResult) or result.path != display:
        raise ValueError("not this file's result")
    if not all(isinstance(getattr(result, n), int) for n in ("functions", "damaged", "analysed")):
        raise ValueError("bad counters")
    for f in result.findings:
        if not (isinstance(f, Finding) and isinstance(f.line, int) and isinstance(f.column, int)
                and isinstance(f.message, str) and isinstance(f.trace, tuple)
                and all(isinstance(s, Step) for s in f.trace)):
            raise ValueError("bad finding")
    for n in result.notices:
        if not (isinstance(n, Notice) and isinstance(n.line, int) and isinstance(n.message, str)):
            raise ValueError("bad notice")
