"""Neutralisation keeps every byte offset and makes kernel C parse."""

from __future__ import annotations

from dmalint.contracts.loader import load_macro_tables
from dmalint.parse import iter_functions, parse
from dmalint.source import make_source

KERNEL_C = b"""#include "foo.h"
#define FOO_LEN (64 + 4)
#define FOO_FN(x) ((x) * 2)
struct foo {
	void __iomem *regs;
	u8 buf[16] ____cacheline_aligned;
	DEFINE_DMA_UNMAP_ADDR(mapping);
	DECLARE_BITMAP(flags, 8);
} __packed;

static int __init __must_check foo_probe(struct platform_device *pdev)
{
	struct foo *f = container_of(pdev, struct foo, pdev);
	u32 v = min_t(unsigned int, f->len, 4);
	struct sk_buff *skb;
#ifdef CONFIG_FOO
	if (v) {
#else
	if (!v) {
#endif
		return -EINVAL;
	}
	list_for_each_entry(skb, &f->list, list) {
		use(skb);
	}
	return likely(v) ? 0 : -EIO;
}
"""


def test_same_length_and_lines():
    src = make_source(KERNEL_C, "k.c", load_macro_tables())
    assert len(src.code) == len(KERNEL_C)
    assert src.code.count(b"\n") == KERNEL_C.count(b"\n")


def test_kernel_c_parses_without_damage():
    src = make_source(KERNEL_C, "k.c", load_macro_tables())
    tree = parse(src.code)
    assert not tree.root_node.has_error
    (fn,) = list(iter_functions(tree.root_node))
    assert fn.name == "foo_probe" and not fn.damaged
    raw_tree = parse(KERNEL_C)
    assert raw_tree.root_node.has_error  # the neutralisation is what makes it parse


def test_first_conditional_branch_is_kept():
    src = make_source(KERNEL_C, "k.c", load_macro_tables())
    assert b"if (v) {" in src.code
    assert b"if (!v) {" not in src.code


def test_defines_and_includes_recorded():
    src = make_source(KERNEL_C, "k.c", load_macro_tables())
    assert src.defines["FOO_LEN"].value == "(64 + 4)"
    assert src.defines["FOO_LEN"].line == 2
    assert src.defines["FOO_FN"].params == ("x",)
    assert src.includes == [("foo.h", 1)]


def test_positions_are_original():
    src = make_source(KERNEL_C, "k.c", load_macro_tables())
    offset = KERNEL_C.index(b"list_for_each_entry")
    line, col = src.position(offset)
    assert src.line_text(line).strip().startswith("list_for_each_entry")
    assert col == 2


def test_if_zero_is_dead():
    code = b"int f(void)\n{\n#if 0\n\tbroken(;\n#endif\n\treturn 0;\n}\n"
    src = make_source(code, "z.c", load_macro_tables())
    assert b"broken" not in src.code
    assert not parse(src.code).root_node.has_error


def test_unbalanced_directives_do_not_crash():
    code = b"#endif\n#else\nint f(void) { return 0; }\n#if X\nint g(void) {\n"
    src = make_source(code, "u.c", load_macro_tables())
    assert len(src.code) == len(code)


def test_iterator_heads_are_the_regex_matches():
    # found by needle search, then the regex tried at word starts: the same matches in the
    # same order as running the regex over the whole text
    from dmalint.contracts.loader import load_macro_tables
    from dmalint.source import _iterator_heads

    tables = load_macro_tables()
    text = (b"list_for_each_entry(a, b, c) { x(); }\n"
            b"myskb_queue_walk(q, s) {}\n skb_queue_walk_safe(q, s, t) {}\n"
            b"for_each_possible_cpu (cpu)\n f(for_each);\n xfor_eachy(1);\n"
            b"scoped_guard(mutex, &l) {}\n scoped_guardian(x);\n")
    expected = [(m.span(), m.group(1)) for m in tables.iterator_re.finditer(text)]
    assert [(m.span(), m.group(1)) for m in _iterator_heads(text, tables)] == expected
    assert [g for _, g in expected] == [b"list_for_each_entry", b"skb_queue_walk_safe",
                                        b"for_each_possible_cpu", b"xfor_eachy", b"scoped_guard"]


