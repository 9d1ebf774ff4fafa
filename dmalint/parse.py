"""tree-sitter set-up and the few node helpers every later stage shares."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Callable, Iterator

import tree_sitter_c
from tree_sitter import Language, Node, Parser, Query, QueryCursor, Tree


@lru_cache(maxsize=1)
def c_language() -> Language:
    return Language(tree_sitter_c.language())


def parse(code: bytes) -> Tree:
    """Parse neutralised C. A Parser is cheap; one per call keeps this safe across processes.

    Inside memo() the tree of a text already parsed is returned again (trees are never edited):
    a driver's files are parsed by the analysis, the struct index and the layout engine."""
    trees = _MEMO.trees
    if trees is not None:
        tree = trees.get(code)
        if tree is None:
            tree = trees[code] = Parser(c_language()).parse(code)
        return tree
    return Parser(c_language()).parse(code)


class _Memo:
    """The texts parsed and files read within one memo() block (one unit of the runner)."""

    def __init__(self) -> None:
        self.trees: dict[bytes, Tree] | None = None
        self.sources: dict | None = None


_MEMO = _Memo()


@contextmanager
def memo():
    """Within the block, parse() and source.read_source() reuse what they did before for the
    same text or file; both are forgotten when the block ends, so memory stays bounded by the
    unit being analysed.  Nested blocks share the outer one's memo."""
    if _MEMO.trees is not None:
        yield
        return
    _MEMO.trees, _MEMO.sources = {}, {}
    try:
        yield
    finally:
        _MEMO.trees = _MEMO.sources = None


# The node types the driver-level passes look for in function bodies (FunctionDef.nodes_of).
INDEXED_TYPES = frozenset({"call_expression", "assignment_expression", "init_declarator",
                           "return_statement", "if_statement", "update_expression"})


@lru_cache(maxsize=16)
def _types_query(types: frozenset[str]) -> Query:
    return Query(c_language(), "[" + " ".join(f"({t})" for t in sorted(types)) + "] @n")


def nodes_in_walk_order(node: Node, types: frozenset[str]) -> list[Node]:
    """The nodes of these (named) types under node, node included, in the order of a walk that
    pops the last child first (`stack.extend(n.named_children)`): the reverse of the
    document's post-order, by end descending, then start ascending, an ancestor of the same
    span first.  A query finds them in C; walking every node through the Python binding is
    several times slower."""
    found = QueryCursor(_types_query(types)).captures(node).get("n", [])
    return sorted(found, key=lambda n: (-n.end_byte, n.start_byte))


@dataclass(frozen=True)
class FunctionDef:
    """A function definition in a parsed file."""

    name: str
    node: Node
    body: Node

    @property
    def damaged(self) -> bool:
        """True when tree-sitter had to invent or skip text inside this function."""
        return self.node.has_error

    # The driver-level passes (callgraph summaries, buffer parameters, the call graph) each
    # look at every function body several times per round; walking the tree through
    # tree-sitter's Python API is what costs, so each body is walked once and the nodes kept.
    # cached_property writes the instance __dict__ directly, which a frozen dataclass allows;
    # the cached values take no part in equality or hashing.
    @cached_property
    def body_nodes(self) -> tuple[tuple[Node, ...], tuple[str, ...]]:
        """The body's named nodes of the INDEXED_TYPES in walk order (depth first, last child
        first: the order the passes always used), with each node's type alongside.  Only
        those types are kept, so that a large driver's bodies do not stay in memory whole.

        A tree-sitter query finds them (in C, 3.6 times faster than walking every node through
        the Python binding); the walk order is the reverse of the document's post-order, that
        is by end descending, then start ascending, an ancestor of the same span first (the
        sort is stable and the query reports ancestors first)."""
        nodes = tuple(nodes_in_walk_order(self.body, INDEXED_TYPES))
        return nodes, tuple(n.type for n in nodes)

    def nodes_of(self, *types: str) -> list[Node]:
        """The body's nodes of these types (all among INDEXED_TYPES), in walk order."""
        assert INDEXED_TYPES.issuperset(types), types
        nodes, kinds = self.body_nodes
        if len(types) == 1:
            t = types[0]
            return [n for n, k in zip(nodes, kinds) if k == t]
        return [n for n, k in zip(nodes, kinds) if k in types]

    @cached_property
    def calls(self) -> tuple[Node, ...]:
        """The body's call expressions, in walk order."""
        return tuple(self.nodes_of("call_expression"))

    @cached_property
    def callee_names(self) -> tuple[str, ...]:
        """The text of each call's function expression, aligned with `calls`."""
        return tuple(text(c.child_by_field_name("function")) for c in self.calls)

    @cached_property
    def callee_set(self) -> frozenset[str]:
        """The names this function calls (to skip it quickly when none of them matter)."""
        return frozenset(self.callee_names)


