"""Verdicts: what the dma-debug model says about a finding's witness.

  confirmed    the model printed the message the rule predicts (the dmesg lines are given);
               DMA001/DMA002/DMA009: the mapping is still MAP_ERR_NOT_CHECKED where it is used,
               which dma-debug prints as "failed to check map error" when it is unmapped;
               DMA003: the region is still live at the failure return, which dma-debug prints
               at driver unbind (PCI and pSeries VIO buses)
  refuted      the witness path is infeasible in the concrete state, or the model performed the
               predicted operation with every compared value decided and raised nothing
               DMA024: the non-coherent cache model (cache.py, cacheverdict.py) loses bytes the
               device wrote (data corruption; dma-debug has no message for it)
  unknown      an unsupported construct, an undecided branch or comparison, or the step budget
  static-only  no runtime counterpart in dma-debug (see STATIC_ONLY)
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass

from dmalint.findings import Finding
from dmalint.simulate.cacheverdict import make_cache_judge
from dmalint.simulate.model import (MAP_ERR_CHECK_NOT_APPLICABLE, MAP_ERR_NOT_CHECKED, Report,
                                    _hex, _num)
from dmalint.simulate.program import Program
from dmalint.simulate.replay import Simulated, replay
from dmalint.simulate.witness import cache_claim


@dataclass(frozen=True)
class Expect:
    """A rule whose finding predicts a dma-debug message at an operation on its line."""

    texts: tuple[str, ...]
    op: str  # the model operation at the finding's line
    compare: str | None = None  # the comparison whose "same" means no violation
    by_entry: bool = False  # no violation when the operation found its live entry


EXPECT = {
    "DMA004": Expect(("frees DMA memory with different size",), "unmap", "size"),
    "DMA005": Expect(("frees DMA memory with different direction",), "unmap", "direction"),
    "DMA006": Expect(("frees DMA memory with wrong function",), "unmap"),
    "DMA007": Expect(("tries to free DMA memory it has not allocated",), "unmap", by_entry=True),
    "DMA008": Expect(("tries to free an invalid DMA memory address",
                      "tries to free DMA memory it has not allocated"), "unmap", by_entry=True),
    "DMA010": Expect(("frees DMA sg list with different entry count",), "unmap",
                     "sg entry count"),
    "DMA011": Expect(("frees DMA memory with different CPU address",), "unmap", "cpu"),
    "DMA013": Expect(("(bad dma)",), "pool-free"),
    "DMA014": Expect((" busy",), "pool-destroy", by_entry=True),
    "DMA015": Expect(("tries to sync DMA memory it has not allocated",), "sync", by_entry=True),
    "DMA016": Expect(("syncs DMA memory with different direction", "syncs device read-only",
                      "syncs device write-only"), "sync", "sync direction"),
    "DMA017": Expect(("syncs DMA memory outside allocated range",), "sync", "sync size"),
    "DMA018": Expect(("syncs DMA sg list with different entry count",), "sync",
                     "sg entry count"),
    "DMA021": Expect(("DMA_ATTR_NO_KERNEL_MAPPING cookie",), "touch"),
    "DMA023": Expect(("maps memory from stack",), "map"),
}
UNCHECKED = frozenset({"DMA001", "DMA002", "DMA009"})
LEAK = frozenset({"DMA003"})
STATIC_ONLY = {
    "DMA012": "dma-debug does not know which allocations are device-managed",
    "DMA019": "dma-debug does not check allocation results",
    "DMA020": "dma-debug does not check the interrupt state",
    "DMA022": "dma-debug does not check allocation attributes",
    "DMA025": "advice, no runtime counterpart",
    "DMA026": "a claim about every function of the driver; at run time only the unbind check "
              "of PCI and VIO buses would show it",
    "DMA027": "dma-debug does not see CPU accesses to a live mapping",
    "DMA028": "dma-debug does not see CPU accesses to a live mapping",
}
_FROM = re.compile(r"from (\w+)\(\) at line (\d+)")
_CALL_AT = re.compile(r"(\w+)\(\) (?:at line |\(line )(\d+)")


def _acquire(f: Finding) -> tuple[str | None, int | None]:
    """The acquire the finding is about (its function and line), from its message."""
    m = _FROM.search(f.message) or _CALL_AT.search(f.message)
    return (m.group(1), int(m.group(2))) if m else (None, None)


def _ours(e, acq: int | None) -> bool:
    return acq is None or acq in (e.line, e.site)


def _driver(f: Finding) -> str:
    """The name dmesg shows for the driver: its module, taken from the file name."""
    return f.path.replace("\\", "/").rsplit("/", 1)[-1].rsplit(".", 1)[0]


def _confirmed(f: Finding, hits: list[Report], how: str) -> Simulated:
    return Simulated("confirmed", how, [r.dmesg(_driver(f)) for r in hits])


def _expect_judge(f: Finding, ex: Expect, rp, kind: str) -> Simulated | None:
    hits = [r for r in rp.model.reports if f.line in (r.site, r.line)
            and any(t in r.text for t in ex.texts)]
    if hits:
        where = f" (in a helper called at line {hits[0].site})" if hits[0].in_helper else ""
        return _confirmed(f, hits, f"dma-debug reports it at line {hits[0].line}{where}")
    ops = [o for o in rp.model.ops if o.site == f.line and o.kind == ex.op]
    if kind == "line" and rp.pending:
        return None  # the witness goes round again before it is done
    if not ops:
        if kind == "end":
            return Simulated("unknown", f"the replay did not perform the {ex.op} at line {f.line}")
        return None
    op = ops[-1]
    if ex.by_entry and op.found and rp.abandoned:
        return Simulated("unknown", f"the {ex.op} at line {op.line} finds its entry, but a helper "
                         "on the path was not replayed and may have released it")
    if ex.by_entry and op.found:
        what = {"unmap": "the region is still mapped there: this release is its first",
                "sync": "the region is mapped there",
                "pool-destroy": "every block of the pool was freed"}.get(ex.op, "")
        return Simulated("refuted", f"dma-debug performs the {ex.op} at line {op.line} and "
                         f"reports nothing: {what}")
    if ex.compare and op.found:
        if ex.compare == "sync size":
            if "sync size" in op.undecided:
                return Simulated("unknown", f"the sync size at line {op.line} is not known "
                                 "concretely")
            return Simulated("refuted", f"dma-debug performs the sync at line {op.line} inside "
                             "the mapped range and reports nothing")
        cmp = op.compared.get(ex.compare)
        if cmp is None:
            return Simulated("unknown", f"the model does not compare the {ex.compare} at line "
                             f"{op.line}")
        given, recorded, same = cmp
        if same is None:
            return Simulated("unknown", f"{ex.compare} not decided at line {op.line}: "
                             f"{_num(given)} vs {_num(recorded)}")
        cross = rp.segment > 0 and not (isinstance(given, int) and isinstance(recorded, int))
        if same and not cross:
            return Simulated("refuted", f"dma-debug performs the {ex.op} at line {op.line} with "
                             f"the same {ex.compare} as recorded ({_num(given)}) and reports "
                             "nothing")
        if same:
            return Simulated("unknown", f"the {ex.compare} at line {op.line} equals the one "
                             "recorded only through driver state carried between functions")
    if not op.found:
        return Simulated("unknown", f"the {ex.op} at line {op.line} found no live entry (a "
                         "region mapped before the replayed path began)")
    return Simulated("unknown", f"the model performs the {ex.op} at line {op.line} and reports "
                     "nothing, but cannot rule the violation out")


def _unchecked_judge(f: Finding, acq, rp, kind: str, state: dict) -> Simulated | None:
    """dma-debug prints "failed to check map error" when an entry still MAP_ERR_NOT_CHECKED is
    unmapped: the mapping must be unchecked where the finding uses it, and stay so."""
    hits = [r for r in rp.model.reports if "failed to check map error" in r.text
            and f.line in (r.site, r.line)]
    if hits:
        return _confirmed(f, hits, f"dma-debug reports it at the unmap, line {hits[0].line}")
    if kind in ("line", "return") and state.get("entry") is None:
        state["entry"] = next((e for e in rp.model.entries.values() if _ours(e, acq)), None) \
            or next((e for e, _ in reversed(rp.model.released) if _ours(e, acq)), None)
        if state["entry"] is not None:
            state["status"] = state["entry"].map_err
    if kind == "line":
        return None  # decided when the function is done: a later check silences dma-debug
    e = state.get("entry")
    if e is None:
        if kind == "return":
            return None
        return Simulated("unknown", f"the replay has no live mapping from line {acq} at line "
                         f"{f.line}")
    if e.map_err == MAP_ERR_CHECK_NOT_APPLICABLE:
        return Simulated("static-only", "dma-debug does not track map errors of this kind of "
                         "mapping (scatter-gather)")
    if state["status"] != MAP_ERR_NOT_CHECKED:
        return Simulated("refuted", f"the mapping from line {e.line} was checked "
                         f"(MAP_ERR_CHECKED) before line {f.line} in the concrete replay")
    if kind == "return":
        return None  # the finding's line is a return: the function ends right after it
    if e.map_err != MAP_ERR_NOT_CHECKED:
        return Simulated("static-only", f"the mapping from line {e.line} is used unchecked at "
                         f"line {f.line} but checked later on the path, so dma-debug's unmap "
                         "check stays silent")
    if kind == "stuck" and rp.reachable_calls(rp.node) & set(rp.c.checks):
        return Simulated("unknown", f"the mapping from line {e.line} is unchecked at line "
                         f"{f.line}; the replay stopped before seeing whether a later check runs")
    r = Report(f.line, e.dev, "device driver failed to check map error"
               f"[device address={_hex(e.addr)}] [size={_num(e.size)} bytes] "
               "[mapped as single]")
    return Simulated("confirmed", f"the mapping from line {e.line} is MAP_ERR_NOT_CHECKED at "
                     f"line {f.line} and stays so; dma-debug prints this when it is unmapped",
                     [r.dmesg(_driver(f))])


def _leak_judge(f: Finding, acq, rp, kind: str) -> Simulated | None:
    if kind not in ("return", "end"):
        return None
    m = rp.model
    live = [e for e in m.entries.values() if _ours(e, acq)]
    kept = _kept_in(rp, live[0]) if live else None
    # Kept in driver state by a function that never releases anything itself: its caller's
    # cleanup may (a probe's unwind owns its regions only when it releases on some path).
    owns = set(rp.program.calls_from(f.function)) & set(rp.c.releases)
    if kept is not None and not owns and not any(s.kind == "note" for s in f.trace):
        return Simulated("unknown", f"still live at the failure return, but kept in driver state "
                         f"('{kept}'): a caller's cleanup may release it, which the replay of "
                         "this function cannot see")
    if live:
        m.line = m.site = f.line
        before = len(m.reports)
        m.release_device(live[0].dev)
        return Simulated("confirmed", "still live at the failure return; dma-debug reports it "
                         "at driver unbind (PCI and VIO buses only)",
                         [r.dmesg(_driver(f)) for r in m.reports[before:]])
    freed = next(((e, line) for e, line in m.released if _ours(e, acq)), None)
    if freed is not None:
        return Simulated("refuted", f"the model releases the region from line {freed[0].line} "
                         f"at line {freed[1]}, before the return on the replayed path")
    if any(p.blocks for p in m.pools.values()):
        return Simulated("unknown", "a pool block is live; pool leaks have no dma-debug message")
    return Simulated("unknown", f"the replay has no region from line {acq} at the return")


def _kept_in(rp, entry) -> str | None:
    """The member of driver state (objects reached through parameters or globals, and what
    their members point to) that holds the entry's handle or CPU buffer at the return."""
    from dmalint.simulate.values import Handle, Obj, Ptr, Unknown, resolve

    cpu = resolve(entry.cpu)
    cpu_obj = cpu.obj if isinstance(cpu, Ptr) else None
    queue = list(rp.externals.values())
    seen: set[int] = set()
    while queue and len(seen) < 2000:
        obj = queue.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        for key, v in obj.fields.items():
            v = resolve(v)
            if (isinstance(v, Handle) and v == entry.addr and entry.type != "sg") or \
                    (cpu is not None and not isinstance(cpu, int) and v is cpu) or \
                    (cpu_obj is not None and isinstance(v, Ptr) and v.obj is cpu_obj):
                return key if isinstance(key, str) else f"{obj.name}[]"
            if isinstance(v, Ptr):
                queue.append(v.obj)
            elif isinstance(v, Obj):
                queue.append(v)
            elif isinstance(v, Unknown) and v._obj is not None:
                queue.append(v._obj)
    return None


