"""Same bytes on every run: whatever -j, whatever the hash seed, whatever order the file system
lists the files in."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DRIVER = (Path(__file__).parent / "data" / "robust_driver.c").read_bytes()


def build_tree(root: Path, reverse: bool = False) -> Path:
    """The repository's fixtures (when there are any) and a few written drivers, good and bad."""
    files: list[tuple[str, bytes]] = []
    for p in sorted((REPO / "fixtures").rglob("*.[ch]")):
        files.append((f"fixtures/{p.relative_to(REPO / 'fixtures')}", p.read_bytes()))
    for i in range(4):
        files.append((f"net/drv{i}.c", DRIVER.replace(b"toy_", f"t{i}_".encode())))
    files.append(("net/same_line.c", DRIVER.replace(b"\n\tdma_unmap_single(priv->dev, a, 64",
                                                    b" dma_unmap_single(priv->dev, a, 64")))
    files.append(("net/broken.c", DRIVER[: len(DRIVER) // 2]))
    files.append(("net/blob.c", b"\0\0\0"))
    files.append(("a b/space name.c", DRIVER))
    for rel, data in (reversed(files) if reverse else files):  # creation order differs
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return root


def dmalint_json(cwd: Path, jobs: int, seed: str) -> bytes:
    env = dict(os.environ, PYTHONHASHSEED=seed)
    proc = subprocess.run([sys.executable, "-m", "dmalint.cli", "check", "--no-cache", "--format",
                           "json", "-j", str(jobs), "."], cwd=cwd, env=env, capture_output=True)
    assert proc.returncode in (1, 2), proc.stderr.decode()
    return proc.stdout


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    return build_tree(tmp_path_factory.mktemp("det"))


def test_json_is_identical_for_j1_and_j2_and_any_hash_seed(tree):
    outputs = {(j, seed): dmalint_json(tree, j, seed) for j, seed in ((1, "1"), (2, "2"), (2, "3"))}
    first = outputs[(1, "1")]
    assert b'"code": "DMA001"' in first and b"binary file" in first
    for key, out in outputs.items():
        assert out == first, f"output of -j{key[0]} with PYTHONHASHSEED={key[1]} differs"


def test_file_system_order_does_not_matter(tree, tmp_path):
    other = build_tree(tmp_path / "reversed", reverse=True)
    assert dmalint_json(other, 2, "4") == dmalint_json(tree, 2, "5")


def test_in_process_run_matches_worker_run(tree, monkeypatch):
    from dmalint.runner import run
    monkeypatch.chdir(tree)
    a = run(["."], jobs=1, timeout=None)
    b = run(["."], jobs=2, timeout=30)
    assert (a.findings, a.notices, a.files, a.functions) == (b.findings, b.notices, b.files, b.functions)


def test_copy_of_tree_gives_same_output(tree, tmp_path):
    """Output depends on the paths given, not on inode numbers or directory metadata."""
    copy = tmp_path / "copy"
    shutil.copytree(tree, copy)
    assert dmalint_json(copy, 1, "6") == dmalint_json(tree, 1, "6")
