"""Path-sensitive exploration of one function's CFG.

Like Clang's SimpleStreamChecker: every acquire starts a region in a small closed set of states;
each contract call moves it; a region is judged when the function returns.  Like Infer's Pulse,
a check splits the path into the world where the acquire failed and the one where it worked, so
error paths are explored without guessing.  States are deduplicated per CFG node; loop heads
widen integer values after a few visits, so exploration always ends.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass

from tree_sitter import Node

from dmalint.cfg import CFG
from dmalint.contracts.model import Contracts
from dmalint.engine.evaluate import Evaluator, Scope
from dmalint.engine.liveness import live_variables
from dmalint.engine.state import FAILED, LIVE, Region, State
from dmalint.engine.values import TOP, ZERO, Addr, Chk, Lin, Res, Value
from dmalint.findings import Event
from dmalint.parse import text, unwrap_parens
from dmalint.source import Define

WIDEN_AFTER = 3
DEFAULT_BUDGET = 20000
_ONCE_PER_REGION = {"unchecked-use", "wrong-handle-checked", "invalid-failure-test"}
_COMPARISONS = {"==", "!=", "<", "<=", ">", ">="}
_FLIP = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}


@dataclass
class ExploreResult:
    events: list[Event]
    complete: bool  # False when the step budget ran out before every path was seen


class Explorer:
    """Explores one function; call run() once."""

    def __init__(self, cfg: CFG, contracts: Contracts, scope: Scope, defines: dict[str, Define],
                 function: str, return_kind: str, errno_convention: bool,
                 budget: int = DEFAULT_BUDGET, summaries: dict | None = None):
        self.cfg = cfg
        self.c = contracts
        self.function = function
        self.return_kind = return_kind
        self.errno_convention = errno_convention
        self.budget = budget
        self.events: dict[tuple, Event] = {}
        self.ev = Evaluator(contracts, scope, defines, self._emit, function, summaries)

    # -- events ------------------------------------------------------------------------------
    def _emit(self, kind: str, node: Node | None, st: State, reg: Region, line: int | None = None,
              col: int | None = None, **fields) -> None:
        if node is not None:
            line, col = node.start_point[0] + 1, node.start_point[1] + 1
        # One report per region for the "never checked" family: the first use on the shortest
        # path says it all; other kinds are reported once per region and line.
        key = (kind, reg.rid) if kind in _ONCE_PER_REGION else (kind, reg.rid, line)
        if key in self.events:
            return
        data = {"handle": reg.handle_text, "acquire": reg.acquire, "acquire_line": reg.line}
        data.update(fields)
        trace = tuple(st.steps())
        self.events[key] = Event(kind, line or reg.line, col or 1, self.function, data, trace,
                                 related=((reg.line, f"{reg.acquire}() acquires the region here"),),
                                 anchor=f"{reg.acquire}:{reg.handle_text}")

    # -- exploration -------------------------------------------------------------------------
    def run(self) -> ExploreResult:
        g = self.cfg.graph
        live = live_variables(self.cfg)
        start = State()
        start.step(self.cfg.node(self.cfg.entry)["line"], "enter", f"enter {self.function}()")
        work = deque([(self.cfg.entry, start)])
        seen: set = set()
        visits: Counter = Counter()
        steps = 0
        complete = True
        while work:
            node, st = work.popleft()
            steps += 1
            if steps > self.budget:
                complete = False
                break
            data = g.nodes[node]
            if data["kind"] == "join" and data.get("loop"):
                visits[node] += 1
                if visits[node] > WIDEN_AFTER:
                    self._widen(st, node)
            st = _forget_dead(st, live[node])
            key = (node, st.key())
            if key in seen:
                continue
            seen.add(key)
            for succ, nxt in self._transfer(node, data, st):
                if g.edges[node, succ].get("abort"):
                    continue  # a noreturn call: the path ends unjudged
                work.append((succ, nxt))
        return ExploreResult(sorted(self.events.values(), key=lambda e: (e.line, e.kind)), complete)

    def _transfer(self, node: int, data: dict, st: State):
        kind = data["kind"]
        g = self.cfg.graph
        if kind == "stmt":
            st = st.copy()
            if not data.get("declaration_only"):
                self._statement(data["ast"], st)
            return [(s, st) for s in g.successors(node)]
        if kind == "assign":
            st = st.copy()
            self.ev.assign(data["lhs"], data["rhs"], st, data["ast"])
            return [(s, st) for s in g.successors(node)]
        if kind == "cond":
            out = []
            for truth, branch_st in self._branches(data["ast"], st, data["line"]):
                for s in g.successors(node):
                    b = g.edges[node, s].get("branch")
                    if b is None or b == truth:
                        out.append((s, branch_st))
            return out
        if kind == "switch":
            st = st.copy()
            self.ev.eval(data["ast"], st)
            return [(s, st) for s in g.successors(node)]
        if kind == "return":
            st = st.copy()
            value = self.ev.eval(data["ast"], st) if data["ast"] is not None else None
            self._judge_return(st, value, data["line"], data["ast"])
            return []
        if kind == "exit":
            self._judge_return(st, None, data["line"], None)
            return []
        return [(s, st) for s in g.successors(node)]

    def _statement(self, ast: Node, st: State) -> None:
        if ast.type == "declaration":
            for decl in ast.children_by_field_name("declarator"):
                if decl.type == "init_declarator":
                    target = decl.child_by_field_name("declarator")
                    value = decl.child_by_field_name("value")
                    name = _declared_name(target)
                    v = self.ev.eval(value, st) if value is not None and value.type != "initializer_list" else TOP
                    if name is not None:
                        self.ev.store((name,), v, st, decl)
                else:
                    name = _declared_name(decl)
                    if name is not None:
                        st.env.pop((name,), None)
            return
        if ast.type == "expression_statement":
            if ast.named_child_count:
                self.ev.eval(ast.named_children[0], st)
            return
        self.ev.eval(ast, st)

    def _widen(self, st: State, node: int) -> None:
        """Forget integer values that keep changing around a loop."""
        for path, v in list(st.env.items()):
            if isinstance(v, Lin) and not (v.single() and v.single()[0][0] == "widen"):
                st.env[path] = Lin.sym(("widen", node) + path)

    # -- conditions --------------------------------------------------------------------------
    def _branches(self, cond: Node, st: State, line: int) -> list[tuple[bool, State]]:
        """The feasible outcomes of an atomic condition, each with its refined state."""
        st = st.copy()
        cond = unwrap_parens(cond)
        op = None
        if cond.type == "binary_expression":
            op = text(cond.child_by_field_name("operator"))
        if op in _COMPARISONS:
            left = self.ev.eval(cond.child_by_field_name("left"), st)
            right = self.ev.eval(cond.child_by_field_name("right"), st)
            if isinstance(right, (Res, Chk)) and not isinstance(left, (Res, Chk)):
                left, right, op = right, left, _FLIP[op]
            value, negate = self._comparison(left, op, right, cond, st)
        else:
            value, negate = self.ev.eval(cond, st), False
        cond_text = " ".join(text(cond).split())
        out = []
        for truth in (True, False):
            branch = self._refine(value, truth != negate, st, cond, cond_text)
            if branch is not None:
                branch.step(line, "branch", f"'{cond_text}' is {'true' if truth else 'false'}")
                out.append((truth, branch))
        return out

    def _comparison(self, left: Value, op: str, right: Value, cond: Node, st: State):
        """Reduce `x op y` to a value tested for truth (and whether to negate it)."""
        if isinstance(left, (Res, Chk)) and right == ZERO:
            if op in ("==", "!="):
                return left, op == "=="
            if op in ("<", "<=", ">=", ">") and isinstance(left, Res):
                return ("negative-test", left, op), False
        if isinstance(left, Lin) and isinstance(right, Lin):
            return ("cmp", left.add(right, -1), op), False
        return TOP, False

    def _refine(self, value, truth: bool, st: State, cond: Node, cond_text: str) -> State | None:
        """The state in which `value` has this truth, or None if that is impossible."""
        if isinstance(value, tuple) and value[0] == "cmp":
            return self._refine_cmp(value[1], value[2], truth, st)
        if isinstance(value, tuple) and value[0] == "negative-test":
            return self._negative_test(value[1], value[2], truth, st, cond, cond_text)
        if isinstance(value, Chk):
            return self._outcome(value.rid, failed=truth != value.negated, st=st, line=cond.start_point[0] + 1)
        if isinstance(value, Res):
            return self._truth_of_region_value(value, truth, st, cond, cond_text)
        if isinstance(value, Lin):
            return self._refine_cmp(value, "!=", truth, st)
        return st.copy()

    def _outcome(self, rid: object, failed: bool, st: State, line: int | None = None) -> State | None:
        reg = st.regions.get(rid)
        if reg is None:
            return st.copy()
        if reg.outcome_known and (reg.status == FAILED) != failed and reg.status in (LIVE, FAILED):
            return None  # the same check cannot say both
        new = st.copy()
        if failed:
            new.regions[rid] = reg.but(status=FAILED, outcome_known=True, checked=True)
            new.step(line or reg.line, "assume", f"{reg.acquire}() at line {reg.line} failed")
        else:
            new.regions[rid] = reg.but(outcome_known=True, checked=True)
            new.step(line or reg.line, "assume", f"{reg.acquire}() at line {reg.line} succeeded")
        return new

    def _truth_of_region_value(self, v: Res, truth: bool, st: State, cond: Node, cond_text: str):
        """`if (ptr)` on an acquire's result: a real test for NULL- or 0-failing acquires, a
        wrong test for mappings that fail with DMA_MAPPING_ERROR."""
        reg = st.regions.get(v.rid)
        if reg is None or v.offset:
            return st.copy()
        acq = self.c.acquires[reg.acquire]
        if acq.failure in ("null", "zero") and v.part == acq.returns:
            return self._outcome(v.rid, failed=not truth, st=st, line=cond.start_point[0] + 1)
        if acq.failure == "check" and v.part == "handle" and not reg.checked:
            if not reg.wrong_test:
                check = next(iter(self.c.checks), "the check")
                self._emit("invalid-failure-test", cond, st, reg, check=check, test=cond_text,
                           why="a failed mapping is DMA_MAPPING_ERROR, not 0")
                st.regions[v.rid] = reg.but(wrong_test=True)
        return st.copy()

    def _negative_test(self, v: Res, op: str, truth: bool, st: State, cond: Node, cond_text: str):
        reg = st.regions.get(v.rid)
        if reg is None:
            return st.copy()
        acq = self.c.acquires[reg.acquire]
        if acq.failure == "negative" and op == "<":
            return self._outcome(v.rid, failed=truth, st=st, line=cond.start_point[0] + 1)
        if acq.failure == "zero" and op in ("<", ">=") and not reg.wrong_test:
            self._emit("invalid-failure-test", cond, st, reg, check=f"a test for 0", test=cond_text,
                       why=f"{reg.acquire}() returns 0 on failure, never a negative value")
            st.regions[v.rid] = reg.but(wrong_test=True)
        if acq.failure == "zero" and op in ("<=", ">"):
            return self._outcome(v.rid, failed=(truth == (op == "<=")), st=st, line=cond.start_point[0] + 1)
        return st.copy()

    def _refine_cmp(self, diff: Lin, op: str, truth: bool, st: State) -> State | None:
        """`diff op 0` has this truth: decide it from constants and facts, or record a fact."""
        if not truth:
            op = {"==": "!=", "!=": "==", "<": ">=", ">=": "<", ">": "<=", "<=": ">"}[op]
        if diff.is_const:
            return st.copy() if _holds(diff.const, op) else None
        single = diff.single()
        if single is None:
            return st.copy()
        sym, k = single
        if k < 0:
            op = _FLIP[op]
        known = st.facts.get(sym) or _inherent_fact(sym)
        if known is not None and not _compatible(known, op):
            return None
        if not self._worth_a_fact(sym):
            return st.copy()
        new = st.copy()
        new.facts[sym] = _meet(known, op)
        return new

    def _worth_a_fact(self, sym) -> bool:
        """Facts keep paths apart; record one only where a later test or return can use it."""
        if sym[0] == "init":
            return self.ev.scope.correlates(sym[1:])
        return sym[0] in ("call", "widen")

    # -- judging a return --------------------------------------------------------------------
    def _judge_return(self, st: State, value: Value | None, line: int, ast: Node | None) -> None:
        failure = self._is_failure(value, st)
        for reg in list(st.regions.values()):
            acq = self.c.acquires[reg.acquire]
            if reg.status != LIVE:
                continue
            if reg.escaped and not reg.checked and not reg.wrong_test and reg.store_line \
                    and acq.failure == "check":
                check = next(iter(self.c.checks), "the check")
                self._emit("unchecked-use", None, st, reg, line=reg.store_line, col=reg.store_col,
                           check=check, how=reg.store_how)
            if failure and not reg.escaped and not acq.managed and not reg.wrong_test \
                    and not _returns_region(value, reg):
                st.step(line, "return", "returns a failure with the region still held")
                node = ast if ast is not None else None
                self._emit("leak", node, st, reg, line=line, col=1,
                           release=self.ev.release_name(reg.acquire))

    def _is_failure(self, value: Value | None, st: State) -> bool:
        """Whether this return reports failure by the kernel's conventions."""
        if value is None or self.return_kind == "void":
            return False
        if isinstance(value, Chk):
            reg = st.regions.get(value.rid)
            return reg is not None and reg.status == FAILED and not value.negated
        if not isinstance(value, Lin):
            return False
        if self.return_kind == "pointer":
            if value == ZERO:
                return True
            return any(s[0] == ("errptr",)[0] for s, _ in value.terms)
        if self.return_kind not in ("int", "other"):
            return False
        if value.is_const:
            return value.const < 0 and self.return_kind == "int"
        single = value.single()
        if single is None:
            return False
        sym, k = single
        fact = _inherent_fact(sym) or st.facts.get(sym)
        if fact is None:
            return False
        sign = _sign_of(fact, k)
        if sign == "neg":
            return True
        return sign == "nonzero" and self.errno_convention and self.return_kind == "int"


