"""C struct layout for the LP64 kernel ABI (x86-64 and arm64): sizes, offsets, alignment, and
which members share a DMA granule (cache line) with a buffer.

Declarations come from the driver's files and the local headers they ``#include "..."``; types
from the kernel's own headers come from rules/kernel_types.toml.  A type that is neither makes the
layout unknown, and the layout says which type it was: sizes are never guessed.  Layouts that hold
bitfields, config-dependent kernel types or ``#if`` blocks are computed but marked approximate.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Iterator, Mapping

from tree_sitter import Node

from dmalint.cdecl import (
    NO_ATTRS, RECORD_SPECIFIERS, Attrs, CType, DeclFile, base_type, derive, is_bitmap_declarator,
    member_declarations,
)
from dmalint.consteval import ConstEval, Target, canonical_type_name, parse_expression
from dmalint.contracts.errors import RuleFileError
from dmalint.parse import text, unwrap_parens
from dmalint.source import Define, SourceError, SourceFile, read_source

MAX_INCLUDED_FILES = 64
LARGEST_ALIGNMENT = 16  # __attribute__((aligned)) with no argument, on x86-64 and arm64

# C's own types (and <stddef.h>/<stdint.h>, which tree-sitter knows as primitives): (size, align).
C_SCALARS: dict[str, tuple[int, int]] = {
    "char": (1, 1), "signed char": (1, 1), "unsigned char": (1, 1), "_Bool": (1, 1),
    "bool": (1, 1), "short": (2, 2), "unsigned short": (2, 2), "int": (4, 4),
    "unsigned int": (4, 4), "long": (8, 8), "unsigned long": (8, 8), "long long": (8, 8),
    "unsigned long long": (8, 8), "float": (4, 4), "double": (8, 8), "long double": (16, 16),
    "__int128": (16, 16), "unsigned __int128": (16, 16), "__int128_t": (16, 16),
    "__uint128_t": (16, 16), "size_t": (8, 8), "ssize_t": (8, 8), "ptrdiff_t": (8, 8),
    "intptr_t": (8, 8), "uintptr_t": (8, 8), "int8_t": (1, 1), "uint8_t": (1, 1),
    "int16_t": (2, 2), "uint16_t": (2, 2), "int32_t": (4, 4), "uint32_t": (4, 4),
    "int64_t": (8, 8), "uint64_t": (8, 8), "max_align_t": (16, 16),
}
POINTER = (8, 8)
ENUM = (4, 4)


# --- results -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Unknown:
    """Why a size is unknown: kind "type" (a type never declared where we looked), "constant"
    (an array bound or alignment we cannot evaluate), "parse" (the declaration did not parse),
    "recursive" (a struct containing itself) or "function" (a function type as a member)."""

    kind: str
    name: str
    member: str = ""

    def __str__(self) -> str:
        where = f" (member '{self.member}')" if self.member else ""
        return f"unknown {self.kind} '{self.name}'{where}"


@dataclass(frozen=True)
class FieldLayout:
    """One member.  offset is from the start of the containing struct (None after an unknown
    member); a bitfield's offset/size cover the bytes its bits touch."""

    name: str                 # "" for an anonymous struct/union member
    offset: int | None
    size: int | None
    align: int | None
    type_text: str
    line: int
    path: str
    bit_offset: int | None = None  # bitfields: first bit within the byte at `offset`
    bit_width: int | None = None
    flexible: bool = False         # a flexible (or zero-length) array: size 0, runs past the end
    layout: "StructLayout | None" = None  # a nested struct/union member
    unknown: Unknown | None = None

    @property
    def end(self) -> int | None:
        """One past the member's last byte."""
        return None if self.offset is None or self.size is None else self.offset + self.size


