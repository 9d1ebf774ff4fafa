"""Sizes built from sizeof(struct ...) compare once the layout engine gives the sizes."""

from __future__ import annotations

from dmalint.engine.values import Lin, sized_difference

SIZES = {"sizeof(struct a)": 8, "sizeof(struct b)": 16}
N = ("init", "n")
M = ("init", "m")


def _mul(sym, size_text):
    first, second = sorted((sym, ("sizeof", size_text)), key=repr)
    return Lin.sym(("mul", first, second))


def test_plain_sizeofs_resolve_to_a_constant_difference():
    a = Lin.sym(("sizeof", "sizeof(struct a)")).add(Lin.of(4))
    b = Lin.sym(("sizeof", "sizeof(struct b)")).add(Lin.of(4))
    assert sized_difference(a, b, SIZES.get) == Lin.of(-8)


def test_products_with_the_same_count_differ_by_its_coefficient():
    a = _mul(N, "sizeof(struct a)").add(Lin.of(64))
    b = _mul(N, "sizeof(struct b)").add(Lin.of(64))
    assert sized_difference(a, b, SIZES.get) == Lin.of(-8)


def test_same_element_size_is_no_difference():
    a = _mul(N, "sizeof(struct a)")
    assert sized_difference(a, a, SIZES.get) == Lin.of(0)


def test_an_unknown_size_decides_nothing():
    a = _mul(N, "sizeof(struct a)")
    b = _mul(N, "sizeof(struct c)")
    assert sized_difference(a, b, SIZES.get) is None


def test_different_counts_decide_nothing():
    a = _mul(N, "sizeof(struct a)")
    b = _mul(M, "sizeof(struct a)")
    assert sized_difference(a, b, SIZES.get) is None
