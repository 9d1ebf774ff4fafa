"""The sparse/smatch voice: one greppable line per finding, the witness path under it."""

from __future__ import annotations

from typing import TextIO

from dmalint.runner import RunResult


def report(result: RunResult, stream: TextIO, trace: bool = False, color: bool = False) -> None:
    sev_colors = {"error": "\033[31m", "warning": "\033[33m", "note": "\033[36m"}
    for f in result.findings:
        sev = f.severity
        if color:
            sev = f"{sev_colors.get(sev, '')}{sev}\033[0m"
        # Only a verdict that says something: "unknown" and "static-only" stay in JSON/SARIF.
        verdict = f" ({f.verdict})" if f.verdict in ("confirmed", "refuted") else ""
        stream.write(f"{f.path}:{f.line}:{f.column}: {sev}: {f.message} [{f.code}]{verdict}\n")
        if trace:
            for s in f.trace:
                stream.write(f"    {s.path or f.path}:{s.line}: {s.kind}: {s.message}\n")


def report_notices(result: RunResult, stream: TextIO) -> None:
    for n in result.notices:
        where = f"{n.path}:{n.line}" if n.line else n.path
        label = "error" if n.kind == "error" else "notice"
        stream.write(f"{where}: {label}: {n.message}\n")


def summary_line(result: RunResult) -> str:
    errors = len(result.errors)
    s = f"{len(result.findings)} finding{'s' * (len(result.findings) != 1)} in {result.files} file{'s' * (result.files != 1)}"
    if errors:
        s += f"; {errors} file{'s' * (errors != 1)} could not be analysed"
    skipped = sum(1 for n in result.notices if n.kind == "skipped")
    if skipped:
        s += f"; {skipped} function{'s' * (skipped != 1)} skipped"
    return s
