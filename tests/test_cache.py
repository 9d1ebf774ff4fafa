"""The incremental cache: unchanged files are not analysed again, and an entry is used only when
it is intact and was written for this very dmalint, rules, configuration, path and content."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import dmalint.cache as cache_mod
import dmalint.runner as runner
from dmalint.cache import Cache
from dmalint.runner import default_cache_options, run

DRIVER = (Path(__file__).parent / "data" / "robust_driver.c").read_bytes()


@pytest.fixture
def tree(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for i in range(3):
        (src / f"drv{i}.c").write_bytes(DRIVER.replace(b"toy_", f"toy{i}_".encode()))
    (src / "blob.c").write_bytes(b"\0binary")
    return src


@pytest.fixture
def cache(tmp_path):
    return Cache.open(tmp_path / "cache", default_cache_options())


def entries(c: Cache) -> list[Path]:
    return sorted(c.root.rglob("*.json"))


def count_analyses(monkeypatch) -> list[str]:
    """Record every file that is really analysed (in this process: jobs=1, no time limit)."""
    seen: list[str] = []
    real = runner.analyse_unit

    def counting(sources, *a, **kw):
        seen.extend(src.path for src in sources)
        return real(sources, *a, **kw)
    monkeypatch.setattr(runner, "analyse_unit", counting)
    return seen


def go(tree: Path, c: Cache | None, jobs: int = 1, timeout=None):
    return run([str(tree)], jobs=jobs, timeout=timeout, cache=c)


def test_warm_run_analyses_nothing_and_reports_the_same(tree, cache, monkeypatch):
    cold = go(tree, cache)
    assert cold.cached == 0 and cold.findings
    assert len(entries(cache)) == 3  # the binary file's error is not stored
    seen = count_analyses(monkeypatch)
    warm = go(tree, cache)
    assert seen == [] and warm.cached == 3
    assert (warm.findings, warm.notices, warm.functions, warm.analysed) == \
        (cold.findings, cold.notices, cold.functions, cold.analysed)


def test_warm_run_with_workers(tree, cache):
    cold = go(tree, cache, jobs=2, timeout=10)
    warm = go(tree, cache, jobs=2, timeout=10)
    assert warm.cached == 3 and warm.findings == cold.findings


def test_changed_file_is_analysed_again(tree, cache, monkeypatch):
    other = tree.parent / "other"
    other.mkdir()
    (other / "drv9.c").write_bytes(DRIVER.replace(b"toy_", b"toy9_"))
    go(tree.parent, cache)
    (tree / "drv1.c").write_bytes(DRIVER.replace(b"toy_", b"toy1_") + b"\n/* edited */\n")
    seen = count_analyses(monkeypatch)
    go(tree.parent, cache)
    # The files of one directory are one driver: the edit can change its siblings' cross-file
    # findings, so they are analysed again; another directory is not.
    assert seen == [str(tree / f"drv{i}.c") for i in range(3)]


def test_the_key_covers_path_content_tool_and_dependencies(tmp_path):
    a = Cache(tmp_path, "tool-a")
    b = Cache(tmp_path, "tool-b")
    k = a.key("x.c", b"int x;")
    assert k == a.key("x.c", b"int x;")
    assert len({k, a.key("y.c", b"int x;"), a.key("x.c", b"int y;"), b.key("x.c", b"int x;"),
                a.key("x.c", b"int x;", [("x.h", "00")])}) == 5
    assert a.key("x.c", b"", [("a.h", "1"), ("b.h", "2")]) == a.key("x.c", b"", [("b.h", "2"), ("a.h", "1")])


def test_tool_key_changes_with_version_rules_and_options(monkeypatch):
    base = cache_mod.tool_key({"budget": 1})
    assert base == cache_mod.tool_key({"budget": 1})
    assert base != cache_mod.tool_key({"budget": 2})
    monkeypatch.setattr(cache_mod, "__version__", "99.0")
    assert base != cache_mod.tool_key({"budget": 1})
    monkeypatch.undo()
    monkeypatch.setattr(cache_mod, "rules_digest", lambda: "other rules")
    assert base != cache_mod.tool_key({"budget": 1})


@pytest.mark.parametrize("damage", ["truncate", "garbage", "flip", "empty", "header-only"])
def test_corrupt_entry_is_ignored_and_rebuilt(tree, cache, monkeypatch, damage):
    cold = go(tree, cache)
    for entry in entries(cache):
        data = entry.read_bytes()
        if damage == "truncate":
            data = data[: len(data) // 2]
        elif damage == "garbage":
            data = b"\x80\x04\x95 not json at all"
        elif damage == "flip":  # one byte of the payload: only the digest can tell
            i = data.index(b'"message":"') + 12
            data = data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1:]
        elif damage == "empty":
            data = b""
        else:
            data = data.split(b"\n")[0] + b"\n"
        entry.write_bytes(data)
    seen = count_analyses(monkeypatch)
    again = go(tree, cache)
    assert again.cached == 0 and len(seen) == 3
    assert again.findings == cold.findings
    assert go(tree, cache).cached == 3  # rebuilt: trusted again


def test_entry_from_another_version_is_not_trusted(tree, tmp_path, monkeypatch):
    """A different version keys differently; and even an entry moved to this version's key is
    refused, because its header names the other version's tool key."""
    monkeypatch.setattr(cache_mod, "__version__", "0.0.1-old")
    old = Cache.open(tmp_path / "cache", default_cache_options())
    go(tree, old)
    monkeypatch.undo()
    new = Cache.open(tmp_path / "cache", default_cache_options())
    assert new.tool_key != old.tool_key
    assert go(tree, new).cached == 0
    f = tree / "drv0.c"
    raws = {str(p): p.read_bytes() for p in tree.iterdir()}
    old_entry = old._path(runner.file_cache_key(old, str(f), raws))
    new_key = runner.file_cache_key(new, str(f), raws)
    new._path(new_key).write_bytes(old_entry.read_bytes())
    assert new.get(new_key, str(f)) is None


