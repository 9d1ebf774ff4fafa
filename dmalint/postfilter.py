"""What happens to findings after the analysis, in this order: rule selection and severity
overrides, inline suppressions, the baseline, then `--diff`.  The engine knows none of it.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass, field

from dmalint import baseline as baseline_mod
from dmalint import select
from dmalint.config import Config
from dmalint.contracts.loader import load_macro_tables, load_registry
from dmalint.findings import Finding
from dmalint.gitdiff import ChangedLines
from dmalint.runner import RunResult
from dmalint.suppress import Suppressor


@dataclass
class Filtered:
    """The result to report, and what each filter took out of it."""

    result: RunResult
    suppressed: int = 0
    unused_suppressions: int = 0
    baselined: int = 0
    out_of_diff: int = 0
    # The findings before the baseline and the diff: what --write-baseline records.
    current: list[Finding] = field(default_factory=list)


def apply(result: RunResult, config: Config, report_unused: bool = False,
          recorded: Counter[str] | None = None, changed: ChangedLines | None = None) -> Filtered:
    """Run every filter over a run's findings; notices of suppressions join the result's."""
    registry = load_registry()
    enabled = config.enabled()
    findings = select.apply(result.findings, enabled, config.severities())
    suppressor = Suppressor(registry, config.tables(load_macro_tables()))
    sup = suppressor.apply(findings, result.paths, enabled, report_unused)
    out = Filtered(result, sup.suppressed, sup.unused, current=list(sup.kept))
    findings = sup.kept
    if recorded is not None:
        findings, out.baselined = baseline_mod.apply(findings, recorded)
    if changed is not None:
        kept = changed.keep(findings)
        out.out_of_diff = len(findings) - len(kept)
        findings = kept
    notices = sorted(result.notices + sup.notices, key=lambda n: (n.path, n.line, n.kind, n.message))
    out.result = dataclasses.replace(result, findings=findings, notices=notices)
    return out
