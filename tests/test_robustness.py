"""No input may crash or hang a run: each bad input is one notice naming the file, the run goes
on, the good files' findings are still reported, and the exit code tells findings from errors."""

from __future__ import annotations

import faulthandler
import os
import signal
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

import dmalint.runner as runner
from dmalint.cli import main
from dmalint.runner import analyse_file, run
from dmalint.source import MAX_FILE_BYTES

DATA = Path(__file__).parent / "data"
DRIVER = (DATA / "robust_driver.c").read_bytes()
GOOD_CODES = {"DMA001", "DMA005", "DMA007"}  # what robust_driver.c is known to contain


def good_file(tmp_path: Path, name: str = "good.c") -> Path:
    p = tmp_path / name
    p.write_bytes(DRIVER)
    return p


def codes_of(result, path: Path) -> set[str]:
    return {f.code for f in result.findings if f.path == os.path.normpath(str(path))}


def errors_of(result, path: Path) -> list[str]:
    return [n.message for n in result.errors if n.path == os.path.normpath(str(path))]


def check_run(tmp_path: Path, bad: Path, jobs: int = 2, **kw):
    """Run on a directory holding a bad input and a good file; the good file must be reported."""
    good = good_file(tmp_path)
    result = run([str(tmp_path)], jobs=jobs, **kw)
    assert GOOD_CODES <= codes_of(result, good), "the good file's findings were lost"
    return result


def nested(depth: int, open_: str, close: str) -> bytes:
    return (f"int deep(struct device *dev, void *p)\n{{\n"
            f"\tdma_addr_t a = dma_map_single(dev, p, 4, DMA_TO_DEVICE);\n"
            f"{open_ * depth}\n\tx();\n{close * depth}\n\treturn 0;\n}}\n").encode()


# --- inputs ---------------------------------------------------------------------------------

def test_empty_file(tmp_path):
    bad = tmp_path / "empty.c"
    bad.write_bytes(b"")
    result = check_run(tmp_path, bad)
    assert errors_of(result, bad) == [] and codes_of(result, bad) == set()


def test_binary_file(tmp_path):
    bad = tmp_path / "blob.c"
    bad.write_bytes(bytes(range(256)) * 64)
    result = check_run(tmp_path, bad)
    assert errors_of(result, bad) == ["binary file (contains NUL bytes)"]


def test_non_utf8_file(tmp_path):
    bad = tmp_path / "latin1.c"
    bad.write_bytes(DRIVER.replace(b"A small made-up", "Un pilote \xe9crit \xff\xfe".encode("latin-1")))
    result = check_run(tmp_path, bad)
    assert errors_of(result, bad) == []
    assert GOOD_CODES <= codes_of(result, bad)  # the analysis does not depend on the encoding


@pytest.mark.parametrize("cut", [0.1, 0.37, 0.5, 0.83, 0.99])
def test_truncated_c(tmp_path, cut):
    bad = tmp_path / "truncated.c"
    bad.write_bytes(DRIVER[: int(len(DRIVER) * cut)])
    result = check_run(tmp_path, bad)
    assert errors_of(result, bad) == []


def test_ten_megabyte_generated_file(tmp_path):
    """Analysed or timed out, but within the limit plus the grace period, never hung."""
    fn = "static int g{0}(int a)\n{{\n\tif (a > {0})\n\t\treturn a;\n\treturn {0};\n}}\n"
    text = "".join(fn.format(i) for i in range(160_000)).encode()[: 10 * 1024 * 1024]
    bad = tmp_path / "generated.c"
    bad.write_bytes(text)
    start = time.monotonic()
    result = check_run(tmp_path, bad, timeout=2)
    assert time.monotonic() - start < 2 + 2 + 10
    assert errors_of(result, bad) in ([], ["analysis timed out after 2 s"])


def test_file_over_the_size_limit(tmp_path):
    bad = tmp_path / "huge.c"
    with open(bad, "wb") as f:
        f.truncate(MAX_FILE_BYTES + 1)  # sparse: costs no disk
    result = check_run(tmp_path, bad)
    assert errors_of(result, bad) == [f"file too large ({MAX_FILE_BYTES + 1} bytes, limit {MAX_FILE_BYTES})"]


@pytest.mark.parametrize("shape", [("\tif (a) {\n", "\t}\n"), ("{\n", "}\n"),
                                   ("\tx = (", ");\n"), ("\twhile (a) {\n", "}\n")],
                         ids=["if", "block", "parens", "while"])