def test_case_ranges_become_parenthesised_comma_labels():
    code = (b"int f(int x, ...)\n{\n\tswitch (x) {\n\tcase 1 ... 3:\n\tcase 'a'...'z':\n"
            b"\tcase LO ...\n\t     HI: return 1; /* case 7 ... 8: */\n\t}\n\treturn 0;\n}\n")
    src = make_source(code, "r.c", load_macro_tables())
    assert len(src.code) == len(code) and src.code.count(b"\n") == code.count(b"\n")
    assert b"case (1 , 3):" in src.code
    assert b"case ('a','z'):" in src.code
    assert b"case (LO ,\n\t     HI):" in src.code
    assert b"/* case 7 ... 8: */" in src.code  # comments are left alone
    assert b"int f(int x, ...)" in src.code  # and so is a variadic parameter list
    assert not parse(src.code).root_node.has_error


def test_type_argument_on_its_own_line_is_joined():
    code = b"void f(void)\n{\n\tp = alloc_percpu(d,\n\t\t\t   struct foo_stats);\n}\n"
    src = make_source(code, "t.c", load_macro_tables())
    assert b"\t\t\t   struct_foo_stats);" in src.code
    assert not parse(src.code).root_node.has_error


def test_macro_names_before_a_string_are_joined():
    code = (b'void f(void)\n{\n\tprintk(KERN_ERR DRV_NAME ": x %d\\n", 1);\n'
            b'\tpr(KERN_INFO PFX"y" PFX "z");\n\t/* KERN_ERR FOO "x" */ s = "A B ";\n'
            b'\treturn FOO "x";\n}\n')
    src = make_source(code, "p.c", load_macro_tables())
    assert b'printk(KERN_ERR_DRV_NAME ": x' in src.code
    assert b'pr(KERN_INFO_PFX"y" PFX "z")' in src.code
    assert b'/* KERN_ERR FOO "x" */ s = "A B ";' in src.code  # comments and strings stay
    assert b'return FOO "x";' in src.code  # one name is what tree-sitter-c already takes
    assert not parse(src.code).root_node.has_error


def test_string_macro_calls_become_literals():
    code = b'void f(void)\n{\n\tdump("key@"__stringify(__LINE__)": ", k);\n}\n'
    src = make_source(code, "s.c", load_macro_tables())
    assert len(src.code) == len(code)
    assert b'dump("key@""                   "": ", k);' in src.code
    assert not parse(src.code).root_node.has_error


def test_digit_led_macro_arguments_become_identifiers():
    code = (b"void f(void)\n{\n\tif (flag(tp, 5701_DMA_BUG) || PRIOR(X, 220A))\n"
            b"\t\tg(0x10ULL, 1e-5, 1.5e3f, 077, 0b101, 12UL);\n}\n")
    src = make_source(code, "d.c", load_macro_tables())
    assert b"flag(tp, _701_DMA_BUG) || PRIOR(X, _20A)" in src.code
    assert b"g(0x10ULL, 1e-5, 1.5e3f, 077, 0b101, 12UL)" in src.code  # numbers are left alone
    assert not parse(src.code).root_node.has_error


def test_offsetof_member_designators_are_joined():
    code = (b"int f(void)\n{\n\treturn offsetof(struct cb, u.tcb.tbd) + "
            b"offsetof(struct cb, ring[2].x) + offsetof(struct cb, m);\n}\n")
    src = make_source(code, "o.c", load_macro_tables())
    assert b"offsetof(struct cb, u_tcb_tbd) + offsetof(struct cb, ring_2__x)" in src.code
    assert b"offsetof(struct cb, m)" in src.code
    assert not parse(src.code).root_node.has_error
