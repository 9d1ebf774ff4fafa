"""The driver-level pass: pair what one function stores in a struct member with what another
function releases from it.

Inputs are the field logs of every function of one driver (the files analysed together).  Three
judgements, each conservative where drivers legitimately vary:

- a release whose family, direction, size or entry count matches NONE of the acquires stored
  under the same member elsewhere is a mismatch (a ring slot that holds both single and page
  mappings, released by a matching call chosen per slot, is therefore never reported);
- a region stored in a single member (not a ring slot) and still held on a failure return of a
  function no other driver function calls (an ops callback such as probe or open) leaks when
  another function releases that member: remove() never runs after a failed probe();
- the mapped count of a scatterlist stored in a member and later passed as the unmap's count.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from dmalint.engine.explore import StoredLeak
from dmalint.engine.fieldlog import FieldLog, Side
from dmalint.engine.state import Step
from dmalint.engine.values import Lin
from dmalint.findings import Event


@dataclass
class FunctionRecord:
    """One analysed function's contribution to the driver pass."""

    function: str
    path: str
    log: FieldLog
    stored_leaks: list[StoredLeak]
    is_root: bool = True  # no function of the driver calls it (an ops callback: probe, open)


def key_text(key: tuple) -> str:
    return f"struct {key[0]}." + ".".join(key[1:])


def cross_function(records: list[FunctionRecord], defined: set[str] | frozenset = frozenset(),
                   may_release: frozenset[str] = frozenset()) -> list[tuple[str, Event]]:
    """Events (with the path of the file they belong to) found only across functions.
    `defined`: the structs the driver's files define; `may_release`: families some helper
    releases without our knowing which member (then nothing of them is "never released")."""
    stores: dict[tuple, list[tuple[FunctionRecord, Side]]] = {}
    releases: dict[tuple, list[tuple[FunctionRecord, Side]]] = {}
    counts: dict[tuple, tuple[str, int, str, str]] = {}
    polluted: set = set()
    for rec in records:
        polluted |= rec.log.polluted
        for (rid, _), side in rec.log.stores.items():
            links = rec.log.size_links.get(rid)
            if links:
                side = replace(side, size_links=tuple(
                    sorted((k, d) for k, d in links.items() if d is not None)))
            stores.setdefault(side.key, []).append((rec, side))
        for side in rec.log.releases.values():
            releases.setdefault(side.key, []).append((rec, side))
        for key, (acquire, line) in rec.log.count_stores.items():
            counts[key] = (acquire, line, rec.function, rec.path)
    out: list[tuple[str, Event]] = []
    for key, rels in sorted(releases.items(), key=lambda kv: repr(kv[0])):
        if key in polluted:
            continue  # the member also holds handles from calls we do not model
        for rec, rel in rels:
            acquired = [(r, a) for r, a in stores.get(key, []) if a.related(rel)]
            if any(r.function != rec.function for r, _ in acquired):
                out.extend((rec.path, ev) for ev in _mismatches(key, rec, rel, acquired, counts))
            elif rel.count_key in counts and rel.count_key not in polluted:
                # The scatterlist itself is not kept by the driver (task->scatter is the
                # caller's), but the count it is unmapped with comes from a member that only
                # ever receives what the map returned.
                out.append((rec.path, _returned_count_event(rec, rel, counts[rel.count_key])))
    released = set().union(*(rec.log.released_keys for rec in records)) if records else set()
    out.extend(_never_released(records, released, polluted, defined, may_release))
    for rec in records:
        if not rec.is_root:
            continue  # a helper's caller may clean up when it fails
        for leak in rec.stored_leaks:
            stored = [side for (rid, _), side in rec.log.stores.items()
                      if rid == leak.region.rid and not side.indexed]
            found = next(((side, r, s) for side in stored for r, s in releases.get(side.key, [])
                          if r.function != rec.function and s.related(side)), None)
            if found is not None:
                side, r, s = found
                out.append((rec.path, _stored_leak_event(rec, leak, side.key, (r, s))))
    return out


def _where(rec: FunctionRecord, side: Side, here: FunctionRecord) -> str:
    place = f"{side.line} in {side.in_function}()"
    return place if rec.path == here.path else f"{place} of {rec.path}"


def _cross_trace(arec: FunctionRecord, acq: Side, rrec: FunctionRecord, rel: Side) -> tuple[Step, ...]:
    first = tuple(Step(s.line, s.kind, s.message, arec.path) for s in acq.trace)
    stored = Step(acq.line, "store", f"the region is kept in {key_text(acq.key)}", arec.path)
    second = tuple(Step(s.line, s.kind, s.message, rrec.path) for s in rel.trace)
    return first + (stored,) + second


def _event(kind: str, rrec: FunctionRecord, rel: Side, arec: FunctionRecord, acq: Side,
           **fields) -> Event:
    data = {"handle": key_text(rel.key), "acquire": acq.function,
            "acquire_line": _where(arec, acq, rrec)}
    data.update(fields)
    return Event(kind, rel.line, 1, rrec.function, data, _cross_trace(arec, acq, rrec, rel),
                 related=((acq.line, f"{acq.function}() in {acq.in_function}() acquires it"),),
                 anchor=f"{acq.function}:{key_text(rel.key)}")


def _differs(a, b) -> bool:
    if not isinstance(a, Lin) or not isinstance(b, Lin):
        return False
    d = a.add(b, -1)
    return d.is_const and d.const != 0


