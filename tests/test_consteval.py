"""Constant expressions: literals, operators, #defines, enums, kernel helper macros, sizeof."""

from __future__ import annotations

import pytest

from dmalint.consteval import (
    BasicScope, ConstEval, Target, canonical_type_name, evaluate, int_literal, parse_expression,
)
from dmalint.contracts.loader import load_macro_tables
from dmalint.layout import LayoutEngine
from dmalint.parse import parse
from dmalint.source import Define, make_source


def defines(**values: str) -> dict[str, Define]:
    return {name: Define(name, value, 1) for name, value in values.items()}


def source(code: str):
    return make_source(code.encode(), "drv.c", load_macro_tables())


@pytest.mark.parametrize("spelled, value", [
    ("0", 0), ("42", 42), ("0x1F", 31), ("0X10ul", 16), ("017", 15), ("0b101", 5),
    ("4096U", 4096), ("10LL", 10), ("1'000", 1000), ("1.5", None), ("0x", None),
])
def test_integer_literals(spelled, value):
    assert int_literal(spelled) == value


@pytest.mark.parametrize("expr, value", [
    ("1 + 2 * 3", 7), ("(1 + 2) * 3", 9), ("-7 / 2", -3), ("-7 % 2", -1), ("1 << 10", 1024),
    ("0xff00 >> 8", 255), ("6 & 3", 2), ("4 | 1", 5), ("5 ^ 1", 4), ("~0 & 0xff", 255),
    ("!0", 1), ("3 > 2 ? 10 : 20", 10), ("0 ? 10 : 20", 20), ("1 && 0", 0), ("0 || 2", 1),
    ("(u8)300", 44), ("(u32)-1", 0xFFFFFFFF), ("(s8)0xff", -1), ("(unsigned long)3", 3),
    ("'a'", 97), ("'\\n'", 10), ("sizeof(u64)", 8), ("sizeof(unsigned short)", 2),
    ("sizeof(int *)", 8), ('sizeof("abc")', 4), ("1 / 0", None), ("1 << -1", None),
])
def test_operators(expr, value):
    assert evaluate(expr) == value


@pytest.mark.parametrize("expr, value", [
    ("BIT(5)", 32), ("BIT_ULL(40)", 1 << 40), ("GENMASK(7, 4)", 0xF0), ("GENMASK_ULL(39, 32)", 0xFF << 32),
    ("ALIGN(13, 8)", 16), ("ALIGN(16, 8)", 16), ("DIV_ROUND_UP(10, 4)", 3), ("roundup(10, 6)", 12),
    ("round_down(13, 4)", 12), ("max(3, 9)", 9), ("min(3, 9)", 3), ("max_t(u32, 3, 9)", 9),
    ("min_t(u8, 300, 400)", 44), ("clamp(15, 0, 10)", 10), ("BITS_TO_LONGS(65)", 2),
    ("SZ_4K", 4096), ("SZ_1M", 1 << 20), ("SZ_2G", 1 << 31), ("SZ_64K + SZ_1K", 66560),
    ("PAGE_SIZE", 4096), ("PAGE_SHIFT", 12), ("L1_CACHE_BYTES", 64), ("ilog2(4096)", 12),
    ("roundup_pow_of_two(100)", 128), ("array_size(4, 8)", 32), ("ETH_ALEN", None),
])
def test_kernel_macros(expr, value):
    assert evaluate(expr) == value


def test_target_changes_page_size_and_dma_granule():
    arm = Target.arm64()
    assert evaluate("ARCH_DMA_MINALIGN", target=arm) == 128
    assert evaluate("ARCH_DMA_MINALIGN") == 64
    assert evaluate("PAGE_SIZE * 2", target=Target(page_size=16384)) == 32768
    assert evaluate("PAGE_SHIFT", target=Target(page_size=16384)) == 14


def test_defines_are_followed_recursively():
    table = defines(RING=("(NDESC * DESC_SZ)"), NDESC="256", DESC_SZ="sizeof(u32) * 4",
                    LOOP="LOOP", EMPTY="")
    assert evaluate("RING", table) == 4096
    assert evaluate("RING + 1", table) == 4097
    assert evaluate("LOOP", table) is None
    assert evaluate("EMPTY", table) is None
    assert evaluate("UNDEFINED_NAME", table) is None


