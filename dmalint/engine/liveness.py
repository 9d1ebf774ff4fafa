"""Which variables may still be read after each CFG node.

Path-sensitive exploration keeps one state per distinct (node, state); facts about a variable
nobody reads again would keep otherwise identical paths apart and blow up the search.  Before a
state is compared, everything about dead variables is dropped.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from tree_sitter import Node

from dmalint.cfg import CFG
from dmalint.parse import collect_identifiers, operator, text, unwrap_parens


def live_variables(cfg: CFG) -> dict[int, frozenset[str]]:
    """live_in for every node: names that may be read on some path from the node on."""
    # Sets of names as bit masks over the function's names: the fixed point unions and
    # subtracts them many times per node, and an int does that in one operation.
    bit: dict[str, int] = {}

    def mask(names: set[str]) -> int:
        m = 0
        for name in names:
            b = bit.get(name)
            if b is None:
                b = bit[name] = 1 << len(bit)
            m |= b
        return m

    uses: dict[int, int] = {}
    keep: dict[int, int] = {}  # the complement of defs: what flows through the node
    for n, data in cfg.nodes_data.items():
        u, d = _uses_defs(data)
        uses[n], keep[n] = mask(u), ~mask(d)
    succ, pred = cfg.succ, cfg.pred
    live = dict(uses)
    # A work list rather than whole rounds until nothing changes: only the predecessors of a
    # node whose set grew are looked at again.  The sets only grow, so this reaches the same
    # (least) fixed point.
    work = deque(_post_order(succ, cfg.entry, succ))
    queued = set(work)
    while work:
        n = work.popleft()
        queued.discard(n)
        out = 0
        for s in succ[n]:
            out |= live[s]
        new = uses[n] | (out & keep[n])
        if new != live[n]:
            live[n] = new
            for p in pred[n]:
                if p not in queued:
                    queued.add(p)
                    work.append(p)
    names = sorted(bit, key=bit.__getitem__)
    sets: dict[int, frozenset[str]] = {}
    result = {}
    for n, m in live.items():
        found = sets.get(m)
        if found is None:
            members = []
            rest = m
            while rest:  # one round per name in the set, not per name of the function
                low = rest & -rest
                members.append(names[low.bit_length() - 1])
                rest ^= low
            found = sets[m] = frozenset(members)
        result[n] = found
    return result


def _post_order(succ: dict, entry, nodes) -> list:
    """Nodes in a depth-first post-order from entry (a node after all it reaches, loops
    aside), then those of `nodes` entry does not reach: the order in which a backward
    analysis needs the fewest rounds."""
    out: list = []
    seen = {entry}
    stack = [(entry, iter(succ[entry]))] if entry in succ else []
    while stack:
        node, rest = stack[-1]
        for nxt in rest:
            if nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, iter(succ[nxt])))
                break
        else:
            stack.pop()
            out.append(node)
    out.extend(n for n in nodes if n not in seen)
    return out


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
                operator(target) == "=" and \
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



def relevance(cfg: CFG, is_api: Callable[[str], bool],
              watched_fields: frozenset[str] = frozenset()) -> tuple[frozenset[str], frozenset[str]]:
    """The variables and the struct members whose values can matter to a verdict; the explorer
    forgets the others, so that paths differing only in them (counters, masks, ring cursors,
    feature flags tested once) merge.

    A name matters when a statement or condition that calls the API (or a helper summarised as
    doing so: `is_api`) uses its value, or one naming a watched member (cookies); when it is
    returned (errno conventions); when two or more conditions test it and one of them decides
    whether an API call runs (`if (use_dma) map ... if (use_dma) unmap`); when its address is
    taken (it may be written behind our back); and, closing over assignments, when it feeds a
    name that matters or is fed by one computed from the API's results.  A member that is only
    the base of a longer access (`ring->cur` in `ring->cur->dma`) does not matter by that use:
    the access names the same storage whatever the base's value.  Flow-insensitive and
    over-inclusive by design: keeping a name costs only time.

    Returns (variables, members); members are bare field names."""
    relevant: set[str] = set()  # variables, and members as ".name"
    derived: set[str] = set()  # names holding (something computed from) an API result
    tests: dict[str, list[int]] = {}
    flows: list[tuple[str, frozenset[str]]] = []  # (assigned name, names the value comes from)
    api_nodes: set[int] = set()
    assigned: dict[int, set[str]] = {}  # node -> names it assigns
    for n, data in cfg.nodes_data.items():
        kind = data["kind"]
        if kind == "assign":
            asts = [data["lhs"], data["rhs"]]
            assigns = [(data["lhs"], data["rhs"])]
        else:
            ast = data.get("ast")
            if ast is None or kind not in ("stmt", "cond", "return", "switch"):
                continue
            if kind == "stmt" and data.get("declaration_only"):
                continue
            asts, assigns = [ast], []
        names: set[str] = set()
        fields: set[str] = set()
        calls: set[str] = set()
        for ast in asts:
            _scan(ast, names, fields, calls, assigns, relevant)
        if kind in ("cond", "switch"):
            for name in names:
                tests.setdefault(name, []).append(n)
        if any(is_api(c) for c in calls) or (fields & watched_fields):
            api_nodes.add(n)
        if kind == "return" or n in api_nodes:
            relevant |= names
            derived |= names
        for lhs, rhs in assigns:
            target = _target(lhs)
            if target is None:
                continue
            assigned.setdefault(n, set()).add(target)
            sources: set[str] = set()
            _scan(rhs, sources, set(), set(), [], set())
            _scan(lhs, sources, set(), set(), [], set())  # indices and bases: buf[i] = x uses i
            sources.discard(target)
            flows.append((target, frozenset(sources)))
    # Conditions matter when they decide whether an API call runs, or an assignment to a
    # name that matters (`if (want) { map; mapped = true; } ... if (mapped) unmap`).
    decider = _Deciders(cfg)
    while True:
        changed = True
        while changed:
            changed = False
            for target, sources in flows:
                if target in relevant and not sources <= relevant:
                    relevant |= sources
                    changed = True
                if target not in derived and sources & derived:
                    derived.add(target)
                    relevant.add(target)
                    changed = True
        targets = api_nodes | {n for n, names in assigned.items() if names & relevant}
        grown = False
        for name, at in tests.items():
            if name not in relevant and any(decider.decides(c, targets) for c in at):
                relevant.add(name)
                grown = True
        if not grown:
            break
    return (frozenset(n for n in relevant if not n.startswith(".")),
            frozenset(n[1:] for n in relevant if n.startswith(".")))


class _Deciders:
    """Whether a condition decides if some target node runs: from one of its successors a
    target is reached before the condition's immediate post-dominator (where both branches
    meet again).  Each condition's region is walked once and kept."""

    def __init__(self, cfg: CFG):
        self.succ = cfg.succ
        self.pred = cfg.pred
        self.exit = cfg.exit
        self.ipdom: dict[int, int] | None = None  # computed on the first question
        self.regions: dict[int, frozenset[int]] = {}

    def decides(self, cond: int, targets: set[int]) -> bool:
        region = self.regions.get(cond)
        if region is None:
            if self.ipdom is None:
                self.ipdom = immediate_dominators(self.pred, self.exit)
            stop = self.ipdom.get(cond)
            seen: set[int] = set()
            stack = list(self.succ[cond])
            while stack:
                m = stack.pop()
                if m in seen or m == stop or m == cond:
                    continue
                seen.add(m)
                stack.extend(self.succ[m])
            region = self.regions[cond] = frozenset(seen)
        return not region.isdisjoint(targets)