def text(node: Node | None) -> str:
    """The source text of a node ('' for None)."""
    if node is None:
        return ""
    raw = node.text  # each access copies the bytes out of the tree: read it once
    return raw.decode("utf-8", "replace") if raw is not None else ""


def node_texts() -> Callable[[Node | None], str]:
    """A text() that remembers each node's text under the node's id, for one function's
    exploration: it reads the same few hundred nodes' texts again for every state, and a
    dictionary lookup costs a fifth of copying and decoding the bytes.  A node's id is the
    address of its data in the tree, unique only among trees still in memory: a cache must
    not outlive the trees whose nodes it saw (the explorer's lives as long as the function's
    exploration, while the driver's trees are held)."""
    cache: dict[int, str] = {}

    def cached(node: Node | None) -> str:
        if node is None:
            return ""
        key = node.id
        found = cache.get(key)
        if found is None:
            found = cache[key] = text(node)
        return found
    return cached


def operator(node: Node) -> str:
    """The operator of a binary, unary, update, assignment, pointer or field expression ('' if
    it has none): the operator token's type is its text, without copying the source out."""
    op = node.child_by_field_name("operator")
    return op.type if op is not None else ""


def unwrap_parens(node: Node) -> Node:
    """The expression inside any number of parentheses."""
    while node.type == "parenthesized_expression" and node.named_child_count == 1:
        node = node.named_children[0]
    return node


def strip_casts(node: Node) -> Node:
    """Through parentheses and casts: `(u8 *)(buf)` is buf."""
    node = unwrap_parens(node)
    while node.type == "cast_expression" and node.child_by_field_name("value") is not None:
        node = unwrap_parens(node.child_by_field_name("value"))
    return node


def declarator_name(decl: Node | None) -> Node | None:
    """The identifier a (possibly pointer/array/function) declarator declares."""
    while decl is not None:
        if decl.type in ("identifier", "field_identifier", "type_identifier"):
            return decl
        if decl.type == "parenthesized_declarator":
            decl = decl.named_children[0] if decl.named_child_count else None
            continue
        decl = decl.child_by_field_name("declarator")
    return None


def iter_functions(root: Node) -> Iterator[FunctionDef]:
    """Every function definition, including those nested in preprocessor or error nodes."""
    stack = [root]
    while stack:
        node = stack.pop()
        if node.type == "function_definition":
            body = node.child_by_field_name("body")
            name = declarator_name(node.child_by_field_name("declarator"))
            if body is not None and name is not None:
                yield FunctionDef(text(name), node, body)
            continue
        if node.type in ("translation_unit", "preproc_if", "preproc_ifdef", "preproc_else",
                         "preproc_elif", "ERROR", "linkage_specification", "declaration_list"):
            stack.extend(reversed(node.children))


def has_pointer_declarator(decl: Node | None) -> bool:
    """Whether a declarator declares a pointer (or array, which decays to one)."""
    while decl is not None:
        if decl.type in ("pointer_declarator", "array_declarator"):
            return True
        if decl.type in ("identifier", "field_identifier"):
            return False
        decl = decl.child_by_field_name("declarator")
    return False


def collect_identifiers(node: Node | None, into: set[str], fields: set[str] | None = None) -> None:
    """Add the identifiers under node to `into` (and member names to `fields`, when given)."""
    if node is None:
        return
    stack = [node]
    while stack:
        n = stack.pop()
        if n.type == "identifier":
            into.add(text(n))
        elif n.type == "field_identifier" and fields is not None:
            fields.add(text(n))
        stack.extend(n.named_children)
