"""What a path knows about an unknown integer: an interval, minus a few excluded values.

`if (ret < 0)`, `if (hmac == 1)`, `if (n > 8)` each narrow the interval of the symbol tested, so
a later test of the same symbol is decided instead of split, and impossible paths are dropped.
"""

from __future__ import annotations

Fact = tuple  # (lo, hi, excluded): lo/hi inclusive, None for unbounded; excluded a frozenset

ANY: Fact = (None, None, frozenset())
_MAX_EXCLUDED = 4


def inherent(sym) -> Fact | None:
    """Facts true of a symbol whatever the path: errno names are positive."""
    return (1, None, frozenset()) if sym and sym[0] == "errno" else None


def constrain(fact: Fact | None, op: str, c: int) -> Fact | None:
    """The fact narrowed by `s op c`, or None when nothing is left."""
    lo, hi, ne = fact or ANY
    if op == "==":
        if (lo is not None and c < lo) or (hi is not None and c > hi) or c in ne:
            return None
        return (c, c, frozenset())
    if op == "!=":
        if lo is not None and lo == hi == c:
            return None
        if lo is not None and c == lo:
            lo += 1
        elif hi is not None and c == hi:
            hi -= 1
        elif (lo is None or lo < c) and (hi is None or c < hi) and len(ne) < _MAX_EXCLUDED:
            ne = ne | {c}
    elif op == "<":
        hi = c - 1 if hi is None else min(hi, c - 1)
    elif op == "<=":
        hi = c if hi is None else min(hi, c)
    elif op == ">":
        lo = c + 1 if lo is None else max(lo, c + 1)
    elif op == ">=":
        lo = c if lo is None else max(lo, c)
    if lo is not None and hi is not None and lo > hi:
        return None
    ne = frozenset(v for v in ne if (lo is None or v >= lo) and (hi is None or v <= hi))
    return (lo, hi, ne)


def sign(fact: Fact, k: int) -> str | None:
    """'neg' or 'nonzero' when k*s is known to be so, else None."""
    lo, hi, ne = fact
    if k < 0:
        lo, hi = (-hi if hi is not None else None), (-lo if lo is not None else None)
    if hi is not None and hi < 0:
        return "neg"
    if (lo is not None and lo > 0) or 0 in ne:
        return "nonzero"
    return None
