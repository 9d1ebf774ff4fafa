"""A translation unit's names (tags, typedefs, enumerators, variables, #defines) and the types
they denote: sizes and layouts for the layout engine, and the Scope the constant evaluator asks."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from tree_sitter import Node

from dmalint.cdecl import (
    RECORD_SPECIFIERS, CType, DeclFile, base_type, declarator_attrs, derive, is_bitmap_declarator,
    member_declarations, record_attrs,
)
from dmalint.consteval import ConstEval, canonical_type_name
from dmalint.parse import text, unwrap_parens
from dmalint.record_layout import LARGEST_ALIGNMENT, Info, RecordBuilder, StructLayout, Unknown, member_path, record_name
from dmalint.source import Define

if TYPE_CHECKING:
    from dmalint.layout import LayoutEngine

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


class TranslationUnit:
    """A translation unit: name tables merged over its files (first declaration wins); also the
    Scope the constant evaluator asks about names, types and sizes."""

    def __init__(self, engine: "LayoutEngine", files: list[DeclFile]) -> None:
        self.engine = engine
        self.files = files
        self.target = engine.target
        self.main = files[0] if files else None
        self.tags: dict[str, tuple[Node, DeclFile]] = {}
        self._members: dict[tuple, dict[str, CType]] = {}  # record -> member name -> type
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
        self._layouts: dict[tuple, Info] = {}
        self._enum_values: dict[str, int | None] = {}
        self._in_progress: set[tuple] = set()
        self.evaluator = ConstEval(self)  # shared, so macro loops are caught across nesting

    # --- Scope for the constant evaluator
    def define(self, name: str) -> Define | None:
        """The #define of a name seen in this unit."""
        return self.defines.get(name)

    def enum_value(self, name: str) -> int | None:
        """The value of an enum constant declared in this unit."""
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
                value = self.evaluator.eval(given)
            elif value is not None:
                value += 1
            self._enum_values[text(enumerator.child_by_field_name("name"))] = value

    def constant(self, name: str) -> int | None:
        """A constant from the kernel type table (ETH_ALEN...)."""
        return self.engine.kernel_types.constants.get(name)

    def is_type(self, name: str) -> bool:
        """Whether a name denotes a type here (a scalar, a typedef, a table type, `struct_foo`)."""
        name = canonical_type_name(name)
        return (name in C_SCALARS or name in self.typedefs or self._known_name(name)
                or self._joined_tag(name) is not None)

    def _known_name(self, name: str) -> bool:
        return name in self.tags or self.engine.kernel_types.get(name) is not None

    def _joined_tag(self, name: str) -> str | None:
        """'struct_foo' (a type macro argument joined by neutralisation) -> 'struct foo', when
        that struct is declared here or in the table."""
        for keyword in ("struct", "union"):
            if name.startswith(keyword + "_"):
                rest = name[len(keyword):]
                for candidate in (f"{keyword} {rest[1:]}", f"{keyword} {rest.lstrip('_')}"):
                    if self._known_name(candidate):
                        return candidate
        return None

    def type_size(self, node: Node) -> int | None:
        """sizeof a type node (a type_descriptor or a name used as a type)."""
        return self.info(self._type_of_type_node(node)).size

    def type_align(self, node: Node) -> int | None:
        """_Alignof a type node."""
        return self.info(self._type_of_type_node(node)).align

    def expr_size(self, node: Node) -> int | None:
        """sizeof an expression of known declared type."""
        ctype = self.expr_type(node)
        return self.info(ctype).size if ctype is not None else None

    def expr_length(self, node: Node) -> int | None:
        """ARRAY_SIZE of an expression of array type."""
        ctype = self.expr_type(node)
        ctype = self._through_typedefs(ctype)
        if ctype is None or ctype.kind != "array":
            return None
        length = self._array_length(ctype)
        return length if isinstance(length, int) else None

    def member_offset(self, type_node: Node, member: str) -> tuple[int, int] | None:
        """(offset, size) of a member path ('a.b') in a struct type."""
        layout = self.info(self._type_of_type_node(type_node)).layout
        found = member_path(layout, member.replace(" ", "").split("."))
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
        return CType("name", self._joined_tag(name) or name, file=file)

    def info(self, ctype: CType) -> Info:
        """Size, alignment and (for records) layout of a type."""
        kind = ctype.kind
        if kind == "pointer":
            return Info(*POINTER)
        if kind == "function":
            return Info.missing("function", ctype.spelled())
        if kind == "array":
            return self._array_info(ctype)
        if kind == "record":
            return self._record_info(ctype.node, ctype.file)
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
        length = self.evaluator.eval(ctype.dim)
        if length is None or length < 0:
            return Unknown("constant", text(ctype.dim))
        return (length + 63) // 64 if ctype.bitmap else length

    def _array_info(self, ctype: CType) -> Info:
        element = self.info(ctype.of)
        if element.unknown is not None:
            return element
        length = self._array_length(ctype)
        if isinstance(length, Unknown):
            return Info(None, None, length)
        if length is None:  # [] : a flexible array member
            return Info(0, element.align, approximate=element.approximate, flexible=True)
        return Info(length * element.size, element.align, approximate=element.approximate,
                     length=length, flexible=length == 0)

    def _designated_length(self, init: Node) -> int | None:
        length = 0
        for item in init.named_children:
            if item.type == "initializer_pair":
                designator = item.child_by_field_name("designator")
                if designator is None or designator.type != "subscript_designator":
                    return None
                index = self.evaluator.eval(designator.named_children[0]) if designator.named_child_count else None
                if index is None:
                    return None
                length = max(length, index + 1)
            elif item.type != "comment":
                length += 1
        return length

    def _named_info(self, ctype: CType) -> Info:
        name = ctype.name
        if name in C_SCALARS:
            return Info(*C_SCALARS[name])
        if name.startswith(("struct ", "union ")):
            found = self.tags.get(name)
            if found is not None:
                return self._record_info(found[0], found[1])
            return self._kernel_info(name)
        if name.startswith("enum"):
            return Info(*ENUM)
        if name in self.typedefs:
            return self._typedef_info(name)
        return self._kernel_info(name)

    def _kernel_info(self, name: str) -> Info:
        known = self.engine.kernel_types.get(name)
        if known is None:
            return Info.missing("type", name)
        return Info(known.size, known.align, approximate=known.approximate)

    def _typedef_info(self, name: str) -> Info:
        typedef, decl, file = self.typedefs[name]
        key = ("typedef", name)
        if key in self._in_progress:
            return Info.missing("recursive", name)
        self._in_progress.add(key)
        try:
            base = base_type(typedef.child_by_field_name("type"), file)
            info = self.info(derive(base, decl, file)[1])
        finally:
            self._in_progress.discard(key)
        if info.layout is not None and base.kind == "record" and info.layout.name.endswith("{...}"):
            info = replace(info, layout=replace(info.layout, name=name))
        aligned = declarator_attrs(typedef, decl, file.src).aligned
        if aligned and info.unknown is None:
            # GCC: an aligned typedef raises the alignment and keeps the size
            values = [LARGEST_ALIGNMENT if a is None else self.evaluator.eval_text(a) for a in aligned]
            if any(v is None or v < 1 for v in values):
                return Info.missing("constant", next(str(a) for a, v in zip(aligned, values)
                                                     if v is None or v < 1))
            align = max([info.align, *values])
            layout = replace(info.layout, align=align) if info.layout is not None else None
            info = replace(info, align=align, layout=layout)
        return info

    def _record_info(self, spec: Node, file: DeclFile) -> Info:
        key = (id(file), spec.start_byte, spec.end_byte)
        if key in self._layouts:
            return self._layouts[key]
        if key in self._in_progress:
            return Info.missing("recursive", record_name(spec))
        self._in_progress.add(key)
        try:
            layout = RecordBuilder(self, spec, file, record_attrs(spec, file.src)).build()
        finally:
            self._in_progress.discard(key)
        info = Info(layout.size, layout.align, layout.unknown, layout.approximate, layout)
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
                return self._record_info(spec, file).layout
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
            layout = self._typedef_info(alias).layout if name is None else None
            out.append(layout or self._record_info(spec, main).layout)
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
        # Every member access the simulator evaluates asks this: each record's members are
        # derived once per unit (the scan derived every member before the one asked for).
        key = (spec.start_byte, spec.end_byte, id(file))
        members = self._members.get(key)
        if members is None:
            members = self._members[key] = _member_types(spec, file)
        return members.get(member)

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


def _member_types(spec: Node, file: DeclFile) -> dict[str, CType]:
    """Every member's declared type, looking into anonymous structs/unions; for a name
    declared twice, the first."""
    out: dict[str, CType] = {}
    body = spec.child_by_field_name("body")
    if body is None:
        return out
    for anon, declarator, _width, _attrs, decl in member_declarations(body, file.src):
        type_node = decl.child_by_field_name("type")
        if anon == "":
            for name, ctype in _member_types(type_node, file).items():
                out.setdefault(name, ctype)
            continue
        try:
            name, ctype = derive(base_type(type_node, file), declarator, file)
        except (ValueError, RecursionError):
            continue  # a member we cannot read: asked for, it is unknown
        if name not in out:
            if ctype.kind == "array" and is_bitmap_declarator(decl, file.src):
                ctype.bitmap = True
            out[name] = ctype
    return out
