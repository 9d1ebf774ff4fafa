"""A driver's sizes often live in its own header: the engine reads `#include "x.h"` next to
the file for its macros, so sizes given by two different header macros can be compared."""

from __future__ import annotations

from dmalint.runner import run

SOURCE = """\
#include <linux/dma-mapping.h>
#include "hw.h"

int hw_set(struct device *dev)
{
	dma_addr_t dma;
	u8 *map = dma_alloc_coherent(dev, HW_MAP_BYTES, &dma, GFP_KERNEL);

	if (!map)
		return -ENOMEM;
	hw_send(dev, dma);
	dma_free_coherent(dev, %s, map, dma);
	return 0;
}
"""

HEADER = """\
#define HW_MAP_BYTES 8192
#define HW_POOL_BYTES 16384
#define HW_SAME_BYTES HW_MAP_BYTES
"""


def _findings(tmp_path, released: str, header: str = HEADER):
    (tmp_path / "hw.h").write_text(header)
    (tmp_path / "hw.c").write_text(SOURCE % released)
    result = run([str(tmp_path / "hw.c")], jobs=1, timeout=None)
    return [(f.line, f.code) for f in result.findings]


def test_sizes_from_two_header_macros_are_compared(tmp_path):
    assert _findings(tmp_path, "HW_POOL_BYTES") == [(12, "DMA004")]


def test_header_macro_naming_another_is_followed(tmp_path):
    assert _findings(tmp_path, "HW_SAME_BYTES") == []


def test_a_file_own_define_wins_over_its_header(tmp_path):
    source_with_own = "#define HW_POOL_BYTES 8192\n"
    (tmp_path / "hw.h").write_text(HEADER)
    (tmp_path / "hw.c").write_text(source_with_own + SOURCE % "HW_POOL_BYTES")
    result = run([str(tmp_path / "hw.c")], jobs=1, timeout=None)
    assert result.findings == []


def test_header_macros_unknown_without_the_header(tmp_path):
    (tmp_path / "hw.c").write_text(SOURCE % "HW_POOL_BYTES")
    result = run([str(tmp_path / "hw.c")], jobs=1, timeout=None)
    assert result.findings == []


def test_a_macro_two_headers_define_differently_stays_unknown(tmp_path):
    (tmp_path / "hw.h").write_text(HEADER)
    (tmp_path / "alt.h").write_text("#define HW_POOL_BYTES 8192\n")
    (tmp_path / "hw.c").write_text('#include "alt.h"\n' + SOURCE % "HW_POOL_BYTES")
    result = run([str(tmp_path / "hw.c")], jobs=1, timeout=None)
    assert result.findings == []
