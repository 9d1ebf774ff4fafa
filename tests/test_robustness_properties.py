"""Property: whatever is done to a realistic driver file (lines deleted, duplicated, swapped,
random bytes inserted, truncated, stray braces and macros), analyse_file returns a result, never
raises and never reports an internal error, and every position it reports lies in the file."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dmalint.runner import analyse_file

DRIVER = (Path(__file__).parent / "data" / "robust_driver.c").read_bytes()
LINES = DRIVER.splitlines(keepends=True)

SNIPPETS = [b"{\n", b"}\n", b"(\n", b")\n", b"#if CONFIG_FOO\n", b"#ifdef BAR\n", b"#else\n",
            b"#elif 0\n", b"#endif\n", b"#if 0\n", b"#define M(x) do { x; } while (0)\n",
            b"#define N \\\n", b"list_for_each_entry(p, &l, node) {\n", b"__iomem ", b"/*\n",
            b"*/\n", b"\"\n", b"'\n", b"\\\n", b"goto out;\n", b"out:\n", b"return -ENOMEM;\n",
            b"dma_unmap_single(priv->dev, addr, len, DMA_TO_DEVICE);\n",
            b"addr = dma_map_single(dev, buf, len, DMA_FROM_DEVICE);\n",
            b"if (dma_mapping_error(dev, addr))\n", b"DEFINE_MUTEX(lock);\n", b"({ 1; })\n",
            b"switch (x) { case 1:\n", b"do {\n", b"} while (0);\n", b"\xff\xfe\x80\n", b"\r\n",
            b"\t\t\t\t\n", b"??=\n"]

index = st.integers(min_value=0, max_value=len(LINES) + 5)
mutation = st.one_of(
    st.tuples(st.just("delete"), index),
    st.tuples(st.just("duplicate"), index),
    st.tuples(st.just("swap"), index, index),
    st.tuples(st.just("insert"), index, st.sampled_from(SNIPPETS)),
    st.tuples(st.just("bytes"), st.integers(0, len(DRIVER)), st.binary(min_size=1, max_size=12)),
    st.tuples(st.just("truncate"), st.integers(0, len(DRIVER))),
)


def mutate(ops) -> bytes:
    lines = list(LINES)
    for op in ops:
        n = len(lines)
        kind = op[0]
        if kind in ("delete", "duplicate", "swap", "insert") and n == 0:
            lines = [b"\n"]
            n = 1
        if kind == "delete":
            del lines[op[1] % n]
        elif kind == "duplicate":
            i = op[1] % n
            lines.insert(i, lines[i])
        elif kind == "swap":
            i, j = op[1] % n, op[2] % n
            lines[i], lines[j] = lines[j], lines[i]
        elif kind == "insert":
            lines.insert(op[1] % (n + 1), op[2])
        else:
            raw = b"".join(lines)
            at = op[1] % (len(raw) + 1)
            raw = raw[:at] + op[2] + raw[at:] if kind == "bytes" else raw[:at]
            lines = raw.splitlines(keepends=True)
    return b"".join(lines)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(mutation, min_size=1, max_size=8))
def test_mutants_never_escape_and_positions_are_in_the_file(tmp_path_factory, ops):
    raw = mutate(ops)
    path = tmp_path_factory.getbasetemp() / "mutant.c"
    path.write_bytes(raw)
    result = analyse_file(path, "mutant.c")  # must not raise
    line_count = raw.count(b"\n") + 1
    for notice in result.notices:
        assert notice.path == "mutant.c"
        assert 0 <= notice.line <= line_count, notice
        assert not notice.message.startswith("internal error"), notice.message
    for f in result.findings:
        assert f.path == "mutant.c"
        assert 0 <= f.line <= line_count and f.column >= 1, f
        for step in f.trace:
            assert 0 <= step.line <= line_count, step
        for line, _ in f.related:
            assert 0 <= line <= line_count


def test_unmutated_driver_has_findings(tmp_path):
    """The seed must produce findings, or the property above checks nothing about them."""
    path = tmp_path / "driver.c"
    path.write_bytes(DRIVER)
    assert analyse_file(path, "driver.c").findings
