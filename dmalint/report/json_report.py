"""Machine-readable output: findings with their traces, and the files that failed."""

from __future__ import annotations

import json
from typing import TextIO

from dmalint import __version__
from dmalint.runner import RunResult


def as_dict(result: RunResult) -> dict:
    return {
        "tool": {"name": "dmalint", "version": __version__},
        "findings": [f.to_dict() for f in result.findings],
        "errors": [n.to_dict() for n in result.notices if n.kind == "error"],
        "notices": [n.to_dict() for n in result.notices if n.kind != "error"],
        "summary": {
            "files": result.files, "functions": result.functions,
            "functions_analysed": result.analysed, "functions_damaged": result.damaged,
            "findings": len(result.findings),
        },
    }


def report(result: RunResult, stream: TextIO, **_: object) -> None:
    json.dump(as_dict(result), stream, indent=2, sort_keys=False)
    stream.write("\n")
