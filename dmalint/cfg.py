"""Per-function control-flow graphs (networkx), one node per statement or atomic condition.

Node kinds (graph.nodes[n]["kind"]):
  entry, exit      the function's two ends
  stmt             an expression statement or a declaration ("ast")
  assign           a synthetic `lhs = rhs` made when `x = c ? a : b` is split ("lhs", "rhs")
  cond             an atomic condition ("ast"); out-edges carry branch=True / branch=False;
                   iterator=(cursor argument indices) marks an iterator macro's head ("ast": its
                   arguments)
  switch           a switch value ("ast"); out-edges carry cases=[value nodes], None for default
  return           a return ("ast" is the value or None); its only successor is exit
  join             a no-op: loop heads (loop=True, "ast" the loop statement), labels ("label"),
                   the end of a switch

Conditions are split at `&&`, `||`, `!`, `?:` and the comma operator, so that
`if (!p || dma_mapping_error(dev, a))` becomes two cond nodes and each branch of each is a path.
Calls the macro tables call transparent (likely, unlikely, WARN_ON) are seen through.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import networkx as nx
from tree_sitter import Node

from dmalint.parse import nodes_in_walk_order, text, unwrap_parens


class CFGError(Exception):
    """A function whose structure we cannot build a graph for (reported, then skipped)."""


@dataclass
class CFG:
    """A function's graph with its entry and exit node ids."""

    graph: nx.DiGraph
    entry: int
    exit: int
    labels: dict[str, int] = field(default_factory=dict)

    def kind(self, n: int) -> str:
        return self.graph.nodes[n]["kind"]

    def node(self, n: int) -> dict:
        return self.graph.nodes[n]

    # The graph in plain dictionaries, made once per function (the graph is never changed
    # after it is built): liveness, relevance and the explorer each walk it, and every lookup
    # through networkx's views costs a few calls.
    @cached_property
    def nodes_data(self) -> dict[int, dict]:
        """Node -> its attribute dictionary (the graph's own, not a copy)."""
        return dict(self.graph.nodes(data=True))

    @cached_property
    def succ(self) -> dict[int, list[int]]:
        """Node -> its successors, in the graph's order."""
        return {n: list(adj) for n, adj in self.graph.adjacency()}

    @cached_property
    def pred(self) -> dict[int, list[int]]:
        """Node -> its predecessors, in the graph's order."""
        return {n: list(self.graph.predecessors(n)) for n in self.graph}


@dataclass
class _Context:
    brk: int | None = None
    cont: int | None = None


