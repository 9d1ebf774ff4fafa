"""FunctionDef.body_nodes (a tree-sitter query) gives the nodes and order of the plain walk the
driver passes were written against: depth first, last child first."""

from __future__ import annotations

from dmalint.parse import INDEXED_TYPES, iter_functions, parse

CODE = b"""
static int f(struct p *p, int n)
{
	int i, r = g(h(n), k(p->x = 3));
	for (i = 0; i < n; i++) {
		if (m(i) && (r = q(i)) > 0)
			return s(t(r), u(i));
		p->v[i]++;
	}
	BROKEN_MACRO(x y z) ;
	switch (r) { case 1: w(); break; default: return f2(f3(f4()), 1); }
	return r ? a() : b(c());
}
"""


def _walk(body):
    out, stack = [], [body]
    while stack:
        n = stack.pop()
        if n.type in INDEXED_TYPES:
            out.append(n)
        stack.extend(n.named_children)
    return out


def test_query_order_is_the_walk_order():
    (fn,) = list(iter_functions(parse(CODE).root_node))
    nodes, kinds = fn.body_nodes
    expected = _walk(fn.body)
    assert [(n.start_byte, n.end_byte, n.type) for n in nodes] == \
        [(n.start_byte, n.end_byte, n.type) for n in expected]
    assert list(kinds) == [n.type for n in expected]
    assert len(nodes) > 15
