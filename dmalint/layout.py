"""C struct layout for the LP64 kernel ABI (x86-64 and arm64): sizes, offsets, alignment, and
which members share a DMA granule (cache line) with a buffer.

Declarations come from the driver's files and the local headers they ``#include "..."``; types
from the kernel's own headers come from rules/kernel_types.toml.  A type that is neither makes the
layout unknown, and the layout says which type it was: sizes are never guessed.  Layouts that hold
bitfields, config-dependent kernel types or ``#if`` blocks are computed but marked approximate.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from dmalint.cdecl import DeclFile
from dmalint.consteval import ConstEval, Target
from dmalint.contracts.loader import load_macro_tables
from dmalint.kernel_types import KernelType, KernelTypes, kernel_types_from_data, load_kernel_types
from dmalint.record_layout import FieldLayout, StructLayout, Unknown, member_path, round_up
from dmalint.source import SourceError, SourceFile, read_source
from dmalint.typescope import TranslationUnit

__all__ = [
    "FieldLayout", "KernelType", "KernelTypes", "LayoutEngine", "SharedBytes", "StructLayout",
    "Target", "Unknown", "granule_overlap", "kernel_types_from_data", "load_kernel_types",
]

MAX_INCLUDED_FILES = 64


class LayoutEngine:
    """Layouts of the structs a driver declares.

    sources: the driver's files (their ``#include "..."`` headers are read too, resolved against
    the including file's directory, then include_dirs, and neutralised with tables, by default
    the built-in macro tables).  Names are resolved per translation unit: a source file and
    everything it includes."""

    def __init__(self, sources: list[SourceFile], include_dirs=(),
                 kernel_types: KernelTypes | None = None, target: Target = Target(),
                 cache: dict | None = None, tables=None) -> None:
        self.target = target
        self.kernel_types = kernel_types if kernel_types is not None else load_kernel_types()
        self.include_dirs = [Path(d) for d in include_dirs]
        self._tables = tables if tables is not None else load_macro_tables()
        self._cache = cache if cache is not None else {}  # disk path -> DeclFile (shareable)
        # Units are built on first use (a unit reads, neutralises and parses every header its
        # file includes): most lookups are answered by the first files.  They are consulted
        # in the order of `sources`, then in the order others were asked for.
        self._sources = {src.path: src for src in sources}
        self._built: dict[str, TranslationUnit] = {}
        self._extra: list[TranslationUnit] = []

    @property
    def _units(self):
        """Every unit, in order, building those not built yet as the walk reaches them."""
        for path, src in self._sources.items():
            yield self.unit(src)
        yield from list(self._extra)

    # public API
    def unit(self, src: SourceFile) -> "TranslationUnit":
        """The translation unit rooted at a source file (built on first use)."""
        found = self._built.get(src.path)
        if found is not None:
            return found
        disk = Path(src.path)
        main = DeclFile.build(src, disk if disk.is_file() else None)
        unit = TranslationUnit(self, [main] + self._includes(main))
        self._built[src.path] = unit
        if src.path not in self._sources:
            self._extra.append(unit)
        return unit

    def evaluator(self, src: SourceFile) -> ConstEval:
        """A constant evaluator seeing src's #defines, enums, types and variables."""
        return ConstEval(self.unit(src))

    def struct(self, name: str) -> StructLayout | None:
        """The layout of 'foo', 'struct foo', 'union foo' or a typedef of one; None if undeclared."""
        for unit in self._units:
            found = unit.record_named(name)
            if found is not None:
                return found
        return None

    def sizeof_type(self, type_text: str, src: SourceFile | None = None) -> int | None:
        """sizeof(type_text) in src's unit (the first source's by default)."""
        unit = self.unit(src) if src is not None else next(iter(self._units), None)
        if unit is None:
            unit = TranslationUnit(self, [])
        return ConstEval(unit).eval_text(f"sizeof({type_text})")

    def field_path(self, struct: str | StructLayout, members: list[str]) -> FieldLayout | None:
        """The member reached by names through nested structs: offset from the outer struct."""
        return member_path(self.struct(struct) if isinstance(struct, str) else struct, members)

    def declared_structs(self, src: SourceFile | None = None) -> list[StructLayout]:
        """Every struct/union defined in the given source (all sources by default), with a name
        or a typedef name, in source order; anonymous members are reported inside their parent."""
        out: list[StructLayout] = []
        if src is not None:  # only its unit: the others need not be built
            known = self._sources.get(src.path)
            units = [self.unit(known)] if known is not None else \
                [u for u in self._extra if u.main.src.path == src.path]
        else:
            units = self._units
        for unit in units:
            out.extend(unit.declared_records())
        return out

    # includes
    def _includes(self, root: DeclFile) -> list[DeclFile]:
        """Local headers included by root, transitively, depth first in include order."""
        out: list[DeclFile] = []
        seen = {os.path.realpath(root.disk)} if root.disk else set()
        stack: list[DeclFile] = [root]
        while stack and len(out) < MAX_INCLUDED_FILES:
            current = stack.pop()
            found = []
            for name, _line in current.src.includes:
                path = self._resolve_include(current, name)
                if path is None or os.path.realpath(path) in seen:
                    continue
                seen.add(os.path.realpath(path))
                header = self._load(path)
                if header is not None:
                    found.append(header)
            out.extend(found)
            stack.extend(reversed(found))
        return out

    def _resolve_include(self, current: DeclFile, name: str) -> Path | None:
        dirs = ([current.disk.parent] if current.disk else []) + self.include_dirs
        for d in dirs:
            candidate = d / name
            if candidate.is_file():
                return candidate
        return None

    def _load(self, path: Path) -> DeclFile | None:
        key = os.path.realpath(path)
        if key not in self._cache:
            try:
                src = read_source(path, os.path.normpath(str(path)), self._tables)
                self._cache[key] = DeclFile.build(src, path)
            except SourceError:
                self._cache[key] = None
        return self._cache[key]


