"""benchmarks/run.py (what `make bench` runs) works end to end, on a tiny stand-in tree."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DRIVER = (Path(__file__).parent / "data" / "robust_driver.c").read_bytes()


def test_benchmark_report_on_a_tiny_tree(tmp_path):
    kernel = tmp_path / "linux"
    eth = kernel / "drivers" / "net" / "ethernet" / "realtek"
    eth.mkdir(parents=True)
    (eth / "r8169_main.c").write_bytes(DRIVER)
    (kernel / "drivers" / "blob.c").write_bytes(b"\0\0")
    out = tmp_path / "latest.json"
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "run.py"), "--kernel", str(kernel),
                           "--sample", "2", "-j", "2", "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "files/s" in proc.stdout and "slowest files" in proc.stdout
    r = json.loads(out.read_text())
    assert r["files"] == 2 and r["lines"] == DRIVER.count(b"\n")
    assert {"DMA001", "DMA005", "DMA007"} <= set(r["findings"]["by_rule"])
    assert r["files_not_analysed"] == {"binary file (contains NUL bytes)":
                                       {"files": 1, "first": ["drivers/blob.c"]}}
    assert r["warm"]["cached_files"] == 1 and r["warm"]["same_findings"] is True
    assert r["single_file"]["exit"] == 1
    assert r["stages_sample"]["files"] == 2 and "parse" in r["stages_sample"]
    assert r["memory"]["largest_child_mb"] > 0
    assert [x["file"] for x in r["slowest_files"]][0] == "drivers/net/ethernet/realtek/r8169_main.c"
