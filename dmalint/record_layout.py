"""The System V / AAPCS64 layout algorithm for one struct or union body, and its results."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Iterator

from tree_sitter import Node

from dmalint.cdecl import Attrs, CType, DeclFile, base_type, derive, is_bitmap_declarator, member_declarations
from dmalint.parse import text

LARGEST_ALIGNMENT = 16  # __attribute__((aligned)) with no argument, on x86-64 and arm64


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
                    return shifted(inner, f.offset)
        return None

    def leaves(self) -> Iterator[tuple[str, FieldLayout]]:
        """(dotted path, member) for every non-struct member, offsets from this struct's start."""
        for f in self.fields:
            if f.layout is not None and f.layout.fields:
                prefix = f"{f.name}." if f.name else ""
                for path, leaf in f.layout.leaves():
                    yield prefix + path, shifted(leaf, f.offset)
            else:
                yield f.name, f


def member_path(layout: StructLayout | None, names: list[str]) -> FieldLayout | None:
    """The member reached by names through nested structs, its offset from layout's start."""
    found: FieldLayout | None = None
    base: int | None = 0
    for name in names:
        found = layout.member(name) if layout is not None else None
        if found is None:
            return None
        found = shifted(found, base)
        base, layout = found.offset, found.layout
    return found


def shifted(f: FieldLayout, base: int | None) -> FieldLayout:
    """A member with its offset moved by base (None stays None)."""
    return replace(f, offset=None if base is None or f.offset is None else base + f.offset)


@dataclass(frozen=True)
class Info:
    """A resolved type: what layouts need to know."""

    size: int | None
    align: int | None
    unknown: Unknown | None = None
    approximate: bool = False
    layout: StructLayout | None = None
    length: int | None = None   # arrays: element count (None: flexible)
    flexible: bool = False

    @classmethod
    def missing(cls, kind: str, name: str) -> "Info":
        return cls(None, None, Unknown(kind, name))


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


def record_name(spec: Node) -> str:
    """'struct foo', 'union bar' or 'struct {...}' for a specifier."""
    keyword = "union" if spec.type == "union_specifier" else "struct"
    name = spec.child_by_field_name("name")
    return f"{keyword} {text(name)}" if name is not None else f"{keyword} {{...}}"


class RecordBuilder:
    """The System V / AAPCS64 struct layout algorithm for one struct or union body."""

    def __init__(self, unit, spec: Node, file: DeclFile, attrs: Attrs) -> None:
        self.unit, self.spec, self.file, self.attrs = unit, spec, file, attrs
        self.kind = "union" if spec.type == "union_specifier" else "struct"
        self.name = record_name(spec)
        self.packed = attrs.packed
        self.fields: list[FieldLayout] = []
        self.unknown: Unknown | None = None
        self.approximate = False

    def _alignment(self, attrs: Attrs) -> int | None:
        """The largest of the aligned(...) arguments (1 if none); None if one cannot be evaluated."""
        best = 1
        for arg in attrs.aligned:
            value = LARGEST_ALIGNMENT if arg is None else self.unit.evaluator.eval_text(arg)
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
        size = round_up((bits + 7) // 8, align)
        return StructLayout(self.name, self.kind, size, align, tuple(self.fields), src.path, line,
                            None, self.approximate, self.packed)

    def _resolve(self, name: str, ctype: CType) -> Info | None:
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
        offset = round_up(start, align) if self.kind == "struct" else 0
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
        width = self.unit.evaluator.eval(width_node)
        if info is not None and (width is None or width < 0 or width > info.size * 8):
            self.unknown = Unknown("constant", text(width_node), name)
        if info is None or self.unknown is not None:
            self._unknown_field(name, ctype, None, decl)
            return bits, max_align
        unit_bits = info.size * 8
        start = bits if self.kind == "struct" else 0
        if width == 0:  # `int :0;` ends the storage unit
            return (round_up(start, info.align * 8) if self.kind == "struct" else bits), max_align
        packed = self.packed or attrs.packed
        if not packed and start // unit_bits != (start + width - 1) // unit_bits:
            start = round_up(start, info.align * 8)
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


def round_up(value: int, align: int) -> int:
    """value rounded up to a multiple of align."""
    return (value + align - 1) // align * align
