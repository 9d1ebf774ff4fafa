"""DMA024 (dma-buffer-shares-cacheline) judged on the non-coherent cache model (cache.py).

The replay runs the finding's path with the driver's structs laid out by the layout engine.  At
the finding's line it takes the mapping the path made (a streaming map of a laid-out buffer), or,
for a buffer handed to a transfer helper, the bytes the helper's core maps.  While the mapping is
live, every CPU store of the replay into a laid-out object goes through the cache; a CPU write the
finding names in another function of the driver (an interrupt handler, another entry point) is
interleaved while the buffer is mapped, when nothing on the call graph orders the two.  The
device's transfer, the unmap's (or the sync's) cache maintenance and, for a mapping still live
when the function returns, a write-back by eviction, then show whether the device's bytes survive.

  confirmed  the cache model loses device-written bytes: which bytes of which line, which CPU write
             made the line dirty, and which write-back overwrote them (no dma-debug message)
  refuted    the laid-out objects show no other member in the buffer's lines at the granule, or
             the CPU write the finding names lies in other lines
  unknown    a layout, place or size the replay does not know, or no CPU write in the buffer's
             lines while it is mapped (the reason says which)
"""

from __future__ import annotations

import re

from tree_sitter import Node

from dmalint.parse import text
from dmalint.record_layout import member_path
from dmalint.simulate.cache import Mapping, Write
from dmalint.simulate.interp import norm
from dmalint.simulate.replay import Simulated
from dmalint.simulate.values import Obj, Ptr, resolve, root_of
from dmalint.simulate.witness import CacheClaim

EFFECT = "data corruption (no dma-debug message)"
# Callbacks that set the device up or tear it down: they do not run while it transfers data.
LIFECYCLE = re.compile(r"probe|remove|disconnect|init|exit|setup|attach|detach|bind|alloc|free|"
                       r"release|register|suspend|resume|shutdown|create|destroy|open|close|"
                       r"start|stop", re.I)


def make_cache_judge(f, claim: CacheClaim | None):
    state: dict = {}

    def judge(rp, event):
        kind, _ = event
        if claim is None:
            return Simulated("unknown", "the finding's message does not say which buffer and lines")
        if kind in ("line", "return") and "mapping" not in state:
            # the finding's statement has run (a `return usb_bulk_msg(...)` too); a loop or
            # branch whose body holds the line is not it
            if not _is_the_statement(rp, claim):
                return None
            out = _setup(f, claim, rp, state)
            if out is not None or kind == "line":
                return out
        if kind == "line":
            return None
        if "mapping" not in state:
            return None if kind == "return" else Simulated(
                "unknown", f"the replay did not perform the map at line {f.line}")
        return _finish(f, claim, rp, state, kind)

    return judge


# -- at the finding's line -------------------------------------------------------------------------
_BLOCKS = ("for_statement", "while_statement", "do_statement", "if_statement", "switch_statement",
           "compound_statement")


def _is_the_statement(rp, claim: CacheClaim) -> bool:
    """Whether the CFG node just run is the finding's own statement (it names the buffer), not
    a loop, a branch or a for-init whose block holds the line."""
    node = rp.cfg.graph.nodes[rp.node] if rp.node is not None else {}
    ast = node.get("ast")
    if node.get("kind") == "assign":
        own = text(node.get("lhs")) + text(node.get("rhs"))
    elif ast is not None and ast.type not in _BLOCKS:
        own = text(ast)
    else:
        return False
    return norm(claim.handle) in norm(own)