def immediate_dominators(succ: dict, start) -> dict:
    """Each node's immediate dominator in the graph `succ` (node -> successors) entered at
    start; start itself, and nodes start does not reach, have none.  The iterative
    algorithm of Cooper, Harvey and Kennedy, as networkx's, over plain dicts: networkx's
    dispatch cost more than the computation for the small graphs of functions, and the
    explorer asks this for the reversed CFG of most functions (post-dominators).  The
    result does not depend on the order of visits: immediate dominators are unique."""
    if start not in succ:
        return {}
    order = _post_order(succ, start, ())  # the nodes start reaches
    rank = {n: i for i, n in enumerate(order)}
    preds: dict = {n: [] for n in order}
    for n in order:
        for m in succ[n]:
            preds[m].append(n)
    idom = {start: start}

    def meet(a, b):
        while a != b:
            while rank[a] < rank[b]:
                a = idom[a]
            while rank[b] < rank[a]:
                b = idom[b]
        return a
    changed = True
    while changed:
        changed = False
        for n in reversed(order):
            if n == start:
                continue
            new = None
            for p in preds[n]:
                if p in idom:
                    new = p if new is None else meet(p, new)
            if new is not None and idom.get(n) != new:
                idom[n] = new
                changed = True
    del idom[start]  # as networkx (3.x) answers: start has no dominator but itself
    return idom