def test_ten_thousand_deep_nesting(tmp_path, shape):
    bad = tmp_path / "deep.c"
    bad.write_bytes(nested(10_000, *shape))
    result = check_run(tmp_path, bad)
    assert errors_of(result, bad) in (
        [], ["not analysed: code nested too deeply for the analysis (Python recursion limit)"])


def test_deeply_nested_expression(tmp_path):
    bad = tmp_path / "sum.c"
    bad.write_bytes(b"int s(struct device *d, void *p)\n{\n\tdma_addr_t a = dma_map_single(d, p, 4, 1);\n"
                    b"\tx = " + b"1 + " * 10_000 + b"1;\n\treturn 0;\n}\n")
    result = check_run(tmp_path, bad)
    assert len(errors_of(result, bad)) <= 1


@pytest.mark.parametrize("text", [b"#if A\nint f(void) { return 0; }\n",
                                  b"#endif\n#endif\nint f(void) { return 0; }\n#else\n",
                                  b"#else\n#elif B\nint f(void) {\n#if C\n return 0; }\n",
                                  b"int f(void) {\n#ifdef X\n if (a) {\n#else\n if (b) {\n#endif\n"
                                  b" return 0; }\n"])
def test_unbalanced_conditionals(tmp_path, text):
    bad = tmp_path / "unbalanced.c"
    bad.write_bytes(DRIVER.replace(b"#include <linux/dma-mapping.h>\n", text, 1))
    result = check_run(tmp_path, bad)
    assert errors_of(result, bad) == []


def test_symlink_loops(tmp_path):
    (tmp_path / "self.c").symlink_to("self.c")
    (tmp_path / "a.c").symlink_to("b.c")
    (tmp_path / "b.c").symlink_to("a.c")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "up").symlink_to("..")  # a directory loop: not followed
    result = check_run(tmp_path, tmp_path / "self.c")
    for name in ("self.c", "a.c", "b.c"):
        [msg] = errors_of(result, tmp_path / name)
        assert "symbolic links" in msg
    assert result.files == 4


def test_dangling_symlink(tmp_path):
    bad = tmp_path / "gone.c"
    bad.symlink_to("nowhere.c")
    result = check_run(tmp_path, bad)
    assert errors_of(result, bad) == ["No such file or directory"]


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="running as root: a chmod 000 file is still readable")
def test_unreadable_file(tmp_path):
    bad = tmp_path / "secret.c"
    bad.write_bytes(DRIVER)
    bad.chmod(0)
    try:
        result = check_run(tmp_path, bad)
        assert errors_of(result, bad) == ["Permission denied"]
    finally:
        bad.chmod(0o644)


def test_directory_named_like_a_source_file(tmp_path):
    (tmp_path / "x.c").mkdir()
    (tmp_path / "x.c" / "inner.c").write_bytes(DRIVER)
    result = check_run(tmp_path, tmp_path / "x.c")
    assert GOOD_CODES <= codes_of(result, tmp_path / "x.c" / "inner.c")  # walked as a directory
    named = run([str(tmp_path / "x.c" / ".")], jobs=1)
    assert named.errors == []
    direct = runner.analyse_file(tmp_path / "x.c", "x.c")
    assert [n.message for n in direct.notices] == ["is a directory"]


def test_paths_with_spaces(tmp_path):
    sub = tmp_path / "my drivers" / "net eth"
    sub.mkdir(parents=True)
    p = sub / "toy driver.c"
    p.write_bytes(DRIVER)
    result = run([str(tmp_path / "my drivers")], jobs=2)
    assert GOOD_CODES <= codes_of(result, p) and result.errors == []


def test_missing_argument_is_reported_and_the_rest_run(tmp_path):
    good = good_file(tmp_path)
    result = run([str(tmp_path / "absent.c"), str(good)], jobs=1)
    assert [n.message for n in result.errors] == ["no such file or directory"]
    assert GOOD_CODES <= codes_of(result, good)


# --- internal errors and time limits ---------------------------------------------------------

def _patch_analysis(monkeypatch, behaviour):
    """Make the analysis of files named bad*.c misbehave (workers are forked: they inherit it)."""
    real = runner.analyse_unit

    def fake(sources, *args, **kw):
        if any(Path(src.path).name.startswith("bad") for src in sources):
            behaviour()
        return real(sources, *args, **kw)
    monkeypatch.setattr(runner, "analyse_unit", fake)