def test_function_like_defines_are_expanded():
    table = {"SLOT": Define("SLOT", "((n) * 16 + 4)", 1, ("n",)),
             "PASTE": Define("PASTE", "a ## b", 2, ("a", "b"))}
    assert evaluate("SLOT(3)", table) == 52
    assert evaluate("PASTE(1, 2)", table) is None
    assert evaluate("SLOT", table) is None  # a function-like macro used as a name


def test_unknown_parts_make_the_result_unknown():
    assert evaluate("4 + unknown_thing") is None
    assert evaluate("FOO(3)") is None
    assert evaluate("sizeof(struct never_declared)") is None
    assert evaluate("x ? 1 : 2") is None
    assert evaluate("(mystery_t)5") is None
    assert parse_expression("do { } while (0)") is None


def test_enum_constants_from_the_file():
    src = source("""
#define BASE 4
enum ring { RX_RING, TX_RING = BASE, ERR_RING, NR_RINGS };
enum { LOOPY = LOOPY + 1 };
""")
    ev = LayoutEngine([src]).evaluator(src)
    assert ev.eval_text("RX_RING") == 0
    assert ev.eval_text("ERR_RING") == 5
    assert ev.eval_text("NR_RINGS * 2") == 12
    assert ev.eval_text("LOOPY") is None


def test_sizeof_types_and_typed_expressions():
    src = source("""
#define NBUF 3
struct desc { __le32 addr; __le16 len; u8 flags; };
struct ring { struct desc d[NBUF]; dma_addr_t dma; u8 *cpu; };
static const u16 table[] = { 1, 2, 3, 4, 5 };
static const char banner[] = "dmalint";
static const int sparse[] = { [2] = 1, [NBUF + 4] = 2 };
static struct ring rings[2];

static void fill(struct ring *r, u8 scratch[16])
{
	u8 local[24];
	int a = sizeof(local);
	int b = sizeof(r->d);
	int c = ARRAY_SIZE(r->d);
	int d = sizeof(*r);
	int e = sizeof(scratch);
	int f = sizeof(r->d[0].len);
}
""")
    engine = LayoutEngine([src])
    ev = engine.evaluator(src)
    assert ev.eval_text("sizeof(struct desc)") == 8
    assert ev.eval_text("sizeof(struct ring)") == 40
    assert ev.eval_text("ARRAY_SIZE(table)") == 5
    assert ev.eval_text("sizeof(table)") == 10
    assert ev.eval_text("sizeof(banner)") == 8
    assert ev.eval_text("ARRAY_SIZE(sparse)") == 8
    assert ev.eval_text("ARRAY_SIZE(rings)") == 2
    assert ev.eval_text("sizeof(rings[1].cpu)") == 8
    assert ev.eval_text("offsetof(struct ring, dma)") == 24
    assert ev.eval_text("sizeof_field(struct ring, d)") == 24
    assert ev.eval_text("offsetofend(struct desc, len)") == 6
    assert ev.eval_text("__alignof__(struct ring)") == 8
    # sizeof over locals and parameters, found from the expression's place in the function
    fn = next(n for n in parse(src.code).root_node.children if n.type == "function_definition")
    values = {}
    for decl in fn.child_by_field_name("body").named_children:
        init = decl.child_by_field_name("declarator") if decl.type == "declaration" else None
        if init is not None and init.type == "init_declarator":
            values[init.child_by_field_name("declarator").text.decode()] = ev.eval(
                init.child_by_field_name("value"))
    assert values == {"a": 24, "b": 24, "c": 3, "d": 40, "e": 8, "f": 2}


def test_basic_scope_without_types():
    ev = ConstEval(BasicScope(defines(N="8"), enums={"K": 3}))
    assert ev.eval_text("N * K") == 24
    assert ev.eval_text("sizeof(struct foo)") is None


@pytest.mark.parametrize("spelled, canonical", [
    ("unsigned long int", "unsigned long"), ("long unsigned", "unsigned long"),
    ("signed int", "int"), ("unsigned", "unsigned int"), ("long long int", "long long"),
    ("const unsigned char", "unsigned char"), ("unsigned_long", "unsigned long"), ("u32", "u32"),
])
def test_canonical_type_names(spelled, canonical):
    assert canonical_type_name(spelled) == canonical