def _scan(node: Node, names: set[str], fields: set[str], calls: set[str],
          assigns: list, address_taken: set[str]) -> None:
    """Collect what an expression uses as values: variables, members (".name", not those
    only used as the base of a longer access), called names; its assignments; the variables
    whose address it takes."""
    # Each node goes on the stack with whether it is the base (the "argument") of a member
    # or element access: Node.parent searches down from the root every time it is asked (3 us
    # in a large file), while the walk knows the parent.  Only the first node's is asked for.
    stack = [(node, node.type == "field_expression" and _is_access_base(node))]
    while stack:
        n, base = stack.pop()
        t = n.type
        if t == "identifier":
            names.add(text(n))
        elif t == "field_expression":
            if not base:
                field = n.child_by_field_name("field")
                if field is not None:
                    names.add("." + text(field))
                    fields.add(text(field))
        elif t == "call_expression":
            fn = n.child_by_field_name("function")
            if fn is not None and fn.type == "identifier":
                calls.add(text(fn))
        elif t == "assignment_expression":
            assigns.append((n.child_by_field_name("left"), n.child_by_field_name("right")))
        elif t == "update_expression":
            arg = n.child_by_field_name("argument")
            assigns.append((arg, arg))
        elif t == "init_declarator":
            value = n.child_by_field_name("value")
            if value is not None:
                assigns.append((n.child_by_field_name("declarator"), value))
        elif t == "pointer_expression" and operator(n) == "&":
            arg = unwrap_parens(n.child_by_field_name("argument"))
            # &x and &x.member expose x's own storage; &p->member does not expose p
            if not (arg.type == "field_expression"
                    and operator(arg) == "->"):
                root = _target(arg)
                if root is not None:
                    address_taken.add(root)
        if t in _ACCESSES:
            arg = n.child_by_field_name("argument")
            stack.extend((c, c == arg) for c in n.named_children)
        else:
            stack.extend((c, False) for c in n.named_children)


_ACCESSES = ("field_expression", "subscript_expression")


def _is_access_base(node: Node) -> bool:
    """Whether node is the base (the "argument") of the member or element access above it."""
    parent = node.parent
    return parent is not None and parent.type in _ACCESSES and \
        parent.child_by_field_name("argument") == node


def _target(node: Node | None) -> str | None:
    """The name an assignment's target is tracked under: a variable (`x`, `buf[i]`: buf), or
    the last member of a member access (`p->a[i].b`: ".b")."""
    while node is not None:
        node = unwrap_parens(node)
        t = node.type
        if t == "identifier":
            return text(node)
        if t == "field_expression":
            field = node.child_by_field_name("field")
            return "." + text(field) if field is not None else None
        if t in ("subscript_expression", "pointer_expression"):
            node = node.child_by_field_name("argument")
        elif t == "cast_expression":
            node = node.child_by_field_name("value")
        elif t in ("pointer_declarator", "array_declarator", "init_declarator",
                   "parenthesized_declarator"):
            node = node.child_by_field_name("declarator")
        else:
            return None
    return None