@dataclass(frozen=True)
class StructLayout:
    """A struct or union's layout.  When `unknown` is set, size and align are None and the
    members from the unknown one on have no offset."""

    name: str                 # "struct foo", "union bar", a typedef name, or "struct {...}"
    kind: str                 # "struct" or "union"
    size: int | None
    align: int | None
    fields: tuple[FieldLayout, ...]
    path: str
    line: int
    unknown: Unknown | None = None
    approximate: bool = False
    packed: bool = False

    def member(self, name: str) -> FieldLayout | None:
        """A direct member, or one reached through anonymous structs/unions (offset adjusted)."""
        for f in self.fields:
            if f.name == name:
                return f
            if not f.name and f.layout is not None:
                inner = f.layout.member(name)
                if inner is not None:
                    return _shifted(inner, f.offset)
        return None

    def leaves(self) -> Iterator[tuple[str, FieldLayout]]:
        """(dotted path, member) for every non-struct member, offsets from this struct's start."""
        for f in self.fields:
            if f.layout is not None and f.layout.fields:
                prefix = f"{f.name}." if f.name else ""
                for path, leaf in f.layout.leaves():
                    yield prefix + path, _shifted(leaf, f.offset)
            else:
                yield f.name, f


def _shifted(f: FieldLayout, base: int | None) -> FieldLayout:
    return replace(f, offset=None if base is None or f.offset is None else base + f.offset)


# --- the kernel type table -----------------------------------------------------------------

@dataclass(frozen=True)
class KernelType:
    """A type from a kernel header: its size and alignment on x86-64 (see the table's header)."""

    size: int
    align: int
    approximate: bool = False  # the size depends on the kernel configuration


class KernelTypes:
    """Kernel types and constants dmalint knows without reading kernel headers."""

    def __init__(self, types: Mapping[str, KernelType], constants: Mapping[str, int] | None = None):
        self.types = {_type_key(k): v for k, v in types.items()}
        self.constants = dict(constants or {})

    def get(self, name: str) -> KernelType | None:
        return self.types.get(_type_key(name))

    def extended(self, types: Mapping[str, object] | None = None,
                 constants: Mapping[str, int] | None = None) -> "KernelTypes":
        """These tables plus (or overridden by) a user's entries: name -> KernelType, a
        {size, align[, approximate]} table as in the TOML, or a (size, align) pair."""
        merged = dict(self.types)
        for name, value in (types or {}).items():
            merged[_type_key(name)] = _kernel_type(name, value, "extended()")
        return KernelTypes(merged, {**self.constants, **(constants or {})})


def _type_key(name: str) -> str:
    return canonical_type_name(" ".join(name.split()))


def _kernel_type(name: str, value: object, origin: str) -> KernelType:
    if isinstance(value, KernelType):
        return value
    if isinstance(value, (tuple, list)) and len(value) == 2:
        value = {"size": value[0], "align": value[1]}
    if not isinstance(value, Mapping):
        raise RuleFileError(origin, None, f"type '{name}' needs a table {{ size = N, align = N }}")
    size, align = value.get("size"), value.get("align")
    if not isinstance(size, int) or size < 0 or not isinstance(align, int) or align < 1 or (
            align & (align - 1)):
        raise RuleFileError(origin, None, f"type '{name}': size must be >= 0 and align a power of two")
    unknown_keys = set(value) - {"size", "align", "approximate", "note"}
    if unknown_keys:
        raise RuleFileError(origin, None, f"type '{name}': unknown keys {sorted(unknown_keys)}")
    return KernelType(size, align, bool(value.get("approximate", False)))


def kernel_types_from_data(data: dict, origin: str) -> KernelTypes:
    """Validate the parsed TOML of a kernel type table."""
    unknown_keys = set(data) - {"types", "constants"}
    if unknown_keys:
        raise RuleFileError(origin, None, f"unknown top-level keys {sorted(unknown_keys)}")
    types = {name: _kernel_type(name, value, origin) for name, value in data.get("types", {}).items()}
    constants = data.get("constants", {})
    for name, value in constants.items():
        if not isinstance(value, int):
            raise RuleFileError(origin, None, f"constant '{name}' must be an integer")
    return KernelTypes(types, constants)


@lru_cache(maxsize=1)
def load_kernel_types() -> KernelTypes:
    """The built-in table, rules/kernel_types.toml."""
    from dmalint.contracts.loader import read_toml

    res = resources.files("dmalint.rules") / "kernel_types.toml"
    return kernel_types_from_data(read_toml("rules/kernel_types.toml", res.read_text()),
                                  "rules/kernel_types.toml")


