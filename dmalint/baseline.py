"""Baselines: record today's findings, then show only the new ones.

A baseline is JSON: {"version": 1, "findings": [{fingerprint, code, path, function, message}]},
paths relative to the baseline file's directory (for people reading its diffs; matching uses the
fingerprint alone).  A fingerprint holds the rule, the path as reported, the function, the text
of the finding's line and the acquire it concerns, but no line number, so a finding stays
matched when unrelated lines move it.  Matching is by multiset: a fingerprint recorded N times
hides at most N findings (a second copy of a baselined bug is new).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Iterable

from dmalint.findings import Finding
from dmalint.report.output import open_output

VERSION = 1


class BaselineError(Exception):
    """A baseline that cannot be read or written; the message names the file."""


def write(path: str, findings: Iterable[Finding]) -> int:
    """Write the findings' fingerprints to path atomically; the number written."""
    base = os.path.dirname(os.path.abspath(path))
    entries = sorted(({"fingerprint": f.fingerprint, "code": f.code,
                       "path": Path(os.path.relpath(os.path.abspath(f.path), base)).as_posix(),
                       "function": f.function, "message": f.message} for f in findings),
                     key=lambda e: (e["path"], e["code"], e["function"], e["fingerprint"],
                                    e["message"]))
    try:
        with open_output(path) as out:
            json.dump({"version": VERSION, "findings": entries}, out, indent=2)
            out.write("\n")
    except OSError as exc:
        raise BaselineError(f"cannot write baseline {path}: {exc.strerror or exc}") from None
    return len(entries)


def load(path: str) -> Counter[str]:
    """How many times each fingerprint is recorded in the baseline at path."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise BaselineError(f"cannot read baseline {path}: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BaselineError(f"baseline {path} is not JSON: {exc}") from None
    if not isinstance(data, dict) or data.get("version") != VERSION or \
            not isinstance(data.get("findings"), list):
        raise BaselineError(f"baseline {path} is not a dmalint baseline of version {VERSION} "
                            f"(write one with --write-baseline)")
    counts: Counter[str] = Counter()
    for i, entry in enumerate(data["findings"]):
        if not isinstance(entry, dict) or not isinstance(entry.get("fingerprint"), str):
            raise BaselineError(f"baseline {path}: entry {i} has no fingerprint")
        counts[entry["fingerprint"]] += 1
    return counts


def apply(findings: Iterable[Finding], recorded: Counter[str]) -> tuple[list[Finding], int]:
    """(the findings the baseline does not hide, how many it hid)."""
    left = Counter(recorded)
    kept, hidden = [], 0
    for f in findings:
        if left[f.fingerprint] > 0:
            left[f.fingerprint] -= 1
            hidden += 1
        else:
            kept.append(f)
    return kept, hidden