def _boom():
    raise ValueError("boom\nwith a second line")


def _recurse():
    def down(n):
        return down(n + 1) + 1
    down(0)


@pytest.mark.parametrize("jobs,timeout", [(1, None), (1, 5), (2, 5)])
def test_internal_error_becomes_a_notice(tmp_path, monkeypatch, jobs, timeout):
    _patch_analysis(monkeypatch, _boom)
    bad = tmp_path / "bad.c"
    bad.write_bytes(DRIVER)
    result = check_run(tmp_path, bad, jobs=jobs, timeout=timeout)
    assert errors_of(result, bad) == ["internal error: ValueError: boom with a second line; please report"]


def test_recursion_error_becomes_a_notice(tmp_path, monkeypatch):
    _patch_analysis(monkeypatch, _recurse)
    bad = tmp_path / "bad.c"
    bad.write_bytes(DRIVER)
    result = check_run(tmp_path, bad, jobs=1, timeout=None)
    assert errors_of(result, bad) == [
        "not analysed: code nested too deeply for the analysis (Python recursion limit)"]


def test_analyse_file_never_raises(tmp_path, monkeypatch):
    _patch_analysis(monkeypatch, _boom)
    bad = tmp_path / "bad.c"
    bad.write_bytes(DRIVER)
    [notice] = analyse_file(bad, "bad.c").notices
    assert notice.kind == "error" and notice.message.startswith("internal error: ValueError")


@pytest.mark.parametrize("jobs", [1, 2])
def test_slow_file_times_out_and_the_run_goes_on(tmp_path, monkeypatch, jobs):
    _patch_analysis(monkeypatch, lambda: time.sleep(60))
    bad = tmp_path / "bad.c"
    bad.write_bytes(DRIVER)
    start = time.monotonic()
    result = check_run(tmp_path, bad, jobs=jobs, timeout=0.5)
    assert time.monotonic() - start < 10
    assert errors_of(result, bad) == ["analysis timed out after 0.5 s"]


def test_file_stuck_where_signals_cannot_reach_is_killed(tmp_path, monkeypatch):
    def stuck():
        signal.signal(signal.SIGALRM, signal.SIG_IGN)  # as if stuck in C code
        time.sleep(60)
    _patch_analysis(monkeypatch, stuck)
    bad = tmp_path / "bad.c"
    bad.write_bytes(DRIVER)
    (tmp_path / "more.c").write_bytes(DRIVER)  # handled by the replacement worker
    start = time.monotonic()
    result = check_run(tmp_path, bad, jobs=1, timeout=0.5)
    assert time.monotonic() - start < 15
    assert errors_of(result, bad) == ["analysis timed out after 0.5 s"]
    assert GOOD_CODES <= codes_of(result, tmp_path / "more.c")


def test_crashed_worker_costs_only_its_file(tmp_path, monkeypatch):
    def crash():
        faulthandler.disable()  # pytest's handler would print the worker's stack
        os.kill(os.getpid(), signal.SIGSEGV)
    _patch_analysis(monkeypatch, crash)
    bad = tmp_path / "bad.c"
    bad.write_bytes(DRIVER)
    result = check_run(tmp_path, bad, jobs=2, timeout=5)
    assert errors_of(result, bad) == [
        "internal error: worker process died (killed by signal SIGSEGV); please report"]


# --- exit codes -------------------------------------------------------------------------------

def _cli(*args: str):
    return CliRunner().invoke(main, ["check", "--no-cache", *args])


def test_exit_codes(tmp_path):
    good = good_file(tmp_path)
    clean = tmp_path / "clean.c"
    clean.write_text("int f(void) { return 0; }\n")
    binary = tmp_path / "blob.c"
    binary.write_bytes(b"\0\1\2")
    assert _cli(str(clean)).exit_code == 0
    assert _cli(str(good), str(clean)).exit_code == 1
    res = _cli("-j", "2", str(good), str(binary))
    assert res.exit_code == 2  # an error wins over findings, and the findings are still printed
    assert "DMA001" in res.output and "blob.c: error: binary file" in res.output


def test_file_timeout_option(tmp_path, monkeypatch):
    _patch_analysis(monkeypatch, lambda: time.sleep(60))
    bad = tmp_path / "bad.c"
    bad.write_bytes(DRIVER)
    res = _cli("-j", "1", "--file-timeout", "0.3", str(bad))
    assert res.exit_code == 2
    assert "bad.c: error: analysis timed out after 0.3 s" in res.output