def _setup(f, claim: CacheClaim, rp, state: dict) -> Simulated | None:
    m = next((m for m in rp.cache.mappings if f.line in (m.site, m.line)), None)
    transfer = False
    if m is None:
        if any(o.kind == "map" and o.site == f.line for o in rp.model.ops):
            return Simulated("unknown", _why_unplaced(f, claim, rp, mapped=True))
        m = _transfer_mapping(f, claim, rp)
        if isinstance(m, str):
            return Simulated("unknown", m)
        transfer = True
    state["mapping"], state["transfer"] = m, transfer
    shared = _neighbours(m, rp.cache.granule)
    where = _describe_lines(m, rp.cache.granule)
    if not shared:
        return Simulated("refuted", f"the map at line {m.line} covers bytes {m.off}-{m.end - 1} "
                         f"of {_name(m.root)} ('{claim.handle}' and what the size takes with it, "
                         f"by the layout engine): {where} hold no member outside the mapped "
                         "bytes, so no CPU write can share a line with the device's data")
    state["shared"] = shared
    if m.direction == 1:
        how = "sent by the transfer" if transfer else "mapped DMA_TO_DEVICE"
        return Simulated("refuted", f"'{claim.handle}' is {how} at line {m.line}: the device "
                         "only reads it; the map writes the CPU's data back first, and a CPU "
                         "write to a neighbour during the transfer loses nothing")
    why = _interleave(f, claim, rp, m, state)
    if isinstance(why, Simulated):
        return why
    state["not_interleaved"] = why
    if transfer:
        rp.cache.unmap(m, m.line, "the end of the transfer")
        rp.snapshot(f"the core maps '{claim.handle}' for the transfer and unmaps it when the "
                    "device is done")
        return _finish(f, claim, rp, state, "transfer")
    return None


def _transfer_mapping(f, claim: CacheClaim, rp) -> Mapping | str:
    """A buffer DMA'd by the core (a USB or SPI transfer, a scatterlist): the bytes the
    expression designates, mapped for the transfer."""
    node = _find_expr(rp, claim.handle)
    if node is None:
        return f"the replay does not find '{claim.handle}' at line {f.line}"
    v = resolve(rp.eval(node))
    place = rp.place(v)
    if place is None:
        return _why_unplaced(f, claim, rp, mapped=False)
    extent = _extent(v)
    direction, size = _transfer_call(rp, node)
    if size is None or extent is not None and size > extent:
        size = extent  # the transfer's length is not known: the member's bytes
        state_note = f"the transfer's length is not known concretely: the {extent} bytes of " \
                     f"'{claim.handle}'"
    else:
        state_note = ""
    if size is None or size <= 0:
        return f"the size of '{claim.handle}' is not known concretely"
    m = rp.cache.map(place[0], place[1], size, direction, f.line, f.line)
    m.note = state_note
    return m


def _transfer_call(rp, node: Node) -> tuple[int | None, int | None]:
    """(direction, length) of the transfer that DMAs `node`.  Direction: DMA_TO_DEVICE for an
    argument the contracts say the device only reads or a USB pipe the replay knows is a send
    pipe (also through a variable), DMA_FROM_DEVICE for a receive pipe or an spi_transfer's
    rx_buf, None if unknown.  Length: the call's size argument when it is a known constant."""
    c = rp.c
    parent = node.parent
    while parent is not None and parent.type in ("parenthesized_expression", "cast_expression",
                                                 "pointer_expression"):
        node, parent = parent, parent.parent
    if parent is not None and parent.type == "initializer_pair":
        field = text(parent.named_children[0]).lstrip(".") if parent.named_children else ""
        bm = c.buffer_members.get(field)
        if bm is not None:
            return (1 if bm.device_reads else 2), None
    if parent is None or parent.type != "argument_list" or parent.parent is None:
        return None, None
    call = parent.parent
    b = c.buffers.get(text(call.child_by_field_name("function")))
    args = [a for a in parent.named_children if a.type != "comment"]
    index = next((i for i, a in enumerate(args) if a.id == node.id), None)
    if b is None or index is None:
        return None, None
    size = None
    if index == b.arg and b.size is not None and b.size < len(args):
        value = rp.eval(args[b.size])
        size = value if isinstance(value, int) and not isinstance(value, bool) else None
    if index in b.device_reads:
        return 1, size
    if b.pipe is None or b.pipe >= len(args):
        return None, size
    pipe = rp.eval(args[b.pipe])
    called = getattr(pipe, "name", "").rstrip("()") or ""
    called = text(args[b.pipe].child_by_field_name("function")) \
        if args[b.pipe].type == "call_expression" else called
    if called in c.to_device_pipes:
        return 1, size
    return (2 if called.startswith("usb_rcv") else None), size


