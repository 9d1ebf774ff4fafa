"""C declarations as the layout engine needs them: the type a declarator declares, the layout
attributes written around it, and each file's table of tags, typedefs, enumerators and globals.

Kernel annotations (``__packed``, ``__aligned(n)``, ``____cacheline_aligned``) are blanked in the
neutralised code, so attributes are read from the original bytes, which sit at the same offsets.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from tree_sitter import Node, Tree

from dmalint.parse import parse, text
from dmalint.source import SourceFile

RECORD_SPECIFIERS = ("struct_specifier", "union_specifier")
_DECLARATOR_KINDS = ("pointer_declarator", "array_declarator", "function_declarator",
                     "parenthesized_declarator", "init_declarator", "abstract_pointer_declarator",
                     "abstract_array_declarator", "abstract_function_declarator",
                     "abstract_parenthesized_declarator")
# Declarator macros whose array bound counts bits (source.py rewrites DECLARE_BITMAP(x, n) to
# `unsigned long x[n]`; the kernel declares BITS_TO_LONGS(n) longs).
_BITMAP_MACROS = (b"DECLARE_BITMAP",)


@dataclass(eq=False)
class CType:
    """A type as written: resolved to a size only when asked (pointers never need their target).

    kind: "name" (``u32``, ``struct foo``, ``foo_t``), "pointer", "array", "function", or
    "record" (a struct/union defined in place; ``node`` is its specifier)."""

    kind: str
    name: str = ""
    of: "CType | None" = None
    dim: Node | None = None          # array bound expression; None for [] (see count)
    count: int | None = None         # array length known from an initializer
    init: Node | None = None         # a designated initializer list giving the length
    bitmap: bool = False             # the bound counts bits (DECLARE_BITMAP)
    node: Node | None = None         # record specifier with a body
    file: "DeclFile | None" = None   # where names and bounds in this type are resolved
    attrs: "Attrs | None" = None     # attributes on the type itself (typedef or record)

    def spelled(self) -> str:
        """A readable spelling, for messages and FieldLayout.type_text."""
        if self.kind == "pointer":
            if self.of is not None and self.of.kind == "function":
                return (self.of.of.spelled() if self.of.of else "?") + " (*)()"
            return (self.of.spelled() if self.of else "?") + " *"
        if self.kind == "array":
            bounds, element = "", self
            while element is not None and element.kind == "array":
                bound = text(element.dim) if element.dim is not None else (
                    str(element.count) if element.count is not None else "")
                bounds += f"[BITS_TO_LONGS({bound})]" if element.bitmap else f"[{bound}]"
                element = element.of
            return (element.spelled() if element else "?") + bounds
        if self.kind == "function":
            return (self.of.spelled() if self.of else "?") + " ()"
        if self.kind == "record":
            keyword = "union" if self.node is not None and self.node.type == "union_specifier" else "struct"
            name = self.node.child_by_field_name("name") if self.node is not None else None
            return f"{keyword} {text(name)}" if name is not None else f"{keyword} {{...}}"
        return self.name


@dataclass(frozen=True)
class Attrs:
    """Layout attributes: packed, and aligned(expression text) (None: the largest alignment)."""

    packed: bool = False
    aligned: tuple[str | None, ...] = ()

    def __or__(self, other: "Attrs") -> "Attrs":
        return Attrs(self.packed or other.packed, self.aligned + other.aligned)

    def __bool__(self) -> bool:
        return self.packed or bool(self.aligned)


NO_ATTRS = Attrs()


# --- attributes in the original bytes --------------------------------------------------------

_LEXICAL = re.compile(rb"//[^\n]*|/\*.*?(?:\*/|\Z)|\"(?:\\.|[^\"\\\n])*\"?|'(?:\\.|[^'\\\n])*'?", re.S)
_ATTR_WORD = re.compile(
    rb"\b(__packed|____cacheline_aligned_in_smp|____cacheline_aligned|__cacheline_aligned_in_smp|"
    rb"__cacheline_aligned|____cacheline_internodealigned_in_smp|__aligned_largest|__aligned|"
    rb"__attribute__|__attribute)\b"
)
_CACHELINE = "L1_CACHE_BYTES"  # consteval resolves it from the target


def attributes_in(raw: bytes, start: int, end: int,
                  skip: tuple[tuple[int, int], ...] = ()) -> list[tuple[int, Attrs]]:
    """Layout attributes written in raw[start:end] outside the `skip` spans, with their offsets."""
    span = bytearray(_LEXICAL.sub(lambda m: b" " * len(m.group(0)), raw[start:end]))
    for s, e in skip:
        lo, hi = max(s, start) - start, min(e, end) - start
        if lo < hi:
            span[lo:hi] = b" " * (hi - lo)
    found: list[tuple[int, Attrs]] = []
    data = bytes(span)
    for m in _ATTR_WORD.finditer(data):
        word = m.group(1)
        if word == b"__packed":
            found.append((start + m.start(), Attrs(packed=True)))
        elif b"cacheline" in word:
            found.append((start + m.start(), Attrs(aligned=(_CACHELINE,))))
        elif word == b"__aligned_largest":
            found.append((start + m.start(), Attrs(aligned=(None,))))
        else:
            args = _paren_args(data, m.end())
            if args is None:
                continue
            if word == b"__aligned":
                found.append((start + m.start(), Attrs(aligned=(args.decode("utf-8", "replace"),))))
            else:
                attrs = _gnu_attributes(args)
                if attrs:
                    found.append((start + m.start(), attrs))
    return found


def _paren_args(data: bytes, pos: int) -> bytes | None:
    """The text inside the parentheses opening at or after pos (whitespace allowed)."""
    while pos < len(data) and data[pos:pos + 1].isspace():
        pos += 1
    if data[pos:pos + 1] != b"(":
        return None
    depth = 0
    for i in range(pos, len(data)):
        if data[i] == 0x28:
            depth += 1
        elif data[i] == 0x29:
            depth -= 1
            if depth == 0:
                return data[pos + 1:i]
    return None


def _split_top(data: bytes) -> list[bytes]:
    """Split on commas outside parentheses."""
    parts, depth, last = [], 0, 0
    for i, c in enumerate(data):
        if c == 0x28:
            depth += 1
        elif c == 0x29:
            depth -= 1
        elif c == 0x2C and depth == 0:
            parts.append(data[last:i])
            last = i + 1
    parts.append(data[last:])
    return [p.strip() for p in parts if p.strip()]


def _gnu_attributes(args: bytes) -> Attrs:
    """The layout part of ``__attribute__((packed, aligned(8)))``."""
    inner = args.strip()
    if inner.startswith(b"(") and inner.endswith(b")"):
        inner = inner[1:-1]
    out = NO_ATTRS
    for item in _split_top(inner):
        m = re.match(rb"(\w+)\s*(\((.*)\))?$", item, re.S)
        if not m:
            continue
        name = m.group(1).strip(b"_")
        if name == b"packed":
            out = out | Attrs(packed=True)
        elif name == b"aligned":
            arg = m.group(3)
            out = out | Attrs(aligned=(arg.decode("utf-8", "replace").strip() if arg else None,))
    return out


def record_attrs(spec: Node, src: SourceFile) -> Attrs:
    """Attributes on a struct/union definition: between the keyword and '{', and after '}' up to
    the first declarator (``typedef struct {...} __packed foo_t;``).  GCC applies attributes
    after a declarator to what it declares (see typedef_alignment)."""
    body = spec.child_by_field_name("body")
    if body is None:
        return NO_ATTRS
    parent = spec.parent
    stop = None
    if parent is not None and parent.type in ("field_declaration", "declaration", "type_definition"):
        decls = parent.children_by_field_name("declarator")
        stop = decls[0].start_byte if decls else parent.end_byte
    if stop is None:  # `struct foo {...} __packed;` at file level: up to the ';'
        semi = src.code.find(b";", body.end_byte, body.end_byte + 512)
        stop = semi if semi >= 0 else body.end_byte
    out = NO_ATTRS
    for _, attrs in attributes_in(src.raw, spec.start_byte, body.start_byte):
        out = out | attrs
    for _, attrs in attributes_in(src.raw, body.end_byte, stop):
        out = out | attrs
    return out


def declarator_attrs(decl: Node, declarator: Node, src: SourceFile) -> Attrs:
    """Attributes written after one declarator of a declaration, up to the next declarator
    (``typedef u32 wide_t __aligned(8);``: the typedef is 8-aligned, its size stays 4)."""
    declarators = decl.children_by_field_name("declarator")
    later = [d.start_byte for d in declarators if d.start_byte > declarator.start_byte]
    out = NO_ATTRS
    for _, attrs in attributes_in(src.raw, declarator.start_byte, min(later, default=decl.end_byte)):
        out = out | attrs
    return out


# --- declarators -----------------------------------------------------------------------------

def derive(base: CType, decl: Node | None, file: "DeclFile") -> tuple[str, CType]:
    """(name, type) declared by a declarator over a base type; C's inside-out reading."""
    ctype = base
    while decl is not None:
        kind = decl.type
        if kind in ("identifier", "field_identifier", "type_identifier"):
            return text(decl), ctype
        if kind in ("pointer_declarator", "abstract_pointer_declarator"):
            ctype = CType("pointer", of=ctype, file=file)
        elif kind in ("array_declarator", "abstract_array_declarator"):
            ctype = CType("array", of=ctype, dim=decl.child_by_field_name("size"), file=file)
        elif kind in ("function_declarator", "abstract_function_declarator"):
            ctype = CType("function", of=ctype, file=file)
        elif kind in ("parenthesized_declarator", "abstract_parenthesized_declarator"):
            decl = next((c for c in decl.named_children if c.type not in ("type_qualifier",
                                                                          "attribute_specifier")), None)
            continue
        elif kind == "init_declarator":
            name, ctype = derive(ctype, decl.child_by_field_name("declarator"), file)
            return name, _sized_by_initializer(ctype, decl.child_by_field_name("value"), file)
        else:
            return "", ctype
        decl = decl.child_by_field_name("declarator")
    return "", ctype


