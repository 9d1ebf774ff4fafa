"""--statistics: findings per rule on stderr after the report, most frequent first."""

from __future__ import annotations

import json

from click.testing import CliRunner

from dmalint.cli import main

MAP = "\tp->x = dma_map_single(dev, buf, 64, DMA_TO_DEVICE);\n"
BAD_TEST = ("\tdma_addr_t dma = dma_map_single(dev, buf, 64, DMA_TO_DEVICE);\n"
            "\tif (!dma)\n\t\treturn -EIO;\n\tp->x = dma;\n\treturn 0;\n")


def fn(name: str, body: str, ret: str = "void") -> str:
    return f"static {ret} {name}(struct device *dev, struct foo_priv *p, void *buf)\n{{\n{body}}}\n"


def test_statistics_table(tmp_path, monkeypatch):
    (tmp_path / ".git").mkdir()
    monkeypatch.chdir(tmp_path)
    (tmp_path / "d.c").write_text("#include <linux/dma-mapping.h>\n" + fn("a", BAD_TEST, "int")
                                  + fn("b", MAP) + fn("c", MAP))
    r = CliRunner().invoke(main, ["check", "-j", "1", "--no-cache", "--statistics", "d.c"])
    assert r.exit_code == 1
    assert [line.split(": ")[0] for line in r.stdout.splitlines()] == ["d.c:5:7", "d.c:12:2", "d.c:16:2"]
    assert r.stderr == ("3 findings in 1 file\n"
                        "2  DMA001  unchecked-dma-mapping\n"
                        "1  DMA009  invalid-mapping-error-test\n")
    # With a machine format, stdout stays valid JSON and the table still goes to stderr.
    r = CliRunner().invoke(main, ["check", "-j", "1", "--no-cache", "--statistics",
                                  "--format", "json", "d.c"])
    assert len(json.loads(r.stdout)["findings"]) == 3
    assert r.stderr == "2  DMA001  unchecked-dma-mapping\n1  DMA009  invalid-mapping-error-test\n"


def test_statistics_of_a_clean_run_is_empty(tmp_path):
    (tmp_path / "c.c").write_text("static int g(void)\n{\n\treturn 0;\n}\n")
    r = CliRunner().invoke(main, ["check", "-j", "1", "--no-cache", "--isolated", "--statistics",
                                  str(tmp_path / "c.c")])
    assert (r.exit_code, r.stderr) == (0, "0 findings in 1 file\n")