def _size_differs(acq: Side, rel: Side) -> bool:
    """The release's size provably not the acquire's: as values, or through a member stored
    beside the region (`chunk->size + 8` released, `c_size + 8` acquired with `curr->size =
    c_size`: equal; `chunk->size` alone: 8 bytes short)."""
    if _differs(acq.size, rel.size):
        return True
    size = rel.size
    if isinstance(size, Lin) and len(size.terms) == 1 and size.terms[0][1] == 1 \
            and size.terms[0][0][0] == "field":
        member = size.terms[0][0][1:]
        for key, diff in acq.size_links:
            if key == member:
                return diff != size.const
    return False


def _mismatches(key, rrec, rel: Side, others, counts) -> list[Event]:
    """A release compared with every acquire kept in the same member (the first one from
    another function names the acquire in the message)."""
    events = []
    arec, acq = next(((r, a) for r, a in others if r.function != rrec.function), others[0])
    # A release function that picks between families for this member (a flag per slot says
    # page or single) is trusted to pick right.
    chooses = any(s.family != rel.family and s.related(rel) for s in rrec.log.releases.values())
    if not chooses and all(a.family != rel.family for _, a in others) \
            and all(a.managed == rel.managed for _, a in others):
        events.append(_event("release-family-mismatch", rrec, rel, arec, acq, release=rel.function,
                             acquire_family=acq.family, release_family=rel.family))
    if all(_differs(a.direction, rel.direction) for _, a in others):
        events.append(_event("release-direction-mismatch", rrec, rel, arec, acq,
                             release=rel.function, acquire_direction=acq.direction_text,
                             release_direction=rel.direction_text))
    if all(_size_differs(a, rel) for _, a in others):
        events.append(_event("release-size-mismatch", rrec, rel, arec, acq, release=rel.function,
                             acquire_size=acq.size_text, release_size=rel.size_text))
    if rel.count_key is not None and rel.count_key in counts:
        acquire, line, fn, _path = counts[rel.count_key]
        events.append(_event("release-count-mismatch", rrec, rel, arec, acq, call=rel.function,
                             count=rel.count_text,
                             reason=f"'{rel.count_text}', the count {acquire}() returned in "
                                    f"{fn}() (line {line}), not the nents it was given"))
    elif all(_differs(a.count, rel.count) for _, a in others):
        events.append(_event("release-count-mismatch", rrec, rel, arec, acq, call=rel.function,
                             count=rel.count_text,
                             reason=f"{rel.count_text}, but {acq.count_text} entries were mapped"))
    return events


def _returned_count_event(rrec: FunctionRecord, rel: Side, count) -> Event:
    acquire, line, fn, path = count
    where = f"{line} in {fn}()" if path == rrec.path else f"{line} in {fn}() of {path}"
    stored = Step(line, "store", f"{fn}() keeps the count {acquire}() returned in "
                                 f"{key_text(rel.count_key)}", path)
    trace = (stored,) + tuple(Step(s.line, s.kind, s.message, rrec.path) for s in rel.trace)
    data = {"handle": key_text(rel.key), "acquire": acquire, "acquire_line": where,
            "call": rel.function, "count": rel.count_text,
            "reason": f"'{rel.count_text}', the count {acquire}() returned in {fn}() (line "
                      f"{line}), not the nents it was given"}
    related = ((line, f"{acquire}() in {fn}() returns the count kept in "
                      f"{key_text(rel.count_key)}"),) if path == rrec.path else ()
    return Event("release-count-mismatch", rel.line, 1, rrec.function, data, trace,
                 related=related, anchor=f"{acquire}:{key_text(rel.key)}")


def _stored_leak_event(rec: FunctionRecord, leak: StoredLeak, key, elsewhere) -> Event:
    rrec, rel = elsewhere
    reg = leak.region
    data = {"handle": reg.handle_text, "acquire": reg.acquire, "acquire_line": reg.line,
            "release": leak.release}
    trace = leak.trace + (Step(rel.line, "note", f"{rel.in_function}() releases {key_text(key)} "
                                                 f"with {rel.function}()", rrec.path),)
    return Event("leak", leak.line, 1, rec.function, data, trace,
                 related=((reg.line, f"{reg.acquire}() acquires the region here"),
                          (rel.line, f"{rel.in_function}() releases {key_text(key)}, but it does "
                                     f"not run when this function fails")),
                 anchor=f"{reg.acquire}:{reg.handle_text}")


def _never_released(records, released, polluted, defined,
                    may_release) -> list[tuple[str, Event]]:
    """A member of one of the driver's own structs that receives a mapping or an allocation
    which no function of the driver ever releases from it (through its handle or its CPU
    address: a region kept in two members is released when either is), in a driver that
    releases other regions of the same family."""
    out = []
    reported: set = set()
    # Only where the driver does release this family somewhere: then one member it never
    # releases stands out (a driver that never unmaps anything is judged by other rules).
    families = set().union(*(rec.log.released_families for rec in records)) if records else set()
    for rec in records:
        by_region: dict = {}
        for (rid, key), side in rec.log.stores.items():
            by_region.setdefault(rid, []).append(side)
        for sides in by_region.values():
            keys = {s.key for s in sides}
            if keys & (released | polluted) or any(not s.owned or s.managed or s.family in may_release
                                                  or s.family not in families for s in sides):
                continue
            acq = min(sides, key=lambda s: repr(s.key))
            if acq.key[0] not in defined or acq.key in reported:
                continue
            reported.add(acq.key)
            data = {"handle": key_text(acq.key), "acquire": acq.function, "acquire_line": acq.line,
                    "member": key_text(acq.key)}
            trace = tuple(Step(s.line, s.kind, s.message, rec.path) for s in acq.trace) + (
                Step(acq.line, "store", f"kept in {key_text(acq.key)}; no function of the driver "
                                        f"releases it", rec.path),)
            out.append((rec.path, Event("never-released", acq.line, 1, rec.function, data, trace,
                                        anchor=f"{acq.function}:{key_text(acq.key)}")))
    return out