def _forget_dead(st: State, live: frozenset[str]) -> State:
    """The state without what it knows about variables no later statement reads.

    Region handles held by dead variables are dropped from storage, not from the regions: the
    region's own state (live, released) still decides the verdict at the return."""
    reachable = set(live)
    frontier = [v.path[0] for p, v in st.env.items() if p[0] in live and isinstance(v, Addr)]
    while frontier:  # storage reached through a live pointer (hwdesc = &ring->desc[1]) is live
        root = frontier.pop()
        if root not in reachable:
            reachable.add(root)
            frontier.extend(v.path[0] for p, v in st.env.items() if p[0] == root and isinstance(v, Addr))
    dead = [p for p in st.env if p[0] not in reachable]
    if not dead and not st.facts:
        return st
    new = st.copy()
    for p in dead:
        del new.env[p]
    if new.facts:
        keep = set()
        for v in new.env.values():
            if isinstance(v, Lin):
                keep.update(s for s, _ in v.terms)
        for sym in list(new.facts):
            if sym in keep:
                continue
            if sym[0] == "init" and len(sym) > 1 and sym[1] in reachable:
                continue
            del new.facts[sym]
    return new


def _returns_region(value: Value | None, reg: Region) -> bool:
    return isinstance(value, Res) and value.rid == reg.rid


