"""Verdicts: what the dma-debug model says about a finding's witness.

  confirmed    the model printed the message the rule predicts (dmesg lines given);
               DMA001/DMA002/DMA009: the mapping is still MAP_ERR_NOT_CHECKED where it is used,
               which dma-debug prints as "failed to check map error" when it is unmapped
               (confirmed at the unmap if the replay reaches it, else at the use, and said so)
  refuted      the witness path is infeasible in the concrete state, or the model saw the
               predicted operation and raised nothing
  unknown      an unsupported construct, an undecided branch, or the step budget
  static-only  no runtime counterpart in dma-debug (see STATIC_ONLY)
"""

from __future__ import annotations

import os
import re

from dmalint.findings import Finding
from dmalint.simulate.model import MAP_ERR_CHECK_NOT_APPLICABLE, MAP_ERR_NOT_CHECKED, Report
from dmalint.simulate.replay import Simulated, replay

EXPECT = {
    "DMA004": ("frees DMA memory with different size",),
    "DMA005": ("frees DMA memory with different direction",),
    "DMA006": ("frees DMA memory with wrong function",),
    "DMA007": ("tries to free DMA memory it has not allocated",),
    "DMA008": ("tries to free an invalid DMA memory address",
               "tries to free DMA memory it has not allocated"),
    "DMA010": ("frees DMA sg list with different entry count",),
    "DMA011": ("frees DMA memory with different CPU address",),
    "DMA013": ("(bad dma)",),
    "DMA014": (" busy",),
    "DMA015": ("tries to sync DMA memory it has not allocated",),
    "DMA016": ("syncs DMA memory with different direction", "syncs device read-only",
               "syncs device write-only"),
    "DMA017": ("syncs DMA memory outside allocated range",),
    "DMA018": ("syncs DMA sg list with different entry count",),
    "DMA021": ("DMA_ATTR_NO_KERNEL_MAPPING cookie",),
    "DMA023": ("maps memory from stack",),
}
UNCHECKED = frozenset({"DMA001", "DMA002", "DMA009"})
LEAK = frozenset({"DMA003"})
STATIC_ONLY = {
    "DMA012": "dma-debug does not know which allocations are device-managed",
    "DMA019": "dma-debug does not check allocation results",
    "DMA020": "dma-debug does not check the interrupt state",
    "DMA022": "dma-debug does not check allocation attributes",
    "DMA024": "no cache model yet: dma-debug's cacheline tracking sees only overlapping mappings",
    "DMA025": "advice, no runtime counterpart",
}
_AT_LINE = re.compile(r"at line (\d+)")


def _reports(rp, since: int, wanted) -> list[Report]:
    return [r for r in rp.model.reports[since:] if any(w in r.text for w in wanted)]


def _acquire_line(f: Finding) -> int | None:
    m = _AT_LINE.search(f.message)
    return int(m.group(1)) if m else None


def make_judge(f: Finding):
    code = f.code
    acq = _acquire_line(f)
    state = {"unchecked": None}

    def entry_for(rp):
        for e in rp.model.entries.values():
            if acq is None or e.line == acq:
                return e
        return None

    def judge(rp, event):
        kind, _ = event
        if code in EXPECT:
            hits = _reports(rp, 0, EXPECT[code])
            if hits:
                return Simulated("confirmed", f"dma-debug reports it at line {hits[0].line}",
                                 [r.dmesg() for r in hits])
            if kind in ("after", "end", "return"):
                # Not "refuted": the interpreter is young, a miss may be its own gap.
                return Simulated("unknown", "the replay did not produce the predicted message"
                                 + (f" ({'; '.join(rp.model.undecided)} undecided)"
                                    if rp.model.undecided else ""))
            return None
        if code in UNCHECKED:
            hits = _reports(rp, 0, ("failed to check map error",))
            if hits:
                return Simulated("confirmed", f"dma-debug reports it at the unmap, line "
                                 f"{hits[0].line}", [r.dmesg() for r in hits])
            if kind == "line":
                e = entry_for(rp)
                if e is not None and state["unchecked"] is None:
                    state["unchecked"] = e
            if kind in ("after", "end", "return"):
                e = state["unchecked"]
                if e is None:
                    return Simulated("unknown", "the replay has no live mapping from line "
                                     f"{acq} at line {rp.f.line}")
                if e.map_err == MAP_ERR_CHECK_NOT_APPLICABLE:
                    return Simulated("static-only", "dma-debug does not track map errors of "
                                     "scatter-gather mappings")
                if e.map_err == MAP_ERR_NOT_CHECKED:
                    r = Report(rp.f.line, e.dev, "device driver failed to check map error"
                               f"[device address=0x{e.addr:016x}] [size={e.size} bytes] "
                               "[mapped as single]" if isinstance(e.addr, int) else
                               "device driver failed to check map error")
                    return Simulated("confirmed", f"the mapping from line {e.line} is "
                                     f"MAP_ERR_NOT_CHECKED at line {rp.f.line}; dma-debug "
                                     "prints this when it is unmapped", [r.dmesg()])
                return Simulated("refuted", f"the mapping from line {e.line} was checked "
                                 "(MAP_ERR_CHECKED) in the concrete replay")
            return None
        if code in LEAK:
            if kind in ("return", "end", "after"):
                live = [e for e in rp.model.entries.values() if acq is None or e.line == acq]
                pools = [p for p in rp.model.pools.values()] if acq is not None else []
                if live:
                    rp.model.line = rp.f.line
                    before = len(rp.model.reports)
                    rp.model.release_device()
                    return Simulated("confirmed", "still live at the failure return; dma-debug "
                                     "reports it at driver unbind (PCI and VIO buses only)",
                                     [r.dmesg() for r in rp.model.reports[before:]])
                if pools:
                    return Simulated("unknown", "pool leaks have no dma-debug message")
                return Simulated("unknown", f"the replay has no live region from line {acq} "
                                 "at the return")
            return None
        return Simulated("unknown", f"no runtime model for {code}")

    return judge


def simulate_finding(f: Finding, src, contracts, record: bool = False) -> Simulated:
    if f.code in STATIC_ONLY:
        return Simulated("static-only", STATIC_ONLY[f.code])
    sim = replay(f, src, contracts, make_judge(f), record)
    if f.code == "DMA006" and sim.verdict == "unknown" and "predicted message" in sim.reason:
        sim = Simulated("static-only", "dma-debug 6.1 records dma_map_page and "
                        "dma_map_single alike (type single): the mismatch is not visible at "
                        "runtime", steps=sim.steps)
    return sim


def apply(f: Finding, sim: Simulated) -> None:
    f.verdict = sim.verdict
    f.extra["verdict_reason"] = sim.reason
    if sim.dmesg:
        f.extra["dmesg"] = "\n".join(sim.dmesg)


def simulate_findings(findings, sources_by_path, contracts=None) -> None:
    """Set each finding's verdict; a simulator error never loses a finding."""
    if os.environ.get("DMALINT_NO_SIMULATE"):
        return
    if contracts is None:
        from dmalint.contracts.loader import load_contracts
        contracts = load_contracts()
    for f in findings:
        src = sources_by_path.get(f.path)
        try:
            if src is None:
                sim = Simulated("unknown", "source not available to the simulator")
            else:
                sim = simulate_finding(f, src, contracts)
        except (Exception, RecursionError) as exc:
            msg = " ".join(str(exc).split())[:150]
            sim = Simulated("unknown", f"simulator error: {type(exc).__name__}: {msg}")
        apply(f, sim)
