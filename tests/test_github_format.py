"""`--format github`: GitHub Actions workflow commands, one annotation per finding."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from click.testing import CliRunner

from dmalint.cli import main
from dmalint.findings import Finding, Notice
from dmalint.report import github
from dmalint.runner import RunResult
from snippets import LEAK_C, UNCHECKED_C



@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    foo = tmp_path / "drivers" / "foo"
    foo.mkdir(parents=True)
    (foo / "bad.c").write_text(UNCHECKED_C)
    (foo / "leak.c").write_text(LEAK_C)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _finding(**kw) -> Finding:
    base = dict(path="drivers/foo/bad.c", line=10, column=2, code="DMA001",
                name="unchecked-dma-mapping", severity="error", confidence="high",
                message="m", function="f", trace=())
    base.update(kw)
    return Finding(**base)


def _lines(result: RunResult, root: str) -> list[str]:
    buf = io.StringIO()
    github.report(result, buf, root=root)
    return buf.getvalue().splitlines()


def test_escape_data_encodes_percent_cr_lf_only():
    assert github.escape_data("50% done\r\nnext: a,b") == "50%25 done%0D%0Anext: a,b"


def test_escape_property_also_encodes_colon_and_comma():
    assert github.escape_property("a:b,c%d\ne") == "a%3Ab%2Cc%25d%0Ae"


def test_percent_is_escaped_first_so_escapes_are_not_doubled():
    assert github.escape_data("%0A") == "%250A"


def test_cli_emits_one_error_command_per_finding(tree):
    res = CliRunner().invoke(main, ["check", "--format", "github", "-j", "1", "drivers"])
    assert res.exit_code == 1
    assert res.stdout.splitlines() == [
        "::error file=drivers/foo/bad.c,line=10,col=2,title=DMA001 unchecked-dma-mapping::"
        "'addr' from dma_map_single() at line 9 is stored in 'desc->addr' without a "
        "dma_mapping_error() check",
        "::warning file=drivers/foo/leak.c,line=13,col=10,title=DMA003 dma-leak-on-error-path::"
        "'addr' from dma_map_single() at line 9 is not released on this error path "
        "(no dma_unmap_single() before returning)",
    ]


def test_note_severity_is_a_notice_command(tree):
    lines = _lines(RunResult(findings=[_finding(severity="note", message="hint")]), str(tree))
    assert lines == ["::notice file=drivers/foo/bad.c,line=10,col=2,"
                     "title=DMA001 unchecked-dma-mapping::hint"]


def test_properties_and_message_are_escaped(tree):
    f = _finding(path="drivers/a,b:c.c", message="first line\nsecond: 100%")
    assert _lines(RunResult(findings=[f]), str(tree)) == [
        "::error file=drivers/a%2Cb%3Ac.c,line=10,col=2,title=DMA001 unchecked-dma-mapping::"
        "first line%0Asecond: 100%25"]


def test_absolute_path_under_root_becomes_repository_relative(tree):
    f = _finding(path=str(tree / "drivers" / "foo" / "bad.c"))
    assert _lines(RunResult(findings=[f]), str(tree))[0].startswith(
        "::error file=drivers/foo/bad.c,line=10,")


def test_missing_line_and_column_are_left_out(tree):
    f = _finding(line=0, column=0)
    assert _lines(RunResult(findings=[f]), str(tree)) == [
        "::error file=drivers/foo/bad.c,title=DMA001 unchecked-dma-mapping::m"]


def test_file_not_analysed_is_an_error_annotation(tree):
    res = CliRunner().invoke(main, ["check", "--format", "github", "-j", "1", "missing.c"])
    assert res.exit_code == 2
    assert res.stdout.splitlines() == [
        "::error file=missing.c,title=dmalint%3A file not analysed::"
        "dmalint could not analyse this file: no such file or directory"]


def test_skipped_function_notices_are_not_annotations(tree):
    result = RunResult(notices=[Notice("drivers/foo/bad.c", 5, "skipped", "too complex")])
    assert _lines(result, str(tree)) == []
