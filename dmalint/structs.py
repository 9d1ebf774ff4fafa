"""Which struct each struct member holds: enough type knowledge to name a member by its
innermost struct (`ring->slots[i].dma` and `slot->dma` are the same member).

Built from the struct definitions of the driver's files and of the local headers they include
(`#include "foo.h"` next to the file).  Typedef names are resolved to their struct tags.
"""

from __future__ import annotations

from pathlib import Path

from tree_sitter import Node

from dmalint.contracts.loader import load_macro_tables
from dmalint.contracts.macros import MacroTables
from dmalint.parse import nodes_in_walk_order, parse, text
from dmalint.source import Define, SourceError, SourceFile, read_source


def type_name(type_node: Node | None) -> str | None:
    """The struct/union tag or typedef name a type specifier names, or None."""
    if type_node is None:
        return None
    if type_node.type in ("struct_specifier", "union_specifier"):
        tag = type_node.child_by_field_name("name")
        return text(tag) if tag is not None else None
    if type_node.type == "type_identifier":
        return text(type_node)
    return None


def _type_nodes(root: Node) -> list[Node]:
    """The typedefs, structs and unions under root in the order a depth-first walk visiting
    the last child first meets them: an ancestor before what it contains, a later node before
    an earlier one.  (A redefinition overwrites, so the order is kept as it always was.)"""
    return nodes_in_walk_order(root, _TYPE_NODES)


_TYPE_NODES = frozenset({"type_definition", "struct_specifier", "union_specifier"})


class StructIndex:
    """(struct, member) -> the struct type the member holds (itself, or per array element)."""

    def __init__(self, tables: MacroTables | None = None, include_dirs=()) -> None:
        self.tables = tables
        self.include_dirs = [Path(d) for d in include_dirs]
        self.members: dict[tuple[str, str], str] = {}
        self.aliases: dict[str, str] = {}  # typedef name -> struct tag
        self.defined: set[str] = set()  # structs whose definition the driver's files hold
        self._seen: set[str] = set()
        self._header_defines: dict[str, dict[str, Define]] = {}  # header path -> its macros

    def canonical(self, name: str) -> str:
        return self.aliases.get(name, name)

    def add_source(self, src: SourceFile, root: Node | None = None) -> None:
        if src.path in self._seen:
            return
        self._seen.add(src.path)
        root = root if root is not None else parse(src.code).root_node
        for n in _type_nodes(root):
            if n.type == "type_definition":
                self._typedef(n)
            if n.type in ("struct_specifier", "union_specifier") and \
                    n.child_by_field_name("body") is not None:
                self._struct(n)

    def add_local_headers(self, src: SourceFile, disk_path: Path) -> None:
        """The `#include "x.h"` headers next to a file (else in the include directories),
        when they exist: their structs join the index, and their macros join the file's
        defines where the file does not define the name itself (a driver keeps its sizes in
        its header: `dma_alloc_coherent(dev, ELS_MAP_SIZE, ..)` then `dma_free_coherent(dev,
        POOL_SIZE, ..)` is a mismatch only once both are known).  A name two headers define
        differently is left unknown."""
        merged: dict[str, Define] = {}
        ambiguous: set[str] = set()
        for name, _ in src.includes:
            header = next((d / name for d in [disk_path.parent, *self.include_dirs]
                           if (d / name).is_file()), None)
            if header is None:
                continue
            key = str(header)
            if key not in self._seen:
                try:
                    header_src = read_source(header, key, self.tables or load_macro_tables())
                    self.add_source(header_src)
                    self._header_defines[key] = header_src.defines
                except SourceError:
                    self._seen.add(key)
            for macro, define in self._header_defines.get(key, {}).items():
                held = merged.get(macro)
                if held is not None and (held.value, held.params) != (define.value, define.params):
                    ambiguous.add(macro)
                merged.setdefault(macro, define)
        for macro, define in merged.items():
            if macro not in ambiguous and macro not in src.defines:
                src.defines[macro] = define

    def resolved(self) -> dict[tuple[str, str], str]:
        """The member map with every typedef name replaced by its tag."""
        return {(self.canonical(s), m): self.canonical(t) for (s, m), t in self.members.items()}

    def _typedef(self, n: Node) -> None:
        tag = type_name(n.child_by_field_name("type"))
        for decl in n.children_by_field_name("declarator"):
            if decl.type == "type_identifier" and tag is not None:
                self.aliases[text(decl)] = tag

    def _struct(self, n: Node) -> None:
        name = type_name(n)
        if name is None:
            parent = n.parent
            if parent is not None and parent.type == "type_definition":
                decls = parent.children_by_field_name("declarator")
                name = text(decls[0]) if decls and decls[0].type == "type_identifier" else None
        if name is None:
            return
        self.defined.add(name)
        self._body(name, n.child_by_field_name("body"))

    def _body(self, name: str, body: Node) -> None:
        for field in body.named_children:
            if field.type != "field_declaration":
                continue
            type_node = field.child_by_field_name("type")
            held = type_name(type_node)
            for decl in field.children_by_field_name("declarator"):
                member = decl
                while member is not None and member.type != "field_identifier":
                    member = member.child_by_field_name("declarator")
                if member is None:
                    continue
                inner = held
                if inner is None and type_node is not None and \
                        type_node.type in ("struct_specifier", "union_specifier") and \
                        type_node.child_by_field_name("body") is not None:
                    # an anonymous struct member: named after its place, `outer.member`
                    inner = f"{name}.{text(member)}"
                    self._body(inner, type_node.child_by_field_name("body"))
                if inner is not None:
                    self.members[(name, text(member))] = inner


