"""The dma-debug model alone, and the replayer's verdicts on fixtures."""

from __future__ import annotations

from conftest import FIXTURES
from dmalint.analysis import analyse_source
from dmalint.contracts.loader import load_contracts, load_macro_tables, load_registry
from dmalint.simulate.model import DMA_MAPPING_ERROR, DmaDebug
from dmalint.simulate.program import Program
from dmalint.simulate.verdict import simulate_finding
from dmalint.source import make_source


def texts(m: DmaDebug) -> list[str]:
    return [r.text for r in m.reports]


def test_direction_mismatch_and_unchecked():
    m = DmaDebug()
    m.map("dev", 0x1000, 64, 2)
    m.unmap("dev", 0x1000, 64, 1)
    assert any("frees DMA memory with different direction" in t and
               "[mapped with DMA_FROM_DEVICE] [unmapped with DMA_TO_DEVICE]" in t for t in texts(m))
    assert any(t.startswith("device driver failed to check map error") for t in texts(m))


def test_checked_size_double_free_invalid():
    m = DmaDebug()
    m.map("dev", 0x1000, 64, 1)
    assert m.mapping_error("dev", 0x1000) is False
    m.unmap("dev", 0x1000, 32, 1)
    assert texts(m) == ["device driver frees DMA memory with different size "
                        "[device address=0x0000000000001000] [map size=64 bytes] "
                        "[unmap size=32 bytes]"]
    m.unmap("dev", 0x1000, 64, 1)
    assert "it has not allocated" in texts(m)[-1]
    m.unmap("dev", DMA_MAPPING_ERROR, 64, 1)
    assert texts(m)[-1] == "device driver tries to free an invalid DMA memory address"


def test_wrong_function_sync_and_pending():
    m = DmaDebug()
    m.alloc_coherent("dev", 0x2000, 128, "cpu")
    m.unmap("dev", 0x2000, 128, 0, "single")
    assert "[mapped as coherent] [unmapped as single]" in texts(m)[0]
    m.map("dev", 0x3000, 64, 1)
    m.sync("dev", 0x3000, 128, 2, to_cpu=True)
    assert any("outside allocated range" in t for t in texts(m))
    assert any("syncs DMA memory with different direction" in t for t in texts(m))
    m.release_device()
    assert "has pending DMA allocations while released from device [count=1]" in texts(m)[-1]


def test_pool_and_cookie():
    m = DmaDebug()
    m.pool_create("p", "dev", 64, "p")
    m.pool_create("q", "dev", 64, "q")
    m.pool_alloc("p", "blk", 0x10)
    m.pool_free("q", "blk", 0x10)
    assert "(bad dma)" in texts(m)[-1]
    m.pool_destroy("p")
    assert texts(m)[-1].endswith("busy")
    m.pool_create("r", "dev", 64, "r")
    m.pool_alloc("r", "b2", 0x20)
    m.pool_free("r", "b2", 0x20)
    m.pool_free("r", "b2", 0x20)
    assert "already free" in texts(m)[-1]
    m.cookie("c")
    m.touch("c")
    assert "NO_KERNEL_MAPPING" in texts(m)[-1]


def _verdicts(rel: str) -> dict[tuple[int, str], str]:
    path = FIXTURES / rel
    src = make_source(path.read_bytes(), rel, load_macro_tables())
    result = analyse_source(src, load_contracts(), load_registry())
    program = Program({rel: src}, load_contracts())
    return {(f.line, f.code): simulate_finding(f, program).verdict for f in result.findings}


def test_fixture_verdicts():
    v = _verdicts("streaming/pairing.c")
    assert v[(101, "DMA007")] == "confirmed"
    assert v[(118, "DMA008")] == "confirmed"
    assert v[(69, "DMA006")] == "static-only"
    u = _verdicts("streaming/unchecked.c")
    assert u[(21, "DMA001")] == "confirmed"
    s = _verdicts("families/sync.c")
    assert s[(42, "DMA016")] == "confirmed"
    assert s[(64, "DMA017")] == "confirmed"
    assert _verdicts("memory/stack.c")[(28, "DMA023")] == "confirmed"
    assert _verdicts("families/pool.c")[(89, "DMA014")] == "confirmed"


