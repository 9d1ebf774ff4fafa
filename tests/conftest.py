"""Shared helpers: analyse a C snippet or a fixture file in-process."""

from __future__ import annotations

from pathlib import Path

import pytest

from dmalint.analysis import FileResult, analyse_source
from dmalint.contracts.loader import load_contracts, load_macro_tables, load_registry
from dmalint.source import make_source

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "fixtures"


def analyse_text(code: str, path: str = "snippet.c") -> FileResult:
    src = make_source(code.encode(), path, load_macro_tables())
    return analyse_source(src, load_contracts(), load_registry())


@pytest.fixture
def analyse():
    return analyse_text
