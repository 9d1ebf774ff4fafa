"""Baselines: writing, hiding recorded findings across line shifts, multiset matching."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from click.testing import CliRunner

from dmalint import baseline
from dmalint.cli import main
from dmalint.findings import Finding

MAP = "\tp->x = dma_map_single(dev, buf, 64, DMA_TO_DEVICE);\n"


def driver(*functions: str, above: str = "") -> str:
    return "#include <linux/dma-mapping.h>\n" + above + "".join(functions)


def fn(name: str, body: str = MAP) -> str:
    return f"static void {name}(struct device *dev, struct foo_priv *p, void *buf)\n{{\n{body}}}\n"


def msg(line: int) -> str:
    return (f"'p->x' from dma_map_single() at line {line} is stored in 'p->x' without a "
            f"dma_mapping_error() check")


@pytest.fixture
def repo(tmp_path, monkeypatch):
    (tmp_path / ".git").mkdir()
    (tmp_path / "drv").mkdir()
    (tmp_path / "ci").mkdir()
    monkeypatch.chdir(tmp_path)
    return tmp_path


def check(*args: str):
    return CliRunner().invoke(main, ["check", "-j", "1", "--no-cache", *args, "drv"])


def test_write_then_hide_then_only_new_findings(repo):
    d = repo / "drv" / "d.c"
    d.write_text(driver(fn("a"), fn("b")))
    r = check("--write-baseline", "ci/base.json")
    assert (r.exit_code, r.stdout) == (0, "")
    assert r.stderr == "dmalint: wrote 2 findings to the baseline ci/base.json\n"
    data = json.loads((repo / "ci" / "base.json").read_text())
    assert data["version"] == 1
    assert [{k: v for k, v in e.items() if k != "fingerprint"} for e in data["findings"]] == [
        {"code": "DMA001", "path": "../drv/d.c", "function": "a", "message": msg(4)},
        {"code": "DMA001", "path": "../drv/d.c", "function": "b", "message": msg(8)},
    ]
    assert all(len(e["fingerprint"]) == 20 for e in data["findings"])

    r = check("--baseline", "ci/base.json")
    assert (r.exit_code, r.stdout) == (0, "")
    assert r.stderr == ("dmalint: 2 findings hidden by the baseline ci/base.json\n"
                        "0 findings in 1 file\n")

    # Lines inserted above move both findings: still baselined.  A new bug is shown.
    d.write_text(driver(fn("a"), fn("b"), fn("c"),
                        above="\n/* a comment\n * over three lines */\nstruct x { int y; };\n"))
    r = check("--baseline", "ci/base.json")
    assert (r.exit_code, r.stdout) == (1, f"drv/d.c:16:2: error: {msg(16)} [DMA001]\n")
    assert r.stderr.splitlines()[0] == "dmalint: 2 findings hidden by the baseline ci/base.json"


def test_a_second_copy_of_a_baselined_finding_is_new(repo):
    d = repo / "drv" / "d.c"
    d.write_text(driver(fn("a")))
    assert check("--write-baseline", "base.json").exit_code == 0
    d.write_text(driver(fn("a", MAP + MAP)))  # the same line twice: the same fingerprint
    r = check("--baseline", "base.json", "--format", "json")
    assert r.exit_code == 1
    assert [(f["line"], f["function"]) for f in json.loads(r.stdout)["findings"]] == [(5, "a")]


def test_apply_is_a_multiset():
    def finding(fp: str, line: int) -> Finding:
        return Finding("p.c", line, 1, "DMA001", "n", "error", "high", "m", "f", (), (), fp)

    found = [finding("x", 1), finding("x", 2), finding("y", 3), finding("x", 4)]
    kept, hidden = baseline.apply(found, Counter({"x": 2, "z": 5}))
    assert ([f.line for f in kept], hidden) == ([3, 4], 2)


def test_bad_baselines_exit_2(repo):
    (repo / "drv" / "d.c").write_text(driver(fn("a")))
    r = check("--baseline", "missing.json")
    assert (r.exit_code, r.stderr) == (
        2, "dmalint: error: cannot read baseline missing.json: No such file or directory\n")
    (repo / "bad.json").write_text('{"version": 7, "findings": []}')
    r = check("--baseline", "bad.json")
    assert (r.exit_code, r.stderr) == (
        2, "dmalint: error: baseline bad.json is not a dmalint baseline of version 1 "
           "(write one with --write-baseline)\n")
    r = check("--write-baseline", "no/such/dir/b.json")
    assert r.exit_code == 2
    assert r.stderr.startswith("dmalint: error: cannot write baseline no/such/dir/b.json: ")
