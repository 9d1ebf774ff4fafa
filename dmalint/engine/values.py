"""Abstract values the engine computes for C expressions on one path.

- Lin: a linear form over symbols plus a constant.  Constants are Lin with no terms; an unknown
  but stable value (a variable nobody assigned on this path, a macro, a call's result) is a
  symbol.  Two sizes are provably different when their difference is a non-zero constant.
- Top: nothing known; never equal to anything, not even itself, for the checks.
- Res: a value produced by an acquire: its handle, its CPU address or its entry count.
- Chk: the truth value "acquire rid failed" (a check call's result, or a NULL test).
- Addr: the address of a storage path (&x, &ring->desc[i]), so p->f can resolve to x.f.
"""

from __future__ import annotations

from dataclasses import dataclass
from operator import itemgetter

Sym = tuple
Path = tuple


class Lin(tuple):
    """A linear form: `terms` ((sym, coefficient), ...) plus `const`.

    A tuple ("Lin", terms, const) rather than a dataclass: the explorer compares and hashes
    every value of every state it meets (State.key, the set of states seen), and a tuple's
    equality and hash run in C, where a dataclass's generated __eq__ is a Python call per
    comparison.  The tag keeps a Lin from equalling any other tuple."""

    __slots__ = ()

    def __new__(cls, terms: tuple[tuple[Sym, int], ...], const: int) -> "Lin":
        return tuple.__new__(cls, ("Lin", terms, const))

    def __getnewargs__(self):
        return self[1], self[2]

    terms = property(itemgetter(1))
    const = property(itemgetter(2))

    def __repr__(self) -> str:
        return f"Lin(terms={self[1]!r}, const={self[2]!r})"

    @staticmethod
    def of(c: int) -> "Lin":
        return Lin((), c)

    @staticmethod
    def sym(s: Sym) -> "Lin":
        return Lin(((s, 1),), 0)

    @property
    def is_const(self) -> bool:
        return not self[1]

    def add(self, other: "Lin", sign: int = 1) -> "Lin":
        acc = dict(self.terms)
        for s, k in other.terms:
            acc[s] = acc.get(s, 0) + sign * k
        terms = tuple(sorted(((s, k) for s, k in acc.items() if k), key=repr))
        return Lin(terms, self.const + sign * other.const)

    def scale(self, k: int) -> "Lin":
        if k == 0:
            return Lin.of(0)
        return Lin(tuple((s, c * k) for s, c in self.terms), self.const * k)

    def single(self) -> tuple[Sym, int] | None:
        """(sym, coefficient) when the form is k*sym with no constant."""
        if len(self.terms) == 1 and self.const == 0:
            return self.terms[0]
        return None


class _Top:
    __slots__ = ()

    def __repr__(self) -> str:
        return "TOP"


TOP = _Top()


@dataclass(frozen=True, slots=True)
class Res:
    rid: object  # the acquire site (its byte offset), or ("prev", site)
    part: str  # "handle" | "cpu" | "count"
    offset: bool = False  # the value plus or minus something: no longer the region's start


@dataclass(frozen=True, slots=True)
class Chk:
    rid: object  # the acquire site (its byte offset), or ("prev", site)
    negated: bool = False  # True: the value is true when the acquire succeeded

    def flip(self) -> "Chk":
        return Chk(self.rid, not self.negated)


@dataclass(frozen=True, slots=True)
class Addr:
    path: Path


Value = Lin | _Top | Res | Chk | Addr

ZERO = Lin.of(0)


def is_addr(v) -> bool:
    return isinstance(v, Addr)


def path_text(path: Path | None) -> str:
    """C-like text of a storage path, for messages."""
    if not path:
        return "?"
    out = str(path[0])
    for part in path[1:]:
        out += "[*]" if part == "[*]" else part if part != "*" else ""
        if part == "*":
            out = "*" + out
    return out


def sized_difference(a: Lin, b: Lin, sizeof) -> Lin | None:
    """a - b with each `sizeof(type)` replaced by its size (`sizeof(text)` -> bytes or None),
    in products too (`n * sizeof(struct x)`), or None when a size is unknown.

    A difference left as k*n for a symbol n both sides scale (`n * 12 + 8` against `n * 16 +
    8`) is returned as the constant k: the sizes differ for every n but 0, and an allocation
    of n = 0 elements is not one a driver makes."""
    def resolved(v: Lin) -> Lin | None:
        out = Lin.of(v.const)
        for sym, k in v.terms:
            if sym[0] == "sizeof":
                size = sizeof(sym[1])
                if size is None:
                    return None
                out = out.add(Lin.of(size * k))
            elif sym[0] == "mul" and any(part[0] == "sizeof" for part in sym[1:]):
                size_part = next(part for part in sym[1:] if part[0] == "sizeof")
                other = sym[2] if sym[1] is size_part else sym[1]
                size = sizeof(size_part[1])
                if size is None:
                    return None
                out = out.add(Lin.sym(other).scale(size * k))
            else:
                out = out.add(Lin(((sym, k),), 0))
        return out
    ra, rb = resolved(a), resolved(b)
    if ra is None or rb is None:
        return None
    diff = ra.add(rb, -1)
    if diff.is_const:
        return diff
    if diff.const == 0 and len(diff.terms) == 1:
        sym = diff.terms[0][0]
        if any(s == sym for s, _ in ra.terms) and any(s == sym for s, _ in rb.terms):
            return Lin.of(diff.terms[0][1])
    return None