def make_judge(f: Finding):
    if f.code == "DMA024":
        return make_cache_judge(f, cache_claim(f))
    _, acq = _acquire(f)
    state: dict = {}

    def judge(rp, event):
        kind, _ = event
        if f.code in EXPECT:
            return _expect_judge(f, EXPECT[f.code], rp, kind)
        if acq is None and (f.code in UNCHECKED or f.code in LEAK):
            return Simulated("unknown", "the finding's message names no acquire line")
        if f.code in UNCHECKED:
            return _unchecked_judge(f, acq, rp, kind, state)
        if f.code in LEAK:
            return _leak_judge(f, acq, rp, kind)
        return Simulated("unknown", f"no runtime model for {f.code}")

    return judge


def simulate_finding(f: Finding, program: Program, record: bool = False) -> Simulated:
    if f.code in STATIC_ONLY:
        return Simulated("static-only", STATIC_ONLY[f.code])
    api = program.c.acquires.get(_acquire(f)[0] or "")
    if api is not None and f.code in UNCHECKED and api.debug_type == "sg":
        return Simulated("static-only", "dma-debug does not track map errors of scatter-gather "
                         "mappings")
    if api is not None and f.code in LEAK and api.debug_type == "pool":
        return Simulated("static-only", "a dma_pool that is never destroyed has no dma-debug "
                         "or dmapool message")
    sim = replay(f, program, lambda: make_judge(f), record)
    if f.code == "DMA024" and sim.verdict == "refuted" and "path infeasible" in sim.reason:
        # The static rule logs a buffer on any path that maps it; one witness path the replay
        # cannot run (a loop the static engine widened) says nothing about the cache lines.
        sim = Simulated("unknown", f"the witness path to the map cannot be replayed: "
                        f"{sim.reason}", sim.dmesg, sim.steps)
    if f.code == "DMA006" and sim.verdict == "unknown" and "reports nothing" in sim.reason:
        sim = Simulated("static-only", "dma-debug 6.1 records both functions with the same "
                        "type (single for page and single mappings, coherent for every coherent "
                        "allocator): the mismatch is not visible at run time", steps=sim.steps)
    return sim