# --- the engine ----------------------------------------------------------------------------

@dataclass(frozen=True)
class _Info:
    """A resolved type: what layouts need to know."""

    size: int | None
    align: int | None
    unknown: Unknown | None = None
    approximate: bool = False
    layout: StructLayout | None = None
    length: int | None = None   # arrays: element count (None: flexible)
    flexible: bool = False

    @classmethod
    def missing(cls, kind: str, name: str) -> "_Info":
        return cls(None, None, Unknown(kind, name))


class LayoutEngine:
    """Layouts of the structs a driver declares.

    sources: the driver's files (their ``#include "..."`` headers are read too, resolved against
    the including file's directory, then include_dirs).  Names are resolved per translation
    unit: a source file and everything it includes."""

    def __init__(self, sources: list[SourceFile], include_dirs=(),
                 kernel_types: KernelTypes | None = None, target: Target = Target(),
                 cache: dict | None = None) -> None:
        from dmalint.contracts.loader import load_macro_tables

        self.target = target
        self.kernel_types = kernel_types if kernel_types is not None else load_kernel_types()
        self.include_dirs = [Path(d) for d in include_dirs]
        self._tables = load_macro_tables()
        self._cache = cache if cache is not None else {}  # disk path -> DeclFile (shareable)
        self._units: list[_Unit] = []
        for src in sources:
            self.unit(src)

    # public API
    def unit(self, src: SourceFile) -> "_Unit":
        """The translation unit rooted at a source file (built on first use)."""
        for unit in self._units:
            if unit.main.src is src or unit.main.src.path == src.path:
                return unit
        disk = Path(src.path)
        main = DeclFile.build(src, disk if disk.is_file() else None)
        unit = _Unit(self, [main] + self._includes(main))
        self._units.append(unit)
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
        unit = self.unit(src) if src is not None else (self._units[0] if self._units else None)
        if unit is None:
            unit = _Unit(self, [])
        return ConstEval(unit).eval_text(f"sizeof({type_text})")

    def field_path(self, struct: str | StructLayout, members: list[str]) -> FieldLayout | None:
        """The member reached by names through nested structs: offset from the outer struct."""
        layout = self.struct(struct) if isinstance(struct, str) else struct
        found: FieldLayout | None = None
        base: int | None = 0
        for name in members:
            if layout is None:
                return None
            found = layout.member(name)
            if found is None:
                return None
            found = _shifted(found, base)
            base, layout = found.offset, found.layout
        return found

    def declared_structs(self, src: SourceFile | None = None) -> list[StructLayout]:
        """Every struct/union defined in the given source (all sources by default), with a name
        or a typedef name, in source order; anonymous members are reported inside their parent."""
        out: list[StructLayout] = []
        for unit in self._units:
            if src is not None and unit.main.src.path != src.path:
                continue
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


