"""One test per construct: the CFG's shape, checked through paths from entry to exit."""

from __future__ import annotations

import networkx as nx

from dmalint.cfg import build_cfg
from dmalint.parse import iter_functions, parse, text

TRANSPARENT = frozenset({"likely", "unlikely", "WARN_ON"})


def cfg_of(body: str, noreturn=frozenset()):
    tree = parse(f"int f(int a, int b, int *p) {{ {body} }}".encode())
    fn = next(iter_functions(tree.root_node))
    return build_cfg(fn.body, TRANSPARENT, noreturn)


def labels(cfg, n):
    d = cfg.node(n)
    if d["kind"] in ("stmt", "cond", "return", "switch") and d["ast"] is not None:
        return f"{d['kind']}:{' '.join(text(d['ast']).split()).rstrip(';')}"
    if d["kind"] == "assign":
        return f"assign:{text(d['lhs'])}={text(d['rhs'])}"
    return d["kind"]


def paths(cfg):
    """Every simple path from entry to exit, as lists of labels (joins omitted)."""
    out = []
    for p in nx.all_simple_paths(cfg.graph, cfg.entry, cfg.exit):
        out.append([labels(cfg, n) for n in p if cfg.kind(n) not in ("join", "entry", "exit")])
    return sorted(out)


def conds(cfg):
    return sorted(labels(cfg, n) for n in cfg.graph if cfg.kind(n) == "cond")


def test_if_else():
    cfg = cfg_of("if (a) x(); else y(); z();")
    assert paths(cfg) == [["cond:a", "stmt:x()", "stmt:z()"], ["cond:a", "stmt:y()", "stmt:z()"]]


def test_short_circuit_or_splits_conditions():
    cfg = cfg_of("if (!p || check(b)) return 1; use(b); return 0;")
    assert conds(cfg) == ["cond:check(b)", "cond:p"]
    assert ["cond:p", "return:1"] in paths(cfg)  # !p true: check() never runs
    assert ["cond:p", "cond:check(b)", "return:1"] in paths(cfg)
    assert ["cond:p", "cond:check(b)", "stmt:use(b)", "return:0"] in paths(cfg)


def test_short_circuit_and():
    cfg = cfg_of("if (a && b) x(); return 0;")
    assert ["cond:a", "return:0"] in paths(cfg)
    assert ["cond:a", "cond:b", "stmt:x()", "return:0"] in paths(cfg)
    assert ["cond:a", "cond:b", "return:0"] in paths(cfg)


def test_negation_swaps_branches():
    cfg = cfg_of("if (!a) x(); return 0;")
    (c,) = [n for n in cfg.graph if cfg.kind(n) == "cond"]
    succ = {cfg.graph.edges[c, s]["branch"]: labels(cfg, s) for s in cfg.graph.successors(c)}
    assert succ[False] == "stmt:x()"  # x() runs when a is false


def test_transparent_calls_are_seen_through():
    cfg = cfg_of("if (unlikely(check(a))) return 1; return 0;")
    assert conds(cfg) == ["cond:check(a)"]


def test_switch_fallthrough_and_default():
    cfg = cfg_of("switch (a) { case 1: x(); case 2: y(); break; default: z(); } return 0;")
    ps = paths(cfg)
    assert ["switch:(a)", "stmt:x()", "stmt:y()", "return:0"] in ps  # case 1 falls into 2
    assert ["switch:(a)", "stmt:y()", "return:0"] in ps
    assert ["switch:(a)", "stmt:z()", "return:0"] in ps
    assert len(ps) == 3


def test_switch_without_default_can_skip():
    cfg = cfg_of("switch (a) { case 1: x(); break; } return 0;")
    assert ["switch:(a)", "return:0"] in paths(cfg)


def test_while_break_continue():
    cfg = cfg_of("while (a) { if (b) break; if (*p) continue; x(); } return 0;")
    g = cfg.graph
    heads = [n for n in g if cfg.node(n).get("loop")]
    assert len(heads) == 1
    assert nx.has_path(g, heads[0], cfg.exit)
    # x() loops back to the head
    (x,) = [n for n in g if labels(cfg, n) == "stmt:x()"]
    assert heads[0] in nx.descendants(g, x)
    assert ["cond:a", "cond:b", "return:0"] in paths(cfg)


def test_do_while_runs_body_first():
    cfg = cfg_of("do { x(); } while (a); return 0;")
    assert paths(cfg) == [["stmt:x()", "cond:a", "return:0"]]


def test_for_loop_parts():
    cfg = cfg_of("for (int i = 0; i < a; i++) x(); return 0;")
    ps = paths(cfg)
    assert ps == [["stmt:int i = 0", "cond:i < a", "return:0"]]
    (upd,) = [n for n in cfg.graph if labels(cfg, n) == "stmt:i++"]
    (x,) = [n for n in cfg.graph if labels(cfg, n) == "stmt:x()"]
    assert cfg.graph.has_edge(x, upd)


