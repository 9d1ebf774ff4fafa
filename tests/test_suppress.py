"""Inline suppressions: scope (line, next line, function), syntax, reasons, unused ones."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from dmalint.cli import main
from dmalint.contracts.loader import load_registry
from dmalint.suppress import scan

MAP = "p->x = dma_map_single(dev, buf, 64, DMA_TO_DEVICE);"
HEAD = ("#include <linux/dma-mapping.h>\n\n"
        "struct foo_priv {\n\tdma_addr_t x;\n};\n\n")  # lines 1-6


def msg(line: int) -> str:
    return (f"'p->x' from dma_map_single() at line {line} is stored in 'p->x' without a "
            f"dma_mapping_error() check [DMA001]")


@pytest.fixture
def run(tmp_path, monkeypatch):
    """Write d.c (after HEAD) and check it; returns the CliRunner result."""
    (tmp_path / ".git").mkdir()
    monkeypatch.chdir(tmp_path)

    def go(body: str, *flags: str):
        (tmp_path / "d.c").write_text(HEAD + body)
        return CliRunner().invoke(main, ["check", "-j", "1", "--no-cache", *flags, "d.c"])
    return go


def fn(name: str, *body: str) -> str:
    """A function at line 7 with one body line per argument from line 9."""
    return (f"static void {name}(struct device *dev, struct foo_priv *p, void *buf)\n{{\n"
            + "".join(f"\t{b}\n" for b in body) + "}\n")


def test_without_suppression_the_finding_is_there(run):
    r = run(fn("f", MAP))
    assert (r.exit_code, r.stdout) == (1, f"d.c:9:2: error: {msg(9)}\n")


def test_comment_on_the_line(run):
    r = run(fn("f", MAP + " /* dmalint: ignore[DMA001] the firmware checks it */", MAP))
    assert (r.exit_code, r.stdout) == (1, f"d.c:10:2: error: {msg(10)}\n")
    assert "notice" not in r.stderr


def test_comment_alone_covers_the_next_code_line_only(run):
    r = run(fn("f", "// dmalint: ignore[DMA001] checked by the caller", "", "/* other */", MAP, MAP))
    assert r.stdout == f"d.c:13:2: error: {msg(13)}\n"


def test_stacked_suppressions_and_names(run):
    r = run(fn("f", "// dmalint: ignore[DMA003] nothing leaks here",
               "// dmalint: ignore[unchecked-dma-mapping] checked by the caller", MAP))
    assert (r.exit_code, r.stdout) == (0, "")


def test_comment_above_function_covers_the_function(run):
    r = run("/* dmalint: ignore[streaming] legacy path, rewritten in v2 */\n"
            + fn("f", MAP, MAP) + fn("g", MAP))
    assert r.stdout == f"d.c:15:2: error: {msg(15)}\n"  # g() at line 13 is not covered


def test_comment_on_the_signature_covers_the_function(run):
    body = fn("f", MAP, MAP).replace("*buf)\n", "*buf) // dmalint: ignore[DMA0] legacy\n", 1)
    r = run(body + fn("g", MAP))
    assert r.stdout == f"d.c:14:2: error: {msg(14)}\n"  # in g()


def test_comment_before_first_statement_covers_that_statement_only(run):
    r = run(fn("f", "/* dmalint: ignore[DMA001] see probe */", MAP, MAP))
    assert r.stdout == f"d.c:11:2: error: {msg(11)}\n"


def test_other_codes_are_not_suppressed(run):
    r = run(fn("f", MAP + " // dmalint: ignore[DMA009,DMA003] not these"))
    assert r.stdout == f"d.c:9:2: error: {msg(9)}\n"


def test_missing_reason_is_a_notice_but_still_honoured(run):
    r = run(fn("f", MAP + " // dmalint: ignore[DMA001]"))
    assert (r.exit_code, r.stdout) == (0, "")
    assert r.stderr.splitlines()[0] == (
        "d.c:9: notice: suppression 'dmalint: ignore[DMA001]' gives no reason: say after the "
        "brackets why the finding is wrong here")


def test_unknown_rule_and_missing_brackets_are_notices(run):
    r = run(fn("f", MAP + " // dmalint: ignore[DMA001,bogus] reason", MAP + " /* dmalint: ignore */"))
    assert r.stdout == f"d.c:10:2: error: {msg(10)}\n"
    assert r.stderr.splitlines()[:2] == [
        "d.c:9: notice: suppression names unknown rule 'bogus': expected a code (DMA001), a code "
        "prefix (DMA00), a rule name (unchecked-dma-mapping), a group (coherent, memory, pool, "
        "scatter-gather, streaming, sync) or ALL",
        "d.c:10: notice: 'dmalint: ignore' needs the rules it suppresses in brackets, e.g. "
        "dmalint: ignore[DMA001] reason; it suppresses nothing"]


def test_text_in_a_string_is_not_a_suppression(run):
    r = run(fn("f", 'pr_info("/* dmalint: ignore[DMA001] x */");', MAP))
    assert r.stdout == f"d.c:10:2: error: {msg(10)}\n"


def test_unused_suppressions_only_when_asked(run):
    body = fn("f", "x = 1; // dmalint: ignore[DMA001] was a mapping once")
    r = run(body)
    assert (r.exit_code, r.stdout, r.stderr) == (0, "", "0 findings in 1 file\n")
    r = run(body, "--report-unused-suppressions")
    assert (r.exit_code, r.stdout) == (1, "")
    assert r.stderr == ("d.c:9: notice: unused suppression 'dmalint: ignore[DMA001]': nothing to "
                        "suppress on line 9\n0 findings in 1 file\n")


def test_unused_function_suppression_and_json_notices(run):
    r = run("// dmalint: ignore[DMA003] error paths unmap in the caller\n" + fn("f", MAP),
            "--report-unused-suppressions", "--format", "json")
    assert r.exit_code == 1
    data = json.loads(r.stdout)
    assert [(f["line"], f["code"]) for f in data["findings"]] == [(10, "DMA001")]
    assert data["notices"] == [{
        "path": "d.c", "line": 7, "kind": "suppression",
        "reason": "unused suppression 'dmalint: ignore[DMA003]': nothing to suppress in function f()"}]
    assert r.stderr == ("d.c:7: notice: unused suppression 'dmalint: ignore[DMA003]': nothing to "
                        "suppress in function f()\n")


def test_suppression_of_a_rule_not_selected_is_not_unused(run):
    r = run(fn("f", "x = 1; // dmalint: ignore[DMA001] was a mapping once"),
            "--report-unused-suppressions", "--ignore", "DMA001")
    assert (r.exit_code, r.stderr) == (0, "0 findings in 1 file\n")


def test_scan_lines_and_scopes():
    raw = (b"int a; /* dmalint: ignore[DMA001] one */\n"      # 1: covers 1
           b"/* dmalint: ignore[DMA002]\n"                      # 2: a block comment over 2 lines
           b"   reason on the next line */\n"                   # 3
           b"\n"                                                # 4
           b"static int f(void)\n"                              # 5: covered by line 2 -> f()
           b"{\n\treturn 0;\n}\n")                              # 6-8
    sups, notices = scan("x.c", raw, load_registry())
    assert [(s.line, s.codes, s.first, s.last, s.function, s.reason) for s in sups] == [
        (1, frozenset({"DMA001"}), 1, 1, None, "one"),
        (2, frozenset({"DMA002"}), 5, 8, "f", ""),
    ]
    assert [(n.line, n.kind) for n in notices] == [(2, "suppression")]
