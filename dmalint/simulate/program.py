"""The driver's functions as the replayer sees them: every file of the directory, by name.

Parsed and graphed on demand and kept, so replaying many findings of one driver parses each
file once.  Uses dmalint.parse and dmalint.cfg only.
"""

from __future__ import annotations

import os
import re

import networkx as nx

from dmalint.cfg import CFG, build_cfg
from dmalint.consteval import Target
from dmalint.contracts.model import Contracts
from dmalint.contracts.loader import load_macro_tables
from dmalint.parse import FunctionDef, iter_functions, parse
from dmalint.simulate.objects import Layouts
from dmalint.source import SourceError, make_source

_CALLS = re.compile(rb"\b([A-Za-z_]\w*)\s*\(")
_LOCK = re.compile(rb"\b(?:mutex_lock\w*|spin_lock\w*|raw_spin_lock\w*|down\w*|read_lock\w*|"
                   rb"write_lock\w*)\s*\(\s*&\s*[\w.>\[\]-]*?(?:->|\.)\s*(\w+)\s*[,)]")
# How a driver hands the kernel a function that runs asynchronously: the registering call's
# arguments, or a completion/handler member assigned.
_REGISTER = re.compile(rb"\b(?:(?:devm_)?request_(?:threaded_)?irq|usb_fill_\w+_urb|timer_setup|"
                       rb"tasklet_(?:init|setup)|INIT_(?:DELAYED_)?WORK|INIT_WORK_ONSTACK)"
                       rb"\s*\(([^;]*)")
_ASSIGNED = re.compile(rb"(?:->|\.)\s*(?:complete|function|handler|callback)\s*=\s*(\w+)")
_IDENT = re.compile(rb"\b([A-Za-z_]\w*)\b")
_VALUE = re.compile(rb"\b([A-Za-z_]\w*)\b(?!\s*\()")
_NOT_CODE = re.compile(rb'/\*.*?\*/|//[^\n]*|"(?:\\.|[^"\\\n])*"', re.S)