class _Unit:
    """A translation unit: name tables merged over its files (first declaration wins); also the
    Scope the constant evaluator asks about names, types and sizes."""

    def __init__(self, engine: LayoutEngine, files: list[DeclFile]) -> None:
        self.engine = engine
        self.files = files
        self.target = engine.target
        self.main = files[0] if files else None
        self.tags: dict[str, tuple[Node, DeclFile]] = {}
        self.typedefs: dict[str, tuple[Node, Node, DeclFile]] = {}
        self.enumerators: dict[str, tuple[Node, DeclFile]] = {}
        self.globals: dict[str, tuple[Node, Node, DeclFile]] = {}
        self.defines: dict[str, Define] = {}
        for f in files:
            for k, v in f.tags.items():
                self.tags.setdefault(k, (v, f))
            for k, (td, d) in f.typedefs.items():
                self.typedefs.setdefault(k, (td, d, f))
            for k, v in f.enumerators.items():
                self.enumerators.setdefault(k, (v, f))
            for k, (decl, d) in f.globals.items():
                self.globals.setdefault(k, (decl, d, f))
            for k, v in f.src.defines.items():
                self.defines.setdefault(k, v)
        self._layouts: dict[tuple, _Info] = {}
        self._enum_values: dict[str, int | None] = {}
        self._in_progress: set[tuple] = set()
        self._eval = ConstEval(self)

    # --- Scope for the constant evaluator
    def define(self, name: str) -> Define | None:
        return self.defines.get(name)

    def enum_value(self, name: str) -> int | None:
        if name not in self._enum_values:
            found = self.enumerators.get(name)
            if found is None:
                return None
            self._enum_values[name] = None  # a self-referencing enum stays unknown
            self._evaluate_enum(found[0])
        return self._enum_values.get(name)

    def _evaluate_enum(self, spec: Node) -> None:
        value: int | None = -1
        for enumerator in spec.child_by_field_name("body").named_children:
            if enumerator.type != "enumerator":
                continue
            given = enumerator.child_by_field_name("value")
            if given is not None:
                value = self._eval.eval(given)
            elif value is not None:
                value += 1
            self._enum_values[text(enumerator.child_by_field_name("name"))] = value

    def constant(self, name: str) -> int | None:
        return self.engine.kernel_types.constants.get(name)

    def is_type(self, name: str) -> bool:
        name = canonical_type_name(name)
        return (name in C_SCALARS or name in self.typedefs or self.engine.kernel_types.get(name)
                is not None or _joined_tag(name) is not None)

    def type_size(self, node: Node) -> int | None:
        return self.info(self._type_of_type_node(node)).size

    def type_align(self, node: Node) -> int | None:
        return self.info(self._type_of_type_node(node)).align

    def expr_size(self, node: Node) -> int | None:
        ctype = self.expr_type(node)
        return self.info(ctype).size if ctype is not None else None

    def expr_length(self, node: Node) -> int | None:
        ctype = self.expr_type(node)
        ctype = self._through_typedefs(ctype)
        if ctype is None or ctype.kind != "array":
            return None
        length = self._array_length(ctype)
        return length if isinstance(length, int) else None

    def member_offset(self, type_node: Node, member: str) -> tuple[int, int] | None:
        layout = self.info(self._type_of_type_node(type_node)).layout
        found = self.engine.field_path(layout, member.replace(" ", "").split(".")) if layout else None
        if found is None or found.offset is None or found.size is None:
            return None
        return found.offset, found.size

    # --- types
    def _type_of_type_node(self, node: Node) -> CType:
        """A type_descriptor, or a name used as a type (`u32`, `struct_foo` from a macro argument)."""
        file = self.main
        if node.type == "type_descriptor":
            base = base_type(node.child_by_field_name("type"), file)
            return derive(base, node.child_by_field_name("declarator"), file)[1]
        name = canonical_type_name(text(node))
        return CType("name", _joined_tag(name) or name, file=file)

    def info(self, ctype: CType) -> _Info:
        """Size, alignment and (for records) layout of a type."""
        kind = ctype.kind
        if kind == "pointer":
            return _Info(*POINTER)
        if kind == "function":
            return _Info.missing("function", ctype.spelled())
        if kind == "array":
            return self._array_info(ctype)
        if kind == "record":
            return self._record_info(ctype.node, ctype.file, ctype.attrs or NO_ATTRS)
        return self._named_info(ctype)

    def _array_length(self, ctype: CType) -> int | Unknown | None:
        """An array's element count: None for [] (flexible), Unknown if it cannot be evaluated."""
        if ctype.count is not None:
            return ctype.count
        if ctype.init is not None:
            length = self._designated_length(ctype.init)
            return Unknown("constant", "designated initializer") if length is None else length
        if ctype.dim is None:
            return None
        length = ConstEval(self).eval(ctype.dim)
        if length is None or length < 0:
            return Unknown("constant", text(ctype.dim))
        return (length + 63) // 64 if ctype.bitmap else length

    def _array_info(self, ctype: CType) -> _Info:
        element = self.info(ctype.of)
        if element.unknown is not None:
            return element
        length = self._array_length(ctype)
        if isinstance(length, Unknown):
            return _Info(None, None, length)
        if length is None:  # [] : a flexible array member
            return _Info(0, element.align, approximate=element.approximate, flexible=True)
        return _Info(length * element.size, element.align, approximate=element.approximate,
                     length=length, flexible=length == 0)

    def _designated_length(self, init: Node) -> int | None:
        length = 0
        for item in init.named_children:
            if item.type == "initializer_pair":
                designator = item.child_by_field_name("designator")
                if designator is None or designator.type != "subscript_designator":
                    return None
                index = self._eval.eval(designator.named_children[0]) if designator.named_child_count else None
                if index is None:
                    return None
                length = max(length, index + 1)
            elif item.type != "comment":
                length += 1
        return length

    def _named_info(self, ctype: CType) -> _Info:
        name = ctype.name
        if name in C_SCALARS:
            return _Info(*C_SCALARS[name])
        if name.startswith(("struct ", "union ")):
            found = self.tags.get(name)
            if found is not None:
                return self._record_info(found[0], found[1], None)
            return self._kernel_info(name)
        if name.startswith("enum"):
            return _Info(*ENUM)
        if name in self.typedefs:
            return self._typedef_info(name)
        return self._kernel_info(name)

    def _kernel_info(self, name: str) -> _Info:
        known = self.engine.kernel_types.get(name)
        if known is None:
            return _Info.missing("type", name)
        return _Info(known.size, known.align, approximate=known.approximate)

    def _typedef_info(self, name: str) -> _Info:
        typedef, decl, file = self.typedefs[name]
        key = ("typedef", name)
        if key in self._in_progress:
            return _Info.missing("recursive", name)
        self._in_progress.add(key)
        try:
            base = base_type(typedef.child_by_field_name("type"), file)
            info = self.info(derive(base, decl, file)[1])
        finally:
            self._in_progress.discard(key)
        if info.layout is not None and base.kind == "record" and info.layout.name.endswith("{...}"):
            info = replace(info, layout=replace(info.layout, name=name))
        return info

    def _record_info(self, spec: Node, file: DeclFile, attrs: Attrs | None) -> _Info:
        key = (id(file), spec.start_byte, spec.end_byte)
        if key in self._layouts:
            return self._layouts[key]
        if key in self._in_progress:
            return _Info.missing("recursive", _record_name(spec))
        self._in_progress.add(key)
        try:
            from dmalint.cdecl import record_attrs

            layout = _RecordBuilder(self, spec, file, record_attrs(spec, file.src)).build()
        finally:
            self._in_progress.discard(key)
        info = _Info(layout.size, layout.align, layout.unknown, layout.approximate, layout)
        self._layouts[key] = info
        return info

    def record_named(self, name: str) -> StructLayout | None:
        """A struct/union by tag ('foo', 'struct foo') or typedef name."""
        name = " ".join(name.split())
        candidates = [name] if name.startswith(("struct ", "union ")) else [
            f"struct {name}", f"union {name}"]
        for tag in candidates:
            if tag in self.tags:
                spec, file = self.tags[tag]
                return self._record_info(spec, file, None).layout
        if name in self.typedefs:
            return self._typedef_info(name).layout
        return None

    def declared_records(self) -> list[StructLayout]:
        """Records defined in the unit's main file that have a tag or a typedef name."""
        out = []
        main = self.main
        typedef_of = {}
        for name, (td, _decl, f) in self.typedefs.items():
            spec = td.child_by_field_name("type")
            if f is main and spec is not None and spec.type in RECORD_SPECIFIERS:
                typedef_of.setdefault((spec.start_byte, spec.end_byte), name)
        for spec in main.records:
            name = spec.child_by_field_name("name")
            alias = typedef_of.get((spec.start_byte, spec.end_byte))
            if name is None and alias is None:
                continue
            layout = self._record_info(spec, main, None).layout
            if name is None and alias is not None:
                layout = replace(layout, name=alias)
            out.append(layout)
        return out

    # --- expressions (for sizeof(expr) and ARRAY_SIZE)
    def expr_type(self, node: Node) -> CType | None:
        """The declared type of an lvalue expression, or None."""
        node = unwrap_parens(node)
        kind = node.type
        if kind == "identifier":
            return self._variable_type(node)
        if kind == "field_expression":
            outer = self.expr_type(node.child_by_field_name("argument"))
            arrow = text(node.child_by_field_name("operator")) == "->"
            if outer is not None and arrow:
                outer = self._target(outer)
            return self._member_type(outer, text(node.child_by_field_name("field"))) if outer else None
        if kind == "subscript_expression":
            outer = self.expr_type(node.child_by_field_name("argument"))
            return self._target(outer) if outer is not None else None
        if kind == "pointer_expression":
            inner = self.expr_type(node.child_by_field_name("argument"))
            if inner is None:
                return None
            op = text(node.child_by_field_name("operator"))
            return CType("pointer", of=inner, file=self.main) if op == "&" else self._target(inner)
        if kind == "cast_expression":
            return self._type_of_type_node(node.child_by_field_name("type"))
        return None

    def _target(self, ctype: CType) -> CType | None:
        """What a pointer points to or an array holds, through typedefs."""
        ctype = self._through_typedefs(ctype)
        return ctype.of if ctype is not None and ctype.kind in ("pointer", "array") else None

    def _through_typedefs(self, ctype: CType | None) -> CType | None:
        seen = 0
        while ctype is not None and ctype.kind == "name" and ctype.name in self.typedefs and seen < 16:
            typedef, decl, file = self.typedefs[ctype.name]
            ctype = derive(base_type(typedef.child_by_field_name("type"), file), decl, file)[1]
            seen += 1
        return ctype

    def _member_type(self, record: CType, member: str) -> CType | None:
        record = self._through_typedefs(record)
        if record is None:
            return None
        if record.kind == "name" and record.name in self.tags:
            spec, file = self.tags[record.name]
        elif record.kind == "record":
            spec, file = record.node, record.file
        else:
            return None
        return _find_member_type(spec, file, member)

    def _variable_type(self, ident: Node) -> CType | None:
        """The declared type of a local, a parameter (arrays decay) or a file-scope variable."""
        name = text(ident)
        node = ident
        while node.parent is not None:
            node = node.parent
            if node.type in ("compound_statement", "for_statement"):
                for child in node.named_children:
                    if child.start_byte >= ident.start_byte:
                        break
                    if child.type == "declaration":
                        found = self._declared(child, name)
                        if found is not None:
                            return found
            elif node.type == "function_definition":
                params = _parameters(node)
                for param in params:
                    found = self._declared(param, name)
                    if found is not None:
                        return CType("pointer", of=found.of, file=self.main) if found.kind == "array" else found
        found_global = self.globals.get(name)
        if found_global is not None:
            decl, declarator, file = found_global
            return self._declarator_type(decl, declarator, file)
        return None

    def _declared(self, decl: Node, name: str) -> CType | None:
        for declarator in decl.children_by_field_name("declarator"):
            declared_name, _ = derive(CType("name"), declarator, self.main)
            if declared_name == name:
                return self._declarator_type(decl, declarator, self.main)
        return None

    def _declarator_type(self, decl: Node, declarator: Node, file: DeclFile) -> CType:
        base = base_type(decl.child_by_field_name("type"), file)
        ctype = derive(base, declarator, file)[1]
        if ctype.kind == "array" and is_bitmap_declarator(decl, file.src):
            ctype.bitmap = True
        return ctype


