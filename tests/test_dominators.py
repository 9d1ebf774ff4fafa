"""liveness.immediate_dominators: the same answer as networkx's, on any graph."""

import networkx as nx
from hypothesis import given, settings, strategies as st

from dmalint.engine.liveness import immediate_dominators


@st.composite
def graphs(draw):
    n = draw(st.integers(min_value=1, max_value=25))
    edges = draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=60))
    g = nx.DiGraph()
    g.add_nodes_from(range(n))
    g.add_edges_from(edges)
    return g, draw(st.integers(0, n - 1))


@settings(max_examples=400, deadline=None)
@given(graphs())
def test_same_as_networkx(case):
    g, start = case
    assert immediate_dominators({v: list(g.successors(v)) for v in g}, start) == \
        nx.immediate_dominators(g, start)


def test_diamond_and_loop():
    # 0 -> 1 -> {2, 3} -> 4 -> 1 (a loop back), 4 -> 5
    succ = {0: [1], 1: [2, 3], 2: [4], 3: [4], 4: [1, 5], 5: []}
    assert immediate_dominators(succ, 0) == {1: 0, 2: 1, 3: 1, 4: 1, 5: 4}


def test_unreached_nodes_and_missing_start():
    succ = {0: [1], 1: [], 2: [1]}
    assert immediate_dominators(succ, 0) == {1: 0}  # 2 is not reached from 0
    assert immediate_dominators(succ, 9) == {}
