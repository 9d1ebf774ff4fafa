"""Which variables may still be read after each CFG node.

Path-sensitive exploration keeps one state per distinct (node, state); facts about a variable
nobody reads again would keep otherwise identical paths apart and blow up the search.  Before a
state is compared, everything about dead variables is dropped.
"""

from __future__ import annotations

from collections import deque

from tree_sitter import Node

from dmalint.cfg import CFG
from dmalint.parse import collect_identifiers, text, unwrap_parens


def live_variables(cfg: CFG) -> dict[int, frozenset[str]]:
    """live_in for every node: names that may be read on some path from the node on."""
    g = cfg.graph
    uses: dict[int, set[str]] = {}
    defs: dict[int, set[str]] = {}
    for n, data in g.nodes(data=True):
        u, d = _uses_defs(data)
        uses[n], defs[n] = u, d
    live: dict[int, set[str]] = {n: set(uses[n]) for n in g.nodes}
    # A work list rather than whole rounds until nothing changes: only the predecessors of a
    # node whose set grew are looked at again.  The sets only grow, so this reaches the same
    # (least) fixed point.
    work = deque(reversed(list(g.nodes)))
    queued = set(work)
    while work:
        n = work.popleft()
        queued.discard(n)
        out: set[str] = set()
        for s in g.successors(n):
            out |= live[s]
        new = uses[n] | (out - defs[n])
        if new != live[n]:
            live[n] = new
            for p in g.predecessors(n):
                if p not in queued:
                    queued.add(p)
                    work.append(p)
    return {n: frozenset(v) for n, v in live.items()}


def _uses_defs(data: dict) -> tuple[set[str], set[str]]:
    uses: set[str] = set()
    defs: set[str] = set()
    kind = data["kind"]
    ast = data.get("ast")
    if kind == "assign":
        lhs = unwrap_parens(data["lhs"])
        if lhs.type == "identifier":
            defs.add(text(lhs))
        else:
            collect_identifiers(lhs, uses)
        collect_identifiers(data["rhs"], uses)
        return uses, defs
    if kind in ("stmt", "cond", "return", "switch") and ast is not None:
        target = ast
        if target.type == "expression_statement" and target.named_child_count:
            target = target.named_children[0]
        target = unwrap_parens(target)
        if target.type == "assignment_expression" and \
                text(target.child_by_field_name("operator")) == "=" and \
                unwrap_parens(target.child_by_field_name("left")).type == "identifier":
            defs.add(text(unwrap_parens(target.child_by_field_name("left"))))
            collect_identifiers(target.child_by_field_name("right"), uses)
        elif target.type == "declaration" and not data.get("declaration_only"):
            for d in target.children_by_field_name("declarator"):
                if d.type == "init_declarator":
                    collect_identifiers(d.child_by_field_name("value"), uses)
                    name = d.child_by_field_name("declarator")
                    if name is not None and name.type == "identifier":
                        defs.add(text(name))
        else:
            collect_identifiers(target, uses)
    return uses, defs