def _parameters(function: Node) -> list[Node]:
    decl = function.child_by_field_name("declarator")
    while decl is not None and decl.type != "function_declarator":
        decl = decl.child_by_field_name("declarator")
    params = decl.child_by_field_name("parameters") if decl is not None else None
    return [p for p in params.named_children if p.type == "parameter_declaration"] if params else []


def _joined_tag(name: str) -> str | None:
    """'struct_foo' (a type macro argument joined by neutralisation) -> 'struct foo'."""
    for keyword in ("struct", "union", "enum"):
        if name.startswith(keyword + "_") and len(name) > len(keyword) + 1:
            return f"{keyword} {name[len(keyword):].lstrip('_')}"
    return None


def _record_name(spec: Node) -> str:
    keyword = "union" if spec.type == "union_specifier" else "struct"
    name = spec.child_by_field_name("name")
    return f"{keyword} {text(name)}" if name is not None else f"{keyword} {{...}}"


def _find_member_type(spec: Node, file: DeclFile, member: str) -> CType | None:
    """The declared type of a member, looking into anonymous structs/unions."""
    body = spec.child_by_field_name("body")
    if body is None:
        return None
    for anon, declarator, _width, _attrs, decl in member_declarations(body, file.src):
        type_node = decl.child_by_field_name("type")
        if anon == "":
            found = _find_member_type(type_node, file, member)
            if found is not None:
                return found
            continue
        name, ctype = derive(base_type(type_node, file), declarator, file)
        if name == member:
            if ctype.kind == "array" and is_bitmap_declarator(decl, file.src):
                ctype.bitmap = True
            return ctype
    return None


