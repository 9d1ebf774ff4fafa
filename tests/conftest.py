"""Shared helpers: analyse a C snippet or a fixture file in-process."""

from __future__ import annotations

import os
import re
from pathlib import Path

# Existing tests compare exact text output, written before verdicts existed: the simulator is
# off for them; tests/test_sim_*.py switch it on where they need it.
os.environ.setdefault("DMALINT_NO_SIMULATE", "1")

import pytest

from dmalint.analysis import FileResult, analyse_source
from dmalint.consteval import Target
from dmalint.contracts.loader import load_contracts, load_macro_tables, load_registry
from dmalint.source import make_source

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "fixtures"


def analyse_text(code: str, path: str = "snippet.c") -> FileResult:
    """Analyse C text; a `dmalint-granule: N` comment in it sets the DMA granule."""
    src = make_source(code.encode(), path, load_macro_tables())
    granule = re.search(r"dmalint-granule:\s*(\d+)", code)
    target = Target(dma_minalign=int(granule.group(1))) if granule else Target()
    return analyse_source(src, load_contracts(), load_registry(), target=target)


@pytest.fixture
def analyse():
    return analyse_text
