"""The simulator on the command line: --confirmed-only, dmalint replay, verdicts in JSON/SARIF."""

from __future__ import annotations

import json

from click.testing import CliRunner

from conftest import REPO
from dmalint.cli import main

SAMPLE = str(REPO / "samples" / "acme_blk" / "acme_blk.c")
REFUTE = str(REPO / "fixtures" / "simulate" / "refute.c")


def run(*args, simulate=True, monkeypatch=None):
    if simulate:
        monkeypatch.delenv("DMALINT_NO_SIMULATE", raising=False)
    return CliRunner().invoke(main, list(args))


def test_json_and_sarif_carry_the_verdict(monkeypatch):
    out = run("check", "--no-cache", "--isolated", "--format", "json", SAMPLE,
              monkeypatch=monkeypatch)
    f = json.loads(out.output)["findings"][0]
    assert f["verdict"] == "confirmed"
    assert f["verdict_reason"].startswith("dma-debug reports it")
    assert "frees DMA memory with different size" in f["dmesg"][0]
    sarif = json.loads(run("check", "--no-cache", "--isolated", "--format", "sarif", SAMPLE,
                           monkeypatch=monkeypatch).output)
    props = sarif["runs"][0]["results"][0]["properties"]
    assert props["verdict"] == "confirmed" and props["dmesg"]


def test_confirmed_only_drops_refuted(monkeypatch):
    out = run("check", "--no-cache", "--isolated", REFUTE, monkeypatch=monkeypatch)
    assert out.exit_code == 1 and "(refuted)" in out.output
    only = run("check", "--no-cache", "--isolated", "--confirmed-only", REFUTE,
               monkeypatch=monkeypatch)
    assert only.exit_code == 0 and "DMA003" not in only.output


def test_replay_prints_steps_state_and_dmesg(monkeypatch):
    out = run("replay", f"{SAMPLE}:63", monkeypatch=monkeypatch)
    assert out.exit_code == 0, out.output
    assert "verdict: confirmed" in out.output
    assert "live: [single]" in out.output and "size=96" in out.output
    assert "DMA-API: acme_blk dev: device driver frees DMA memory with different size" in out.output


def test_replay_by_fingerprint(monkeypatch):
    out = run("check", "--no-cache", "--isolated", "--format", "json", SAMPLE,
              monkeypatch=monkeypatch)
    fp = json.loads(out.output)["findings"][0]["fingerprint"]
    again = run("replay", fp, str(REPO / "samples" / "acme_blk"), monkeypatch=monkeypatch)
    assert again.exit_code == 0 and "verdict: confirmed" in again.output


def test_replay_user_errors_are_one_line(monkeypatch):
    for target in ("nowhere.c:3", "not a target", f"{SAMPLE}:1"):
        out = run("replay", target, monkeypatch=monkeypatch)
        assert out.exit_code == 2
        assert "Traceback" not in out.output