def _extent(v) -> int | None:
    """The bytes a pointer to the start of a laid-out member designates (an array member, a
    struct member), the member's size for `&p->scalar`."""
    if isinstance(v, Ptr) and v.off == 0 and v.obj.size is not None:
        return v.obj.size
    from dmalint.simulate.objects import ref_place
    p = ref_place(v) if not isinstance(v, (Ptr, Obj)) else None
    return p[2] if p is not None else None


def _find_expr(rp, handle: str) -> Node | None:
    ast = rp.cfg.graph.nodes[rp.node].get("ast") if rp.node is not None else None
    want = norm(handle)
    stack = [ast] if ast is not None else []
    while stack:
        n = stack.pop()
        if norm(text(n)) == want:
            return n
        stack.extend(reversed(n.named_children))
    return None


def _why_unplaced(f, claim: CacheClaim, rp, mapped: bool) -> str:
    node = _find_expr(rp, claim.handle)
    struct = f"struct {claim.struct}" if not claim.struct.startswith(("struct", "union")) \
        else claim.struct
    if node is not None and rp.layouts is not None:
        base = node
        while base.type in ("pointer_expression", "parenthesized_expression", "cast_expression",
                            "subscript_expression", "field_expression"):
            inner = base.child_by_field_name("argument") or base.child_by_field_name("value") \
                or (base.named_children[-1] if base.named_children else None)
            if inner is None:
                break
            base = inner
        if base.type == "identifier" and rp.layouts.type_of(base, rp.src) is None:
            return (f"the replay cannot lay out '{claim.handle}': the layout engine does not "
                    f"know the type of '{text(base)}' in {rp.src.path}")
    what = "the mapped size is not a known constant, or " if mapped else ""
    return (f"the replay cannot place '{claim.handle}' in a laid-out {struct}: {what}its offset "
            "is not known (an index or pointer step the replay does not know)")


