"""The replayer's concrete values: integers, objects, pointers, and what it does not know.

Its own small value domain (nothing from dmalint.engine).  An `Unknown` is one opaque value:
equal to itself, undecided against anything else.  `Unknown + 8` is a `Lin`, so `len + 8` and
`len` are known to differ without knowing `len`.  A `Stale` value is what an unknown callee may
have overwritten: branches on it are undecided, but the DMA model still sees the value it had,
because a driver does not change a mapping's size or handle behind an opaque call.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass


class Obj:
    """An abstract object: a struct, an array, a buffer.  Fields and elements by key."""

    _ids = itertools.count(1)

    def __init__(self, name: str, stack: bool = False, external: bool = False,
                 api: bool = False, zeroed: bool = False) -> None:
        self.name = name
        self.stack = stack
        self.api = api  # returned by a DMA API allocation
        self.zeroed = zeroed  # memory that starts zeroed: what nobody wrote reads as 0
        self.external = external  # reached from a parameter or a global: driver state
        self.fields: dict = {}
        self.id = next(Obj._ids)
        # Laid out by the layout engine (dmalint.layout), when the replay knows its type: a
        # struct's members by name, an array's elements by index, and where it lies inside the
        # object that holds it (a member, an element).  None: not known, never guessed.
        self.layout = None  # StructLayout of a struct or union
        self.size: int | None = None
        self.elem: int | None = None  # element size: arrays, and pointer steps over structs
        self.elem_type = None  # the elements' CType (arrays), to lay out elements
        self.array = False  # an array member: its value decays to a pointer to it
        self.parent: Obj | None = None
        self.base: int | None = None  # byte offset inside parent
        self.member = ""  # the dotted member path from the outermost object ("rx_buf")

    def __repr__(self) -> str:
        return f"&{self.name}"


class Unknown:
    """A value the replay does not know; dereferencing it gives one stable object."""

    def __init__(self, name: str, nonzero: bool = False) -> None:
        self.name = name
        self.nonzero = nonzero
        self._obj: Obj | None = None
        self.within: Obj | None = None  # an array element at an index the replay does not know

    @property
    def obj(self) -> Obj:
        if self._obj is None:
            self._obj = Obj(f"*({self.name})", external=True)
            if self.within is not None:  # somewhere inside that array: no byte place
                self._obj.parent, self._obj.base = self.within, None
        return self._obj

    def decide_eq(self, other) -> bool | None:
        if other is self:
            return True
        if isinstance(other, Lin) and other.base is self:
            return other.const == 0
        if self.nonzero and isinstance(other, int) and other == 0:
            return False
        return None

    def __repr__(self) -> str:
        return f"?{self.name}"


class Stale(Unknown):
    """A value an unknown callee may have changed; `prior` is what it was."""

    def __init__(self, prior, name: str) -> None:
        super().__init__(name)
        self.prior = prior

    @property
    def obj(self) -> Obj:
        return objof_value(self.prior) or super().obj

    def decide_eq(self, other) -> bool | None:
        return True if other is self else None

    def __repr__(self) -> str:
        return repr(self.prior)


@dataclass(frozen=True)
class Lin:
    """base + const, base an Unknown: `len + 8`."""

    base: Unknown
    const: int

    def decide_eq(self, other) -> bool | None:
        if isinstance(other, Lin) and other.base is self.base:
            return other.const == self.const
        if other is self.base:
            return self.const == 0
        return None

    def __hash__(self) -> int:
        return hash((id(self.base), self.const))

    def __eq__(self, other) -> bool:
        return isinstance(other, Lin) and other.base is self.base and other.const == self.const

    def __repr__(self) -> str:
        return f"{self.base.name}{self.const:+d}"


@dataclass(frozen=True)
class Ptr:
    obj: Obj
    off: int | None = 0  # None: somewhere inside obj (an offset the replay does not know)

    def decide_eq(self, other) -> bool | None:
        """Two objects the replay made itself (allocations, locals) never share an address."""
        if isinstance(other, Ptr):
            if other.obj is self.obj:
                return None if None in (self.off, other.off) else other.off == self.off
            if not self.obj.external and not other.obj.external:
                return False
        if isinstance(other, int):
            return False if other == 0 else None
        return None

    def __repr__(self) -> str:
        return f"&{self.obj.name}" + (f"+{self.off}" if self.off else "")


@dataclass(frozen=True)
class Ref:
    """The address of a local variable or of a field (an out-parameter)."""

    where: object  # dict (locals) or Obj
    key: object
    stack: bool = False

    def __hash__(self) -> int:
        return hash((id(self.where), self.key))

    def __eq__(self, other) -> bool:
        return isinstance(other, Ref) and self.where is other.where and self.key == other.key

    def __repr__(self) -> str:
        return f"&{self.key}"


class Handle(int):
    """A DMA address the model handed out.  Its value is the model's choice, not a fact, so
    whether it is zero is not decided (some platforms do return DMA address 0)."""

    def __repr__(self) -> str:
        return f"0x{int(self):x}"


def root_of(obj: Obj) -> tuple[Obj, int | None]:
    """The outermost object holding obj, and obj's byte offset in it (None: not known)."""
    off: int | None = 0
    while obj.parent is not None:
        off = None if off is None or obj.base is None else off + obj.base
        obj = obj.parent
    return obj, off