class CFGBuilder:
    """Builds the graph backwards: each build_* takes the successor and returns the entry."""

    def __init__(self, transparent: frozenset[str] = frozenset(), noreturn: frozenset[str] = frozenset(),
                 iterators: dict[int, tuple[int, ...]] | None = None):
        self.transparent = transparent
        self.noreturn = noreturn
        self.iterators = iterators or {}
        self.g: nx.DiGraph = nx.DiGraph()
        self._next = 0
        self.labels: dict[str, int] = {}
        self._label_at: dict[str, int] = {}  # label -> its byte offset
        self._backward_goto = False  # a goto at or after its label (a cycle may pass it)
        self.exit = -1

    # -- node helpers ----------------------------------------------------------------------
    def _new(self, kind: str, ast: Node | None = None, **attrs) -> int:
        n = self._next
        self._next += 1
        line = attrs.pop("line", None)
        if line is None and ast is not None:
            line = ast.start_point[0] + 1
        self.g.add_node(n, kind=kind, ast=ast, line=line, **attrs)
        return n

    def _edge(self, a: int, b: int, **attrs) -> None:
        self.g.add_edge(a, b, **attrs)

    # -- entry point -------------------------------------------------------------------------
    def build(self, body: Node) -> CFG:
        """The CFG of a function body (a compound_statement)."""
        entry = self._new("entry", line=body.start_point[0] + 1)
        self.exit = self._new("exit", line=body.end_point[0] + 1)
        for lab in _labels(body):
            name = text(lab.child_by_field_name("label"))
            if name not in self.labels:
                self.labels[name] = self._new("join", lab, label=name)
                self._label_at[name] = lab.start_byte
        first = self.stmt(body, self.exit, _Context())
        self._edge(entry, first)
        self._mark_goto_loops()
        return CFG(self.g, entry, self.exit, dict(self.labels))

    def _mark_goto_loops(self) -> None:
        """A label that a later `goto` jumps back to heads a loop too (`restart: ... goto
        restart;`): mark it like a for/while head, with the variables its cycle assigns, so
        the explorer widens there.  Without it `work_done += f()` around such a loop gives a
        new value on every round and the exploration never converges."""
        heads = [n for n in self.labels.values() if not self.g.nodes[n].get("loop")]
        if not heads or not self._backward_goto:
            return  # structured code only goes forward: a cycle needs a goto back
        # Only cycles that pass no for/while head: a label inside a loop's body is on that
        # loop's cycle, and the loop head already widens it.
        plain = self.g.subgraph([n for n, d in self.g.nodes(data=True) if not d.get("loop")])
        for component in nx.strongly_connected_components(plain):
            inside = [n for n in heads if n in component]
            if not inside:
                continue
            if len(component) == 1 and not self.g.has_edge(inside[0], inside[0]):
                continue
            roots: set[str] = set()
            for n in component:
                data = self.g.nodes[n]
                ast = data.get("ast")
                if ast is not None and data["kind"] != "join":
                    roots |= assigned_roots(ast)
                elif data["kind"] == "assign":
                    roots |= assigned_roots(data["lhs"])
            for n in inside:
                self.g.nodes[n]["loop"] = True
                self.g.nodes[n]["modified"] = frozenset(roots)

    # -- statements --------------------------------------------------------------------------
    def seq(self, stmts: list[Node], succ: int, ctx: _Context) -> int:
        for s in reversed(stmts):
            succ = self.stmt(s, succ, ctx)
        return succ

    def stmt(self, s: Node, succ: int, ctx: _Context) -> int:
        t = s.type
        if t == "compound_statement":
            return self.seq([c for c in s.named_children if c.type != "comment"], succ, ctx)
        if t == "expression_statement":
            code = _code_children(s)
            if not code:
                return succ
            return self.expression_stmt(code[0], succ)
        if t == "declaration":
            return self.declaration(s, succ)
        if t == "if_statement":
            cond = s.child_by_field_name("condition")
            then = self.stmt(s.child_by_field_name("consequence"), succ, ctx)
            alt = s.child_by_field_name("alternative")
            if alt is not None:
                # `else /* why */ stmt;`: the comment is the clause's first named child
                code = _code_children(alt) if alt.type == "else_clause" else [alt]
                body = code[0] if code else alt
                other = self.stmt(body, succ, ctx)
            else:
                other = succ
            return self.cond(cond, then, other)
        if t == "while_statement":
            head = self._new("join", s, loop=True)
            body = self.stmt(s.child_by_field_name("body"), head, _Context(succ, head))
            cond = s.child_by_field_name("condition")
            if s.start_byte in self.iterators:
                # An iterator macro: each round assigns its cursor; the end is not decidable.
                test = self._new("cond", cond, iterator=self.iterators[s.start_byte])
                self._edge(test, body, branch=True)
                self._edge(test, succ, branch=False)
                self._edge(head, test)
            else:
                self._edge(head, self.cond(cond, body, succ))
            return head
        if t == "do_statement":
            head = self._new("join", s, loop=True)
            test = self.cond(s.child_by_field_name("condition"), head, succ)
            body = self.stmt(s.child_by_field_name("body"), test, _Context(succ, test))
            self._edge(head, body)
            return head
        if t == "for_statement":
            return self.for_stmt(s, succ)
        if t == "switch_statement":
            return self.switch(s, succ, ctx)
        if t == "return_statement":
            code = _code_children(s)
            value = code[0] if code else None
            return self.return_stmt(s, value)
        if t == "break_statement":
            return ctx.brk if ctx.brk is not None else succ
        if t == "continue_statement":
            return ctx.cont if ctx.cont is not None else succ
        if t == "goto_statement":
            label = text(s.child_by_field_name("label"))
            if label in self.labels:
                if self._label_at[label] <= s.start_byte:
                    self._backward_goto = True
                return self.labels[label]
            # The label is in code we blanked (an #else branch): the path ends here, unjudged.
            dead_end = self._new("join", s, unresolved_goto=label)
            self._edge(dead_end, self.exit)
            return dead_end
        if t == "labeled_statement":
            name = text(s.child_by_field_name("label"))
            inner = [c for c in s.named_children if c.type not in ("statement_identifier", "comment")]
            after = self.seq(inner, succ, ctx)
            node = self.labels.get(name)
            if node is None:
                return after
            self._edge(node, after)
            return node
        if t in ("case_statement",):  # a case outside a switch body: treat as its statements
            return self.seq(_case_body(s), succ, ctx)
        if t in ("comment", "preproc_call", "type_definition", "function_definition", ";"):
            return succ
        if t in ("gnu_asm_expression", "attributed_statement"):
            inner = [c for c in s.named_children if c.type.endswith("statement")]
            return self.seq(inner, succ, ctx) if inner else self._stmt_node(s, succ)
        # Anything else we do not model (preprocessor remnants, ERROR): one opaque statement.
        return self._stmt_node(s, succ)

    def _stmt_node(self, ast: Node, succ: int, kind: str = "stmt") -> int:
        n = self._new(kind, ast)
        if _calls_noreturn(ast, self.noreturn):
            self._edge(n, self.exit, abort=True)
        else:
            self._edge(n, succ)
        return self._with_statement_exprs(ast, n)

    def _with_statement_exprs(self, ast: Node, n: int) -> int:
        """GNU `({ ... })`: the block's statements run before the statement that holds it; the
        engine takes the value of its last expression."""
        entry = n
        for block in reversed(_statement_exprs(ast)):
            stmts = [c for c in block.named_children if c.type != "comment"]
            if stmts and stmts[-1].type == "expression_statement":
                stmts = stmts[:-1]
            entry = self.seq(stmts, entry, _Context())
        return entry

    def expression_stmt(self, e: Node, succ: int) -> int:
        inner = unwrap_parens(e)
        if inner.type == "assignment_expression" and inner.child_by_field_name("operator") is not None \
                and text(inner.child_by_field_name("operator")) == "=":
            rhs = unwrap_parens(inner.child_by_field_name("right"))
            if rhs.type == "conditional_expression" and not _statement_exprs(rhs):
                lhs = inner.child_by_field_name("left")
                a = self._assign(lhs, rhs.child_by_field_name("consequence"), succ, e)
                b = self._assign(lhs, rhs.child_by_field_name("alternative"), succ, e)
                return self.cond(rhs.child_by_field_name("condition"), a, b)
        if inner.type == "conditional_expression" and not _statement_exprs(inner):
            a = self.expression_stmt(inner.child_by_field_name("consequence"), succ)
            b = self.expression_stmt(inner.child_by_field_name("alternative"), succ)
            return self.cond(inner.child_by_field_name("condition"), a, b)
        if inner.type == "comma_expression":
            right = self.expression_stmt(inner.child_by_field_name("right"), succ)
            return self.expression_stmt(inner.child_by_field_name("left"), right)
        return self._stmt_node(e, succ)

    def _assign(self, lhs: Node, rhs: Node | None, succ: int, origin: Node) -> int:
        if rhs is None:  # GNU `a ?: b`
            return succ
        n = self._new("assign", origin, lhs=lhs, rhs=rhs, line=rhs.start_point[0] + 1)
        self._edge(n, succ)
        return n

    def declaration(self, d: Node, succ: int) -> int:
        """Split `int a = c ? x : y;` like an assignment; other declarations are one node."""
        for init in d.children_by_field_name("declarator"):
            if init.type != "init_declarator":
                continue
            value = init.child_by_field_name("value")
            if value is not None and unwrap_parens(value).type == "conditional_expression" \
                    and len(d.children_by_field_name("declarator")) == 1 and not _statement_exprs(value):
                value = unwrap_parens(value)
                target = init.child_by_field_name("declarator")
                decl = self._new("stmt", d, declaration_only=True)
                a = self._assign(target, value.child_by_field_name("consequence"), succ, d)
                b = self._assign(target, value.child_by_field_name("alternative"), succ, d)
                self._edge(decl, self.cond(value.child_by_field_name("condition"), a, b))
                return decl
        return self._stmt_node(d, succ)

    def return_stmt(self, s: Node, value: Node | None) -> int:
        if value is not None:
            inner = unwrap_parens(value)
            if inner.type == "conditional_expression" and not _statement_exprs(inner) \
                    and inner.child_by_field_name("consequence") is not None:
                a = self.return_stmt(s, inner.child_by_field_name("consequence"))
                b = self.return_stmt(s, inner.child_by_field_name("alternative"))
                return self.cond(inner.child_by_field_name("condition"), a, b)
        n = self._new("return", value, line=s.start_point[0] + 1)
        self._edge(n, self.exit)
        return self._with_statement_exprs(value, n) if value is not None else n

    def for_stmt(self, s: Node, succ: int) -> int:
        head = self._new("join", s, loop=True)
        update = s.child_by_field_name("update")
        step = self.expression_stmt(update, head) if update is not None else head
        body = self.stmt(s.child_by_field_name("body"), step, _Context(succ, step))
        cond = s.child_by_field_name("condition")
        test = self.cond(cond, body, succ) if cond is not None else body
        self._edge(head, test)
        init = s.child_by_field_name("initializer")
        if init is None:
            return head
        if init.type == "declaration":
            return self.declaration(init, head)
        return self.expression_stmt(init, head)

    def switch(self, s: Node, succ: int, ctx: _Context) -> int:
        node = self._new("switch", s.child_by_field_name("condition"))
        body = s.child_by_field_name("body")
        inner = _Context(succ, ctx.cont)
        cases = [c for c in body.named_children if c.type == "case_statement"] if body else []
        # Statements before the first case are unreachable; fallthrough chains each case's body
        # into the next case's.
        nxt = succ
        entries: list[tuple[Node | None, int]] = []
        for case in reversed(cases):
            nxt = self.seq(_case_body(case), nxt, inner)
            entries.append((case.child_by_field_name("value"), nxt))
        # Edges carry the list of case values leading to them; None stands for default.
        has_default = False
        for value, entry in reversed(entries):
            has_default |= value is None
            self._add_case(node, entry, value)
        if not has_default:
            self._add_case(node, succ, None)
        return node

    def _add_case(self, node: int, entry: int, value: Node | None) -> None:
        if self.g.has_edge(node, entry):
            self.g.edges[node, entry]["cases"].append(value)
        else:
            self._edge(node, entry, cases=[value])

    # -- conditions --------------------------------------------------------------------------
    def cond(self, e: Node | None, t: int, f: int) -> int:
        """Entry of the graph that evaluates e and goes to t when true, f when false."""
        if e is None:
            return t
        e = unwrap_parens(e)
        if e.type == "parenthesized_expression" and e.named_child_count and \
                e.named_children[0].type == "compound_statement":
            return self._cond_node(e, t, f)
        if e.type == "unary_expression" and text(e.child_by_field_name("operator")) == "!":
            return self.cond(e.child_by_field_name("argument"), f, t)
        if e.type == "binary_expression":
            op = text(e.child_by_field_name("operator"))
            if op == "&&":
                right = self.cond(e.child_by_field_name("right"), t, f)
                return self.cond(e.child_by_field_name("left"), right, f)
            if op == "||":
                right = self.cond(e.child_by_field_name("right"), t, f)
                return self.cond(e.child_by_field_name("left"), t, right)
        if e.type == "conditional_expression" and e.child_by_field_name("consequence") is not None:
            a = self.cond(e.child_by_field_name("consequence"), t, f)
            b = self.cond(e.child_by_field_name("alternative"), t, f)
            return self.cond(e.child_by_field_name("condition"), a, b)
        if e.type == "comma_expression":
            right = self.cond(e.child_by_field_name("right"), t, f)
            return self.expression_stmt(e.child_by_field_name("left"), right)
        if e.type == "call_expression" and text(e.child_by_field_name("function")) in self.transparent:
            args = e.child_by_field_name("arguments")
            if args is not None and args.named_child_count:
                return self.cond(args.named_children[0], t, f)
        return self._cond_node(e, t, f)

    def _cond_node(self, e: Node, t: int, f: int) -> int:
        n = self._new("cond", e)
        self._edge(n, t, branch=True)
        if t == f:
            self.g.edges[n, t]["branch"] = None
        else:
            self._edge(n, f, branch=False)
        return self._with_statement_exprs(e, n)


