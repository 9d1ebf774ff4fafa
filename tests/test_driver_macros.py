"""The macros a driver defines itself, in its files or the headers beside them: its loop macros
(`#define for_all_rings(ad, r, i) for (...)`) are loops, whose cursors are the parameters the
`for` head assigns; those it defines to nothing (`STATIC`, a debug-only `DBG(x)`) are blanked, as
the preprocessor does."""

from __future__ import annotations

from pathlib import Path

from dmalint.runner import run
from dmalint.source import driver_macros

HEADER = b"""\
#define RING_COUNT 4
#define for_all_rings(ad, r, i) \\
	for (i = 0, r = &(ad)->rings[0]; i < (ad)->nrings; i++, r++)
#define for_each_ring_rev(ad, r) for ((r) = &(ad)->rings[(ad)->nrings - 1]; \\
	(r) >= (ad)->rings; --(r))
#define ring_busy(r) ((r)->busy)
#define not_a_loop(x) do { forget(x); } while (0)
"""

SOURCE = b"""\
#include <linux/dma-mapping.h>
#include "rings.h"

int rings_fill(struct adapter *ad)
{
	struct ring *r;
	int i;

	for_all_rings(ad, r, i) {
		r->dma = dma_map_single(ad->dev, r->buf, r->len, DMA_TO_DEVICE);
		r->ready = 1;
	}
	return 0;
}

void rings_sync(struct adapter *ad)
{
	struct ring *r;
	int i;

	for_all_rings(ad, r, i)
		dma_sync_single_for_device(ad->dev, r->dma, r->len, DMA_TO_DEVICE);
}
"""


def loops(raw: bytes) -> dict[str, tuple[int, ...]]:
    return driver_macros(raw)[0]


def test_the_cursors_are_the_parameters_the_head_assigns():
    assert loops(HEADER) == {"for_all_rings": (1, 2), "for_each_ring_rev": (1,)}


def test_macros_that_are_not_for_loops_are_not_iterators():
    assert loops(b"#define wait_all(q) while (busy(q)) cpu_relax()\n") == {}
    assert loops(b"#define forward(x) format(x)\n") == {}
    assert loops(b"#define walk(x) for (;;)\n") == {}  # assigns no parameter
    assert loops(b"/* no defines */ int for_x;\n") == {}


def test_a_loop_macro_from_the_drivers_header_is_a_loop(tmp_path: Path):
    (tmp_path / "rings.h").write_bytes(HEADER)
    (tmp_path / "rings.c").write_bytes(SOURCE)
    result = run([str(tmp_path)], jobs=1, timeout=None, cache=None)
    assert result.damaged == 0  # without the macro known, tree-sitter breaks both bodies
    assert [(f.line, f.code, f.function) for f in result.findings] == [
        (10, "DMA001", "rings_fill")]


def test_a_file_checked_alone_learns_the_loops_of_the_header_beside_it(tmp_path: Path):
    """A pre-commit run names the changed file only: the header it includes from its own
    directory still counts, as it does for the struct index."""
    (tmp_path / "rings.h").write_bytes(HEADER)
    (tmp_path / "rings.c").write_bytes(SOURCE)
    result = run([str(tmp_path / "rings.c")], jobs=1, timeout=None, cache=None)
    assert result.damaged == 0
    assert [(f.line, f.code, f.function) for f in result.findings] == [
        (10, "DMA001", "rings_fill")]


DEBUG_HEADER = b"""\
#ifndef DBGS_H
#define DBGS_H
#ifdef DBGS_DEBUG
#define DBG(x) if (dbgs_debug) { x }
#define STATIC
#define DBG_UNMAP(d, a) dma_unmap_single(d, a, 64, DMA_TO_DEVICE)
#else
#define DBG(x)
#define STATIC static
#define DBG_UNMAP(d, a)
#endif
#define RING_BYTES 4096 /* not blank */
#endif
"""

DEBUG_SOURCE = b"""\
#include <linux/dma-mapping.h>
#include "dbgs.h"

STATIC int dbgs_send(struct device *dev, void *buf)
{
	dma_addr_t a = dma_map_single(dev, buf, 64, DMA_TO_DEVICE);

	DBG(printk("mapped %p\\n", buf);)
	hw_send(dev, a);
	return 0;
}
"""


def test_macros_defined_to_nothing():
    _, names, calls = driver_macros(DEBUG_HEADER, keep=lambda body: b"dma_" in body)
    assert names == {"DBGS_H", "STATIC"}  # empty or `static` in every definition
    assert calls == {"DBG"}  # DBG_UNMAP is empty too, but the other build unmaps: kept
    assert driver_macros(b"#define NAME value\n#define F(x) (x)\n") == ({}, frozenset(), frozenset())


def test_a_driver_s_debug_macros_are_blanked(tmp_path: Path):
    (tmp_path / "dbgs.h").write_bytes(DEBUG_HEADER)
    (tmp_path / "dbgs.c").write_bytes(DEBUG_SOURCE)
    result = run([str(tmp_path / "dbgs.c")], jobs=1, timeout=None, cache=None)
    assert result.damaged == 0  # `STATIC int f(...)` and `DBG(...;)` break the function otherwise
    assert [(f.line, f.code, f.function) for f in result.findings] == [(9, "DMA001", "dbgs_send")]
