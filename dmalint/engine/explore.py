"""Path-sensitive exploration of one function's CFG.

Like Clang's SimpleStreamChecker: every acquire starts a region in a small closed set of states;
each contract call moves it; a region is judged when the function returns.  Like Infer's Pulse,
a check splits the path into the world where the acquire failed and the one where it worked, so
error paths are explored without guessing.  States are deduplicated per CFG node; loop heads
widen integer values after a few visits, so exploration always ends.
"""

from __future__ import annotations

import gc
from collections import Counter, deque
from dataclasses import dataclass, replace

from tree_sitter import Node

from dmalint.cfg import CFG, assigned_roots
from dmalint.contracts.model import Contracts
from dmalint.engine import facts
from dmalint.engine.evaluate import Evaluator, Scope
from dmalint.engine.liveness import live_variables, relevance
from dmalint.engine.state import FAILED, LIVE, Region, State
from dmalint.engine.values import TOP, ZERO, Addr, Chk, Lin, Res, Value
from dmalint.findings import Event
from dmalint.parse import operator, text, unwrap_parens
from dmalint.source import Define

WIDEN_AFTER = 3
DEFAULT_BUDGET = 20000
# Distinct states kept per CFG node for one set of region statuses (Infer's Pulse keeps 20
# disjuncts per node)
STATES_PER_SHAPE = 16
_ONCE_PER_REGION = {"unchecked-use", "unchecked-alloc-use", "wrong-handle-checked",
                    "invalid-failure-test"}
_COMPARISONS = {"==", "!=", "<", "<=", ">", ">="}
_FLIP = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}