def _sized_by_initializer(ctype: CType, value: Node | None, file: "DeclFile") -> CType:
    """`T x[] = {...}` or `char s[] = "..."`: the array length the initializer gives."""
    if ctype.kind != "array" or ctype.dim is not None or value is None:
        return ctype
    count: int | None = None
    if value.type == "string_literal":
        from dmalint.consteval import _string_size  # the same rule as sizeof("...")
        count = _string_size(value)
    elif value.type == "initializer_list":
        items = [c for c in value.named_children if c.type != "comment"]
        if all(c.type != "initializer_pair" for c in items):
            count = len(items)
        else:
            # designated ([IDX] = v): the engine evaluates the indices
            return CType("array", of=ctype.of, init=value, file=file)
    return CType("array", of=ctype.of, count=count, file=file)


def base_type(spec: Node | None, file: "DeclFile") -> CType:
    """The CType of a type specifier node (a record defined in place keeps its node)."""
    if spec is None:
        return CType("name", "", file=file)
    kind = spec.type
    if kind in RECORD_SPECIFIERS or kind == "enum_specifier":
        keyword = {"struct_specifier": "struct", "union_specifier": "union"}.get(kind, "enum")
        name = spec.child_by_field_name("name")
        if spec.child_by_field_name("body") is not None and kind != "enum_specifier":
            return CType("record", node=spec, file=file, attrs=record_attrs(spec, file.src))
        if name is None:
            return CType("name", "enum" if kind == "enum_specifier" else f"{keyword} <anonymous>", file=file)
        return CType("name", f"{keyword} {text(name)}", file=file)
    if kind in ("primitive_type", "sized_type_specifier", "type_identifier"):
        from dmalint.consteval import canonical_type_name
        return CType("name", canonical_type_name(text(spec)), file=file)
    return CType("name", text(spec) or kind, file=file)