def test_values_decide_what_they_can():
    from dmalint.simulate.values import Handle, Lin, Stale, Unknown, equal, truth

    n = Unknown("len")
    assert equal(Lin(n, 8), n) is False and equal(Lin(n, 8), Lin(n, 8)) is True
    assert equal(n, Unknown("other")) is None
    h = Handle(0x1000)
    assert truth(h) is None and equal(h, 0) is None and equal(h, Handle(0x2000)) is False
    stale = Stale(5, "x'")
    assert truth(stale) is None  # an unknown callee may have changed it


def test_witness_segments_cross_functions():
    from dmalint.engine.state import Step
    from dmalint.findings import Finding
    from dmalint.simulate.witness import segments

    trace = (Step(10, "enter", "enter rx_refill()"),
             Step(12, "acquire", "dma_map_single() acquires a DMA region"),
             Step(13, "assume", "dma_map_single() at line 12 succeeded"),
             Step(13, "branch", "'dma_mapping_error(p->dev, d)' is false"),
             Step(12, "store", "the region is kept in struct slot.dma"),
             Step(30, "enter", "enter rx_poll()"),
             Step(33, "branch", "'i < n' is true"),
             Step(35, "call", "put_slot() calls dma_unmap_single()"))
    f = Finding("a.c", 35, 1, "DMA004", "x", "error", "high", "m", "rx_poll", trace)
    first, second = segments(f)
    assert first.function == "rx_refill" and first.outcomes == {12: [True]}
    assert first.branches == [(13, "dma_mapping_error(p->dev,d)", False)]
    assert first.stores == [(12, "dma")]
    assert second.function == "rx_poll" and second.hint(35, "put_slot") == "dma_unmap_single"


def test_handle_bits_are_not_facts():
    from dmalint.contracts.loader import load_contracts
    from dmalint.simulate.interp import Interp
    from dmalint.simulate.values import Handle, Unknown

    class Src:
        defines: dict = {}

    it = Interp(load_contracts(), Src())
    h = Handle(0x10000000)
    assert isinstance(it.binop("&", h, 1 << 27), Unknown)
    assert it.binop("==", h, Handle(0x10010000)) == 0
    assert it.binop("&", h, 1 << 27) is it.binop("&", h, 1 << 27)  # the same question, once


def test_cacheline_tracking_of_overlapping_mappings():
    """add_dma_entry(): two live mappings whose first L1 line is the same, the second not
    DMA_TO_DEVICE and without DMA_ATTR_SKIP_CPU_SYNC."""
    from dmalint.simulate.model import DmaDebug

    m = DmaDebug()
    m.map("dev", 0x1000, 16, 2, cpu="a", cacheline=("obj", 0))
    m.map("dev", 0x2000, 16, 1, cpu="b", cacheline=("obj", 0))  # the device only reads: not tracked
    assert m.reports == []
    m.map("dev", 0x3000, 16, 2, cpu="c", cacheline=("obj", 0), skip_sync=True)
    assert m.reports == []
    m.map("dev", 0x4000, 16, 0, cpu="d", cacheline=("obj", 0))
    assert [r.dmesg("drv") for r in m.reports] == [
        "DMA-API: drv dev: cacheline tracking EEXIST, overlapping mappings aren't supported"]
    m.unmap("dev", 0x1000, 16, 2)
    m.unmap("dev", 0x4000, 16, 0)
    m.unmap("dev", 0x3000, 16, 2)
    m.map("dev", 0x5000, 16, 2, cpu="e", cacheline=("obj", 0))
    assert sum("EEXIST" in r.text for r in m.reports) == 1  # the line is free again


def test_rodata_mapping():
    from dmalint.simulate.model import DmaDebug

    m = DmaDebug()
    m.map("dev", 0x1000, 4, 1, cpu="&rodata", rodata=True)
    assert [r.text for r in m.reports] == [
        "device driver maps memory from kernel text or rodata [addr=&rodata] [len=4]"]
