"""Driver-level knowledge about the driver's own functions: summaries of its helpers.

Drivers wrap the DMA API: `foo_map_check(priv, dma)` checks a handle, `foo_map_buf(...)` returns
a mapping, `rtl8169_unmap_tx_skb(tp, tx_skb, desc)` unmaps the handle stored in a descriptor.  A
summary says what calling such a helper does, in terms of its parameters, so a caller sees a
check, an acquire or a release.  Summaries are computed from the contracts' roles and the call
graph (networkx), never from function names, and follow helpers of helpers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

import networkx as nx
from tree_sitter import Node

from dmalint.contracts.model import Acquire, Contracts, Release
from dmalint.parse import FunctionDef, strip_casts, text, unwrap_parens


@dataclass(frozen=True)
class ParamRef:
    """An argument of an inner call expressed through the helper's parameter: parameter
    `index`, then the member chain `fields` (`desc->addr` is ParamRef(2, ("->addr",)))."""

    index: int
    fields: tuple[str, ...] = ()


@dataclass(frozen=True)
class Summary:
    """What calling a function of this driver does, in terms of its parameters.

    kind "check": tests the handle passed as `param` like the check function (`negated`: true
    when it returns success).  kind "acquire": returns what `contract` acquires, its arguments
    taken from the helper's (`contract.args` are the helper's parameter indices).  kind
    "release": performs each (release, role -> ParamRef or constant text) in `releases`.
    kind "may-release": releases something of `families` that cannot be tied to a parameter."""

    kind: str
    param: int = 0
    negated: bool = False
    contract: Acquire | None = None
    cpu_into: ParamRef | None = None  # "acquire-into": where the helper stores the CPU address
    handle_into: ParamRef | None = None  # ... and the DMA handle
    releases: tuple[tuple[Release, tuple[tuple[str, object], ...]], ...] = ()
    families: frozenset[str] = field(default_factory=frozenset)

    def exact_release(self, rel: Release, roles) -> bool:
        """True when this is the helper's only release of what it names (no branch picks
        another release of the same argument, so its size and direction can be compared)."""
        target = {v for r, v in roles if r in ("handle", "cpu") and isinstance(v, ParamRef)}
        same = [1 for _, other in self.releases
                if target & {v for r, v in other if r in ("handle", "cpu") and isinstance(v, ParamRef)}]
        return len(same) == 1


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


def called_functions(functions: list[FunctionDef]) -> set[str]:
    """The names among functions that one of the others calls: the callees of call_graph's
    edges, without building the graph (the driver pass asks this for every unit)."""
    names = {fn.name for fn in functions}
    return {callee for fn in functions for callee in fn.callee_set
            if callee in names and callee != fn.name}


def call_graph(functions: list[FunctionDef]) -> nx.DiGraph:
    """Caller -> callee edges between the given functions."""
    g = nx.DiGraph()
    names = {fn.name for fn in functions}
    for fn in functions:
        g.add_node(fn.name)
        for callee in fn.callee_names:
            if callee in names and callee != fn.name:
                g.add_edge(fn.name, callee)
    return g


def summarise(functions: list[FunctionDef], contracts: Contracts, depth: int = 3) -> dict[str, Summary]:
    """Summaries of the helpers among functions (one file, or all files of one driver).

    Callees are summarised before their callers (reverse topological order of the call graph),
    and the whole pass is repeated `depth` times so that helpers of helpers are seen through
    even across recursion."""
    out: dict[str, Summary] = {}
    by_name = {fn.name: fn for fn in functions if not fn.damaged}
    graph = call_graph(list(by_name.values()))
    try:
        order = list(reversed(list(nx.topological_sort(graph))))
    except nx.NetworkXUnfeasible:
        order = sorted(by_name)
    # A summary starts from a call of a contract function or of an already summarised helper
    # (every kind below looks such a call up first): a function calling neither has none.
    contract_names = frozenset(contracts.checks) | frozenset(contracts.acquires) | \
        frozenset(contracts.releases)
    for _ in range(depth):
        changed = False
        for name in order:
            fn = by_name.get(name)
            if fn is None:
                continue
            if fn.callee_set.isdisjoint(contract_names) and fn.callee_set.isdisjoint(out):
                continue
            summary = _summarise_one(fn, contracts, out)
            if summary is not None and out.get(name) != summary:
                out[name] = summary
                changed = True
        if not changed:
            break
    return out


def _summarise_one(fn: FunctionDef, contracts: Contracts, known: dict[str, Summary]) -> Summary | None:
    params = parameter_names(fn)
    check = _check_summary(fn, params, contracts, known)
    if check is not None:
        return check
    acquire = _acquire_summary(fn, params, contracts, known)
    if acquire is not None:
        return acquire
    into = _acquire_into_summary(fn, params, contracts, known)
    if into is not None:
        return into
    return _release_summary(fn, params, contracts, known)


def _acquire_into_summary(fn, params, contracts, known) -> Summary | None:
    """`sp->rx.virt = dma_alloc_coherent(dev, SZ, &sp->rx.phys, GFP); if (!sp->rx.virt) return
    -ENOMEM; return 0;`: one acquire stored into the parameters' members, in a helper that
    reports the failure through an int return."""
    found = None
    for n in fn.nodes_of("assignment_expression"):
        if text(n.child_by_field_name("operator")) != "=":
            continue
        value = strip_casts(n.child_by_field_name("right"))
        if value.type != "call_expression":
            continue
        acq = _acquire_contract(value, contracts, known)
        if acq is None or acq.failure != "null":
            # Only allocations: a mapping helper usually keeps more state (a length, a flag)
            # that tells its callers whether there is anything to unmap, which we cannot see.
            continue
        cpu_into = _param_ref(n.child_by_field_name("left"), params, contracts)
        if cpu_into is None:
            continue
        if found is not None:
            return None  # two acquires: not a simple allocation helper
        handle_into = None
        if acq.out_arg is not None:
            out = _arg(value, acq.out_arg)
            out = unwrap_parens(out) if out is not None else None
            if out is not None and out.type == "pointer_expression" and \
                    text(out.child_by_field_name("operator")) == "&":
                handle_into = _param_ref(out.child_by_field_name("argument"), params, contracts)
        args = {role: params.index(text(a)) for role, idx in acq.args.items()
                if (a := _arg(value, idx)) is not None and a.type == "identifier" and text(a) in params}
        found = Summary("acquire-into", contract=replace(acq, function=fn.name, args=args, result="return",
                                                         origin=f"summary of {fn.name}()"),
                        cpu_into=cpu_into, handle_into=handle_into)
    type_node = fn.node.child_by_field_name("type")
    if found is None or type_node is None or text(type_node).split()[-1] not in ("int", "long"):
        return None
    acquires = [c for c in fn.calls if _acquire_contract(c, contracts, known) is not None]
    if len(acquires) > 1:
        return None  # it picks between allocations (a pool block or a mapped buffer)
    return found


def _check_summary(fn, params, contracts, known) -> Summary | None:
    for call, name in zip(fn.calls, fn.callee_names):
        check = contracts.checks.get(name)
        idx = check.args.get("handle", 0) if check is not None else None
        inner = known.get(name)
        if check is None and inner is not None and inner.kind == "check":
            idx = inner.param
        if idx is None:
            continue
        arg = _arg(call, idx)
        if arg is not None and arg.type == "identifier" and text(arg) in params:
            negated = _returns_negation(fn, name)
            if inner is not None and inner.kind == "check":
                negated = negated != inner.negated
            return Summary("check", params.index(text(arg)), negated)
    return None


def _acquire_summary(fn, params, contracts, known) -> Summary | None:
    """A helper whose every value-returning `return` hands back one acquire's result, unchecked
    inside (a helper that checks and returns 0 on failure changes the failure convention)."""
    returns = [n for n in fn.nodes_of("return_statement") if n.named_child_count]
    if not returns:
        return None
    assigned = _assigned_from_acquire(fn, contracts, known)
    found: tuple[Node, Acquire] | None = None
    for ret in returns:
        value = strip_casts(ret.named_children[0])
        call = None
        if value.type == "call_expression":
            call = value
        elif value.type == "identifier" and text(value) in assigned:
            call = assigned[text(value)]
        if call is None:
            return None
        acq = _acquire_contract(call, contracts, known)
        if acq is None or (found is not None and found[1].function != acq.function):
            return None
        found = (call, acq)
    if found is None or _checks_inside(fn, contracts, known):
        return None
    call, acq = found
    args: dict[str, int] = {}
    for role, idx in acq.args.items():
        arg = _arg(call, idx)
        if arg is not None and arg.type == "identifier" and text(arg) in params:
            args[role] = params.index(text(arg))
    result = "return"
    if acq.out_arg is not None:
        arg = _arg(call, acq.out_arg)
        if arg is None or arg.type != "identifier" or text(arg) not in params:
            return None  # the handle goes to the helper's own local: callers cannot see it
        result = f"arg:{params.index(text(arg))}"
    return Summary("acquire", contract=replace(acq, function=fn.name, args=args, result=result,
                                               origin=f"summary of {fn.name}()"))


def _release_summary(fn, params, contracts, known) -> Summary | None:
    releases = []
    families: set[str] = set()
    for call, name in zip(fn.calls, fn.callee_names):
        rel = contracts.releases.get(name)
        inner = known.get(name)
        if rel is None:
            if inner is not None and inner.kind in ("release", "may-release"):
                families |= inner.families
            continue
        families.add(rel.family)
        roles: list[tuple[str, object]] = []
        for role, idx in rel.args.items():
            arg = _arg(call, idx)
            ref = _param_ref(arg, params, contracts) if arg is not None else None
            if ref is not None:
                roles.append((role, ref))
            elif arg is not None:
                roles.append((role, " ".join(text(arg).split())))
        if any(isinstance(v, ParamRef) for r, v in roles if r in ("handle", "cpu")):
            releases.append((rel, tuple(roles)))
    if releases:
        return Summary("release", releases=tuple(releases), families=frozenset(families))
    if families:
        return Summary("may-release", families=frozenset(families))
    return None


def _param_ref(arg: Node, params: list[str], contracts: Contracts) -> ParamRef | None:
    """`desc->addr`, `le64_to_cpu(desc->addr)`, `dma` as a parameter plus a member chain."""
    node = strip_casts(arg)
    while node.type == "call_expression" and contracts.core.is_transform(text(node.child_by_field_name("function"))):
        inner = _arg(node, 0)
        if inner is None:
            return None
        node = strip_casts(inner)
    fields: list[str] = []
    while node.type == "field_expression":
        op = text(node.child_by_field_name("operator"))
        fields.append(("->" if op == "->" else ".") + text(node.child_by_field_name("field")))
        node = unwrap_parens(node.child_by_field_name("argument"))
    if node.type == "identifier" and text(node) in params:
        return ParamRef(params.index(text(node)), tuple(reversed(fields)))
    return None


def _acquire_contract(call: Node, contracts: Contracts, known: dict[str, Summary]) -> Acquire | None:
    name = text(call.child_by_field_name("function"))
    if name in contracts.acquires:
        return contracts.acquires[name]
    inner = known.get(name)
    return inner.contract if inner is not None and inner.kind == "acquire" else None


def _assigned_from_acquire(fn, contracts, known) -> dict[str, Node]:
    out: dict[str, Node] = {}
    for n in fn.nodes_of("assignment_expression", "init_declarator"):
        target = value = None
        if n.type == "assignment_expression" and text(n.child_by_field_name("operator")) == "=":
            target, value = n.child_by_field_name("left"), n.child_by_field_name("right")
        elif n.type == "init_declarator":
            target, value = n.child_by_field_name("declarator"), n.child_by_field_name("value")
        if target is None or value is None or unwrap_parens(target).type != "identifier":
            continue
        value = strip_casts(value)
        if value.type == "call_expression" and _acquire_contract(value, contracts, known) is not None:
            out[text(unwrap_parens(target))] = value
    return out


def _checks_inside(fn, contracts, known) -> bool:
    for name in fn.callee_names:
        if name in contracts.checks or (name in known and known[name].kind == "check"):
            return True
    ifs = fn.nodes_of("if_statement")  # `if (!buf) return NULL;` also changes nothing, but
    if not ifs:  # `if (!buf)` on an acquire result is a check of a NULL-failing acquire
        return False
    assigned = _assigned_from_acquire(fn, contracts, known)  # the same for every `if`
    for n in ifs:
        cond = text(n.child_by_field_name("condition"))
        for name in assigned:
            if re.search(r"\b" + re.escape(name) + r"\b", cond):
                return True
    return False


def _returns_negation(fn: FunctionDef, check: str) -> bool:
    for n in fn.nodes_of("return_statement"):
        if n.named_child_count:
            value = unwrap_parens(n.named_children[0])
            if value.type == "unary_expression" and text(value.child_by_field_name("operator")) == "!":
                inner = unwrap_parens(value.child_by_field_name("argument"))
                if inner.type == "call_expression" and text(inner.child_by_field_name("function")) == check:
                    return True
    return False


def _arg(call: Node, idx: int) -> Node | None:
    args = call.child_by_field_name("arguments")
    named = [a for a in args.named_children if a.type != "comment"] if args is not None else []
    return named[idx] if idx < len(named) else None


def buffer_params(functions: list[FunctionDef], contracts: Contracts,
                  depth: int = 3) -> dict[str, dict[int, str]]:
    """Helpers that pass a parameter on to a call that DMAs it: helper -> {parameter index: the
    call that DMAs it}.  `uvc_query_ctrl(..., data, size)` passing `data` to usb_control_msg()
    makes its `data` parameter DMA'd; helpers of helpers are followed `depth` levels."""
    out: dict[str, dict[int, str]] = {}
    fns = [fn for fn in functions if not fn.damaged]
    buffer_names = frozenset(contracts.buffers)
    for _ in range(depth):
        changed = False
        for fn in fns:
            if fn.callee_set.isdisjoint(buffer_names) and fn.callee_set.isdisjoint(out):
                continue  # it passes nothing on to a DMA'ing call: no new targets
            params = parameter_names(fn)
            found = dict(out.get(fn.name, {}))
            for call, name in zip(fn.calls, fn.callee_names):
                targets: dict[int, str] = {}
                if name in contracts.buffers:
                    for idx in contracts.buffers[name].args:
                        targets[idx] = name
                for idx, inner in out.get(name, {}).items():
                    targets[idx] = f"{name}() -> {inner}"
                for idx, via in targets.items():
                    arg = _arg(call, idx)
                    arg = strip_casts(arg) if arg is not None else None
                    if arg is not None and arg.type == "identifier" and text(arg) in params:
                        found.setdefault(params.index(text(arg)), via)
            if found != out.get(fn.name, {}):
                out[fn.name] = found
                changed = True
        if not changed:
            break
    return {k: v for k, v in out.items() if v}
