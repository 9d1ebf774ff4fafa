"""The pre-commit hook: the manifest, the file types it selects, and a real `pre-commit try-repo`.

try-repo installs the hook from a git commit, so the end-to-end test first commits a copy of
the current working tree (not HEAD: the code under test may be uncommitted) into a scratch
repository, then runs the hook in a second scratch repository holding small C files.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("pre_commit", reason="pre-commit is not installed (pip install -e '.[test]')")

import yaml  # noqa: E402  (pre-commit depends on PyYAML)
from identify import identify  # noqa: E402  (and on identify)
from snippets import UNCHECKED_C  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
# Never copied into the scratch repository when git cannot list the files.
COPY_IGNORE = shutil.ignore_patterns(".git", ".venv", "__pycache__", "*.egg-info", ".pytest_cache",
                                     ".dmalint_cache", "build", "dist")

BAD_C = UNCHECKED_C
GOOD_C = BAD_C.replace(
    "\tdesc->addr = addr;", "\tif (dma_mapping_error(dev, addr))\n\t\treturn -ENOMEM;\n\tdesc->addr = addr;")
# The same bug in a header (static inline): proves .h files reach the hook.
BAD_H = """\
static inline int foo_map(struct device *dev, struct foo_desc *desc, void *buf, size_t len)
{
	desc->addr = dma_map_single(dev, buf, len, DMA_TO_DEVICE);
	return 0;
}
"""


def _manifest() -> dict:
    hooks = yaml.safe_load((REPO_ROOT / ".pre-commit-hooks.yaml").read_text())
    return next(h for h in hooks if h["id"] == "dmalint")


def test_manifest_declares_the_dmalint_hook():
    hook = _manifest()
    assert hook["name"] == "dmalint"
    assert hook["entry"] == "dmalint check"
    assert hook["language"] == "python"
    assert hook["require_serial"] is False
    assert hook["types_or"] == ["c"]


@pytest.mark.parametrize("name, selected", [
    ("drv.c", True), ("drv.h", True), ("drv.cc", False), ("drv.cpp", False), ("drv.hpp", False),
    ("Makefile", False),
])
def test_types_or_selects_c_sources_and_headers_only(name, selected):
    tags = identify.tags_from_filename(name)
    assert bool(tags & set(_manifest()["types_or"])) is selected, tags


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=dmalint-test", "-c", "user.email=test@invalid",
                    "-c", "commit.gpgsign=false", "-c", "init.defaultBranch=main", *args],
                   cwd=cwd, check=True, capture_output=True, env=_env())


def _env() -> dict[str, str]:
    # A GIT_DIR or GIT_INDEX_FILE inherited from an outer git hook would redirect every command.
    return {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}


def _working_tree_files(root: Path) -> list[str] | None:
    """Tracked and untracked-but-not-ignored files, i.e. what a commit of the tree would hold."""
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                             cwd=root, check=True, capture_output=True, env=_env()).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return sorted({p for p in out.decode().split("\0") if p and (root / p).is_file()})


def _snapshot_repo(dest: Path) -> Path:
    """Commit a copy of the current working tree into a new repository at dest."""
    files = _working_tree_files(REPO_ROOT)
    if files is None:
        shutil.copytree(REPO_ROOT, dest, ignore=COPY_IGNORE)
    else:
        for rel in files:
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO_ROOT / rel, dest / rel)
    _git(dest, "init", "-q")
    _git(dest, "add", "-A")
    _git(dest, "commit", "-q", "-m", "snapshot of the working tree under test")
    return dest


def _try_repo(hook_repo: Path, target: Path, home: Path, *args: str) -> subprocess.CompletedProcess:
    env = _env() | {"PRE_COMMIT_HOME": str(home), "NO_COLOR": "1"}
    return subprocess.run([sys.executable, "-m", "pre_commit", "try-repo", str(hook_repo), "dmalint",
                           "--color", "never", *args],
                          cwd=target, capture_output=True, text=True, env=env, timeout=900)


@pytest.fixture(scope="module")
def hook_run(tmp_path_factory):
    """try-repo over a repository with a buggy .c, a clean .c, a buggy .h and a buggy .cpp."""
    base = tmp_path_factory.mktemp("precommit")
    hook_repo = _snapshot_repo(base / "dmalint")
    target = base / "driver"
    target.mkdir()
    (target / "bad.c").write_text(BAD_C)
    (target / "good.c").write_text(GOOD_C)
    (target / "inline.h").write_text(BAD_H)
    (target / "other.cpp").write_text(BAD_C)  # not C: the hook must not see it
    _git(target, "init", "-q")
    _git(target, "add", "-A")
    _git(target, "commit", "-q", "-m", "driver")
    # try-repo installs the hook into a fresh temporary store on every call; PRE_COMMIT_HOME
    # only keeps pre-commit's own bookkeeping out of the user's cache.
    home = base / "pre-commit-home"
    all_files = _try_repo(hook_repo, target, home, "--all-files")
    clean_only = _try_repo(hook_repo, target, home, "--files", "good.c")
    return all_files, clean_only


def test_hook_fails_on_buggy_c_and_h_files(hook_run):
    all_files, _ = hook_run
    out = all_files.stdout + all_files.stderr
    assert all_files.returncode == 1, out
    assert "bad.c:10:2: error: 'addr' from dma_map_single() at line 9 is stored in 'desc->addr' " \
           "without a dma_mapping_error() check [DMA001]" in out
    assert "inline.h:3:2: error:" in out and "[DMA001]" in out
    assert "good.c:" not in out
    assert "other.cpp" not in out


def test_hook_passes_on_the_clean_file(hook_run):
    _, clean_only = hook_run
    out = clean_only.stdout + clean_only.stderr
    assert clean_only.returncode == 0, out
    assert "dmalint" in out and "Passed" in out
