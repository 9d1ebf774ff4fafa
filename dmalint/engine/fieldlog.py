"""What one function does to DMA regions kept in struct members, for the driver-level pass.

Drivers map in one function and unmap in another (transmit and completion, probe and remove),
carrying the handle in `priv->rx_dma` or a ring slot.  While a function is explored, every region
stored into a member and every release or sync of a handle read from a member is logged here
under a *field key*: the innermost struct type and the member (`struct foo_priv *priv;
priv->ring[i].dma` -> ("foo_ring_entry", "dma") when `ring` holds `struct foo_ring_entry`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from tree_sitter import Node

from dmalint.engine.state import Step
from dmalint.engine.values import TOP, Lin, Path, Value
from dmalint.parse import text

FieldKey = tuple  # (struct type, member, member, ...)


@dataclass(frozen=True)
class Side:
    """One end of a pairing: an acquire stored into a member, or a release reading one."""

    key: FieldKey  # (innermost struct, member)
    function: str  # the API function (or a helper's summary) at this end
    family: str
    managed: bool
    size: Value  # canonical: symbols of members are ("field", key), never a local's name
    size_text: str
    direction: Value
    direction_text: str
    count: Value
    count_text: str
    line: int
    in_function: str
    trace: tuple[Step, ...]
    count_key: FieldKey | None = None  # a release's count read from a member (the mapped count?)
    indexed: bool = False  # stored in an array element (a ring slot), not a single member
    long_key: FieldKey | None = None  # the whole chain from the root's type: (priv, tx, dma)
    cookie: bool = False  # a NO_KERNEL_MAPPING cookie was stored here
    owned: bool = True  # the member holds the region (not a scatterlist that names it)
    # An acquire's size against members stored beside it: ((member key, size - its value),)
    # (`curr->head = alloc(c_size + 8); curr->size = c_size;`: ((chunk, size), 8)), so that a
    # release sizing it from that member is judged.  Filled in by the driver pass.
    size_links: tuple = ()

    def related(self, other: "Side") -> bool:
        """Whether two sides may be about the same storage: same member of the same struct,
        and not provably different rings (priv->tx[i].dma and priv->rx[i].dma are apart; a
        bare `slot->dma` could be either)."""
        if self.key != other.key:
            return False
        if self.long_key is None or other.long_key is None:
            return True
        return (self.long_key == other.long_key or self.long_key[:1] + self.long_key[-1:] == self.key
                or other.long_key[:1] + other.long_key[-1:] == other.key)


@dataclass(frozen=True)
class Embedded:
    """A buffer DMA'd in place inside a struct (`&priv->cmd` or the array `priv->rx_buf`):
    the driver pass asks the layout engine who else lives in its cache lines."""

    struct: str
    members: tuple[str, ...]  # the member chain inside `struct`
    direction: int | None  # a DMA_* constant, or None when not known (transfer helpers)
    call: str
    text: str
    line: int
    column: int
    in_function: str
    trace: tuple[Step, ...]
    size_text: str = ""  # the mapped size, when the call says it (dma_map_single)


@dataclass(frozen=True)
class Allocation:
    """A coherent allocation whose size the driver pass compares with a page."""

    function: str
    size: Value
    size_text: str
    line: int
    column: int
    in_function: str
    in_loop: bool
    rid: object
    trace: tuple[Step, ...]


@dataclass
class FieldLog:
    """The sides one function produced, and its deferred leaks with the keys their regions were
    stored under."""

    stores: dict[tuple, Side] = field(default_factory=dict)  # (rid, key) -> side
    releases: dict[tuple, Side] = field(default_factory=dict)  # (line, key, function) -> side
    count_stores: dict[tuple, tuple[FieldKey, int]] = field(default_factory=dict)  # key -> (acq key, line)
    keys_of_region: dict[object, set] = field(default_factory=dict)  # rid -> field keys
    polluted: set = field(default_factory=set)  # keys that also receive values we do not track
    embedded: list[Embedded] = field(default_factory=list)
    allocations: list[Allocation] = field(default_factory=list)
    writes: dict = field(default_factory=dict)  # member key (short or long) -> (line, function)
    released_keys: set = field(default_factory=set)  # members some release here read or undid
    released_families: set = field(default_factory=set)  # families this function releases at all
    region_paths: dict = field(default_factory=dict)  # rid -> storage paths the region went to
    # rid -> {member key: the region's size minus the value stored in that member beside it,
    # or None when paths disagree}
    size_links: dict = field(default_factory=dict)

    def merge(self, table: dict, key: tuple, side: Side) -> None:
        """Log a side; seen again on another path with other values, the values are unknown."""
        old = table.get(key)
        if old is None:
            table[key] = side
            return
        changes = {}
        for attr in ("size", "direction", "count"):
            if getattr(old, attr) != getattr(side, attr):
                changes[attr] = TOP
        if changes:
            table[key] = replace(old, **changes)


def field_key(path: Path | None, types: dict[str, str],
              members: dict[tuple[str, str], str] | None = None) -> FieldKey | None:
    """The field key of a storage path: (innermost struct type, member).

    `ring->slots[i].dma` with `ring` a `struct foo_ring *` whose `slots` are `struct foo_slot`
    is ("foo_slot", "dma"), the same key as `slot->dma` with `slot` a `struct foo_slot *`.
    `members` maps (struct, member) to the member's struct type; when a link is missing, only a
    single-member path has a key."""
    chain = long_key(path, types)
    if chain is None:
        return None
    owner = chain[0]
    for name in chain[1:-1]:
        inner = (members or {}).get((owner, name.removesuffix("[]")))
        if inner is None:
            return None
        owner = inner
    return (owner, chain[-1])


def long_key(path: Path | None, types: dict[str, str]) -> FieldKey | None:
    """(root's struct type, member, member, ...), indices dropped."""
    if not path or len(path) < 2 or path[0] not in types:
        return None
    names = []
    for part in path[1:]:
        if part.startswith("->"):
            names.append(part[2:])
        elif part.startswith("."):
            names.append(part[1:])
    if not names:
        return None
    if path[-1].startswith("[") or path[-1] == "*":
        names[-1] += "[]"  # an element a member points to, not the member itself
    return (types[path[0]],) + tuple(names)


def canonical(value: Value | None, types: dict[str, str],
              members: dict[tuple[str, str], str] | None = None) -> Value:
    """A value comparable across functions: members become field keys, everything local or
    call-dependent makes it TOP."""
    if not isinstance(value, Lin):
        return TOP
    terms = []
    for sym, k in value.terms:
        if sym[0] == "init":
            key = field_key(sym[1:], types, members)
            if key is None:
                return TOP
            terms.append((("field",) + key, k))
        elif sym[0] in ("macro", "sizeof", "errno"):
            terms.append((sym, k))
        else:
            return TOP
    return Lin(tuple(sorted(terms, key=repr)), value.const)


def member_read(value: Value | None) -> Path | None:
    """The storage path a value was read from unchanged (`priv->rx_dma` on entry), or None."""
    if isinstance(value, Lin) and value.const == 0 and len(value.terms) == 1:
        sym, k = value.terms[0]
        if k == 1 and sym[0] == "init" and len(sym) > 2:
            return sym[1:]
    return None


def embedded_target(arg: Node, types: dict[str, str]) -> tuple[str, tuple[str, ...]] | None:
    """`&p->cmd`, `p->buf` (an array member), `&p->buf[0]`, through casts: the struct of `p`
    (from the variable types) and the member chain inside it; None for anything else."""
    n = arg
    address = False
    while True:
        if n.type in ("parenthesized_expression",) and n.named_child_count:
            n = n.named_children[0]
        elif n.type == "cast_expression":
            n = n.child_by_field_name("value")
        elif n.type == "pointer_expression" and text(n.child_by_field_name("operator")) == "&":
            n, address = n.child_by_field_name("argument"), True
        elif n.type == "subscript_expression" and address:
            index = n.child_by_field_name("index")
            if index is None or text(index).strip() != "0":
                return None
            n = n.child_by_field_name("argument")
        else:
            break
        if n is None:
            return None
    members = []
    while n.type == "field_expression":
        members.append(text(n.child_by_field_name("field")))
        n = n.child_by_field_name("argument")
        while n.type in ("parenthesized_expression",) and n.named_child_count:
            n = n.named_children[0]
    if n.type != "identifier" or not members or text(n) not in types:
        return None
    return types[text(n)], tuple(reversed(members))
