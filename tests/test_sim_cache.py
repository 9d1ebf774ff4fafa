"""The simulator's laid-out objects and its non-coherent cache (DMA024)."""

from __future__ import annotations

from conftest import FIXTURES, analyse_text
from dmalint.contracts.loader import load_contracts, load_macro_tables
from dmalint.simulate.cache import Cache
from dmalint.simulate.program import Program
from dmalint.simulate.replay import Replayer
from dmalint.simulate.values import Obj, Ptr, Unknown, byte_place
from dmalint.simulate.verdict import make_judge, simulate_finding
from dmalint.parse import text
from dmalint.source import make_source


def _root(size: int = 64) -> Obj:
    class Layout:
        name = "struct t"
    root = Obj("t")
    root.layout, root.size = Layout(), size
    return root


# -- the cache alone ----------------------------------------------------------------------------
def test_neighbour_write_during_from_device_mapping_loses_device_bytes():
    c, root = Cache(64), _root()
    m = c.map(root, 16, 32, 2, line=10, site=10, key=1)
    c.cpu_write(root, 12, 4, "line 11: f() writes 'count'", 11)
    c.unmap(m, 12)
    [loss] = c.losses
    assert (loss.line_index, loss.lo, loss.hi) == (0, 16, 48)
    assert loss.cause[0].who == "line 11: f() writes 'count'"
    assert "clean+invalidate of the partly mapped line at the unmap (line 12)" in loss.how
    assert [w.off for w in c.invalidate_instead(m)] == [12]


def test_write_before_the_map_is_cleaned_first():
    c, root = Cache(64), _root()
    c.cpu_write(root, 12, 4, "line 9: f() writes 'count'", 9)
    m = c.map(root, 16, 32, 2, line=10, site=10, key=1)
    c.unmap(m, 12)
    assert c.losses == []


def test_to_device_mapping_loses_nothing_to_a_neighbour_write():
    c, root = Cache(64), _root()
    m = c.map(root, 16, 32, 1, line=10, site=10, key=1)
    c.cpu_write(root, 12, 4, "line 11: f() writes 'count'", 11)
    c.unmap(m, 12)
    c.evict(m, "eviction")
    assert c.losses == []


def test_whole_lines_share_nothing():
    c, root = Cache(64), _root(192)
    m = c.map(root, 64, 64, 2, line=10, site=10, key=1)
    c.cpu_write(root, 60, 4, "line 11: f() writes 'a'", 11)
    c.cpu_write(root, 128, 4, "line 11: f() writes 'b'", 11)
    c.unmap(m, 12)
    assert c.losses == [] and m.writes == []


def test_granule_decides_sharing():
    for granule, lost in ((64, False), (128, True)):
        c, root = Cache(granule), _root(128)
        m = c.map(root, 64, 16, 2, line=10, site=10, key=1)
        c.cpu_write(root, 8, 4, "line 11: f() writes 'flags'", 11)
        c.unmap(m, 12)
        assert bool(c.losses) is lost, granule


def test_cache_state_rolls_back_with_a_helper():
    c, root = Cache(64), _root()
    m = c.map(root, 16, 32, 2, line=10, site=10, key=1)
    cp = c.checkpoint()
    c.cpu_write(root, 12, 4, "line 11: h() writes 'count'", 11)
    c.restore(cp)
    c.unmap(m, 12)
    assert c.losses == [] and m.writes == []


# -- objects laid out by the layout engine ----------------------------------------------------------
LAYOUT = """
#include <linux/dma-mapping.h>
struct lo_hdr { u16 id; u16 len; };
struct lo_priv {
	struct device *dev;
	u32 flags;
	u8 buf[32];
	struct lo_hdr hdr;
	struct unknown_type *other;
};
struct lo_bad { struct device *dev; struct unknown_type x; u8 tail[8]; };
void lo_use(void *a, void *b, void *c, unsigned long n, unsigned long m, void *d);
static int lo_fn(struct lo_priv *p, struct lo_bad *q)
{
	lo_use(&p->hdr, p->buf + 4, &p->buf[2], sizeof(p->buf), sizeof(*p), q->tail);
	return 0;
}
"""


