"""Objects laid out by the layout engine: the replay's byte-level view of driver structs.

The replayer asks the layout engine (dmalint.layout and the declared types of
dmalint.typescope: the shared fact source of the static memory rules, not its transfer
functions) for the declared type of an expression of the function it runs, and lays out the
object a `p->member` access reaches: the struct's members with their offsets, an array member's
element size, where a member or element lies inside the object that holds it.  A type the
layout engine does not know leaves the object unlaid: offsets stay unknown, never guessed.
"""

from __future__ import annotations

from tree_sitter import Node

from dmalint.consteval import Target
from dmalint.layout import LayoutEngine
from dmalint.simulate.values import Obj, Ref, root_of


class Layouts:
    """Declared types and layouts for the replay, per translation unit (built on first use)."""

    def __init__(self, target: Target, include_dirs=(), tables=None) -> None:
        self.target = target
        self.engine = LayoutEngine([], include_dirs, target=target, tables=tables)
        self._units: dict[str, object] = {}

    def unit(self, src):
        if src is None:
            return None
        if src.path not in self._units:
            try:
                self._units[src.path] = self.engine.unit(src)
            except (RecursionError, ValueError, OSError):
                self._units[src.path] = None
        return self._units[src.path]

    def type_of(self, node: Node, src):
        """The declared type (a CType) of an lvalue expression, or None."""
        unit = self.unit(src)
        if unit is None:
            return None
        try:
            return unit.expr_type(node)
        except (RecursionError, ValueError, AttributeError):
            return None

    def info(self, ctype, src):
        unit = self.unit(src)
        if unit is None or ctype is None:
            return None
        try:
            info = unit.info(unit._through_typedefs(ctype) or ctype)
        except (RecursionError, ValueError, AttributeError):
            return None
        return info if info.unknown is None else None

    def pointee(self, ctype, src):
        """What a pointer (or an array) type points to."""
        unit = self.unit(src)
        if unit is None or ctype is None:
            return None
        try:
            return unit._target(ctype)
        except (RecursionError, ValueError, AttributeError):
            return None

    def record(self, node: Node, src, arrow: bool):
        """The layout of the struct `node` designates (`p` of `p->x`, `s` of `s.x`), or None."""
        ctype = self.type_of(node, src)
        if arrow:
            ctype = self.pointee(ctype, src)
        info = self.info(ctype, src)
        layout = info.layout if info is not None else None
        return layout if layout is not None and layout.unknown is None else None

    def sizeof(self, n: Node, src) -> int | None:
        """sizeof(type) or sizeof expr, when the layout engine knows the type."""
        unit = self.unit(src)
        if unit is None:
            return None
        try:
            typ = n.child_by_field_name("type")
            if typ is not None:
                return unit.type_size(typ)
            value = n.child_by_field_name("value")
            if value is None:
                return None
            size = unit.expr_size(value)
            inner = value.named_children[-1] if value.type == "parenthesized_expression" and \
                value.named_children else value
            if size is None and inner.type == "identifier" and unit.expr_type(inner) is None:
                size = unit.type_size(inner)  # sizeof(u32): a type name the parser took for a value
            return size
        except (RecursionError, ValueError, AttributeError):
            return None


def lay_out(obj: Obj, layout) -> None:
    """Give an object its struct layout (the first one the replay learns)."""
    if obj.layout is None and layout is not None and layout.size is not None:
        obj.layout = layout
        obj.size = layout.size
        if obj.elem is None:
            obj.elem = layout.size  # p + 1: the next struct of an array


def member_object(obj: Obj, name: str, ctype, layouts: Layouts, src) -> Obj | None:
    """The object an array or struct member is (its place inside obj), or None for a scalar
    member or one whose place is not known."""
    if obj.layout is None:
        return None
    fl = obj.layout.member(name)
    if fl is None or fl.offset is None or fl.size is None:
        return None
    sub = Obj(f"{obj.name}.{name}", stack=obj.stack, external=obj.external, zeroed=obj.zeroed)
    sub.parent, sub.base, sub.size = obj, fl.offset, fl.size
    sub.member = f"{obj.member}.{name}" if obj.member else name
    if fl.type_text.endswith("]"):
        elem = layouts.pointee(ctype, src) if ctype is not None else None
        info = layouts.info(elem, src)
        sub.array = True
        sub.elem_type = elem
        sub.elem = info.size if info is not None and info.size else None
        return sub
    if fl.layout is not None and fl.layout.unknown is None and fl.layout.size is not None:
        lay_out(sub, fl.layout)
        return sub
    return None


def element_object(arr: Obj, index, layouts: Layouts, src) -> Obj | None:
    """Element `index` of an array of structs whose element type is known, placed in it."""
    if arr.elem is None:
        return None
    layout = None
    if arr.elem_type is not None:
        info = layouts.info(arr.elem_type, src)
        layout = info.layout if info is not None else None
    elif arr.layout is not None:
        layout = arr.layout  # a pointer to a struct, stepped: the structs after it
    if layout is None or layout.unknown is not None or layout.size is None:
        return None
    sub = Obj(f"{arr.name}[{index if isinstance(index, int) else '?'}]", stack=arr.stack,
              external=arr.external, zeroed=arr.zeroed)
    sub.parent = arr
    sub.base = index * arr.elem if isinstance(index, int) else None
    sub.member = f"{arr.member}[{index if isinstance(index, int) else '?'}]"
    lay_out(sub, layout)
    return sub


def ref_place(r: Ref) -> tuple[Obj, int, int, str] | None:
    """(outermost object, byte offset, size, member name) a store through `r` writes, when the
    layout says; None otherwise."""
    obj = r.where
    if not isinstance(obj, Obj):
        return None
    if isinstance(r.key, str):
        fl = obj.layout.member(r.key) if obj.layout is not None else None
        if fl is None or fl.offset is None or fl.size is None:
            return None
        off, size = fl.offset, fl.size
        name = f"{obj.member}.{r.key}" if obj.member else r.key
    elif isinstance(r.key, tuple) and r.key[0] == "[]" and isinstance(r.key[1], int) \
            and obj.elem is not None:
        off, size = r.key[1] * obj.elem, obj.elem
        name = f"{obj.member or obj.name}[{r.key[1]}]"
    else:
        return None
    root, base = root_of(obj)
    if base is None or root.layout is None:
        return None
    return root, base + off, size, name