def apply(f: Finding, sim: Simulated) -> None:
    f.verdict = sim.verdict
    f.extra["verdict_reason"] = sim.reason
    if sim.dmesg:
        f.extra["dmesg"] = "\n".join(sim.dmesg)


def simulate_findings(findings, sources_by_path, contracts=None, include_dirs=(),
                      tables=None) -> None:
    """Set each finding's verdict; a simulator error never loses a finding.  include_dirs
    and tables: the configuration's, so the replay lays structs out as the analysis did."""
    if os.environ.get("DMALINT_NO_SIMULATE") or not findings:
        return
    start = time.process_time()
    if contracts is None:
        from dmalint.contracts.loader import load_contracts
        contracts = load_contracts()
    program = Program(sources_by_path, contracts, include_dirs, tables)
    for f in findings:
        try:
            if f.code in STATIC_ONLY:
                sim = Simulated("static-only", STATIC_ONLY[f.code])
            elif f.path not in sources_by_path:
                sim = Simulated("unknown", "source not available to the simulator")
            else:
                sim = simulate_finding(f, program)
        except (Exception, RecursionError) as exc:
            msg = " ".join(str(exc).split())[:150]
            sim = Simulated("unknown", f"simulator error: {type(exc).__name__}: {msg}")
        apply(f, sim)
    _account(time.process_time() - start, len(findings))


def _account(seconds: float, findings: int) -> None:
    """benchmarks/simulator.py: each worker appends the CPU time it spent here to a file."""
    path = os.environ.get("DMALINT_SIM_TIMES")
    if path:
        with open(path, "a", encoding="utf-8") as out:
            out.write(f"{seconds:.6f} {findings}\n")