class Program:
    def __init__(self, sources: dict, contracts: Contracts, include_dirs=(), tables=None) -> None:
        self.sources = sources  # path -> Source
        self.c = contracts
        self.include_dirs = tuple(include_dirs)  # the configuration's, for the layouts
        self.tables = tables  # the configuration's macro tables (None: the built-in ones)
        self._functions: dict[str, list[tuple[object, FunctionDef]]] | None = None
        self._cfgs: dict[int, CFG] = {}
        self._loops: dict[int, dict[int, frozenset[int]]] = {}
        self._headers: dict[str, dict] = {}  # header path -> its #defines
        self._callers: dict[str, set[str]] | None = None
        self._stripped: list[bytes] | None = None
        self._values: set[str] | None = None  # names used other than called
        self._async: set[str] | None = None  # names registered as asynchronous callbacks
        self._reaches: dict[tuple[str, str], bool] = {}
        self._layouts: dict[int, Layouts] = {}  # by DMA granule (it changes aligned layouts)

    def layouts(self, granule: int) -> Layouts:
        """The layout engine's view of the driver's structs for a DMA granule."""
        if granule not in self._layouts:
            self._layouts[granule] = Layouts(Target(dma_minalign=granule), self.include_dirs,
                                             self.tables)
        return self._layouts[granule]

    def _index(self) -> dict[str, list[tuple[object, FunctionDef]]]:
        if self._functions is None:
            self._functions = {}
            for path in sorted(self.sources):
                src = self.sources[path]
                for fn in iter_functions(parse(src.code).root_node):
                    if fn.name and fn.node.child_by_field_name("body") is not None:
                        self._functions.setdefault(fn.name, []).append((src, fn))
        return self._functions

    def find(self, name: str, path: str | None = None):
        """(source, function) for `name`, preferring the file `path`."""
        found = self._index().get(name, [])
        return next(((s, f) for s, f in found if s.path == path), found[0] if found else None)

    def define(self, name: str, src):
        """A #define the file may see: its own, the driver's other files', or those of the
        quoted headers it includes from its directory (read here: the analysis may not have)."""
        for other in [src, *self.sources.values()]:
            d = other.defines.get(name) if other is not None else None
            if d is not None:
                return d
        for header in self._local_headers(src):
            d = self._header_defines(header).get(name)
            if d is not None:
                return d
        return None

    def _local_headers(self, src) -> list[str]:
        if src is None:
            return []
        base = os.path.dirname(src.path)
        return [os.path.join(base, inc) for inc, _ in src.includes
                if not inc.startswith("linux/") and not inc.startswith("asm/")]

    def _header_defines(self, path: str) -> dict:
        if path not in self._headers:
            self._headers[path] = {}
            try:
                if os.path.getsize(path) < 2_000_000:
                    with open(path, "rb") as fh:
                        raw = fh.read()
                    self._headers[path] = make_source(raw, path, load_macro_tables()).defines
            except (OSError, SourceError, ValueError):
                pass
        return self._headers[path]

    def cfg(self, src, fn: FunctionDef) -> CFG:
        key = id(fn.node)
        if key not in self._cfgs:
            self._cfgs[key] = build_cfg(fn.body, self.c.core.transparent, self.c.core.noreturn,
                                        src.iterators)
        return self._cfgs[key]

    def loop_nodes(self, cfg: CFG) -> dict[int, frozenset[int]]:
        """The nodes on a cycle, each with its loop's nodes: a loop's condition, whose recorded
        exit the static witness takes after an abstract number of rounds."""
        key = id(cfg)
        if key not in self._loops:
            self._loops[key] = {n: frozenset(comp)
                                for comp in nx.strongly_connected_components(cfg.graph)
                                if len(comp) > 1 for n in comp}
        return self._loops[key]

    def calls_from(self, name: str, depth: int = 4) -> frozenset[str]:
        """Every name `name` calls, directly or through the driver's functions."""
        key = ("calls", name)
        if key in self._reaches:
            return self._reaches[key]
        self._reaches[key] = frozenset()  # recursion guard
        found = self.find(name)
        out: set[str] = set()
        if found is not None:
            direct = {m.decode() for m in _CALLS.findall(found[1].body.text or b"")}
            out |= direct
            if depth > 0:
                for c in direct:
                    if c != name and c in self._index():
                        out |= self.calls_from(c, depth - 1)
        self._reaches[key] = frozenset(out)
        return self._reaches[key]

    def callers(self, name: str) -> list[str]:
        """The driver's functions that call `name` directly."""
        if self._callers is None:
            rev: dict[str, set[str]] = {}
            for fname, found in self._index().items():
                body = found[0][1].body.text or b""
                for m in set(_CALLS.findall(body)):
                    rev.setdefault(m.decode(), set()).add(fname)
            self._callers = rev
        return sorted(self._callers.get(name, ()))

    def address_taken(self, name: str) -> bool:
        """Whether the driver uses `name` as a value (a callback it registers: `.complete =
        foo`, request_irq(..., foo, ...)), not only calls it."""
        if self._values is None:
            self._values = {m.decode() for code in self._code_only()
                            for m in _VALUE.findall(code)}
        return name in self._values

    def _code_only(self) -> list[bytes]:
        """The sources without comments and string literals (a name in a comment is no use)."""
        if self._stripped is None:
            self._stripped = [_NOT_CODE.sub(b" ", src.code) for src in self.sources.values()]
        return self._stripped

    def locks(self, name: str, up: int = 2) -> set[str]:
        """The lock members (`mutex_lock(&st->lock)`: "lock") a function takes, or its callers
        up to `up` levels take around it."""
        out: set[str] = set()
        for fn in self._upward(name, up):
            found = self.find(fn)
            if found is not None:
                out |= {m.decode() for m in _LOCK.findall(found[1].body.text or b"")}
        return out

    def _upward(self, name: str, depth: int):
        """name, then its callers, their callers, ... up to depth levels, each once."""
        seen, frontier = {name}, [name]
        for _ in range(depth + 1):
            nxt = []
            for fn in frontier:
                yield fn
                for c in self.callers(fn):
                    if c not in seen:
                        seen.add(c)
                        nxt.append(c)
            frontier = nxt

    def asynchronous(self, name: str) -> bool:
        """Whether the driver registers `name` to run on its own, whatever else the driver is
        doing: an interrupt handler, a URB completion, a timer, a tasklet or a work item."""
        if self._async is None:
            self._async = set()
            for code in self._code_only():
                for m in _REGISTER.finditer(code):
                    self._async.update(x.decode() for x in _IDENT.findall(m.group(1)))
                self._async.update(m.decode() for m in _ASSIGNED.findall(code))
        return name in self._async

    def async_roots(self, name: str, depth: int = 4) -> list[str]:
        """The asynchronous callbacks (see asynchronous()) from which `name` runs."""
        return self.roots(name, self.asynchronous, depth)

    def entry_roots(self, name: str, depth: int = 4) -> list[str]:
        """The callbacks of any kind (address taken: ops, probe, ...) from which `name` runs."""
        return self.roots(name, self.address_taken, depth)

    def roots(self, name: str, is_root, depth: int = 4) -> list[str]:
        return [fn for fn in self._upward(name, depth) if is_root(fn)]

    def reaches(self, name: str, api: str, depth: int = 4) -> bool:
        """Whether calling `name` may lead to a call of `api` (through the driver's functions)."""
        if name == api:
            return True
        key = (name, api)
        if key in self._reaches:
            return self._reaches[key]
        self._reaches[key] = False  # recursion guard
        found = self.find(name)
        out = False
        if found is not None and depth > 0:
            callees = {m.decode() for m in _CALLS.findall(found[1].body.text or b"")}
            out = api in callees or any(self.reaches(c, api, depth - 1) for c in callees
                                        if c in self._index() and c != name)
        self._reaches[key] = out
        return out