def is_bitmap_declarator(decl_node: Node, src: SourceFile) -> bool:
    """Whether a declaration was written DECLARE_BITMAP(...) (its bound counts bits)."""
    head = src.raw[decl_node.start_byte:decl_node.start_byte + 20].lstrip()
    return head.startswith(_BITMAP_MACROS)


# --- a file's declarations -------------------------------------------------------------------

@dataclass(eq=False)
class DeclFile:
    """One parsed file and the names it declares at file scope."""

    src: SourceFile
    tree: Tree
    disk: Path | None
    tags: dict[str, Node] = field(default_factory=dict)          # "struct foo" -> specifier
    typedefs: dict[str, tuple[Node, Node]] = field(default_factory=dict)  # name -> (typedef, declarator)
    enumerators: dict[str, Node] = field(default_factory=dict)   # constant -> enum_specifier
    globals: dict[str, tuple[Node, Node]] = field(default_factory=dict)   # name -> (declaration, declarator)
    records: list[Node] = field(default_factory=list)            # every struct/union with a body

    @classmethod
    def build(cls, src: SourceFile, disk: Path | None) -> "DeclFile":
        """Parse and collect; function bodies and initializers are not entered."""
        out = cls(src, parse(src.code), disk)
        out._collect(out.tree.root_node)
        return out

    def _collect(self, root: Node) -> None:
        # Each node with its parent's type: the walk knows it, while Node.parent searches
        # down from the root every time it is asked (a third of this walk's time in a large
        # header).
        stack: list[tuple[Node, str | None]] = [(root, root.parent.type if root.parent else None)]
        while stack:
            node, parent_type = stack.pop()
            kind = node.type
            if kind in ("compound_statement", "initializer_list", "argument_list",
                        "parameter_list", "string_literal", "comment"):
                continue
            if kind in RECORD_SPECIFIERS and node.child_by_field_name("body") is not None:
                self.records.append(node)
                name = node.child_by_field_name("name")
                tag = ("struct " if kind == "struct_specifier" else "union ") + text(name)
                if name is not None:
                    self.tags.setdefault(tag, node)
            elif kind == "enum_specifier" and node.child_by_field_name("body") is not None:
                for enumerator in node.child_by_field_name("body").named_children:
                    if enumerator.type == "enumerator":
                        self.enumerators.setdefault(text(enumerator.child_by_field_name("name")), node)
                continue
            elif kind == "type_definition":
                for decl in node.children_by_field_name("declarator"):
                    name, _ = derive(CType("name"), decl, self)
                    if name:
                        self.typedefs.setdefault(name, (node, decl))
            elif kind == "declaration" and parent_type in (
                    "translation_unit", "preproc_if", "preproc_ifdef", "preproc_else",
                    "preproc_elif", "ERROR", "declaration_list"):
                for decl in node.children_by_field_name("declarator"):
                    if _declares_function(decl):
                        continue
                    name, _ = derive(CType("name"), decl, self)
                    if name:
                        self.globals.setdefault(name, (node, decl))
            stack.extend((child, kind) for child in reversed(node.children))


