"""--diff REV: only findings on lines changed since REV, in a real temporary git repository."""

from __future__ import annotations

import subprocess

import pytest
from click.testing import CliRunner

from dmalint.cli import main
from dmalint.gitdiff import parse_diff

MAP = "\tp->x = dma_map_single(dev, buf, 64, DMA_TO_DEVICE);\n"
CHECKED = ("\tdma_addr_t dma = dma_map_single(dev, buf, 64, DMA_TO_DEVICE);\n"
           "\tif (dma_mapping_error(dev, dma))\n"
           "\t\treturn -ENOMEM;\n"
           "\tp->x = dma;\n"
           "\treturn 0;\n")


def fn(name: str, body: str = MAP, ret: str = "void") -> str:
    return f"static {ret} {name}(struct device *dev, struct foo_priv *p, void *buf)\n{{\n{body}}}\n"


def git(cwd, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                          text=True).stdout


@pytest.fixture
def repo(tmp_path, monkeypatch):
    git(tmp_path, "init", "-q", "-b", "main")
    git(tmp_path, "config", "user.email", "t@example.com")
    git(tmp_path, "config", "user.name", "t")
    (tmp_path / "drv").mkdir()
    (tmp_path / "drv" / "d.c").write_text("#include <linux/dma-mapping.h>\n" + fn("old")
                                          + fn("good", CHECKED, "int"))
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-q", "-m", "base")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def check(*args: str):
    return CliRunner().invoke(main, ["check", "-j", "1", "--no-cache", *args])


def codes(r) -> list[str]:
    return [line.split(": error: ")[0] for line in r.stdout.splitlines()]


def test_only_changed_lines(repo):
    d = repo / "drv" / "d.c"
    d.write_text(d.read_text() + fn("new"))
    assert codes(check("drv")) == ["drv/d.c:4:2", "drv/d.c:16:2"]
    r = check("--diff", "HEAD", "drv")
    assert (r.exit_code, codes(r)) == (1, ["drv/d.c:16:2"])
    git(repo, "commit", "-qam", "new")
    r = check("--diff", "HEAD", "drv")  # nothing changed since HEAD
    assert (r.exit_code, r.stdout) == (0, "")
    assert codes(check("--diff", "HEAD~1", "drv")) == ["drv/d.c:16:2"]


def test_removing_a_check_brings_back_the_finding_below_it(repo):
    d = repo / "drv" / "d.c"
    d.write_text(d.read_text().replace("\tif (dma_mapping_error(dev, dma))\n\t\treturn -ENOMEM;\n", ""))
    r = check("--diff", "HEAD", "drv")
    assert r.stdout == ("drv/d.c:9:2: error: 'dma' from dma_map_single() at line 8 is stored in "
                        "'p->x' without a dma_mapping_error() check [DMA001]\n")


def test_untracked_files_are_wholly_new(repo):
    (repo / "drv" / "e.c").write_text("#include <linux/dma-mapping.h>\n" + fn("e"))
    assert codes(check("--diff", "HEAD", "drv")) == ["drv/e.c:4:2"]


def test_not_a_repository_and_unknown_revision(repo, tmp_path_factory):
    r = check("--diff", "no-such-rev", "drv")
    assert (r.exit_code, r.stdout) == (2, "")
    assert r.stderr == f"dmalint: error: --diff: unknown revision 'no-such-rev' in {repo}\n"
    outside = tmp_path_factory.mktemp("plain")
    (outside / "x.c").write_text(fn("x"))
    r = check("--diff", "HEAD", str(outside / "x.c"))
    assert (r.exit_code, r.stderr) == (2, f"dmalint: error: --diff: {outside} is not in a git repository\n")


def test_parse_diff_hunks(tmp_path):
    text = ("diff --git a/x.c b/x.c\n--- a/x.c\n+++ b/x.c\n"
            "@@ -3 +3 @@\n-a\n+b\n"
            "@@ -10,0 +11,2 @@\n+c\n+d\n"
            "@@ -20,2 +22,0 @@\n-e\n-f\n"
            "diff --git a/gone.c b/gone.c\n--- a/gone.c\n+++ /dev/null\n@@ -1 +0,0 @@\n-g\n"
            'diff --git "a/sp ace\\tq.c" "b/sp ace\\tq.c"\n--- "a/sp ace\\tq.c"\n'
            '+++ "b/sp ace\\tq.c"\n@@ -0,0 +1 @@\n+h\n')
    got = parse_diff(text, str(tmp_path))
    assert got == {str(tmp_path / "x.c"): {3, 11, 12, 22, 23},
                   str(tmp_path / "sp ace\tq.c"): {1}}
