"""The explorer finishes loops whose values never settle and forgets what cannot matter:
functions that used to run out of their step budget now explore every path."""

from __future__ import annotations

from types import SimpleNamespace

from dmalint.contracts.loader import load_contracts
from dmalint.engine import explore
from dmalint.engine.evaluate import Evaluator, Scope
from dmalint.engine.explore import Explorer
from dmalint.engine.state import State
from dmalint.engine.values import Lin
from tests.conftest import analyse_text


def _incomplete(result):
    return [n for n in result.notices if n.kind == "incomplete"]


def test_backward_goto_loop_converges():
    result = analyse_text("""
int poll(struct priv *p, int budget)
{
	int work = 0;
	dma_addr_t d = dma_map_single(p->dev, p->buf, 64, DMA_TO_DEVICE);

	if (dma_mapping_error(p->dev, d))
		return -ENOMEM;
restart:
	work += rx(p, budget - work);
	if (work < budget && more(p))
		goto restart;
	return -EIO;
}
""")
    assert not _incomplete(result)
    assert [(f.code, f.line) for f in result.findings] == [("DMA003", 13)]


def test_shift_after_widening_converges():
    result = analyse_text("""
int order_of(struct priv *p, int n)
{
	int i, order = 0;
	dma_addr_t d = dma_map_single(p->dev, p->buf, 64, DMA_TO_DEVICE);

	if (dma_mapping_error(p->dev, d))
		return -ENOMEM;
	for (i = 1; i < n; i <<= 1)
		order++;
	return -EIO;
}
""")
    assert not _incomplete(result)
    assert [(f.code, f.line) for f in result.findings] == [("DMA003", 11)]


def test_counters_tested_once_do_not_multiply_paths():
    # Twelve independent counters, each bumped under its own test and tested once more
    # afterwards: 4096 paths per round if the explorer kept their values apart; none of
    # them decides anything about the mapping.
    bumps = "\n".join(f"\t\tif (kind(p, i) == {k}) n{k}++;" for k in range(12))
    decls = ", ".join(f"n{k} = 0" for k in range(12))
    notes = "\n".join(f"\tif (n{k})\n\t\tnote(p, {k});" for k in range(12))
    result = analyse_text(f"""
int count(struct priv *p, int total)
{{
	int i, {decls};
	dma_addr_t d = dma_map_single(p->dev, p->buf, 64, DMA_TO_DEVICE);

	if (dma_mapping_error(p->dev, d))
		return -ENOMEM;
	for (i = 0; i < total; i++) {{
{bumps}
	}}
{notes}
	dma_unmap_single(p->dev, d, 64, DMA_TO_DEVICE);
	return 0;
}}
""")
    assert not _incomplete(result)
    assert result.findings == []


def test_flag_set_with_the_mapping_keeps_its_correlation():
    # `mapped` is tested once, but that test decides whether the unmap runs: its value
    # must stay tied to the path that mapped, or the leak below would be reported.
    result = analyse_text("""
int run(struct priv *p, bool want)
{
	dma_addr_t d = 0;
	bool mapped = false;
	int ret;

	if (want) {
		d = dma_map_single(p->dev, p->buf, 64, DMA_TO_DEVICE);
		if (dma_mapping_error(p->dev, d))
			return -ENOMEM;
		mapped = true;
	}
	ret = go(p);
	if (mapped)
		dma_unmap_single(p->dev, d, 64, DMA_TO_DEVICE);
	return ret;
}
""")
    assert result.findings == []