def _declares_function(decl: Node) -> bool:
    """`int f(void)` declares a function; `int (*f)(void)` declares a pointer."""
    while decl is not None:
        if decl.type == "function_declarator":
            return True
        if decl.type in ("pointer_declarator", "array_declarator"):
            return False
        if decl.type == "parenthesized_declarator":
            decl = decl.named_children[0] if decl.named_child_count else None
            continue
        decl = decl.child_by_field_name("declarator")
    return False


def member_declarations(body: Node, src: SourceFile):
    """(name, declarator, bit width node, attributes, declaration node) of a struct body's members;
    an anonymous struct/union member has name "" and declarator None."""
    for decl in body.named_children:
        if decl.type != "field_declaration":
            continue
        type_node = decl.child_by_field_name("type")
        declarators: list[tuple[Node, Node | None]] = []
        for index, child in enumerate(decl.children):
            if decl.field_name_for_child(index) == "declarator":
                declarators.append((child, None))
            elif child.type == "bitfield_clause" and declarators:
                declarators[-1] = (declarators[-1][0], child.named_children[0] if child.named_child_count else None)
            elif child.type == "bitfield_clause":
                declarators.append((None, child.named_children[0] if child.named_child_count else None))
        skip: tuple[tuple[int, int], ...] = ()
        nested_body = type_node.child_by_field_name("body") if type_node is not None else None
        type_end = type_node.end_byte if type_node is not None else decl.start_byte
        if nested_body is not None:
            skip = ((type_node.start_byte, type_node.end_byte),)  # the record's own attributes
        found = attributes_in(src.raw, decl.start_byte, decl.end_byte, skip)
        if nested_body is not None:
            found = [(p, a) for p, a in found if not (type_end <= p < _first_start(declarators, decl))]
        if not declarators:
            if nested_body is not None and type_node.child_by_field_name("name") is None:
                attrs = NO_ATTRS
                for _, a in found:
                    attrs = attrs | a
                yield "", None, None, attrs, decl
            continue
        starts = [d.start_byte if d is not None else decl.start_byte for d, _ in declarators]
        for i, (declarator, width) in enumerate(declarators):
            end = starts[i + 1] if i + 1 < len(starts) else decl.end_byte
            attrs = NO_ATTRS
            for pos, a in found:
                if pos < starts[0] or starts[i] <= pos < end:
                    attrs = attrs | a
            yield None, declarator, width, attrs, decl


def _first_start(declarators: list[tuple[Node | None, Node | None]], decl: Node) -> int:
    for d, _ in declarators:
        if d is not None:
            return d.start_byte
    return decl.end_byte
