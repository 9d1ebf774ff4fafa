"""The driver-level memory rules that need struct layouts: DMA buffers sharing cache lines with
other members, and small coherent allocations that a dma_pool would serve better.

The engine logs candidates while it explores (a buffer DMA'd in place inside a struct, a coherent
allocation and its size); this pass asks the layout engine for sizes and offsets.  An unknown
layout or size is never a finding.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dmalint.consteval import Target
from dmalint.driver import FunctionRecord
from dmalint.engine.state import Step
from dmalint.engine.values import Lin
from dmalint.findings import Event
from dmalint.layout import LayoutEngine, granule_overlap
from dmalint.source import SourceFile

REPEATED_SMALL_ALLOCATIONS = 3  # this many small allocations in one driver make the advice worth it


@dataclass
class MemoryStats:
    """What the pass could and could not judge (for benchmarks)."""

    embedded: int = 0
    layouts_unknown: int = 0
    unknown_reasons: dict = field(default_factory=dict)
    allocations: int = 0
    sizes_unknown: int = 0


def memory_rules(records: list[FunctionRecord], sources: dict[str, SourceFile], target: Target,
                 to_device: int | None, writes_of=None,
                 stats: MemoryStats | None = None, tables=None,
                 include_dirs=(), engine=None) -> list[tuple[str, Event]]:
    """Events for the cache-line and small-allocation rules, with the file each belongs to.
    `writes_of()` returns every member the driver's functions write (computed only if needed);
    `engine()`, when given, returns the unit's layout engine (shared with the other passes, so
    that headers are read and parsed once)."""
    stats = stats if stats is not None else MemoryStats()
    candidates = [(r, e) for r in records for e in r.log.embedded]
    allocations = [(r, a) for r in records for a in r.log.allocations]
    if not candidates and not allocations:
        return []
    engine = engine() if engine is not None else \
        LayoutEngine(list(sources.values()), include_dirs, target=target, tables=tables)
    writes: dict = dict(writes_of()) if (candidates and writes_of is not None) else {}
    for rec in records:
        for key, where in rec.log.writes.items():
            writes.setdefault(key, where)
    seen: set = set()
    unique = []
    for rec, alloc in allocations:  # one per site: the log has one entry per explored path
        if (rec.function, alloc.rid) not in seen:
            seen.add((rec.function, alloc.rid))
            unique.append((rec, alloc))
    allocations = unique
    seen = set()
    unique_emb = []
    for rec, emb in candidates:
        key = (rec.function, emb.line, emb.column, emb.struct, emb.members)  # a call may DMA two
        if key not in seen:
            seen.add(key)
            unique_emb.append((rec, emb))
    candidates = unique_emb
    # Members the driver DMAs in place: sharing a line with each other is the usual layout of
    # a transfer's tx and rx buffers (both handed to the device together), not a conflict.
    dma_members = {(e.struct, ".".join(e.members)) for _, e in candidates}
    out: list[tuple[str, Event]] = []
    for rec, emb in candidates:
        stats.embedded += 1
        event = _shared_lines(engine, rec, emb, writes, target, to_device, stats, dma_members,
                              sources)
        if event is not None:
            out.append((rec.path, event))
    out.extend(_small_allocations(engine, allocations, sources, target, stats))
    return out


def _shared_lines(engine: LayoutEngine, rec, emb, writes, target: Target, to_device, stats,
                  dma_members: set, sources: dict[str, SourceFile]):
    if emb.direction is not None and emb.direction == to_device:
        return None  # the device only reads: CPU writes to neighbours cannot lose its data
    layout = engine.struct(emb.struct)
    if layout is None or layout.unknown is not None:
        stats.layouts_unknown += 1
        reason = str(layout.unknown) if layout is not None else f"struct {emb.struct} not found"
        stats.unknown_reasons[reason] = stats.unknown_reasons.get(reason, 0) + 1
        return None
    member = engine.field_path(layout, list(emb.members))
    if member is None:
        return None
    if "&" not in emb.text and not member.type_text.endswith("]"):
        return None  # a pointer member: the buffer is allocated on its own
    if emb.size_text and member.size is not None and \
            not _maps_the_member(engine, sources.get(rec.path), emb, member.size):
        return None  # `dma_map_single(&cmd->hdr, sizeof(*cmd))`: more than the member is mapped
    shared = granule_overlap(layout, ".".join(emb.members), target.dma_minalign)
    # A neighbour inside a member the driver DMAs too (`setup.request` of a DMA'd `setup`).
    shared = [s for s in shared or ()
              if not any((emb.struct, prefix) in dma_members for prefix in _prefixes(s.member))]
    if not shared:
        return None
    written = []
    for s in shared:
        parts = tuple(s.member.split("."))
        where = writes.get((emb.struct,) + parts) or writes.get((emb.struct, parts[0]))
        if where is not None:
            written.append((s.member, where))
    if emb.direction is None and not written:
        return None  # a transfer helper of unknown direction: only with evidence of CPU writes
    neighbours = ", ".join(f"'{s.member}' (bytes {s.ranges[0][0]}-{s.ranges[-1][1] - 1})"
                           for s in shared[:4]) + (f" and {len(shared) - 4} more" if len(shared) > 4 else "")
    if written:
        name, (line, fn) = written[0]
        writes_note = f"; the CPU writes '{name}' in {fn}() (line {line}) while the device may own the line"
    else:
        writes_note = ""
    start, size = member.offset, member.size
    data = {"handle": emb.text, "acquire": emb.call, "acquire_line": emb.line,
            "struct": emb.struct, "member": ".".join(emb.members),
            "range": f"{start}-{start + size - 1}", "neighbours": neighbours,
            "granule": target.dma_minalign, "writes": writes_note}
    trace = emb.trace + (Step(emb.line, "layout", f"struct {emb.struct}: '{data['member']}' at "
                                                   f"bytes {data['range']}, {target.dma_minalign}-byte "
                                                   f"lines shared with {neighbours}"),)
    return Event("shared-cacheline", emb.line, emb.column, emb.in_function, data, trace,
                 related=((member.line or emb.line, f"'{data['member']}' is declared here"),),
                 anchor=f"{emb.struct}.{data['member']}")


def _maps_the_member(engine: LayoutEngine, src: SourceFile | None, emb, member_size: int) -> bool:
    """Whether a map call's size covers just the member: it evaluates to the member's size, or
    it is a runtime length; a `sizeof` of something else (`sizeof(*cmd)` for `&cmd->hdr`)
    means the buffer is wider than the member, and the member's neighbours are mapped too."""
    size = None
    if src is not None:
        try:
            size = engine.evaluator(src).eval_text(emb.size_text)
        except (RecursionError, ValueError):
            size = None
    if size is not None:
        return size == member_size
    spelled = "".join(emb.size_text.split())
    target = "".join(emb.text.split()).lstrip("&")
    return "sizeof" not in spelled or spelled in (f"sizeof({target})", f"sizeof{target}")