@dataclass(frozen=True)
class StoredLeak:
    """A region stored in a member and still held on a failure return; a leak when another
    function of the driver releases that member (e.g. remove() for what probe() stored)."""

    line: int
    region: Region
    trace: tuple
    release: str
    keys: frozenset


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
        self.states_per_shape = STATES_PER_SHAPE
        self.capped = 0  # states dropped by that bound
        self.events: dict[tuple, Event] = {}
        self.deferred_leaks: list = []
        self.stored_leaks: list[StoredLeak] = []
        self.ev = Evaluator(contracts, scope, defines, self._emit, function, summaries)

    # -- events ------------------------------------------------------------------------------
    def _emit(self, kind: str, node: Node | None, st: State, reg: Region, line: int | None = None,
              col: int | None = None, **fields) -> None:
        if node is not None:
            line, col = node.start_point[0] + 1, node.start_point[1] + 1
        # One report per region for the "never checked" family: the first use on the shortest
        # path says it all; other kinds are reported once per region and line.  A loop's
        # previous instance of a region is the same call site (Region.site): its report would
        # repeat the first one, on a longer path.
        key = (kind, reg.site) if kind in _ONCE_PER_REGION else (kind, reg.site, line)
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
        """Explore every path (up to the budget); the events, and whether it was complete.

        The cyclic garbage collector is paused meanwhile: the states seen are kept until the
        end, and each collection would walk all of them again (a quarter of the time of a
        function that uses its budget) for no garbage, as states hold no cycles."""
        paused = gc.isenabled()
        gc.disable()
        try:
            return self._run()
        finally:
            if paused:
                gc.enable()

    def _run(self) -> ExploreResult:
        g = self.cfg.graph
        # What the explorer may forget at each node: variables no later statement reads, and
        # those whose values cannot matter to a verdict (liveness.relevance).
        relevant, fields = relevance(self.cfg, self._api_like().__contains__,
                                     frozenset(key[-1] for key in self.ev.cookie_keys))
        self.ev.scope = replace(self.ev.scope, relevant_fields=self.ev.scope.relevant_fields & fields)
        # The graph's attributes in plain lists, looked up once: networkx views cost a few
        # calls per lookup, and every dequeued state asks for its node and successors.
        nodes = self.cfg.nodes_data
        self._succ = {n: [(s, e.get("branch"), bool(e.get("abort"))) for s, e in adj.items()]
                      for n, adj in g.adjacency()}
        # States are compared (and first stripped of what no longer matters) only where paths
        # meet: a node with one predecessor gets one state per state of that predecessor, so
        # comparing there would find nothing the predecessor's comparison did not.  Every
        # cycle passes a node with two predecessors, so exploration still ends.
        pred = self.cfg.pred
        merges = {n for n, data in nodes.items() if len(pred[n]) != 1 or data.get("loop")}
        live = {n: names & relevant for n, names in live_variables(self.cfg).items()
                if n in merges}  # only asked where paths meet
        start = State()
        start.step(self.cfg.node(self.cfg.entry)["line"], "enter", f"enter {self.function}()")
        work = deque([(self.cfg.entry, start)])
        seen: set = set()
        shapes: Counter = Counter()
        visits: Counter = Counter()
        modified: dict[int, frozenset[str]] = {}  # loop head -> variables the loop assigns
        steps = 0
        complete = True
        while work:
            node, st = work.popleft()
            steps += 1
            if steps > self.budget:
                complete = False
                break
            data = nodes[node]
            if data["kind"] == "join" and data.get("loop"):
                if "modified" in data:
                    # A label a goto jumps back to (`retry:`): counted per path, so that a
                    # retry-once loop (`hmac = 2; goto retry;`) keeps its constants, while
                    # `work += f(); goto again;` is widened on the path's fourth arrival.
                    rounds = dict(st.rounds)
                    arrived = rounds.get(node, 0) + 1
                    widen = arrived > WIDEN_AFTER
                    if not widen:
                        rounds[node] = arrived
                        st = st.copy()
                        st.rounds = tuple(sorted(rounds.items()))
                else:
                    visits[node] += 1
                    widen = visits[node] > WIDEN_AFTER
                if widen:
                    if node not in modified:
                        modified[node] = data.get("modified") or assigned_roots(data["ast"])
                    st = st.copy()  # the popped state may be shared with queued siblings
                    self._widen(st, node, modified[node])
            if node in merges:
                st = _forget_dead(st, live[node])
                key = (node, st.key())
                if key in seen:
                    continue
                seen.add(key)
                # Paths whose regions are in the same states (live, checked, stored, ...) but
                # which differ in integers (sizes tested against several constants, flags, a
                # loop's fragment sizes) multiply; past a few per node they are dropped, as
                # Infer's Pulse bounds its disjuncts.
                shape = (node, _statuses(st.regions), st.irqs_off)
                shapes[shape] += 1
                if shapes[shape] > self.states_per_shape:
                    self.capped += 1
                    continue
            for succ, nxt in self._transfer(node, data, st):
                work.append((succ, nxt))
        for ast, leak_st, reg, line, family in self.deferred_leaks:
            if reg.rid in self.ev.released_sites:
                self._emit("leak", ast, leak_st, reg, line=line, col=1,
                           release=self.c.release_for(family))
            else:  # the driver pass decides: is the member released by another function?
                self.stored_leaks.append(StoredLeak(
                    line, reg, tuple(leak_st.steps()), self.c.release_for(family),
                    frozenset(self.ev.field_log.keys_of_region.get(reg.rid, ()))))
        return ExploreResult(sorted(self.events.values(), key=lambda e: (e.line, e.kind)), complete)

    def _api_like(self) -> frozenset[str]:
        """Calls that may act on a DMA region: the API, a summarised helper, a function that
        maps its buffer argument, or a kernel idiom that takes over a release."""
        core = self.c.core
        return (self.c.api_names() | frozenset(self.ev.summaries)
                | frozenset(self.ev.buffer_params) | core.managed_actions | core.borrows)

    def _transfer(self, node: int, data: dict, st: State):
        """(successor, state) pairs; edges into a noreturn call's abort are left out (the path
        ends unjudged)."""
        kind = data["kind"]
        succ = self._succ[node]
        if kind == "stmt":
            st = st.copy()
            if not data.get("declaration_only"):
                self._statement(data["ast"], st)
            return [(s, st) for s, _, abort in succ if not abort]
        if kind == "assign":
            st = st.copy()
            self.ev.assign(data["lhs"], data["rhs"], st, data["ast"])
            return [(s, st) for s, _, abort in succ if not abort]
        if kind == "cond" and data.get("iterator"):
            st = st.copy()
            self._advance_iterator(data["ast"], data["iterator"], st)
            return [(s, st) for s, _, abort in succ if not abort]
        if kind == "cond":
            out = []
            for truth, branch_st in self._branches(data["ast"], st, data["line"]):
                for s, b, abort in succ:
                    if (b is None or b == truth) and not abort:
                        out.append((s, branch_st))
            return out
        if kind == "switch":
            st = st.copy()
            self.ev.eval(data["ast"], st)
            return [(s, st) for s, _, abort in succ if not abort]
        if kind == "return":
            st = st.copy()
            value = self.ev.eval(data["ast"], st) if data["ast"] is not None else None
            self._judge_return(st, value, data["line"], data["ast"])
            return []
        if kind == "exit":
            self._judge_return(st, None, data["line"], None)
            return []
        return [(s, st) for s, _, abort in succ if not abort]

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
            if not ast.named_child_count:
                return
            ast = ast.named_children[0]
        before = set(st.regions)
        self.ev.eval(ast, st)
        self._ignored_result(ast, before, st)

    def _advance_iterator(self, args: Node, cursors: tuple[int, ...], st: State) -> None:
        """An iterator macro's round assigns its cursor arguments (data: rules/macros.toml)."""
        operands = []
        stack = [unwrap_parens(args)]
        while stack:  # the comma expression `a, b, c` nests to the left
            n = stack.pop()
            if n.type == "comma_expression":
                stack.append(n.child_by_field_name("left"))
                operands.append(n.child_by_field_name("right"))
            else:
                operands.append(n)
        operands.reverse()
        for i in cursors:
            if i < len(operands):
                path = self.ev.lvalue(operands[i], st)
                if path is not None:
                    self.ev.store(path, Lin.sym(("iter", args.start_byte) + path), st, operands[i])

    def _ignored_result(self, expr: Node, before: set, st: State) -> None:
        """`dma_map_sg(...);` as a statement: the only way to learn of its failure is lost."""
        expr = unwrap_parens(expr)
        if expr.type != "call_expression":
            return
        acq = self.c.acquires.get(self.ev.text(expr.child_by_field_name("function")))
        reg = st.regions.get(expr.start_byte)
        if acq is None or reg is None or expr.start_byte in before or acq.returns == "handle" \
                or acq.out_arg is not None:
            return
        self._emit("unchecked-alloc-use" if acq.failure == "null" else "unchecked-use", expr, st,
                   reg, check=self.ev.check_phrase(acq), how="ignored (its result is discarded)")
        st.regions[reg.rid] = reg.but(wrong_test=True)

    def _widen(self, st: State, node: int, modified: frozenset[str]) -> None:
        """Forget the integer values the loop keeps changing (and what is known of them).

        `modified` names variables the loop assigns (`x`) and those whose members or elements
        it assigns (`x.`); a pointer holding &obj on this path has obj's members changed."""
        inside = [(name[:-1],) for name in modified if name.endswith(".")]
        for root in list(inside):
            held = st.env.get(root)
            if isinstance(held, Addr):
                inside.append(held.path)
        for path, v in list(st.env.items()):
            # A value already widened stays (so the loop converges); `k * widened` (i <<= 1
            # after widening) is widened again, or the coefficient would grow for ever.
            changed = path[0] in modified or \
                any(len(path) > len(p) and path[:len(p)] == p for p in inside)
            if changed and isinstance(v, (Lin, Addr)) and \
                    not (isinstance(v, Lin) and v.single() and v.single()[0][0] == "widen"
                         and v.single()[1] == 1):
                st.env[path] = Lin.sym(("widen", node) + path)
        for sym in [s for s in st.facts if s[0] == "init" and
                    (s[1] in modified or any(len(s) > len(p) + 1 and s[1:len(p) + 1] == p
                                             for p in inside))]:
            del st.facts[sym]

    # -- conditions --------------------------------------------------------------------------
    def _branches(self, cond: Node, st: State, line: int) -> list[tuple[bool, State]]:
        """The feasible outcomes of an atomic condition, each with its refined state."""
        st = st.copy()
        cond = unwrap_parens(cond)
        op = None
        if cond.type == "binary_expression":
            op = operator(cond)
        if op in _COMPARISONS:
            left = self.ev.eval(cond.child_by_field_name("left"), st)
            right = self.ev.eval(cond.child_by_field_name("right"), st)
            if isinstance(right, (Res, Chk)) and not isinstance(left, (Res, Chk)):
                left, right, op = right, left, _FLIP[op]
            value, negate = self._comparison(left, op, right, cond, st)
        else:
            value, negate = self.ev.eval(cond, st), False
        cond_text = " ".join(self.ev.text(cond).split())
        out = []
        for truth in (True, False):
            branch = self._refine(value, truth != negate, st, cond, cond_text)
            if branch is not None:
                branch.step(line, "branch", f"'{cond_text}' is {'true' if truth else 'false'}")
                out.append((truth, branch))
        return out

    def _comparison(self, left: Value, op: str, right: Value, cond: Node, st: State):
        """Reduce `x op y` to a value tested for truth (and whether to negate it)."""
        if isinstance(left, Chk) and right == ZERO and op in ("<", "<=", ">=", ">"):
            # a helper's -errno result: `helper() < 0` is its failure
            return left, op in (">=", ">")
        if isinstance(left, (Res, Chk)) and right == ZERO:
            if op in ("==", "!="):
                return left, op == "=="
            if op in ("<", "<=", ">=", ">") and isinstance(left, Res):
                return ("negative-test", left, op), False
        if isinstance(left, Res) and left.part == "count" and op in ("==", "!=") and \
                isinstance(right, Lin) and right.is_const and right.const > 0:
            # `dma_map_sg(..., 1, ...) != 1`: anything but the expected count is handled as failure
            return left, op == "!="
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
        acq = self.ev.contract_of(reg)
        if acq.failure in ("null", "zero") and v.part == acq.returns:
            return self._outcome(v.rid, failed=not truth, st=st, line=cond.start_point[0] + 1)
        if acq.failure == "negative" and v.part == acq.returns:  # `if (ret)`: an errno is failure
            return self._outcome(v.rid, failed=truth, st=st, line=cond.start_point[0] + 1)
        if acq.failure == "check" and v.part == "handle" and not reg.checked:
            if not reg.wrong_test:
                check = f"{self.c.check_for(acq.family)}()"
                self._emit("invalid-failure-test", cond, st, reg, check=check, test=cond_text,
                           why="a failed mapping is DMA_MAPPING_ERROR, not 0")
                st.regions[v.rid] = reg.but(wrong_test=True)
        elif acq.failure == "check" and v.part == "handle" and not truth \
                and reg.status == LIVE and reg.outcome_known:
            # `if (p->dma) dma_unmap_single(...)` in an unwind: drivers keep 0 for "not mapped"
            # (and store 0 when the mapping fails), so a mapping known to have worked is not 0.
            return None
        return st.copy()

    def _negative_test(self, v: Res, op: str, truth: bool, st: State, cond: Node, cond_text: str):
        reg = st.regions.get(v.rid)
        if reg is None:
            return st.copy()
        acq = self.ev.contract_of(reg)
        if acq.failure == "negative" and op == "<":
            return self._outcome(v.rid, failed=truth, st=st, line=cond.start_point[0] + 1)
        if acq.failure == "zero" and op in ("<", ">=") and not reg.wrong_test:
            self._emit("invalid-failure-test", cond, st, reg, check="a test for 0 (no entries mapped)", test=cond_text,
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
        if len(diff.terms) == 1:
            sym, k = diff.terms[0]
            if abs(k) != 1:
                return st.copy()
            bound = -diff.const * k  # k*s + c op 0  <=>  s op' -c/k
            if k < 0:
                op = _FLIP[op]
        else:
            if diff.const != 0 or op not in ("==", "!="):
                return st.copy()
            # a == b between two unknowns: remember the relation itself (src == dst tested twice)
            terms = diff.terms if diff.terms[0][1] > 0 else tuple((t, -k) for t, k in diff.terms)
            sym, bound = ("rel",) + terms, 0
        known = st.facts.get(sym) or facts.inherent(sym)
        narrowed = facts.constrain(known, op, bound)
        if narrowed is None:
            return None
        if not self._worth_a_fact(sym):
            return st.copy()
        new = st.copy()
        new.facts[sym] = narrowed
        return new

    def _worth_a_fact(self, sym) -> bool:
        """Facts keep paths apart; record one only where a later test or return can use it."""
        if sym[0] == "init":
            return self.ev.scope.correlates(sym[1:])
        if sym[0] == "rel":
            return all(self._worth_a_fact(t) for t, _ in sym[1:])
        return sym[0] in ("call", "widen")

    # -- judging a return --------------------------------------------------------------------
    def _judge_return(self, st: State, value: Value | None, line: int, ast: Node | None) -> None:
        failure = self._is_failure(value, st)
        for reg in list(st.regions.values()):
            acq = self.ev.contract_of(reg)
            if reg.status != LIVE:
                continue
            unchecked = not reg.checked and not reg.wrong_test
            event = "unchecked-alloc-use" if acq.failure == "null" else "unchecked-use"
            # An allocation stored unchecked matters when the caller is told all went well;
            # a failure return (`if (!a || !b) return -ENOMEM;` before b's test) is no use.
            if reg.escaped and unchecked and reg.store_line and \
                    not (failure and acq.failure == "null"):
                self._emit(event, None, st, reg, line=reg.store_line, col=reg.store_col,
                           check=self.ev.check_phrase(acq), how=reg.store_how)
            elif unchecked and acq.failure in ("zero", "negative") and not reg.escaped \
                    and not _returns_region(value, reg):
                self._emit(event, None, st, reg, line=reg.line, col=1,
                           check=self.ev.check_phrase(acq), how="never tested for failure")
            if failure and not reg.handed and not acq.managed and not reg.wrong_test \
                    and not _returns_region(value, reg):
                leak_st = st.copy()
                leak_st.step(line, "return", "returns a failure with the region still held")
                if not reg.escaped:
                    self._emit("leak", ast, leak_st, reg, line=line, col=1,
                               release=self.c.release_for(acq.family))
                else:
                    # Stored in driver state: a leak only if this function itself releases the
                    # region on another path (then this failure path forgot to).
                    self.deferred_leaks.append((ast, leak_st, reg, line, acq.family))

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
        if sym[0] == "errno" and sym[1] in self.c.core.success_errnos:
            return False  # -EINPROGRESS: the request was queued
        fact = st.facts.get(sym) or facts.inherent(sym)
        if fact is None:
            return False
        sign = facts.sign(fact, k)
        if sign == "neg":
            return True
        return sign == "nonzero" and self.errno_convention and self.return_kind == "int"


def _statuses(regions: dict) -> frozenset:
    """What the verdicts at a return depend on, per region: not its sizes or texts."""
    return frozenset((rid, r.status, r.checked, r.outcome_known, r.wrong_test, r.escaped,
                      r.handed) for rid, r in regions.items())


def _forget_dead(st: State, live: frozenset[str]) -> State:
    """The state without what it knows about variables no later statement reads.

    Region handles held by dead variables are dropped from storage, not from the regions: the
    region's own state (live, released) still decides the verdict at the return.

    Called for every state taken from the work list, so the common case (every variable the
    state holds is live, nothing to forget) returns the state itself without copying it or
    the live set."""
    env = st.env
    if not st.facts and live.issuperset([p[0] for p in env]):
        return st
    reached: set[str] = set()  # roots not in `live` but reached through a live pointer
    frontier = [v.path[0] for p, v in env.items() if p[0] in live and isinstance(v, Addr)]
    while frontier:  # storage reached through a live pointer (hwdesc = &ring->desc[1]) is live
        root = frontier.pop()
        if root not in live and root not in reached:
            reached.add(root)
            frontier.extend(v.path[0] for p, v in env.items() if p[0] == root and isinstance(v, Addr))
    reachable = live | reached if reached else live  # copy the live set only when it grows
    dead = [p for p in env if p[0] not in reachable]
    if not dead and not st.facts:
        return st
    gone = []
    if st.facts:
        keep = set()
        for p, v in env.items():
            if isinstance(v, Lin) and p[0] in reachable:
                keep.update(s for s, _ in v.terms)
        for sym in st.facts:
            if sym in keep:
                continue
            if sym[0] == "init" and len(sym) > 1 and sym[1] in reachable:
                continue
            if sym[0] == "rel" and all(t[0] != "init" or t[1] in reachable or t in keep
                                       for t, _ in sym[1:]):
                continue
            gone.append(sym)
    # A state with facts was always handed on as a copy (widening at a loop head changes the
    # state it is given in place, so sharing more states could change what is widened).
    new = st.copy()
    for p in dead:
        del new.env[p]
    for sym in gone:
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


def _holds(c: int, op: str) -> bool:
    return {"==": c == 0, "!=": c != 0, "<": c < 0, "<=": c <= 0, ">": c > 0, ">=": c >= 0}[op]
