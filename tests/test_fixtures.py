"""The fixture harness: expectations live on the line, in the fixture.

    // expect: DMA001          a finding with this code must be reported on this line
    // ok: DMA001              no finding with this code may be reported on this line
    // todo-expect: DMA001     a known false negative: fails loudly once it starts passing
    // todo-ok: DMA001         a known false positive: fails loudly once it goes away

Any finding on a line that does not expect it fails the test as unexpected; any expect with no
finding fails as missing.  Findings are never counted.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import pytest

from conftest import FIXTURES, analyse_text

ANNOTATION = re.compile(r"//\s*(expect|ok|todo-expect|todo-ok):\s*([A-Z0-9, ]+)")
FIXTURE_FILES = sorted(p for p in FIXTURES.rglob("*.c"))


def annotations(text: str) -> dict[str, dict[int, set[str]]]:
    out: dict[str, dict[int, set[str]]] = defaultdict(lambda: defaultdict(set))
    for lineno, line in enumerate(text.splitlines(), start=1):
        for kind, codes in ANNOTATION.findall(line):
            for code in re.split(r"[,\s]+", codes.strip()):
                if code:
                    out[kind][lineno].add(code)
    return out


def test_fixture_files_exist():
    assert FIXTURE_FILES, "no fixtures found"


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=lambda p: str(p.relative_to(FIXTURES)))
def test_fixture(path: Path):
    text = path.read_text()
    notes = annotations(text)
    result = analyse_text(text, str(path.relative_to(FIXTURES)))
    found: dict[int, set[str]] = defaultdict(set)
    for f in result.findings:
        found[f.line].add(f.code)
    problems = []
    for line, codes in notes["expect"].items():
        for code in codes - found[line]:
            problems.append(f"missing: {code} expected on line {line}")
    for line, codes in notes["todo-expect"].items():
        for code in codes & found[line]:
            problems.append(f"todo-expect now passes: {code} on line {line}; make it 'expect'")
    for line, codes in notes["todo-ok"].items():
        for code in codes - found[line]:
            problems.append(f"todo-ok no longer fires: {code} on line {line}; make it 'ok'")
    for f in result.findings:
        allowed = notes["expect"].get(f.line, set()) | notes["todo-ok"].get(f.line, set())
        if f.code not in allowed:
            problems.append(f"unexpected: {f.code} on line {f.line}: {f.message}")
    skipped = [n for n in result.notices if n.kind != "incomplete"]
    assert not skipped, f"fixture functions were skipped: {skipped}"
    assert not problems, "\n".join(sorted(problems))


def test_every_diagnostic_has_bad_and_ok_fixture():
    from dmalint.contracts.loader import load_registry

    expected, ok = set(), set()
    for path in FIXTURE_FILES:
        notes = annotations(path.read_text())
        for codes in notes["expect"].values():
            expected |= codes
        for codes in notes["ok"].values():
            ok |= codes
    for diag in load_registry().diagnostics:
        assert diag.code in expected, f"{diag.code} has no 'expect' fixture"
        assert diag.code in ok, f"{diag.code} has no 'ok' fixture"