def _declared_name(decl: Node | None) -> str | None:
    while decl is not None and decl.type not in ("identifier",):
        if decl.type in ("pointer_declarator", "array_declarator", "parenthesized_declarator",
                         "init_declarator", "attributed_declarator"):
            decl = decl.child_by_field_name("declarator") or (decl.named_children[0] if decl.named_child_count else None)
        else:
            return None
    return text(decl) if decl is not None else None


# -- sign facts ------------------------------------------------------------------------------
# A fact about a symbol s is the relation "s op 0" known to hold on the path.

def _holds(c: int, op: str) -> bool:
    return {"==": c == 0, "!=": c != 0, "<": c < 0, "<=": c <= 0, ">": c > 0, ">=": c >= 0}[op]


_SETS = {  # the sign cases each relation allows: n(egative), z(ero), p(ositive)
    "==": {"z"}, "!=": {"n", "p"}, "<": {"n"}, "<=": {"n", "z"}, ">": {"p"}, ">=": {"z", "p"},
}
_FROM_SET = {frozenset(v): k for k, v in _SETS.items()}


def _compatible(known: str, op: str) -> bool:
    return bool(_SETS[known] & _SETS[op])


def _meet(known: str | None, op: str) -> str:
    if known is None:
        return op
    return _FROM_SET.get(frozenset(_SETS[known] & _SETS[op]), op)


def _inherent_fact(sym) -> str | None:
    """Facts true of a symbol whatever the path: errno names are positive."""
    return ">" if sym and sym[0] == "errno" else None


def _sign_of(fact: str, k: int) -> str | None:
    cases = _SETS[fact]
    if k < 0:
        cases = {{"n": "p", "p": "n", "z": "z"}[c] for c in cases}
    if cases == {"n"}:
        return "neg"
    if "z" not in cases:
        return "nonzero"
    return None