def byte_place(v) -> tuple[Obj, int | None] | None:
    """Where a pointer points, in bytes: (outermost object, offset), for pointers into laid-out
    objects; the offset is None when the replay cannot compute it (an unknown index)."""
    v = resolve(v)
    if isinstance(v, Obj):
        v = Ptr(v)
    if isinstance(v, Ptr):
        root, off = root_of(v.obj)
        if v.off == 0:
            return root, off
        if off is None or v.off is None or v.obj.elem is None:
            return root, None
        return root, off + v.off * v.obj.elem
    return None


def resolve(v):
    """What the DMA model sees: a Stale value's prior value."""
    while isinstance(v, Stale):
        v = v.prior
    return v


def objof_value(v) -> Obj | None:
    v = resolve(v)
    if isinstance(v, Lin):  # pointer arithmetic stays inside the object
        v = v.base
    if isinstance(v, Ptr):
        return v.obj
    if isinstance(v, Obj):
        return v
    if isinstance(v, Unknown):
        return v.obj
    return None


def truth(v) -> bool | None:
    """C truth of a value; None when the replay cannot tell."""
    if isinstance(v, bool):
        return v
    if isinstance(v, Handle):
        return None
    if isinstance(v, int):
        return v != 0
    if isinstance(v, (Ptr, Ref, Obj, str)):
        return True
    if isinstance(v, Unknown) and not isinstance(v, Stale) and v.nonzero:
        return True
    return None


def equal(a, b) -> bool | None:
    """C `==` where decidable (pointers into different objects: undecided, as for unknowns)."""
    for x, y in ((a, b), (b, a)):
        if isinstance(x, (Ptr, Ref, Obj)) and isinstance(y, int):
            return False if y == 0 else None
    if isinstance(a, Ptr) and isinstance(b, Ptr):
        if a.obj is not b.obj or None in (a.off, b.off):
            return None
        return a.off == b.off
    if isinstance(a, int) and isinstance(b, int):
        if (isinstance(a, Handle) and b == 0) or (isinstance(b, Handle) and a == 0):
            return None
        return a == b
    for x, y in ((a, b), (b, a)):
        if isinstance(x, (Unknown, Lin)):
            return x.decide_eq(y)
    return True if a is b else None


def add(a, k: int, fresh):
    """a + k for an int k; fresh() when it has no representation."""
    if isinstance(a, int):
        return a + k
    if isinstance(a, Ptr):
        return Ptr(a.obj, None if a.off is None else a.off + k)
    if isinstance(a, Lin):
        return a.base if a.const + k == 0 else Lin(a.base, a.const + k)
    if isinstance(a, Unknown) and not isinstance(a, Stale):
        return a if k == 0 else Lin(a, k)
    return fresh()
