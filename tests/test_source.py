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


def test_macro_names_before_a_string_on_the_next_line_are_joined():
    code = (b'void f(void)\n{\n\tprintk(KERN_ERR DRV_NAME\n\t       ": x %d\\n", 1);\n'
            b'\t/* KERN_ERR FOO\n\t"x" */ pr(a);\n}\n')
    src = make_source(code, "p.c", load_macro_tables())
    assert b'printk(KERN_ERR_DRV_NAME\n\t       ": x' in src.code  # the lines stay as they were
    assert b'/* KERN_ERR FOO\n' in src.code  # a comment is left alone
    assert not parse(src.code).root_node.has_error
    assert src.code.count(b"\n") == code.count(b"\n")


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


# The searches below are faster forms of a pattern each; each test runs both over text made
# to catch them out and expects the same matches.

_TRICKY = (
    b"#define A 1\n  # if X\n#define B(x, y) \\\n\t((x) + (y)) /* c */\n#\n# \\\nendif\n"
    b"x__iomem __iomem y; ____cacheline_aligned __packed __iomemx asmlinkage fallthrough;\n"
    b"notrace noinlinex __printf(1, 2) a__printf(3) __aligned (8) DEFINE_MUTEX(m);\n"
    b"f(struct foo, unsigned long int, const char) g(x,struct s,\n\tunion u) h(unsigned x)\n"
    b"5701_DMA_BUG 220A 0x10ULL 0b1 0B1 0X1 x0x 1e5 07_ 00x 9z _1a 12UL 0_ 3b a1_ 3\n"
    b"pr(KERN_ERR DRV_NAME \"x\" A  B  \"y\" aB C \"z\" X\tY\t\"w\" \"Q R \" S T\n\"u\"\n"
    b"while (x) xwhile whilex while\n"
)


def test_lexical_runs_match_the_plain_definition():
    import re

    from dmalint.source import _LEXICAL, _mask_lexical

    plain = re.compile(
        rb"//(?:[^\n\\]|\\.)*|/\*.*?(?:\*/|\Z)|\"(?:\\.|[^\"\\\n])*\"?|'(?:\\.|[^'\\\n])*'?", re.S)
    text = (b"a /* b ** c */ d /*/ e */ '\\'' \"x\\\"y\" // z \\\n w\n\"open\n'c\n/***/"
            b"/* ** */ \"a\\\nb\" '\\\n' x / y /* it's \"q */ \"a/*b\" 'c' // end \\")
    for cut in range(len(text) + 1):  # and every unterminated form at the end
        assert [m.span() for m in _LEXICAL.finditer(text[:cut])] == \
            [m.span() for m in plain.finditer(text[:cut])]
        assert _mask_lexical(text[:cut]) == \
            plain.sub(lambda m: re.sub(rb"[^\n]", b" ", m.group()), text[:cut])


def test_directive_scan_matches_the_line_anchored_definition():
    import re

    from dmalint.source import _DIRECTIVE

    plain = re.compile(rb"^[ \t]*#(?:[^\n\\]|\\.|\\\n)*", re.M)
    text = b"#if A\n x\n\t # define B \\\n  C\n\n#x \\\n\n#\nint a; # not\n #endif"
    assert [(m.start(), m.end() - 1) for m in _DIRECTIVE.finditer(b"\n" + text)] == \
        [m.span() for m in plain.finditer(text)]


def test_plain_define_reads_as_the_general_path():
    from dmalint.source import _DEFINE, _LEXICAL, _record_define

    for text in (b"#define A 1", b"  #  define\tB(x, y)  ((x) +\t(y))  ", b"#define C(a) \\\n  a",
                 b"#define D", b"#define 1x", b"#define E(", b"#define F (x)", b"# define G(a,b)",
                 b"#define H 1 /* c */", b'#define I "s" x', b"#define J(a) 'c' // d",
                 b"#define K(a/*,b*/) a / 2", b"#define L(a/*x*/) a"):
        found: dict = {}
        _record_define(text, 7, found)
        body = _LEXICAL.sub(b" ", text.replace(b"\\\n", b" ")).lstrip()
        m = _DEFINE.match(body[1:].lstrip()[len(b"define"):].strip())
        if m is None:
            assert found == {}
            continue
        (define,) = found.values()
        assert define.name == m.group(1).decode()
        assert define.value == b" ".join(m.group(3).split()).decode()
        params = None
        if m.group(2) is not None:
            params = tuple(p.strip().decode() for p in m.group(2)[1:-1].split(b","))
        assert define.params == params


def test_name_searches_find_what_the_table_patterns_find():
    from dmalint.source import _name_matches

    tables = load_macro_tables()
    for pattern, names, suffix in (
            (tables.attribute_re, tables.attributes, rb"\b"),
            (tables.attribute_function_re, tables.attribute_functions, rb"\s*\("),
            (tables.string_function_re, tables.string_functions, rb"\s*\("),
            (tables.declarator_re, tables.declarators, rb"\s*\(")):
        for text in (_TRICKY, _TRICKY[_TRICKY.index(b"__iomem"):]):
            expected = [(m.span(), m.group(1)) for m in pattern.finditer(text)]
            assert [(m.span(), m.group(1)) for m in _name_matches(pattern, names, suffix, text)] \
                == expected


def test_fast_forms_find_what_their_patterns_find():
    import re

    from dmalint.source import (_DIGIT_TOKEN, _DIGIT_TOKENS, _DIGITS_TO_ONE, _STRING_PREFIXES,
                                _TYPE_ARG, _WHILE, _at_word_start, _string_prefix_matches,
                                _type_arguments)

    assert [(m.span(), m.groups()) for m in _type_arguments(_TRICKY)] == \
        [(m.span(), m.groups()) for m in _TYPE_ARG.finditer(_TRICKY)]
    digits = _TRICKY.translate(_DIGITS_TO_ONE)
    assert sorted(m.span() for p in _DIGIT_TOKENS for m in p.finditer(digits)) == \
        [m.span() for m in _DIGIT_TOKEN.finditer(_TRICKY)]
    assert [m.span() for m in _string_prefix_matches(_TRICKY)] == \
        [m.span() for m in _STRING_PREFIXES.finditer(_TRICKY)]
    for text in (_TRICKY, b"while", b"(while)"):
        assert [m.span() for m in _at_word_start(_WHILE, text)] == \
            [m.span() for m in re.finditer(rb"\bwhile\b", text)]
