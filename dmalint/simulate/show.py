"""`dmalint replay`: find the finding(s) a user names and print their simulated trace.

A target is PATH:LINE (the file's directory is analysed again, as one driver) or a finding's
fingerprint (looked for under the paths given).  The replay is run again with recording on, so
each step shows the dma-debug table of live entries after it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TextIO

from dmalint.contracts.loader import load_contracts
from dmalint.findings import Finding
from dmalint.simulate.program import Program
from dmalint.simulate.replay import Simulated
from dmalint.simulate.verdict import simulate_finding
from dmalint.source import SourceError, read_source

_TARGET = re.compile(r"^(.+):(\d+)$")
_FINGERPRINT = re.compile(r"^[0-9a-f]{8,40}$")


class TargetError(Exception):
    """A target that names no file, no line or no finding (a user error: one line, exit 2)."""


def parse_target(target: str, paths: tuple[str, ...]) -> tuple[list[str], str | None, int | None, str | None]:
    """(paths to analyse, file, line, fingerprint) for a PATH:LINE or a fingerprint target."""
    m = _TARGET.match(target)
    if m:
        path = m.group(1)
        if not os.path.isfile(path):
            raise TargetError(f"{path}: no such file")
        return [os.path.dirname(path) or "."], path, int(m.group(2)), None
    if _FINGERPRINT.match(target):
        return list(paths) or ["."], None, None, target
    raise TargetError(f"'{target}' is neither PATH:LINE nor a finding's fingerprint")


def pick(findings: list[Finding], path: str | None, line: int | None,
         fingerprint: str | None) -> list[Finding]:
    if fingerprint is not None:
        return [f for f in findings if f.fingerprint.startswith(fingerprint)]
    want = os.path.realpath(path)
    return [f for f in findings if f.line == line and os.path.realpath(f.path) == want]


def program_for(findings: list[Finding], tables, include_dirs=()) -> Program:
    """Every C file of the findings' directories (the helpers the replay may enter)."""
    sources = {}
    for d in sorted({os.path.dirname(f.path) or "." for f in findings}):
        for p in sorted(Path(d).iterdir()):
            if p.suffix in (".c", ".h") and p.is_file():
                display = os.path.join(d, p.name) if d != "." else p.name
                try:
                    sources[display] = read_source(p, display, tables)
                except SourceError:
                    continue
    for f in findings:  # the display path the analysis used
        if f.path not in sources and os.path.isfile(f.path):
            sources[f.path] = read_source(Path(f.path), f.path, tables)
    return Program(sources, load_contracts(), include_dirs, tables)


def show(f: Finding, sim: Simulated, out: TextIO) -> None:
    out.write(f"{f.path}:{f.line}:{f.column}: {f.severity}: {f.message} [{f.code}]\n")
    out.write(f"  verdict: {sim.verdict}: {sim.reason}\n")
    if sim.steps:
        out.write("  simulated trace:\n")
    last = None
    for path, line, what, table in sim.steps:
        out.write(f"    {os.path.basename(path)}:{line}: {what}\n")
        if table != last:
            for entry in [e for e in table if not e.startswith(("cache: ", "~ "))] or \
                    ["(no live entries)"]:
                out.write(f"        live: {entry}\n")
            for entry in table:
                if entry.startswith("~ "):
                    out.write(f"        cache event: {entry[2:]}\n")
                elif entry.startswith("cache: "):
                    out.write(f"        {entry}\n")
            last = table
    if sim.dmesg:
        out.write("  dmesg:\n")
        for msg in sim.dmesg:
            for part in msg.split("\n"):
                out.write(f"    {part}\n")
    out.write("\n")


def replay_findings(findings: list[Finding], tables, out: TextIO, include_dirs=()) -> None:
    program = program_for(findings, tables, include_dirs)
    for f in findings:
        show(f, simulate_finding(f, program, record=True), out)
