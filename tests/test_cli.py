"""The command line: output formats, exit codes, rules and explain."""

from __future__ import annotations

import json

from click.testing import CliRunner

from dmalint.cli import main

BAD = """#include <linux/dma-mapping.h>
static void f(struct device *dev, void *buf, u32 *reg)
{
	dma_addr_t a = dma_map_single(dev, buf, 64, DMA_TO_DEVICE);
	writel(a, reg);
}
"""
CLEAN = "static int g(void)\n{\n\treturn 0;\n}\n"


def _write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_text_output_and_exit_1(tmp_path):
    bad = _write(tmp_path, "bad.c", BAD)
    r = CliRunner().invoke(main, ["check", "-j", "1", str(bad)])
    assert r.exit_code == 1
    line = r.stdout.splitlines()[0]
    assert line.startswith(f"{bad}:5:9: error: 'a' from dma_map_single() at line 4 is passed to writel()")
    assert line.endswith("[DMA001]")


def test_trace_lists_steps(tmp_path):
    bad = _write(tmp_path, "bad.c", BAD)
    r = CliRunner().invoke(main, ["check", "-j", "1", "--trace", str(bad)])
    assert f"    {bad}:4: acquire: dma_map_single() acquires a DMA region" in r.stdout


def test_clean_exit_0(tmp_path):
    clean = _write(tmp_path, "clean.c", CLEAN)
    r = CliRunner().invoke(main, ["check", "-j", "1", str(clean)])
    assert r.exit_code == 0 and r.stdout == ""


def test_json_output_fields(tmp_path):
    bad = _write(tmp_path, "bad.c", BAD)
    r = CliRunner().invoke(main, ["check", "-j", "1", "--format", "json", str(bad)])
    data = json.loads(r.stdout)
    (f,) = data["findings"]
    assert (f["line"], f["column"], f["code"], f["name"], f["function"]) == (5, 9, "DMA001", "unchecked-dma-mapping", "f")
    assert f["severity"] == "error" and f["path"] == str(bad)
    assert [s["kind"] for s in f["trace"]] == ["enter", "acquire"]
    assert all({"path", "line", "kind", "message"} <= set(s) for s in f["trace"])
    assert data["errors"] == []


def test_missing_file_is_an_input_error_but_others_still_run(tmp_path):
    bad = _write(tmp_path, "bad.c", BAD)
    r = CliRunner().invoke(main, ["check", "-j", "1", "--format", "json", str(bad), str(tmp_path / "nope.c")])
    assert r.exit_code == 2
    data = json.loads(r.stdout)
    assert data["findings"][0]["code"] == "DMA001"
    assert data["errors"] == [{"path": str(tmp_path / "nope.c"), "line": 0, "kind": "error",
                               "reason": "no such file or directory"}]


def test_directory_recursion_sorted(tmp_path):
    (tmp_path / "b").mkdir()
    _write(tmp_path / "b", "z.c", BAD)
    _write(tmp_path, "a.c", BAD)
    _write(tmp_path, "notes.txt", BAD)
    r = CliRunner().invoke(main, ["check", "-j", "1", str(tmp_path)])
    paths = [line.split(":")[0] for line in r.stdout.splitlines()]
    assert paths == [str(tmp_path / "a.c"), str(tmp_path / "b" / "z.c")]


def test_rules_and_explain():
    r = CliRunner().invoke(main, ["rules"])
    assert r.exit_code == 0
    assert any(line.startswith("DMA003  dma-leak-on-error-path") for line in r.stdout.splitlines())
    r = CliRunner().invoke(main, ["explain", "DMA005"])
    assert r.exit_code == 0
    for section in ("## What it checks", "## Why it is a bug", "## Example", "## Fix"):
        assert section in r.stdout
    r = CliRunner().invoke(main, ["explain", "DMA999"])
    assert r.exit_code == 2 and "unknown diagnostic" in r.stderr


def test_usage_error_exit_2():
    r = CliRunner().invoke(main, ["check"])
    assert r.exit_code == 2