def _prefixes(member: str) -> list[str]:
    """`a.b.c` -> ["a", "a.b", "a.b.c"]."""
    parts = member.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def _small_allocations(engine: LayoutEngine, allocations, sources, target: Target, stats):
    small = []
    for rec, alloc in allocations:
        stats.allocations += 1
        size = _size(engine, sources.get(rec.path), alloc)
        if size is None:
            stats.sizes_unknown += 1
            continue
        if 0 < size < target.page_size:
            indexed = any(side.indexed for (rid, _), side in rec.log.stores.items() if rid == alloc.rid)
            small.append((rec, alloc, size, indexed))
    out = []
    for rec, alloc, size, indexed in small:
        if not (alloc.in_loop or indexed or len(small) >= REPEATED_SMALL_ALLOCATIONS):
            continue  # one small ring allocated once: a page is a fair price
        how = ("in a loop" if alloc.in_loop else "once per descriptor" if indexed
               else f"one of {len(small)} small coherent allocations in this driver")
        align = 64 if size >= 64 else 1 << max(size - 1, 0).bit_length()
        data = {"handle": alloc.size_text, "acquire": alloc.function, "acquire_line": alloc.line,
                "size": size, "page": target.page_size, "how": how,
                "suggestion": f'dma_pool_create("{rec.function}", dev, {size}, {align}, 0)'}
        out.append((rec.path, Event("small-coherent", alloc.line, alloc.column, alloc.in_function,
                                    data, alloc.trace, anchor=f"{alloc.function}:{alloc.size_text}")))
    return out


def _size(engine: LayoutEngine, src: SourceFile | None, alloc) -> int | None:
    if isinstance(alloc.size, Lin) and alloc.size.is_const:
        return alloc.size.const
    if src is None or not alloc.size_text:
        return None
    try:
        return engine.evaluator(src).eval_text(alloc.size_text)
    except (RecursionError, ValueError):
        return None
