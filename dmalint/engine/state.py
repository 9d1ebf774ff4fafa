"""The state of one path: storage, tracked DMA regions, facts about symbols, and the trace."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from itertools import chain

from dmalint.engine.values import Path, Sym, Value

LIVE = "live"
FAILED = "failed"
RELEASED = "released"


@dataclass(frozen=True, slots=True)
class Region:
    """One acquired DMA region on this path (one per acquire site: a loop re-acquiring at the
    same site replaces the previous instance, which keeps states finite)."""

    rid: object  # the acquire site (its byte offset), or ("prev", site)
    acquire: str  # the acquire function's name, for messages and contract lookup
    line: int
    handle_text: str
    status: str = LIVE
    checked: bool = False
    outcome_known: bool = False  # a branch decided success or failure
    wrong_test: bool = False  # tested in a way that cannot detect failure (already reported)
    escaped: bool = False  # stored in driver state, handed to another function, or returned
    handed: bool = False  # handed to another function or returned: ownership may have moved
    store_line: int | None = None  # first store into driver state, for unchecked reports
    store_col: int = 1
    store_how: str = ""
    # The pointer variable of the first store into driver state when it went through one
    # (`mp->mapping = h` in a loop that then points mp at the next object): once the variable
    # is pointed elsewhere, the region sits in an object this function no longer names.
    store_root: str | None = None
    cpu: Value | None = None  # the CPU-side argument, to recognise it passed as a handle
    size: Value | None = None
    size_text: str = ""
    direction: Value | None = None
    direction_text: str = ""
    count: Value | None = None  # the entry count passed to dma_map_sg (the original nents)
    count_text: str = ""
    pool: Value | None = None  # the pool a block came from
    attrs: Value | None = None  # the DMA_ATTR_* bits of the allocation
    attrs_text: str = ""
    release_line: int | None = None
    check_line: int | None = None
    # The hash, computed once: State.key() hashes every region of every state the explorer
    # dequeues, and a region has many fields.  Not an init field, so but() starts afresh.
    _hash: int | None = field(default=None, init=False, compare=False, repr=False)

    def __hash__(self) -> int:
        # The same value the generated __hash__ gives: the tuple of the compared fields.
        h = self._hash
        if h is None:
            h = hash(tuple(getattr(self, name) for name in _REGION_FIELDS))
            object.__setattr__(self, "_hash", h)
        return h

    def but(self, **changes) -> "Region":
        return replace(self, **changes)

    @property
    def site(self) -> object:
        """The acquire site, for a loop's previous instance ("prev", site) as well."""
        rid = self.rid
        return rid[1] if isinstance(rid, tuple) and rid[0] == "prev" else rid


_REGION_FIELDS = tuple(f.name for f in fields(Region) if f.compare)


@dataclass(frozen=True, slots=True)
class Step:
    """One witness step: where, what kind, and a short message."""

    line: int
    kind: str
    message: str
    path: str | None = None  # None: the file being analysed


@dataclass(slots=True)
class State:
    env: dict[Path, Value] = field(default_factory=dict)
    regions: dict[int, Region] = field(default_factory=dict)
    facts: dict[Sym, str] = field(default_factory=dict)
    trace: tuple | None = None  # a linked list (step, previous) shared between paths
    irqs_off: int = 0  # nesting of spin_lock_irqsave and friends on this path (bounded)
    rounds: tuple = ()  # (goto-loop head, arrivals on this path), bounded by the widening

    def copy(self) -> "State":
        return State(dict(self.env), dict(self.regions), dict(self.facts), self.trace,
                     self.irqs_off, self.rounds)

    def key(self) -> tuple:
        """What makes two states the same for exploration (the trace does not).

        One set of the three tables' items: an env item (storage path, Value), a region item
        (acquire site, Region) and a fact item (symbol, (lo, hi, excluded)) can never equal
        one another, as their values are of different types, so nothing is conflated; one
        set is cheaper to build and compare than three."""
        return (frozenset(chain(self.env.items(), self.regions.items(), self.facts.items())),
                self.irqs_off, self.rounds)

    def step(self, line: int, kind: str, message: str) -> None:
        self.trace = (Step(line, kind, message), self.trace)

    def steps(self) -> list[Step]:
        out: list[Step] = []
        node = self.trace
        while node is not None:
            out.append(node[0])
            node = node[1]
        out.reverse()
        return out