def build_cfg(body: Node, transparent: frozenset[str] = frozenset(),
              noreturn: frozenset[str] = frozenset(),
              iterators: dict[int, tuple[int, ...]] | None = None) -> CFG:
    """The CFG of one function body; `iterators` maps iterator-macro loops to their cursors."""
    return CFGBuilder(transparent, noreturn, iterators).build(body)


def assigned_roots(loop: Node) -> frozenset[str]:
    """What a loop may change, for the loop head to widen: the name of a variable assigned
    itself (`x = ..`, `x++`, `&x` passed on: a callee may write it), and `name.` for a variable
    only some of whose members or elements are assigned (`p->len = ..`, `buf[i] = ..`): then
    the values stored under it change but the variable (the pointer p) does not.  Taking the
    address of storage behind a pointer (`&p->lock`) changes neither."""
    out: set[str] = set()
    stack = [loop]
    while stack:
        n = stack.pop()
        target = None
        address = False
        if n.type == "assignment_expression":
            target = n.child_by_field_name("left")
        elif n.type == "update_expression":
            target = n.child_by_field_name("argument")
        elif n.type == "pointer_expression" and text(n.child_by_field_name("operator")) == "&":
            target = n.child_by_field_name("argument")
            address = True
        elif n.type == "init_declarator":
            target = n.child_by_field_name("declarator")
        inner = False  # the target is inside the variable (a member or element), not itself
        through_pointer = False
        while target is not None and target.type not in ("identifier",):
            if target.type == "field_expression":
                inner = True
                if text(target.child_by_field_name("operator")) == "->":
                    through_pointer = True
            elif target.type in ("subscript_expression", "pointer_expression"):
                inner = True
            nxt = None
            for field in ("argument", "declarator", "value"):
                nxt = target.child_by_field_name(field)
                if nxt is not None:
                    break
            if nxt is None and target.named_child_count:
                nxt = target.named_children[0]
            target = nxt
        if target is not None and not (address and through_pointer):
            out.add(text(target) + "." if inner else text(target))
        stack.extend(n.named_children)
    return frozenset(out)