# --- cache lines ---------------------------------------------------------------------------

@dataclass(frozen=True)
class SharedBytes:
    """A neighbour that shares a granule with the buffer: which of its bytes, line by line."""

    member: str                      # dotted path ('stats.rx', 'lock')
    field: FieldLayout               # offsets from the start of the outer struct
    ranges: tuple[tuple[int, int], ...]  # [start, end) of the neighbour's bytes in each shared line


def granule_overlap(layout: StructLayout, member: str, granule: int) -> list[SharedBytes] | None:
    """The other members whose bytes lie in the granule-sized lines the member touches.

    The member's [offset, offset + size) is rounded out to granule boundaries, assuming the
    object starts on a granule boundary: kmalloc() and devm_kzalloc() return
    ARCH_KMALLOC_MINALIGN-aligned memory, which equals ARCH_DMA_MINALIGN on the machines where the
    question matters (non-coherent DMA), and a struct whose alignment is at least the granule is
    placed so by the compiler.  For an object embedded at an arbitrary offset in another one, or
    in an array, call this on the outer layout (field_path gives nested offsets).  Bytes past the
    end of the struct are not reported: with the object allocated alone they are slab padding.
    `member` is a dotted path; None when the layout or the member's place is unknown.
    """
    target = member_path(layout, member.split("."))
    if target is None or target.offset is None or target.size is None or granule < 1:
        return None
    first = target.offset // granule * granule
    end = round_up(target.offset + max(target.size, 1), granule)
    out: list[SharedBytes] = []
    known_end = 0
    for path, leaf in layout.leaves():
        if leaf.offset is None or leaf.size is None:
            # An unknown member starts after the known ones (in a struct); if those already
            # reach past the lines, it cannot touch them, otherwise it might.
            if layout.kind == "union" or known_end < end:
                return None
            break
        known_end = max(known_end, leaf.offset + leaf.size)
        if path == member or path.startswith(member + ".") or member.startswith(path + "."):
            continue
        lo, hi = max(leaf.offset, first), min(leaf.offset + leaf.size, end)
        if lo >= hi:
            continue
        ranges = []
        line = lo // granule * granule
        while line < hi:
            ranges.append((max(lo, line), min(hi, line + granule)))
            line += granule
        out.append(SharedBytes(path, leaf, tuple(ranges)))
    return out