def test_entry_with_a_valid_digest_but_foreign_content_is_refused(tree, cache):
    go(tree, cache)
    f = tree / "drv0.c"
    key = runner.file_cache_key(cache, str(f), {str(p): p.read_bytes() for p in tree.iterdir()})
    path = cache._path(key)
    header, payload = path.read_bytes().split(b"\n", 1)
    for evil in ({"$c": "Popen", "f": {"args": "true"}},  # not a result class
                 {"$c": "FileResult", "f": {"path": "other.c"}},  # another shape
                 json.loads(payload.replace(str(f).encode(), b"elsewhere.c"))):  # another file
        body = json.dumps(evil).encode()
        head = json.loads(header)
        head["sha256"] = cache_mod.hashlib.sha256(body).hexdigest()
        path.write_bytes(json.dumps(head, sort_keys=True).encode() + b"\n" + body)
        assert cache.get(key, str(f)) is None


def test_failures_are_not_cached(tree, cache, monkeypatch):
    real = runner.analyse_unit

    def boom(sources, *a, **kw):
        if any(src.path.endswith("drv0.c") for src in sources):
            raise ValueError("boom")
        return real(sources, *a, **kw)
    monkeypatch.setattr(runner, "analyse_unit", boom)
    first = go(tree, cache)
    assert any(n.message.startswith("internal error") for n in first.errors)
    monkeypatch.undo()
    second = go(tree, cache)
    # Nothing of the failed run was kept: drv0's failure is never cached, and drv1/drv2 were
    # analysed alone (without their sibling) as a fallback, which is not what a clean run sees.
    assert second.cached == 0
    assert not any(n.message.startswith("internal error") for n in second.errors)


def test_unusable_cache_directory_does_not_stop_the_run(tree, tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the cache directory should be")
    c = Cache.open(blocker, default_cache_options())
    cold = go(tree, None)
    result = go(tree, c)
    assert result.findings == cold.findings and result.cached == 0


def test_writes_are_atomic_and_leave_no_temporary_files(tree, cache):
    go(tree, cache, jobs=2, timeout=10)
    go(tree, cache, jobs=2, timeout=10)
    leftovers = [p.name for p in cache.root.rglob("*") if p.is_file() and p.suffix != ".json"]
    assert sorted(leftovers) == [".gitignore", "CACHEDIR.TAG"]


def test_cache_directory_keeps_itself_out_of_version_control(tree, cache):
    go(tree, cache)
    assert (cache.root / ".gitignore").read_text().splitlines()[-1] == "*"
    assert (cache.root / "CACHEDIR.TAG").read_text().startswith("Signature: 8a477f597d28d172789f06886806bc55")


def test_cli_cache_options(tree, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from dmalint.cli import main
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(main, ["check", "-j", "1", str(tree / "drv0.c")])
    assert res.exit_code == 1 and (tmp_path / ".dmalint_cache").is_dir()
    res = CliRunner().invoke(main, ["check", "--cache-dir", "elsewhere", str(tree / "drv0.c")])
    assert res.exit_code == 1 and (tmp_path / "elsewhere").is_dir()
    res = CliRunner().invoke(main, ["check", "--no-cache", "--cache-dir", "none", str(tree / "drv0.c")])
    assert res.exit_code == 1 and not (tmp_path / "none").exists()


def test_a_file_checked_alone_is_analysed_again_when_its_header_beside_it_changes(
        tmp_path, cache, monkeypatch):
    """The header a file includes from its own directory feeds its analysis (struct layouts,
    sizes, loop macros) even when the run names the file only (a pre-commit run)."""
    src = tmp_path / "one"
    src.mkdir()
    header = src / "sizes.h"
    header.write_bytes(b"#define RING_BYTES 4096\n")
    (src / "drv.c").write_bytes(b'#include "sizes.h"\n' + DRIVER)
    target = [str(src / "drv.c")]
    run(target, jobs=1, timeout=None, cache=cache)
    seen = count_analyses(monkeypatch)
    assert run(target, jobs=1, timeout=None, cache=cache).cached == 1 and seen == []
    header.write_bytes(b"#define RING_BYTES 8192\n")
    again = run(target, jobs=1, timeout=None, cache=cache)
    assert again.cached == 0 and seen == [str(src / "drv.c")]