def _code_children(node: Node) -> list[Node]:
    """A node's named children without the comments tree-sitter files among them."""
    return [c for c in node.named_children if c.type != "comment"]


def _labels(body: Node) -> list[Node]:
    """The body's labels, in the order of a walk that visits the last child first (the CFG's
    node numbers follow it), leaving out those of GNU nested functions.  Found by a query:
    walking every node through the Python binding cost a tenth of building the graph."""
    out = []
    for lab in nodes_in_walk_order(body, _LABELS):
        up = lab.parent
        while up is not None and up.type != "function_definition" and up.start_byte >= body.start_byte:
            up = up.parent
        if up is None or up.start_byte < body.start_byte:  # reached the body: not nested
            out.append(lab)
    return out


_LABELS = frozenset({"labeled_statement"})


def _case_body(case: Node) -> list[Node]:
    value = case.child_by_field_name("value")
    return [c for c in case.named_children if c != value and c.type != "comment"]


def _statement_exprs(ast: Node | None) -> list[Node]:
    """The compound statements of GNU statement expressions in ast (outermost only)."""
    if ast is None or b"{" not in ast.text:  # a block needs its brace: most statements have none
        return []
    out, stack = [], [ast]
    while stack:
        n = stack.pop()
        if n.type == "parenthesized_expression" and n.named_child_count and \
                n.named_children[0].type == "compound_statement":
            out.append(n.named_children[0])
            continue
        if n.type in ("compound_statement",) and n is not ast:
            continue
        stack.extend(reversed(n.named_children))
    return out


def _calls_noreturn(ast: Node, noreturn: frozenset[str]) -> bool:
    if not noreturn:
        return False
    node = ast
    if node.type == "expression_statement" and node.named_child_count:
        node = node.named_children[0]
    node = unwrap_parens(node)
    return node.type == "call_expression" and text(node.child_by_field_name("function")) in noreturn