def _replayer_at(code: str, function: str):
    rel = "lo.c"
    src = make_source(code.encode(), rel, load_macro_tables())
    program = Program({rel: src}, load_contracts())
    from dmalint.findings import Finding
    f = Finding(rel, 1, 1, "DMA004", "x", "error", "high", "m", function, ())
    rp = Replayer(f, program, make_judge(f))
    rp.src, fn = program.find(function)
    rp.bind_params(fn, None)
    call = next(n for n in fn.node.children[-1].named_children if n.type == "expression_statement")
    return rp, call.named_children[0]


def test_member_addresses_sizes_and_steps_are_concrete():
    rp, call = _replayer_at(LAYOUT, "lo_fn")
    args = [a for a in call.child_by_field_name("arguments").named_children]
    hdr, step, elem, size, whole, unknown = (rp.eval(a) for a in args)
    assert byte_place(hdr)[1] == 44  # dev 0-7, flags 8-11, buf 12-43, hdr 44-47, other 48-55
    assert byte_place(step)[1] == 16 and byte_place(elem)[1] == 14
    assert byte_place(step)[0] is byte_place(hdr)[0]
    assert size == 32 and whole == 56
    assert rp.place(unknown) is None  # no guess past a member of unknown type


# -- DMA024 end to end ----------------------------------------------------------------------------
def _findings(rel: str):
    path = FIXTURES / rel
    code = path.read_text()
    result = analyse_text(code, rel)
    program = Program({rel: make_source(code.encode(), rel, load_macro_tables())},
                      load_contracts())
    return {f.line: f for f in result.findings if f.code == "DMA024"}, program


def test_confirmed_dma024_names_bytes_line_and_write():
    found, program = _findings("simulate/cacheline.c")
    sim = simulate_finding(found[22], program, record=True)
    assert sim.verdict == "confirmed"
    assert sim.reason.startswith("data corruption (no dma-debug message): cs_rx_bad() writes "
                                 "'rx_count' (bytes 8-11) at line 26 while 'p->rx_buf' (bytes "
                                 "12-43 of struct cs_priv) is mapped DMA_FROM_DEVICE at line 22")
    assert "the device's bytes 12-43 are lost" in sim.reason
    assert sim.dmesg == []  # no kernel message is invented
    tables = {line: table for _, line, _, table in sim.steps}
    assert any("dirty" in e and "line 0 (bytes 0-63)" in e for e in tables[26])
    assert "~ LOST: memory bytes 12-43 hold the CPU's stale copy, not the device's data" \
        in tables[28]


def test_interleaved_callback_is_named():
    found, program = _findings("simulate/cacheline.c")
    sim = simulate_finding(found[52], program)
    assert sim.verdict == "confirmed"
    assert "cs_ring_irq() writes 'irqs' (bytes 8-11) at line 46" in sim.reason
    assert "cs_ring_irq(), which the driver registers to run asynchronously (interrupt, " \
           "completion, timer or work), is interleaved" in sim.reason


def test_refuted_and_unknown_say_why():
    found, program = _findings("simulate/cacheline.c")
    whole = simulate_finding(found[119], program)
    assert whole.verdict == "refuted" and "covers bytes 0-35 of struct cs_cmd" in whole.reason
    send = simulate_finding(found[96], program)
    assert send.verdict == "refuted" and "the device only reads it" in send.reason
    sg = simulate_finding(found[103], program)
    assert sg.verdict == "unknown" and sg.reason.startswith(
        "the direction of the transfer is not known to the replay; if the device writes the "
        "buffer: data corruption")
    once = simulate_finding(found[159], program)
    assert once.verdict == "unknown" and "ordered with the map by the replayed path" in once.reason


def test_replay_cli_prints_cache_state(monkeypatch):
    from click.testing import CliRunner
    from dmalint.cli import main

    monkeypatch.setenv("DMALINT_NO_SIMULATE", "1")  # restored after `replay` drops it

    out = CliRunner().invoke(main, ["replay", str(FIXTURES / "simulate" / "cacheline.c") + ":22"])
    assert out.exit_code == 0, out.output
    assert "cache: *p (struct cs_priv) line 0 (bytes 0-63): dirty; bytes 12-43 mapped " \
           "DMA_FROM_DEVICE" in out.output
    assert "cache event: the unmap: line 0 is partly mapped and dirty: clean+invalidate " \
           "writes it back to memory" in out.output