# -- who else lives in the lines ---------------------------------------------------------------------
def _neighbours(m: Mapping, granule: int) -> list[tuple[str, int, int]]:
    """Members of the laid-out outermost object with bytes in the mapping's lines, outside it."""
    lo = m.off // granule * granule
    hi = -(-m.end // granule) * granule
    out = []
    for path, leaf in m.root.layout.leaves():
        if leaf.offset is None or leaf.size is None:
            continue
        a, b = max(leaf.offset, lo), min(leaf.offset + leaf.size, hi)
        if a >= b:
            continue
        if leaf.offset >= m.off and leaf.offset + leaf.size <= m.end:
            continue  # inside the mapped bytes
        a2, b2 = (a, min(b, m.off)) if a < m.off else (max(a, m.end), b)
        if a2 < b2:
            out.append((path, a2, b2))
    return out


def _describe_lines(m: Mapping, granule: int, article: str = "its") -> str:
    first, last = m.off // granule, (m.end - 1) // granule
    if first == last:
        return f"{article} {granule}-byte line {first} (bytes {first * granule}-" \
               f"{(first + 1) * granule - 1})"
    return f"{article} {granule}-byte lines {first}-{last} (bytes {first * granule}-" \
           f"{(last + 1) * granule - 1})"


def _name(root) -> str:
    return root.layout.name if root.layout is not None else root.name


# -- the CPU write the finding names ---------------------------------------------------------------
def _interleave(f, claim: CacheClaim, rp, m: Mapping, state: dict):
    """Set up a CPU write of the driver to run while the buffer is mapped: the one the finding
    names, or another store the layout engine places in the buffer's lines.  A Simulated when
    that decides the verdict, else a string saying why none is interleaved ("" when one is)."""
    granule = rp.cache.granule
    lines = set(range(m.off // granule, (m.end - 1) // granule + 1))
    named = None
    if claim.writer:
        named = _writer_place(claim.writer, claim.writer_line, claim.written, rp, m)
        if isinstance(named, tuple):
            off, size = named
            if not lines & set(range(off // granule, (off + size - 1) // granule + 1)):
                return Simulated("refuted", f"{claim.writer}() writes '{claim.written}' at bytes "
                                 f"{off}-{off + size - 1} of {_name(m.root)} (line "
                                 f"{claim.writer_line}): not in "
                                 f"{_describe_lines(m, granule)}, where '{claim.handle}' is "
                                 f"mapped (bytes {m.off}-{m.end - 1})")
    candidates = []
    if isinstance(named, tuple):
        candidates.append((claim.writer, claim.writer_line, claim.written, named))
    candidates += [c for c in _stores_in_lines(rp, m, state["shared"])
                   if c[:2] != (claim.writer, claim.writer_line)]
    if not candidates:
        if isinstance(named, str):
            return named
        return "the driver has no store the layout engine places in the buffer's lines"
    reasons = []
    for writer, line, member, (off, size) in candidates[:12]:
        why = _ordered(f, rp, writer, line, member)
        if why:
            reasons.append(why)
            continue
        roots = [r for r in rp.program.async_roots(writer) if not LIFECYCLE.search(r)]
        who = f"line {line}: {writer}() writes '{member}'"
        m.concurrent = Write(m.root, off, size, who, line)
        via = "" if roots[0] == writer else f", called from {roots[0]}()"
        state["interleaved"] = (f"{writer}(){via}, which the driver registers to run "
                                "asynchronously (interrupt, completion, timer or work), is "
                                "interleaved while the buffer is mapped (nothing in the "
                                "driver's call graph or locks orders the two), writing the "
                                f"same {_name(m.root)} (assumed: the replay cannot tell two "
                                "objects of one type apart there)")
        return ""
    return reasons[0]


def _ordered(f, rp, writer: str, line: int, member: str) -> str:
    """Why a write elsewhere in the driver is not taken to run while the buffer is mapped
    ("" when nothing orders the two)."""
    prog = rp.program
    if writer == f.function:
        return (f"the write to '{member}' in {writer}() itself (line {line}) is ordered with "
                "the map by the replayed path")
    if prog.reaches(writer, f.function) or prog.reaches(f.function, writer):
        return (f"{writer}() and {f.function}() call one another: the write to '{member}' "
                f"(line {line}) comes before or after the mapping, not during it")
    roots = [r for r in prog.async_roots(writer) if not LIFECYCLE.search(r)]
    if LIFECYCLE.search(writer):
        return (f"{writer}() (line {line}, writes '{member}') sets the device up or tears it "
                "down: its write is taken as ordered with the mapping")
    if not roots:
        return (f"{writer}() (line {line}, writes '{member}') does not run from an interrupt "
                "handler, URB completion, timer, tasklet or work item the driver registers: "
                "its write is taken as ordered with the mapping (the kernel may serialise "
                "other callbacks)")
    mine = prog.entry_roots(f.function)
    if LIFECYCLE.search(f.function) or mine and all(LIFECYCLE.search(r) for r in mine):
        mine = mine or [f.function]
        return (f"{f.function}() runs only from set-up or tear-down callbacks "
                f"({', '.join(mine[:2])}()), when {writer}() is taken as not running")
    shared = sorted(prog.locks(writer) & prog.locks(f.function))
    if shared:
        return (f"{writer}() (line {line}, writes '{member}') and {f.function}() (or the "
                f"callers around it) take the same lock '{shared[0]}': the write is taken as "
                "serialised with the transfer")
    return ""


def _stores_in_lines(rp, m: Mapping, shared) -> list:
    """Stores anywhere in the driver that the layout engine places in the buffer's lines,
    outside the buffer: (function, line, member, (offset, size))."""
    names = {p.split(".")[-1] for p, _, _ in shared}
    if not names:
        return []
    # Only functions whose text names a neighbour as a member are walked.
    named = re.compile(rb"(?:->|\.)\s*(?:" + b"|".join(re.escape(n.encode()) for n in names)
                       + rb")\b")
    out = []
    prog = rp.program
    for fname, found in sorted(prog._index().items()):
        src, fn = found[0]
        if not named.search(fn.body.text or b""):
            continue
        for n in fn.nodes_of("assignment_expression", "update_expression"):
            target = n.child_by_field_name("left" if n.type == "assignment_expression"
                                           else "argument")
            if target is None or target.type != "field_expression" or \
                    text(target.child_by_field_name("field")) not in names:
                continue
            line = n.start_point[0] + 1
            place = _place_target(target, src, rp, m)
            if not isinstance(place, tuple):
                continue
            off, size = place
            if off + size <= m.off - m.off % rp.cache.granule or off >= m.end + (
                    -m.end % rp.cache.granule) or (off < m.end and m.off < off + size):
                continue
            out.append((fname, line, _chain(target), place))
    return out


def _chain(target: Node) -> str:
    names = []
    while target is not None and target.type == "field_expression":
        names.append(text(target.child_by_field_name("field")))
        if text(target.child_by_field_name("operator")) == "->":
            break
        target = target.child_by_field_name("argument")
    return ".".join(reversed(names))


def _place_target(target: Node, src, rp, m: Mapping) -> tuple[int, int] | str:
    """(offset in the mapping's outermost object, size) of a store `p->a.b`, by the layout of
    the struct `p` points to, when that struct is (or is inside) the mapped object."""
    names: list[str] = []
    node = target
    layout = None
    while node is not None and node.type == "field_expression":
        names.append(text(node.child_by_field_name("field")))
        arrow = text(node.child_by_field_name("operator")) == "->"
        inner = node.child_by_field_name("argument")
        if arrow or inner.type != "field_expression":
            layout = rp.layouts.record(inner, src, arrow)
            break
        node = inner
    if layout is None:
        return "the layout engine does not know the struct the write reaches"
    names.reverse()
    fl = member_path(layout, names)
    if fl is None or fl.offset is None or fl.size is None:
        return f"the layout engine does not place '{'.'.join(names)}' in {layout.name}"
    base = _offset_of(m.root.layout, layout, 0)
    if base is None:
        return f"the write reaches {layout.name}, which the replay does not find in {_name(m.root)}"
    return base + fl.offset, fl.size


def _writer_place(writer: str, line: int, written: str, rp, m: Mapping):
    """(offset, size) of the write the finding names, or why it cannot be placed."""
    found = rp.program.find(writer)
    if found is None:
        return f"{writer}() is not among the files the replay has"
    src, fn = found
    last = written.split(".")[-1]
    why = None
    for n in fn.nodes_of("assignment_expression", "update_expression"):
        if n.start_point[0] + 1 != line:
            continue
        target = n.child_by_field_name("left" if n.type == "assignment_expression" else "argument")
        if target is None or target.type != "field_expression" or \
                text(target.child_by_field_name("field")) != last:
            continue
        place = _place_target(target, src, rp, m)
        if isinstance(place, tuple):
            return place
        why = place
    return why or (f"the replay does not find the write to '{written}' at line {line} of "
                   f"{writer}() through a struct pointer")


def _offset_of(outer, inner, base: int) -> int | None:
    """Where a struct of `inner`'s declaration lies in `outer` (itself, or a nested member)."""
    if outer is None:
        return None
    if (outer.path, outer.line, outer.name) == (inner.path, inner.line, inner.name):
        return base
    for fl in outer.fields:
        if fl.layout is not None and fl.offset is not None:
            found = _offset_of(fl.layout, inner, base + fl.offset)
            if found is not None:
                return found
    return None


# -- the verdict ----------------------------------------------------------------------------------
def _finish(f, claim: CacheClaim, rp, state: dict, kind: str) -> Simulated | None:
    m: Mapping = state["mapping"]
    if m.live and kind != "transfer":
        rp.cache.evict(m, "a write-back of the dirty line (eviction) while the device owns it")
        rp.snapshot(f"the device writes '{claim.handle}'; the dirty line is evicted")
    losses = [loss for loss in rp.cache.losses if loss.mapping is m]
    granule = rp.cache.granule
    # What dma-debug itself prints at the map (cacheline tracking of an overlapping mapping,
    # a buffer in rodata): shown with the verdict, never the verdict's evidence.
    driver = f.path.replace("\\", "/").rsplit("/", 1)[-1].rsplit(".", 1)[0]
    dmesg = [r.dmesg(driver) for r in rp.model.reports if f.line in (r.site, r.line)]
    if losses and m.direction is None:
        # The model let the device write; nothing says it does (a gadget's IN request, a
        # crypto scatterlist, a pipe chosen at run time): no confirmation on that assumption.
        return Simulated("unknown", "the direction of the transfer is not known to the replay; "
                         "if the device writes the buffer: "
                         + _story(claim, m, losses[0], granule, state), dmesg, steps=rp.steps)
    if losses:
        return Simulated("confirmed", _story(claim, m, losses[0], granule, state), dmesg,
                         steps=rp.steps)
    if m.writes or m.concurrent is not None and state.get("interleaved"):
        return Simulated("unknown", f"the CPU writes {m.writes[0].who if m.writes else 'a neighbour'}"
                         " in the buffer's lines, but the cache model loses no byte on this path",
                         dmesg)
    why = state.get("not_interleaved") or "no CPU write on the replayed path"
    neighbours = ", ".join(f"'{p}' (bytes {a}-{b - 1})" for p, a, b in state["shared"][:3])
    return Simulated("unknown", f"{_describe_lines(m, granule, 'the')} also hold "
                     f"{neighbours}, but the replay sees no CPU write to them while bytes "
                     f"{m.off}-{m.end - 1} are mapped: {why}", dmesg)


def _mapped(m: Mapping, state: dict) -> str:
    if state.get("transfer"):
        return f"handed to the device by the transfer at line {m.line}"
    return f"mapped {m.dir_name()} at line {m.line}"


def _story(claim: CacheClaim, m: Mapping, loss, granule: int, state: dict) -> str:
    w = loss.cause[0] if loss.cause else None
    line = f"line {loss.line_index} (bytes {loss.line_index * granule}-" \
           f"{(loss.line_index + 1) * granule - 1})"
    what = w.who.split(": ", 1)[-1] if w else "a CPU write"
    at = f" at line {w.line}" if w else ""
    text_ = (f"{EFFECT}: {what} (bytes {w.off}-{w.off + w.size - 1}){at} while '{claim.handle}' "
             f"(bytes {m.off}-{m.end - 1} of {_name(m.root)}) is {_mapped(m, state)}; both lie in the {granule}-byte {line}, which the write leaves dirty "
             f"with the CPU's stale copy of the buffer; after the device writes the buffer, "
             f"{loss.how} writes that copy back: the device's bytes {loss.lo}-{loss.hi - 1} are "
             f"lost") if w else f"{EFFECT}: the device's bytes {loss.lo}-{loss.hi - 1} are lost"
    alt = None
    if w is not None:
        alt = (f" (a CPU that invalidates the partly mapped line without cleaning it loses the "
               f"write to bytes {w.off}-{w.off + w.size - 1} instead)")
    if state.get("interleaved") and w is not None and m.concurrent is not None \
            and w.who == m.concurrent.who:
        text_ += "; " + state["interleaved"]
    if getattr(m, "note", ""):
        text_ += f" ({m.note})"
    return text_ + (alt or "")