def variable_types(fn_node: Node) -> dict[str, str]:
    """Parameter and local names of a function with the struct/typedef name they are declared
    with (pointer or not)."""
    out: dict[str, str] = {}
    for n in nodes_in_walk_order(fn_node, _DECLARATIONS):
        held = type_name(n.child_by_field_name("type"))
        if held is not None:
            for d in n.children_by_field_name("declarator"):
                while d is not None and d.type not in ("identifier",):
                    d = d.child_by_field_name("declarator")
                if d is not None:
                    out[text(d)] = held
    return out


_DECLARATIONS = frozenset({"parameter_declaration", "declaration"})


def member_writes(functions, structs: "StructIndex") -> dict:
    """Every struct member some function assigns or increments: key -> (line, function), with
    both the short key (innermost struct, member) and the chain from the root's struct."""
    from dmalint.engine.fieldlog import field_key, long_key

    members = structs.resolved()
    out: dict = {}
    for fn in functions:
        types = None
        # The body's nodes as the callgraph passes already walked them (same walk order, so
        # the first write of a member found is the same one).
        for n in fn.nodes_of("assignment_expression", "update_expression"):
            target = None
            if n.type == "assignment_expression":
                target = n.child_by_field_name("left")
            else:
                target = n.child_by_field_name("argument")
            if target is not None and target.type in ("field_expression", "subscript_expression"):
                path = _path(target)
                if path is not None:
                    if types is None:
                        types = {k: structs.canonical(v) for k, v in variable_types(fn.node).items()}
                    for key in (field_key(path, types, members), long_key(path, types)):
                        if key is not None:
                            out.setdefault(key, (n.start_point[0] + 1, fn.name))
    return out


def _path(node: Node):
    parts = []
    while node is not None and node.type in ("field_expression", "subscript_expression"):
        if node.type == "field_expression":
            op = text(node.child_by_field_name("operator"))
            parts.append(("->" if op == "->" else ".") + text(node.child_by_field_name("field")))
        else:
            parts.append("[*]")
        node = node.child_by_field_name("argument")
    if node is None or node.type != "identifier":
        return None
    return (text(node),) + tuple(reversed(parts))
