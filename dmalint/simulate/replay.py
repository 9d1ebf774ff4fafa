"""Replay a finding's witness concretely against the dma-debug model.

Each witness segment (a function the trace enters) is walked through its CFG: recorded branch
decisions are followed, and checked against the concrete state where it decides them (a
contradiction makes the path infeasible: refuted).  The driver's own functions called on the
way are replayed too, with concrete decisions only; one that cannot be decided is undone and
treated as an unknown call.  A judge (verdict.py) watches the finding's line and decides.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import networkx as nx
from tree_sitter import Node

from dmalint.findings import Finding
from dmalint.parse import text, unwrap_parens
from dmalint.simulate.cache import Cache
from dmalint.simulate.interp import GiveUp, Interp, norm
from dmalint.simulate.program import Program
from dmalint.simulate.values import truth
from dmalint.simulate.witness import Segment, cache_granule, segments

STEP_BUDGET = 10000  # CFG nodes per finding, helpers included
HELPER_BUDGET = 600  # CFG nodes per replayed helper call
MAX_DEPTH = 4
_CALLS = re.compile(r"\b([A-Za-z_]\w*)\s*\(")


@dataclass
class Simulated:
    verdict: str
    reason: str
    dmesg: list[str] = field(default_factory=list)
    steps: list[tuple[str, int, str, list[str]]] = field(default_factory=list)  # path, line, what, table


class Undecided(Exception):
    """A helper reached a branch its concrete state does not decide."""


class _Return(Exception):
    def __init__(self, value) -> None:
        self.value = value


class Replayer(Interp):
    def __init__(self, finding: Finding, program: Program, judge, record: bool = False) -> None:
        super().__init__(program.c, program.sources.get(finding.path))
        self.f = finding
        self.program = program
        self.judge = judge
        self.record = record
        self.steps: list[tuple[str, int, str, list[str]]] = []
        self.budget = STEP_BUDGET
        self.depth = 0
        self.stack: list[str] = []
        self.seg: Segment | None = None
        self.final = False
        self.site = 0
        self.visited_line = False
        self.pending: list = []
        self.here = False
        self.node = None
        self.cfg = None
        self.abandoned = 0  # helper calls undone and treated as unknown calls
        self.diverged = ""  # why the replay left the witness (its first infeasible branch)
        self.history: dict[tuple[int, str], bool] = {}  # the witness's last decision per branch
        self.overrides: dict[tuple[int, str], bool] = {}  # witness branches replayed reversed
        self.extra_rounds = False  # running loop rounds the witness did not record
        granule = cache_granule(finding)
        self.cache = Cache(granule)
        self.layouts = program.layouts(granule)

    def function_name(self) -> str:
        if self.stack:
            return self.stack[-1]
        return self.seg.function if self.seg is not None else self.f.function

    def find_define(self, name: str):
        return self.program.define(name, self.src)

    # -- the model sees the line of the replayed function that led to each operation ---------
    def _model(self):
        m = super()._model()
        m.site = self.site
        m.in_helper = self.depth > 0
        return m

    def snapshot(self, what: str) -> None:
        if self.record:
            path = self.src.path if self.src is not None else self.f.path
            self.steps.append((path, self.line, "  " * self.depth + what,
                               self.model.table() + self.cache.table()
                               + ["~ " + e for e in self.cache.drain()]))

    # -- segments --------------------------------------------------------------------------
    def run(self) -> Simulated:
        segs = segments(self.f)
        for i, seg in enumerate(segs):
            self.segment = i
            self.seg = seg
            self.final = i == len(segs) - 1
            found = self.program.find(seg.function, seg.path)
            if found is None:
                return Simulated("unknown", f"function {seg.function}() not found on replay")
            self.src, fn = found
            self.outcomes = {k: list(v) for k, v in seg.outcomes.items()}
            self.frame = {}
            self.bind_params(fn, None)
            self.line = fn.node.start_point[0] + 1
            self.snapshot(f"enter {seg.function}()")
            pending = self.pending = list(seg.branches)
            cfg = self.cfg = self.program.cfg(self.src, fn)
            try:
                self.walk(cfg, pending)
            except (_Return, _SegmentDone):
                pass
            except Undecided as why:
                if self.final or pending:
                    return self.stuck(Simulated("unknown", str(why)))
            except GiveUp as stop:
                if stop.verdict == "refuted":
                    return Simulated(stop.verdict, stop.reason)
                if self.final or pending:
                    return self.stuck(Simulated(stop.verdict, stop.reason))
            if self.final:
                if not self.visited_line:
                    # Every decision on the way was the witness's or forced by the concrete
                    # state (else the replay would have stopped): the line cannot be reached.
                    return Simulated("refuted", f"path infeasible: the concrete replay of "
                                     f"{seg.function}() returns at line {self.line} without "
                                     f"reaching line {self.f.line}")
                return self.judge(self, ("end", None)) or Simulated(
                    "unknown", f"the replay did not reach line {self.f.line}")
            self.keep_stores(seg)
        return Simulated("unknown", "empty witness")

    def stuck(self, why: Simulated) -> Simulated:
        """The replay of the finding's function stopped after its line: the judge may still
        decide from what it saw and from what the rest of the function can do."""
        if self.final and self.visited_line:
            out = self.judge(self, ("stuck", self.node))
            if out is not None:
                out.reason += f" (the replay stopped after it: {why.reason})"
                return out
        return why

    def reachable_calls(self, node) -> set[str]:
        """The names called anywhere after `node` in the current function."""
        g = self.cfg.graph
        names: set[str] = set()
        for m in nx.descendants(g, node):
            ast = g.nodes[m].get("ast")
            if ast is not None:
                names.update(_CALLS.findall(text(ast)))
        return names

    def keep_stores(self, seg: Segment) -> None:
        """The witness says this function keeps the region in a member: make it so, when the
        replayed statements did not already (an array slot, a pointer the replay lost)."""
        for line, member in seg.stores:
            if member in self.members and self.members[member][0] == self.segment:
                continue
            entry = next((e for e in self.model.entries.values()
                          if line in (e.line, e.site)), None)
            if entry is not None:
                self.members[member] = (self.segment, entry.addr if entry.type != "sg"
                                        else entry.cpu)

    def bind_params(self, fn, vals) -> None:
        decl = fn.node.child_by_field_name("declarator")
        while decl is not None and decl.type != "function_declarator":
            decl = decl.child_by_field_name("declarator")
        params = decl.child_by_field_name("parameters") if decl is not None else None
        i = 0
        for p in params.named_children if params is not None else []:
            if p.type != "parameter_declaration":
                continue
            d = p.child_by_field_name("declarator")
            while d is not None and d.type != "identifier":
                d = d.child_by_field_name("declarator")
            if d is not None:
                name = text(d)
                self.frame[name] = vals[i] if vals is not None and i < len(vals) else \
                    self.fresh(name)
            i += 1

    # -- one function ------------------------------------------------------------------------
    def walk(self, cfg, pending: list, hint: str | None = None, limit: int | None = None):
        """Run one function from its entry; returns through _Return or at its exit (None)."""
        g = cfg.graph
        node = cfg.entry
        hint_done = False
        own = limit
        while True:
            self.budget -= 1
            if self.budget <= 0:
                raise GiveUp("unknown", f"step budget ({STEP_BUDGET} statements) ran out")
            if own is not None:
                own -= 1
                if own <= 0:
                    raise Undecided(f"helper budget ({HELPER_BUDGET}) ran out")
            attrs = g.nodes[node]
            kind = attrs["kind"]
            self.line = attrs.get("line") or self.line
            ast = attrs.get("ast")
            self.call_line = 0
            self.here = self.covers(ast)
            if self.depth == 0:
                self.node = node
                # A statement over several lines: its operations count as the finding's line.
                self.site = self.f.line if self.here else self.line
            if kind == "exit":
                return None
            succ = None
            if kind == "stmt" and ast is not None:
                if ast.type == "declaration":
                    self.declare(ast, not attrs.get("declaration_only"))
                else:
                    self.eval(ast)
                self.snapshot(text(ast).split("\n")[0][:70])
            elif kind == "assign":
                self.assign(attrs["lhs"], self.eval(attrs["rhs"]))
                self.snapshot(f"{text(attrs['lhs'])} = {text(attrs['rhs'])}"[:70])
            elif kind == "return":
                value = self.eval(ast) if ast is not None else None
                self.snapshot(f"return {text(ast) if ast is not None else ''}"[:70])
                if self.at_finding():
                    self.visited_line = True
                    out = self.judge(self, ("return", node))
                    if out is not None:
                        raise _Decided(out)
                raise _Return(value)
            elif kind == "cond":
                try:
                    succ = self.choose(g, node, ast, attrs, pending, hint, hint_done, cfg)
                except Undecided:
                    if self.at_finding():  # the condition is the finding: judge it first
                        self.visited_line = True
                        out = self.judge(self, ("line", node))
                        if out is not None:
                            raise _Decided(out) from None
                    raise
            elif kind == "switch":
                succ = self.switch(g, node, ast)
            if hint is not None and self.calls_api(ast, hint):
                hint_done = True
            if self.at_finding():
                self.visited_line = True
                out = self.judge(self, ("line", node))
                if out is not None:
                    raise _Decided(out)
            if succ is None:
                nexts = [n for _, n, e in g.out_edges(node, data=True) if not e.get("abort")]
                succ = nexts[0] if nexts else next(iter(g.successors(node)))
            node = succ

    def at_finding(self) -> bool:
        return self.final and self.depth == 0 and self.here

    def covers(self, ast: Node | None) -> bool:
        if ast is None:
            return self.line == self.f.line
        return ast.start_point[0] + 1 <= self.f.line <= ast.end_point[0] + 1 \
            or self.line == self.f.line

    def calls_api(self, ast: Node | None, api: str) -> bool:
        return ast is not None and f"{api}(" in norm(text(ast))

    def choose(self, g, node, ast, attrs, pending, hint, hint_done, cfg) -> int:
        edges = {e.get("branch"): n for _, n, e in g.out_edges(node, data=True)}
        if None in edges and len(edges) == 1:
            if attrs.get("iterator") is None:
                self.eval(ast)
            return edges[None]
        label = norm(text(ast))
        if self.diverged and self.depth == 0:
            # Off the witness since a branch it could not take: pick its records up again at
            # the next one that names this condition.
            j = next((i for i, (ln, lb, _) in enumerate(pending) if ln == self.line
                      and lb == label), None)
            if j:
                del pending[:j]
        head = pending[0] if self.depth == 0 and pending else None
        matches = head is not None and head[0] == self.line and head[1] == label
        value = None if attrs.get("iterator") is not None else self.eval(ast)
        concrete = None if value is None else self.truth(value)
        recorded = None
        if matches and concrete is not None and head[2] != concrete \
                and node in self.program.loop_nodes(cfg):
            # The static engine widens loops: its witness leaves a loop after an abstract number
            # of rounds.  Run the rounds concretely; the recorded exit waits for its round.
            self.notes.append(f"ran the loop at line {self.line} concretely")
            self.extra_rounds = True
        elif matches:
            recorded = pending.pop(0)[2]
            if (self.line, label) in self.overrides:
                recorded = self.overrides[(self.line, label)]
            self.history[(self.line, label)] = recorded
            if node in self.program.loop_nodes(cfg):
                self.extra_rounds = False
        if recorded is not None and concrete is not None and recorded != concrete \
                and self.final and self.depth == 0 and not self.diverged:
            fact = self.facts.get(id(value))
            if truth(self.known_value(value)) is None and fact is not None and fact[2] \
                    and fact[2] not in self.overrides:
                # Only an earlier choice of the witness decides this value: the witness
                # contradicts itself.  Which of the two choices is the real one is for a
                # second replay to find out, with the earlier one reversed.
                raise Conflict(fact[2], not fact[1], f"'{text(ast)[:60]}' at line {self.line} "
                               f"contradicts the witness's choice at line {fact[2][0]}")
        if recorded is not None and concrete is not None and recorded != concrete:
            why = (f"path infeasible: '{text(ast)[:60]}' at line {self.line} is "
                   f"{'true' if concrete else 'false'} in the concrete state, the witness needs "
                   f"it {'true' if recorded else 'false'}")
            if not (self.final and self.depth == 0) or self.diverged:
                raise GiveUp("refuted", self.diverged or why)
            # The witness is infeasible here; the bug may still be on the path the concrete
            # state takes.  Follow it: the verdict says which.
            self.diverged = why
            recorded = concrete
        choice = recorded if recorded is not None else concrete
        if choice is None and self.depth == 0 and self.extra_rounds \
                and (self.line, label) in self.history:
            # A round the witness folded into the one it recorded: decide as it did there.
            choice = self.history[(self.line, label)]
        if choice is None and hint is not None and not hint_done:
            choice = self.toward(g, edges, hint)
        loop = self.program.loop_nodes(cfg).get(node)
        if choice is not None and loop and self.depth == 0 and edges.get(choice) not in loop:
            # Leaving a loop: records of its rounds the concrete run did not make are dropped.
            lines = {g.nodes[m].get("line") for m in loop}
            while pending and pending[0][0] in lines:
                pending.pop(0)
            self.extra_rounds = False
        if choice is None:
            if self.depth == 0 and not pending and not self.final:
                raise _SegmentDone()
            raise Undecided(f"branch '{text(ast)[:50]}' at line {self.line}"
                            + (" (in a helper)" if self.depth else "")
                            + " is not decided by the witness or the concrete state")
        if concrete is None and value is not None:
            # Also in loops: `i < n` with i = 0, 1, ... are different values, so the facts only
            # pin n down (a second loop over n runs as many rounds).
            self.assume(value, choice, (self.line, label) if recorded is not None else None)
        self.snapshot(f"'{text(ast)[:50]}' is {'true' if choice else 'false'}")
        return edges[choice]

    def toward(self, g, edges, api: str) -> bool | None:
        """The branch from which the call the witness names is reachable, if only one is."""
        leads = {}
        for b, n in edges.items():
            reach = {n} | nx.descendants(g, n)
            leads[b] = any(self.calls_api(g.nodes[m].get("ast"), api) or any(
                self.program.reaches(c, api) for c in self._callees(g.nodes[m].get("ast")))
                for m in reach)
        if leads.get(True) != leads.get(False):
            self.notes.append(f"assumed the branch at line {self.line} that leads to {api}(), "
                              "as the witness says")
            return bool(leads.get(True))
        return None

    def _callees(self, ast: Node | None) -> list[str]:
        if ast is None:
            return []
        return [m for m in _CALLS.findall(text(ast))
                if self.program.find(m) is not None]

    def _case_holds(self, case: Node, v: int) -> bool:
        """Whether the switch value v takes this case label.  A GNU range `case LO ... HI:`
        reaches us as `(LO , HI)` (source.py rewrites it so that it parses)."""
        inner = unwrap_parens(case)
        if inner.type == "comma_expression":
            low = self.eval(inner.child_by_field_name("left"))
            high = self.eval(inner.child_by_field_name("right"))
            return isinstance(low, int) and isinstance(high, int) and low <= v <= high
        return self.eval(case) == v

    def switch(self, g, node, ast) -> int:
        v = self.eval(ast)
        succ = None
        for _, nxt, e in g.out_edges(node, data=True):
            for case in e.get("cases", []):
                if case is not None and isinstance(v, int) and self._case_holds(case, v):
                    succ = nxt
        if succ is None and isinstance(v, int):
            succ = next(nxt for _, nxt, e in g.out_edges(node, data=True)
                        if None in e.get("cases", []))
        if succ is None and self.final and self.depth == 0 and not self.visited_line:
            # The witness went through this switch to the finding's line: when only one case
            # leads there, it is the one it took.
            leads = {nxt for _, nxt, _ in g.out_edges(node, data=True)
                     if any(g.nodes[m].get("line") == self.f.line
                            for m in {nxt} | nx.descendants(g, nxt))}
            if len(leads) == 1:
                succ = leads.pop()
                self.notes.append(f"took the case of the switch at line {self.line} that "
                                  f"reaches line {self.f.line}, as the witness does")
        if succ is None:
            raise Undecided(f"switch at line {self.line} is not decided")
        if self.depth == 0:
            self.notes.append(f"the switch at line {self.line} takes the case for {v}")
        return succ

    # -- the driver's own functions ------------------------------------------------------------
    def call_helper(self, name: str, vals, n: Node):
        if self.depth >= MAX_DEPTH or name in self.stack:
            return False, None
        found = self.program.find(name, self.src.path if self.src is not None else None)
        if found is None:
            return False, None
        src, fn = found
        recorded = self.outcomes.get(self.call_line) if self.depth == 0 else None
        if recorded:
            # The witness treats this helper as an acquire and chose its result: a failure is
            # taken as given (an opaque call), a success is replayed.
            if not recorded.pop(0):
                self.notes.append(f"{name}() at line {self.call_line} fails, as the witness says")
                return False, None
        hint = self.seg.hint(self.site, name) if self.seg is not None else None
        if hint is None and self.depth > 0 and self.stack and self.hint_api:
            hint = self.hint_api if self.program.reaches(name, self.hint_api) else None
        saved = (self.frame, self.src, self.line, self.hint_api, self.here, self.call_line)
        own_journal = self.journal is None
        if own_journal:
            self.journal = []
        mark = len(self.journal)
        cp = self.model.checkpoint()
        ccp = self.cache.checkpoint()
        self.frame, self.src, self.hint_api = {}, src, hint
        self.depth += 1
        self.stack.append(name)
        try:
            self.bind_params(fn, vals)
            self.line = fn.node.start_point[0] + 1
            self.snapshot(f"call {name}()")
            try:
                self.walk(self.program.cfg(src, fn), [], hint, HELPER_BUDGET)
                value = None
            except _Return as r:
                value = r.value
            return True, value if value is not None else self.fresh(f"{name}()")
        except (Undecided, GiveUp) as why:
            if isinstance(why, GiveUp) and "step budget" in why.reason:
                raise
            self.rollback(mark)
            self.model.restore(cp)
            self.cache.restore(ccp)
            self.notes.append(f"{name}() at line {saved[2]} not replayed: {why}")
            self.abandoned += 1
            return False, None
        finally:
            self.depth -= 1
            self.stack.pop()
            self.frame, self.src, self.line, self.hint_api, self.here, self.call_line = saved
            if own_journal:
                self.journal = None

    hint_api: str | None = None


class _Decided(Exception):
    def __init__(self, sim: Simulated) -> None:
        self.sim = sim


class _SegmentDone(Exception):
    """An earlier function of the witness has run past its last recorded decision."""


class Conflict(Exception):
    """Two branches of the witness disagree about one value: replay with `origin` reversed."""

    def __init__(self, origin: tuple[int, str], value: bool, why: str) -> None:
        super().__init__(why)
        self.origin = origin
        self.value = value
        self.why = why


MAX_REPLAYS = 3


def replay(finding: Finding, program: Program, judge_of, record: bool = False) -> Simulated:
    """judge_of() makes a fresh judge for each attempt (a witness that contradicts itself is
    replayed again with its earlier choice reversed)."""
    overrides: dict[tuple[int, str], bool] = {}
    conflicts: list[str] = []
    for _ in range(MAX_REPLAYS):
        rp = Replayer(finding, program, judge_of(), record)
        rp.overrides = dict(overrides)
        try:
            out = _run(rp)
        except _Decided as d:
            out = d.sim
        except Conflict as c:
            overrides[c.origin] = c.value
            conflicts.append(c.why)
            continue
        except RecursionError:
            out = Simulated("unknown", "expression nested too deeply for the replayer")
        break
    else:
        return Simulated("unknown", "the witness contradicts itself: " + "; ".join(conflicts))
    if conflicts:
        flipped = ", ".join(f"line {ln}" for ln, _ in overrides)
        note = f"the witness contradicts itself ({'; '.join(conflicts)}); replayed with its " \
               f"choice at {flipped} reversed"
        if out.verdict == "refuted" and not out.reason.startswith("path infeasible"):
            out.reason = f"{note}: {out.reason}"
        elif out.verdict == "refuted":
            # Both readings of the witness fail: the path is infeasible either way.
            out.reason = f"path infeasible: {note}, and then: {out.reason[17:]}"
        else:
            out.reason = f"{out.reason} ({note})"
    if rp.diverged and out.verdict == "confirmed":
        out.reason += f" (on the path the concrete state takes: the witness's {rp.diverged[17:]})"
    elif rp.diverged and out.verdict != "static-only" and not out.reason.startswith("path inf"):
        out = Simulated("refuted", f"{rp.diverged}; the path the concrete state takes instead: "
                        f"{out.reason}", out.dmesg)
    elif rp.diverged and out.reason.startswith("path infeasible: the concrete replay"):
        out.reason = f"{rp.diverged}; {out.reason[len('path infeasible: '):]}"
    if rp.notes and out.verdict != "static-only":
        out.reason += " (" + "; ".join(dict.fromkeys(rp.notes[:3])) + ")"
    out.steps = rp.steps
    return out


def _run(rp: Replayer) -> Simulated:
    return rp.run()
