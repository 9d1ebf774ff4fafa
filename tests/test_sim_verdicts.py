"""Expected simulator verdicts, annotated on the fixture line after the code:

    // expect: DMA004 verdict=confirmed      the finding must be there, with this verdict

Runs every fixture that carries a verdict annotation WITH the reference simulator (the rest of
the suite runs without it).  The code part is also an ordinary `expect:` for test_fixtures.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import FIXTURES, analyse_text
from dmalint.contracts.loader import load_contracts, load_macro_tables
from dmalint.simulate.program import Program
from dmalint.simulate.verdict import simulate_finding
from dmalint.source import make_source

VERDICT = re.compile(r"(DMA\d{3})\s+verdict=(confirmed|refuted|unknown|static-only)")
EXPECT_LINE = re.compile(r"//\s*expect:(.*)$")


def verdict_annotations(text: str) -> dict[tuple[int, str], str]:
    out = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        m = EXPECT_LINE.search(line)
        if m:
            for code, verdict in VERDICT.findall(m.group(1)):
                out[(lineno, code)] = verdict
    return out


ANNOTATED = sorted(p for p in FIXTURES.rglob("*.c") if verdict_annotations(p.read_text()))


def test_verdict_annotation_syntax():
    text = "x(); // expect: DMA004 verdict=confirmed, DMA005 verdict=refuted\n"
    assert verdict_annotations(text) == {(1, "DMA004"): "confirmed", (1, "DMA005"): "refuted"}


def test_some_fixtures_have_verdicts():
    assert any(p.parent.name == "simulate" for p in ANNOTATED)


@pytest.mark.parametrize("path", ANNOTATED, ids=lambda p: str(p.relative_to(FIXTURES)))
def test_fixture_verdicts(path: Path):
    text = path.read_text()
    rel = str(path.relative_to(FIXTURES))
    result = analyse_text(text, rel)
    src = make_source(text.encode(), rel, load_macro_tables())
    program = Program({rel: src}, load_contracts())
    got = {}
    for f in result.findings:
        sim = simulate_finding(f, program)
        got[(f.line, f.code)] = (sim.verdict, sim.reason)
    problems = []
    for (line, code), want in sorted(verdict_annotations(text).items()):
        if (line, code) not in got:
            problems.append(f"line {line}: no {code} finding to judge")
        elif got[(line, code)][0] != want:
            verdict, reason = got[(line, code)]
            problems.append(f"line {line}: {code} is {verdict}, expected {want} ({reason})")
    assert not problems, "\n".join(problems)


def test_confirmed_shows_kernel_text():
    path = FIXTURES / "simulate" / "confirm.c"
    text = path.read_text()
    rel = "simulate/confirm.c"
    result = analyse_text(text, rel)
    program = Program({rel: make_source(text.encode(), rel, load_macro_tables())},
                      load_contracts())
    size = next(f for f in result.findings if f.code == "DMA004")
    sim = simulate_finding(size, program, record=True)
    assert sim.verdict == "confirmed"
    assert sim.dmesg == ["DMA-API: confirm dev: device driver frees DMA memory with different "
                         "size [device address=0x0000000010000000] [map size=1088 bytes] "
                         "[unmap size=1024 bytes]"]
    assert sim.steps and any("live: " not in s[2] and s[3] for s in sim.steps)