def _damaged(body: Node) -> Node | None:
    """The first ERROR or MISSING node in a struct body (an unnamed bitfield's missing name is
    how tree-sitter spells `int :3;` and is not damage)."""
    if not body.has_error:
        return None
    stack = [body]
    while stack:
        node = stack.pop()
        if node.type == "ERROR":
            return node
        if node.is_missing:
            nxt = node.next_sibling
            if not (node.type == "field_identifier" and nxt is not None and nxt.type == "bitfield_clause"):
                return node
        stack.extend(c for c in node.children if c.has_error or c.is_missing)
    return None


class _RecordBuilder:
    """The System V / AAPCS64 struct layout algorithm for one struct or union body."""

    def __init__(self, unit: _Unit, spec: Node, file: DeclFile, attrs: Attrs) -> None:
        self.unit, self.spec, self.file, self.attrs = unit, spec, file, attrs
        self.kind = "union" if spec.type == "union_specifier" else "struct"
        self.name = _record_name(spec)
        self.packed = attrs.packed
        self.fields: list[FieldLayout] = []
        self.unknown: Unknown | None = None
        self.approximate = False

    def _alignment(self, attrs: Attrs) -> int | None:
        """The largest of the aligned(...) arguments (1 if none); None if one cannot be evaluated."""
        best = 1
        for arg in attrs.aligned:
            value = LARGEST_ALIGNMENT if arg is None else ConstEval(self.unit).eval_text(arg)
            if value is None or value < 1:
                self.unknown = self.unknown or Unknown("constant", str(arg))
                return None
            best = max(best, value)
        return best

    def build(self) -> StructLayout:
        src = self.file.src
        line = src.position(self.spec.start_byte)[0]
        body = self.spec.child_by_field_name("body")
        damage = _damaged(body)
        if damage is not None:
            snippet = " ".join(src.raw[damage.start_byte:damage.end_byte + 40].decode(
                "utf-8", "replace").split())[:60]
            return StructLayout(self.name, self.kind, None, None, (), src.path, line,
                                Unknown("parse", snippet))
        raw_body = src.raw[body.start_byte:body.end_byte]
        self.approximate = b"#if" in raw_body or b"# if" in raw_body
        bits = 0        # struct: next free bit; union: largest member in bits
        max_align = 1
        for anon, declarator, width, attrs, decl in member_declarations(body, src):
            type_node = decl.child_by_field_name("type")
            base = base_type(type_node, self.file)
            if anon == "":
                name, ctype = "", base
            else:
                name, ctype = derive(base, declarator, self.file)
                if ctype.kind == "array" and is_bitmap_declarator(decl, src):
                    ctype.bitmap = True
            if width is not None:
                bits, max_align = self._bitfield(name, ctype, width, attrs, decl, bits, max_align)
            else:
                bits, max_align = self._member(name, ctype, attrs, decl, bits, max_align)
            if self.unknown is not None:
                break
        return self._finish(bits, max_align, line)

    def _finish(self, bits: int, max_align: int, line: int) -> StructLayout:
        src = self.file.src
        if self.unknown is not None:
            return StructLayout(self.name, self.kind, None, None, tuple(self.fields), src.path,
                                line, self.unknown, self.approximate, self.packed)
        record_align = self._alignment(self.attrs)
        if record_align is None:
            return StructLayout(self.name, self.kind, None, None, tuple(self.fields), src.path,
                                line, self.unknown, self.approximate, self.packed)
        align = max(max_align, record_align)
        size = _round_up((bits + 7) // 8, align)
        return StructLayout(self.name, self.kind, size, align, tuple(self.fields), src.path, line,
                            None, self.approximate, self.packed)

    def _resolve(self, name: str, ctype: CType) -> _Info | None:
        info = self.unit.info(ctype)
        if info.unknown is not None:
            inner = info.unknown
            where = name + ("." + inner.member if inner.member else "") if name else inner.member
            self.unknown = Unknown(inner.kind, inner.name, where)
            return None
        self.approximate = self.approximate or info.approximate
        return info

    def _unknown_field(self, name: str, ctype: CType, offset: int | None, decl: Node) -> None:
        self.fields.append(FieldLayout(name, offset, None, None, ctype.spelled(),
                                       self.file.src.position(decl.start_byte)[0],
                                       self.file.src.path, unknown=self.unknown))

    def _member(self, name: str, ctype: CType, attrs: Attrs, decl: Node, bits: int,
                max_align: int) -> tuple[int, int]:
        start = (bits + 7) // 8 if self.kind == "struct" else 0
        info = self._resolve(name, ctype)
        extra = self._alignment(attrs) if info is not None else None
        if info is None or extra is None:
            self._unknown_field(name, ctype, None, decl)
            return bits, max_align
        natural = 1 if (self.packed or attrs.packed) else info.align
        align = max(natural, extra)
        offset = _round_up(start, align) if self.kind == "struct" else 0
        self.fields.append(FieldLayout(name, offset, info.size, align, ctype.spelled(),
                                       self.file.src.position(decl.start_byte)[0],
                                       self.file.src.path, flexible=info.flexible,
                                       layout=info.layout))
        end_bits = (offset + info.size) * 8
        bits = end_bits if self.kind == "struct" else max(bits, end_bits)
        return bits, max(max_align, align)

    def _bitfield(self, name: str, ctype: CType, width_node: Node, attrs: Attrs, decl: Node,
                  bits: int, max_align: int) -> tuple[int, int]:
        self.approximate = True
        info = self._resolve(name or "<unnamed bitfield>", ctype)
        width = ConstEval(self.unit).eval(width_node)
        if info is not None and (width is None or width < 0 or width > info.size * 8):
            self.unknown = Unknown("constant", text(width_node), name)
        if info is None or self.unknown is not None:
            self._unknown_field(name, ctype, None, decl)
            return bits, max_align
        unit_bits = info.size * 8
        start = bits if self.kind == "struct" else 0
        if width == 0:  # `int :0;` ends the storage unit
            return (_round_up(start, info.align * 8) if self.kind == "struct" else bits), max_align
        packed = self.packed or attrs.packed
        if not packed and start // unit_bits != (start + width - 1) // unit_bits:
            start = _round_up(start, info.align * 8)
        if name:
            first = start // 8
            self.fields.append(FieldLayout(name, first, (start % 8 + width + 7) // 8,
                                           1 if packed else info.align, ctype.spelled(),
                                           self.file.src.position(decl.start_byte)[0],
                                           self.file.src.path, bit_offset=start % 8,
                                           bit_width=width))
            if not packed:
                max_align = max(max_align, info.align)
        end = start + width
        return (end if self.kind == "struct" else max(bits, end)), max_align


def _round_up(value: int, align: int) -> int:
    return (value + align - 1) // align * align


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
    target = _leaf_or_member(layout, member)
    if target is None or target.offset is None or target.size is None or granule < 1:
        return None
    first = target.offset // granule * granule
    end = _round_up(target.offset + max(target.size, 1), granule)
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


def _leaf_or_member(layout: StructLayout, member: str) -> FieldLayout | None:
    found: FieldLayout | None = None
    base: int | None = 0
    current: StructLayout | None = layout
    for name in member.split("."):
        if current is None:
            return None
        found = current.member(name)
        if found is None:
            return None
        found = _shifted(found, base)
        base, current = found.offset, found.layout
    return found
