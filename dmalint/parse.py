"""tree-sitter set-up and the few node helpers every later stage shares."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Iterator

import tree_sitter_c
from tree_sitter import Language, Node, Parser, Tree


@lru_cache(maxsize=1)
def c_language() -> Language:
    return Language(tree_sitter_c.language())


def parse(code: bytes) -> Tree:
    """Parse neutralised C. A Parser is cheap; one per call keeps this safe across processes."""
    return Parser(c_language()).parse(code)


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


def text(node: Node | None) -> str:
    """The source text of a node ('' for None)."""
    if node is None:
        return ""
    return node.text.decode("utf-8", "replace") if node.text is not None else ""


def unwrap_parens(node: Node) -> Node:
    """The expression inside any number of parentheses."""
    while node.type == "parenthesized_expression" and node.named_child_count == 1:
        node = node.named_children[0]
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