def test_goto_unwind_ladder():
    cfg = cfg_of("if (a) goto err_b; if (b) goto err_a; return 0; err_a: undo_a(); err_b: undo_b(); return -1;")
    ps = paths(cfg)
    assert ["cond:a", "stmt:undo_b()", "return:-1"] in ps
    assert ["cond:a", "cond:b", "stmt:undo_a()", "stmt:undo_b()", "return:-1"] in ps
    assert set(cfg.labels) == {"err_a", "err_b"}


def test_return_goes_to_exit_only():
    cfg = cfg_of("return a; x();")
    assert paths(cfg) == [["return:a"]]


def test_conditional_assignment_splits():
    cfg = cfg_of("b = a ? 1 : 2; return b;")
    assert paths(cfg) == [["cond:a", "assign:b=1", "return:b"], ["cond:a", "assign:b=2", "return:b"]]


def test_conditional_in_condition():
    cfg = cfg_of("if (a ? b : *p) x(); return 0;")
    assert conds(cfg) == ["cond:*p", "cond:a", "cond:b"]


def test_conditional_return_splits():
    cfg = cfg_of("return a ? -5 : 0;")
    assert paths(cfg) == [["cond:a", "return:-5"], ["cond:a", "return:0"]]


def test_statement_expression_runs_its_statements_first():
    cfg = cfg_of("int v = ({ int t = g(); t + 1; }); return v;")
    assert paths(cfg) == [["stmt:int t = g()", "stmt:int v = ({ int t = g(); t + 1; })", "return:v"]]


def test_noreturn_call_ends_the_path():
    cfg = cfg_of("if (a) BUG(); return 0;", noreturn=frozenset({"BUG"}))
    (bug,) = [n for n in cfg.graph if labels(cfg, n) == "stmt:BUG()"]
    assert list(cfg.graph.successors(bug)) == [cfg.exit]
    assert cfg.graph.edges[bug, cfg.exit].get("abort") is True


def test_iterator_macro_body_is_a_loop_body():
    from dmalint.contracts.loader import load_macro_tables
    from dmalint.source import make_source

    src = make_source(b"int f(struct list_head *h) { struct x *e;\n"
                      b" list_for_each_entry(e, h, node) {\n  use(e);\n }\n return 0; }",
                      "t.c", load_macro_tables())
    fn = next(iter_functions(parse(src.code).root_node))
    assert not fn.damaged
    cfg = build_cfg(fn.body, TRANSPARENT)
    (use,) = [n for n in cfg.graph if labels(cfg, n) == "stmt:use(e)"]
    heads = [n for n in cfg.graph if cfg.node(n).get("loop")]
    assert heads and heads[0] in nx.descendants(cfg.graph, use)


def test_backward_goto_label_heads_a_loop():
    cfg = cfg_of("int w = 0; again: w += a; if (w < b) goto again; return w;")
    heads = [n for n in cfg.graph if cfg.node(n).get("loop")]
    assert [cfg.node(n).get("label") for n in heads] == ["again"]
    assert cfg.node(heads[0])["modified"] == frozenset({"w"})


def test_forward_goto_label_is_not_a_loop_head():
    cfg = cfg_of("if (a) goto out; b = 1; out: return b;")
    assert not [n for n in cfg.graph if cfg.node(n).get("loop")]


def test_label_inside_a_while_body_is_left_to_the_while_head():
    cfg = cfg_of("while (a) { next: a--; if (b) { b = 0; goto next; } } return 0;")
    heads = {cfg.node(n).get("label") for n in cfg.graph if cfg.node(n).get("loop")}
    # the goto makes a cycle of its own (next -> a-- -> if b -> goto next): it heads a loop;
    # the while head is there too
    assert heads == {None, "next"}


def test_assigned_roots_tells_a_variable_from_its_members():
    from dmalint.cfg import assigned_roots
    tree = parse(b"void f(struct s *p, int *q) { int i; i++; p->len = 1; q[2] = 0; "
                 b"g(&p->lock); h(&i); }")
    fn = next(iter_functions(tree.root_node))
    # i is assigned and its address taken; only p's members and q's elements change;
    # &p->lock exposes nothing of p itself
    assert assigned_roots(fn.body) == frozenset({"i", "p.", "q."})


def test_comment_between_else_and_its_statement_is_not_the_branch():
    cfg = cfg_of("if (a) b = 1; else /* the other way */ b = 2; return b;")
    assert sorted(paths(cfg)) == [["cond:a", "stmt:b = 1", "return:b"],
                                  ["cond:a", "stmt:b = 2", "return:b"]]


def test_comment_before_a_return_value_is_not_the_value():
    cfg = cfg_of("return /* the sum */ a + b;")
    ret = next(n for n in cfg.graph if cfg.node(n)["kind"] == "return")
    assert text(cfg.node(ret)["ast"]) == "a + b"
