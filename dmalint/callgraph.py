"""Driver-level knowledge about the file's own functions: summaries of helpers.

A helper that passes one of its parameters to a check function (`static int foo_map_check(priv,
dma) { if (dma_mapping_error(priv->dev, dma)) ... }`) is itself a check of that argument, so the
caller's mapping counts as checked.  Summaries are computed from the contracts' roles, never from
function names.
"""

from __future__ import annotations

from dataclasses import dataclass

from tree_sitter import Node

from dmalint.contracts.model import Contracts
from dmalint.parse import FunctionDef, text, unwrap_parens


@dataclass(frozen=True)
class Summary:
    """What calling a function of this driver does to a DMA handle passed as `param`."""

    kind: str  # "check": the call tests the handle like the check function
    param: int
    negated: bool = False  # True: the helper returns true when the mapping succeeded


def parameter_names(fn: FunctionDef) -> list[str]:
    declarator = fn.node.child_by_field_name("declarator")
    while declarator is not None and declarator.type != "function_declarator":
        declarator = declarator.child_by_field_name("declarator")
    names: list[str] = []
    plist = declarator.child_by_field_name("parameters") if declarator is not None else None
    for p in plist.named_children if plist is not None else []:
        d = p.child_by_field_name("declarator")
        while d is not None and d.type != "identifier":
            d = d.child_by_field_name("declarator")
        names.append(text(d) if d is not None else "")
    return names


def summarise(functions: list[FunctionDef], contracts: Contracts) -> dict[str, Summary]:
    """Summaries of the helpers among functions (one file, or all files of one driver)."""
    out: dict[str, Summary] = {}
    for fn in functions:
        if fn.damaged:
            continue
        params = parameter_names(fn)
        for call in _calls(fn.body):
            name = text(call.child_by_field_name("function"))
            check = contracts.checks.get(name)
            if check is None:
                continue
            args = call.child_by_field_name("arguments")
            idx = check.args.get("handle", 0)
            if args is None or idx >= args.named_child_count:
                continue
            arg = unwrap_parens(args.named_children[idx])
            if arg.type == "identifier" and text(arg) in params:
                out[fn.name] = Summary("check", params.index(text(arg)), _returns_negation(fn, name))
                break
    return out


def _returns_negation(fn: FunctionDef, check: str) -> bool:
    for n in _walk(fn.body):
        if n.type == "return_statement" and n.named_child_count:
            value = unwrap_parens(n.named_children[0])
            if value.type == "unary_expression" and text(value.child_by_field_name("operator")) == "!":
                inner = unwrap_parens(value.child_by_field_name("argument"))
                if inner.type == "call_expression" and text(inner.child_by_field_name("function")) == check:
                    return True
    return False


def _walk(node: Node):
    stack = [node]
    while stack:
        n = stack.pop()
        yield n
        stack.extend(n.named_children)


def _calls(node: Node):
    return (n for n in _walk(node) if n.type == "call_expression")