def test_retry_once_loop_keeps_its_constants():
    # `retry:` heads a loop, but each path goes round at most once: `stage` stays a constant,
    # so the second round's `stage < 2` is false and the source is unmapped only once.  (The
    # paths that reach the label differ in `len`: widening after a few arrivals of any path
    # would forget `stage` on the first round.)
    result = analyse_text("""
int hash(struct priv *p, struct scatterlist *src, int nents)
{
	int stage = 0, err = 0, len = 16;
	int n = dma_map_sg(p->dev, src, nents, DMA_TO_DEVICE);
	dma_addr_t res;

	if (n <= 0)
		return -EINVAL;
	if (p->big)
		len = 64;
	if (p->wide)
		len += 8;
	res = dma_map_single(p->dev, p->res, len, DMA_FROM_DEVICE);
	if (dma_mapping_error(p->dev, res)) {
		dma_unmap_sg(p->dev, src, nents, DMA_TO_DEVICE);
		return -ENOMEM;
	}
retry:
	if (p->keyed && stage == 0)
		stage = 1;
	err = run(p, stage);
	if (stage < 2)
		dma_unmap_sg(p->dev, src, nents, DMA_TO_DEVICE);
	if (stage == 1 && !err) {
		dma_sync_single_for_cpu(p->dev, res, len, DMA_FROM_DEVICE);
		stage = 2;
		goto retry;
	}
	dma_unmap_single(p->dev, res, len, DMA_FROM_DEVICE);
	return err;
}
""")
    assert not _incomplete(result)
    assert result.findings == []



def test_a_call_returns_afresh_each_time_it_runs():
    # What a loop's earlier round learnt of a call's result (an interval, a relation) must not
    # decide the next round's tests of the same call site.
    ev = Evaluator(load_contracts(), Scope({}, frozenset(), frozenset()), {}, lambda *a, **k: None,
                   "f")
    st = State()
    other = ("call", 99)
    st.facts[("call", 5)] = (0, 0, frozenset())
    st.facts[("rel", (("call", 5), 1), (("init", "x"), -1))] = (0, 0, frozenset())
    st.facts[other] = (1, None, frozenset())
    value = ev.call_result(SimpleNamespace(start_byte=5), st)
    assert value == Lin.sym(("call", 5))
    assert list(st.facts) == [other]


def _spy_explorers(monkeypatch) -> list:
    explorers = []
    real = Explorer.run

    def spy(self):
        explorers.append(self)
        return real(self)
    monkeypatch.setattr(Explorer, "run", spy)
    return explorers


def test_integer_variants_of_one_region_shape_are_bounded(monkeypatch):
    # A size clipped by eight independent tests: up to 256 integer variants of the same
    # mapping per node.  Past STATES_PER_SHAPE per node they are dropped (like Pulse's
    # disjunct limit); the leak every variant shares is still reported, as without the bound.
    clips = "\n".join(f"\tif (p->quirk{k} && size > {k + 4})\n\t\tsize -= {k + 1};" for k in range(8))
    code = f"""
int send(struct priv *p, int len)
{{
	int size = min(len, 4096);
	dma_addr_t d;

{clips}
	d = dma_map_single(p->dev, p->buf, size, DMA_TO_DEVICE);
	if (dma_mapping_error(p->dev, d))
		return -ENOMEM;
	if (kick(p))
		return -EIO;
	dma_unmap_single(p->dev, d, size, DMA_TO_DEVICE);
	return 0;
}}
"""
    explorers = _spy_explorers(monkeypatch)
    bounded = analyse_text(code)
    assert explorers[-1].capped > 0
    assert not _incomplete(bounded)
    assert [(f.code, f.line) for f in bounded.findings] == [("DMA003", 27)]
    monkeypatch.setattr(explore, "STATES_PER_SHAPE", 10 ** 6)
    unbounded = analyse_text(code)
    assert explorers[-1].capped == 0
    assert [(f.code, f.line) for f in unbounded.findings] == [("DMA003", 27)]


def test_a_loop_reports_its_unchecked_mapping_once():
    """Each round's mapping is a new instance of the same call site (the previous one is kept
    apart while still held): the site is reported once, on the shortest path, not once more for
    the instance from the round before."""
    result = analyse_text("""
int fill(struct adapter *ad)
{
	struct ring *r;
	int i;

	for (i = 0, r = &ad->rings[0]; i < ad->nrings; i++, r++) {
		r->dma = dma_map_single(ad->dev, r->buf, r->len, DMA_TO_DEVICE);
		r->ready = 1;
	}
	return 0;
}
""")
    assert [(f.line, f.code) for f in result.findings] == [(8, "DMA001")]
    assert len(result.findings[0].trace) == 4  # enter, the test, the map, the store: round one
