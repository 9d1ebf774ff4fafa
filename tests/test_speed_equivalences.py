"""The speed-ups that must not change an answer: each against the plain computation it replaced.

- parse.node_texts (texts remembered by node id) against text();
- analysis._call_positions (the API's regex compiled once, the unit's helpers apart) against
  one regex of all the names;
- liveness.live_variables (work list in post-order) against rounds over every node until
  nothing changes, on every function of the fixtures;
- callgraph.called_functions against the call graph's edges, and CFG.succ/pred/nodes_data
  against the networkx graph they are read from;
- liveness._scan (member bases known from the walk) against asking each node for its parent.
"""

from __future__ import annotations

import re
from pathlib import Path

from hypothesis import given, settings, strategies as st

from dmalint.analysis import _call_positions
from dmalint.callgraph import call_graph, called_functions
from dmalint.cfg import build_cfg
from dmalint.contracts.loader import load_contracts, load_macro_tables
from dmalint.engine.liveness import _scan, _uses_defs, live_variables
from dmalint.parse import iter_functions, node_texts, nodes_in_walk_order, parse, text
from dmalint.source import read_source
from dmalint.wordtrie import trie_alternation

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def test_node_texts_match_text_for_every_node():
    tree = parse(b"int f(int a) { return a + g(a, \"s\") * 3; }\nstruct s { int x; };\n")
    cached = node_texts()
    stack = [tree.root_node]
    seen = 0
    while stack:
        n = stack.pop()
        assert cached(n) == text(n)
        assert cached(n) == text(n)  # the second time from the cache
        seen += 1
        stack.extend(n.children)
    assert seen > 20
    assert cached(None) == ""


NAMES = st.sampled_from(["dma_map_single", "dma_map", "map", "foo_map", "foo_map_buf", "x",
                         "dma_unmap_single", "bar"])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(NAMES, st.sampled_from([" ", "(", ")", "\n", "->", ";", "_", "1"])),
                max_size=40),
       st.frozensets(NAMES, max_size=4), st.frozensets(NAMES, max_size=4))
def test_call_positions_same_as_one_regex(tokens, fixed, extra):
    code = "".join(tokens).encode()
    both = re.compile(rb"\b(?:" + trie_alternation(fixed | extra) + rb")\s*\(")
    assert _call_positions(code, fixed, extra) == [m.start() for m in both.finditer(code)]


def _rounds(cfg) -> dict:
    """live_in by plain rounds until nothing changes: the definition."""
    g = cfg.graph
    ud = {n: _uses_defs(data) for n, data in g.nodes(data=True)}
    live = {n: frozenset() for n in g.nodes}
    changed = True
    while changed:
        changed = False
        for n in g.nodes:
            out = frozenset().union(*(live[s] for s in g.successors(n)))
            uses, defs = ud[n]
            new = frozenset(uses) | (out - defs)
            if new != live[n]:
                live[n] = new
                changed = True
    return live


def test_live_variables_is_the_fixed_point_on_every_fixture_function():
    contracts = load_contracts()
    tables = load_macro_tables()
    functions = 0
    for path in sorted(FIXTURES.rglob("*.c")):
        src = read_source(path, str(path), tables)
        for fn in iter_functions(parse(src.code).root_node):
            if fn.damaged:
                continue
            cfg = build_cfg(fn.body, contracts.core.transparent, contracts.core.noreturn,
                            src.iterators)
            assert live_variables(cfg) == _rounds(cfg), (path.name, fn.name)
            functions += 1
    assert functions > 100


def _fixture_functions():
    tables = load_macro_tables()
    for path in sorted(FIXTURES.rglob("*.c")):
        src = read_source(path, str(path), tables)
        yield path, list(iter_functions(parse(src.code).root_node))


def test_called_functions_are_the_call_graphs_callees_on_every_fixture_file():
    files = 0
    for path, functions in _fixture_functions():
        assert called_functions(functions) == {c for _, c in call_graph(functions).edges}, path.name
        files += 1
    assert files > 20


def test_plain_adjacency_is_the_graphs_on_every_fixture_function():
    """CFG.succ/pred/nodes_data, which liveness and the explorer walk, say what networkx says."""
    contracts = load_contracts()
    checked = 0
    for path, functions in _fixture_functions():
        for fn in functions:
            if fn.damaged:
                continue
            cfg = build_cfg(fn.body, contracts.core.transparent, contracts.core.noreturn)
            g = cfg.graph
            assert cfg.succ == {n: list(g.successors(n)) for n in g}, (path.name, fn.name)
            assert cfg.pred == {n: list(g.predecessors(n)) for n in g}, (path.name, fn.name)
            assert list(cfg.nodes_data) == list(g.nodes)
            assert all(cfg.nodes_data[n] is g.nodes[n] for n in g)
            checked += 1
    assert checked > 100


def _scan_by_parent(node, names, fields):
    """liveness._scan's uses as they were computed before the walk tracked parents: asking
    each member access for its parent."""
    stack = [node]
    while stack:
        n = stack.pop()
        if n.type == "identifier":
            names.add(text(n))
        elif n.type == "field_expression":
            parent = n.parent
            if not (parent is not None and parent.type in ("field_expression", "subscript_expression")
                    and parent.child_by_field_name("argument") == n):
                field = n.child_by_field_name("field")
                if field is not None:
                    names.add("." + text(field))
                    fields.add(text(field))
        stack.extend(n.named_children)


def test_scan_tracks_member_bases_as_parent_lookups_did():
    """Every expression of every fixture function, scanned from itself (so that a scan that
    starts at a member access nested in another one is covered too)."""
    scanned = 0
    for path, functions in _fixture_functions():
        for fn in functions:
            for n in nodes_in_walk_order(fn.body, frozenset({
                    "expression_statement", "field_expression", "subscript_expression",
                    "parenthesized_expression"})):
                got_names, got_fields, want_names, want_fields = set(), set(), set(), set()
                _scan(n, got_names, got_fields, set(), [], set())
                _scan_by_parent(n, want_names, want_fields)
                assert (got_names, got_fields) == (want_names, want_fields), (path.name, text(n))
                scanned += 1
    assert scanned > 1000
