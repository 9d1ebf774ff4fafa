"""Rule selection and severity overrides, applied to findings after the analysis.

A selector names rules the way ruff's do: a code (`DMA001`), a code prefix (`DMA00`), a rule
name (`unchecked-dma-mapping`), a group (`streaming`), or `ALL`.  Selection is a list of layers
(the configuration file, then the command line); each layer with a `select` starts again from
its selection, and its `ignore` removes rules.  Within one layer, the most specific selector
that matches a rule decides (`select = ["DMA0"]`, `ignore = ["DMA001"]` drops DMA001 only, and
`ignore = ["streaming"]`, `select = ["DMA001"]` keeps DMA001); on a tie, ignore wins.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Iterable, Sequence

from dmalint.contracts.model import Registry
from dmalint.findings import Finding

SEVERITIES = ("error", "warning", "note")
_PREFIX_RE = re.compile(r"^DMA\d{0,3}$", re.I)
EXACT = 6  # specificity of a full code or a rule name


class SelectorError(ValueError):
    """A selector that names no rule; the message says what a selector may be."""


@dataclass(frozen=True)
class Selector:
    """What a selector text stands for: a set of codes, and how specifically it names them."""

    text: str
    codes: frozenset[str]
    specificity: int


def parse_selector(text: str, registry: Registry) -> Selector:
    """Resolve one selector against the registry, or raise SelectorError."""
    t = text.strip()
    every = frozenset(d.code for d in registry.diagnostics)
    if t.upper() == "ALL":
        return Selector(t, every, 0)
    if _PREFIX_RE.match(t):
        codes = frozenset(c for c in every if c.startswith(t.upper()))
        if not codes:
            raise SelectorError(f"'{t}' matches no rule (see 'dmalint rules')")
        return Selector(t, codes, len(t))
    diag = registry.by_name(t)
    if diag is not None:
        return Selector(t, frozenset({diag.code}), EXACT)
    group = frozenset(d.code for d in registry.diagnostics if d.group == t)
    if group:
        return Selector(t, group, 1)
    groups = sorted({d.group for d in registry.diagnostics})
    raise SelectorError(f"unknown rule '{t}': expected a code (DMA001), a code prefix (DMA00), "
                        f"a rule name (unchecked-dma-mapping), a group ({', '.join(groups)}) "
                        f"or ALL")


def parse_selectors(texts: Iterable[str], registry: Registry) -> list[Selector]:
    return [parse_selector(t, registry) for t in texts]


Layer = tuple[tuple[str, ...] | None, tuple[str, ...]]  # (select or None, ignore)


def enabled_codes(layers: Sequence[Layer], registry: Registry) -> frozenset[str]:
    """The codes left on after applying each (select, ignore) layer in order."""
    every = [d.code for d in registry.diagnostics]
    enabled = set(every)
    for select, ignore in layers:
        chosen = parse_selectors(select, registry) if select is not None else None
        dropped = parse_selectors(ignore, registry)
        if chosen is None and not dropped:
            continue
        after = set()
        for code in every:
            best: tuple[int, bool] | None = None
            for s in chosen or ():
                if code in s.codes and (best is None or s.specificity > best[0]):
                    best = (s.specificity, True)
            for s in dropped:
                if code in s.codes and (best is None or s.specificity >= best[0]):
                    best = (s.specificity, False)
            on = best[1] if best is not None else (chosen is None and code in enabled)
            if on:
                after.add(code)
        enabled = after
    return frozenset(enabled)


def severity_overrides(table: Sequence[tuple[str, str]], registry: Registry) -> dict[str, str]:
    """code -> severity from (selector, severity) pairs: the most specific selector wins, and
    among equally specific ones the later."""
    best: dict[str, tuple[int, str]] = {}
    for text, level in table:
        sel = parse_selector(text, registry)
        for code in sel.codes:
            if code not in best or sel.specificity >= best[code][0]:
                best[code] = (sel.specificity, level)
    return {code: level for code, (_, level) in best.items()}


def apply(findings: Iterable[Finding], enabled: frozenset[str],
          severities: dict[str, str]) -> list[Finding]:
    """The findings of enabled rules, each with its overridden severity."""
    out = []
    for f in findings:
        if f.code not in enabled:
            continue
        level = severities.get(f.code)
        out.append(dataclasses.replace(f, severity=level) if level and level != f.severity else f)
    return out
