"""Which files are read at all: mention_test must say exactly what the whole-word regex says."""

from __future__ import annotations

import pytest

from dmalint.analysis import mention_pattern, mention_test, mentioning
from dmalint.contracts.loader import load_contracts

API = load_contracts().api_names()

TEXTS = [
    b"",
    b"static int f(void) { return dma_map_single(dev, p, 4, DMA_TO_DEVICE); }",
    b"x = mydma_map_single(dev);",  # not a whole word
    b"x = dma_map_single_attrs_foo(dev);",  # a longer name
    b"msg_init(); sg_init_table(s, 1);",  # `sg_` inside other words only
    b"sg_init_one(&sg, buf, len);",
    b"usb_control_msg(udev, pipe, 0, 0, 0, 0, buf, 4, 100);",
    b"/* dma_ */ int dma_; usb_x();",
    b"dma_free_coherent",  # at the very end
    b"a\xff\xfe dma_alloc_coherent\x00",
]


@pytest.mark.parametrize("raw", TEXTS)
def test_api_mentions_agree_with_the_regex(raw):
    assert mention_test(API)(raw) == (mention_pattern(API).search(raw) is not None)


def test_many_names_fall_back_to_the_regex():
    names = frozenset(f"helper{i}_do" for i in range(100)) | {"probe"}
    test = mention_test(names)
    assert test(b"ret = helper42_do(x);")
    assert test(b"probe(dev)")
    assert not test(b"helper42_done(x); reprobe(dev);")


def test_short_prefixes_stand_for_their_names():
    names = frozenset({"sg_set_buf", "spi_read"})
    test = mention_test(names)
    assert test(b"sg_set_buf(&sg, p, 4);")
    assert not test(b"msg_set_buf(); spi_readl(x);")


DRIVER_NAMES = frozenset({"foo_probe", "foo_remove", "foo_xmit", "init", "helper2", "a"})
DRIVER_TEXTS = TEXTS + [
    b"err = foo_probe(pdev);",
    b"err = foo_probe2(pdev); xfoo_remove();",
    b"static int init(void)",
    b"reinit(); initial = 1;",
    b"x = a;",
    b"xa = b_a;",
    b"\xff\xfeinit\xc3",
    b"helper2",
]


@pytest.mark.parametrize("texts_size", ["small", "large"])
def test_mentioning_agrees_with_the_regex_either_way(texts_size):
    """Below the size that repays compiling the names' regex, the texts' words are looked up
    instead; both ways must say what the regex says, text by text."""
    texts = DRIVER_TEXTS if texts_size == "small" else DRIVER_TEXTS + [b" " * (1 << 20)]
    expected = [mention_pattern(DRIVER_NAMES).search(t) is not None for t in texts]
    assert mentioning(DRIVER_NAMES, texts) == expected
    assert [mention_test(DRIVER_NAMES)(t) for t in texts] == expected


def test_mentioning_nothing():
    assert mentioning(frozenset(), [b"anything"]) == [False]
