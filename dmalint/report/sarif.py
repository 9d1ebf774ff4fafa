"""SARIF 2.1.0 output, shaped for GitHub code scanning (upload-sarif) and other SARIF viewers.

One run. tool.driver lists every diagnostic of the registry (not only those found), so a viewer
can show the documentation of a rule that has no result yet. Locations are relative to the
scanned root under the uriBaseId %SRCROOT%, which is what code scanning maps to the checkout.
"""

from __future__ import annotations

import importlib
from collections import Counter
from typing import TextIO


class _Lazy:
    """sarif_om, imported when a SARIF log is built: importing it (attrs, its many classes)
    costs more than analysing a file, and most runs print text."""

    def __getattr__(self, name: str):
        return getattr(importlib.import_module("sarif_om"), name)


om = _Lazy()

from dmalint import __version__
from dmalint.contracts.loader import load_registry
from dmalint.contracts.model import Diagnostic
from dmalint.findings import Finding, Notice
from dmalint.report import locations, ruledoc, sarif_json
from dmalint.runner import RunResult

SCHEMA_URI = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
INFORMATION_URI = "https://github.com/dmalint/dmalint"
HELP_URI_BASE = "https://github.com/dmalint/dmalint/blob/main/docs/rules.md#"
SRCROOT = "%SRCROOT%"

# GitHub code scanning rejects a run with more results than this, and keeps at most these many
# locations of a thread flow / related locations of a result.
MAX_RESULTS = 25_000
MAX_THREAD_FLOW_LOCATIONS = 10_000
MAX_RELATED_LOCATIONS = 1_000

LEVELS = {"error": "error", "warning": "warning", "note": "note"}
PROBLEM_SEVERITY = {"error": "error", "warning": "warning", "note": "recommendation"}
PRECISION = {"high": "high", "medium": "medium", "low": "low"}
# GitHub's scale: >= 9.0 critical, 7.0-8.9 high, 4.0-6.9 medium. A DMA error sends the device to
# a wrong address or frees the wrong range (memory corruption: high); a warning leaks mapping
# space (exhaustion: medium). Notes carry none.
SECURITY_SEVERITY = {"error": "7.0", "warning": "4.0"}


def report(result: RunResult, stream: TextIO, root: str | None = None, **_: object) -> None:
    """Write result as a SARIF log; paths are made relative to root (default: the cwd)."""
    sarif_json.dump(build_log(result, root), stream)


def build_log(result: RunResult, root: str | None = None) -> om.SarifLog:
    """The whole SARIF log as sarif-om objects."""
    root_dir = locations.resolve_root(root)
    diagnostics = list(load_registry().diagnostics)
    index = {d.code: i for i, d in enumerate(diagnostics)}
    rules = [_rule(d) for d in diagnostics]
    for f in result.findings:  # a code missing from the registry still gets a rule entry
        if f.code not in index:
            index[f.code] = len(rules)
            rules.append(om.ReportingDescriptor(id=f.code, name=f.name))

    kept, dropped = _cap(result.findings)
    run = om.Run(
        tool=om.Tool(driver=om.ToolComponent(
            name="dmalint", version=__version__, semantic_version=__version__,
            information_uri=INFORMATION_URI, rules=rules)),
        original_uri_base_ids={SRCROOT: om.ArtifactLocation(uri=locations.root_uri(root_dir))},
        results=[_result(f, index[f.code], root_dir, n) for f, n in _occurrences(kept)],
        invocations=[_invocation(result, dropped, root_dir)],
    )
    return om.SarifLog(version="2.1.0", schema_uri=SCHEMA_URI, runs=[run])


def _occurrences(findings: list[Finding]):
    """(finding, n): n counts the findings before it, in report order, with its fingerprint.
    Findings share one when one region leaks at two identical `return -ENOMEM;` lines, or the
    two arms of an `if` acquire one handle that leaks at one return (38 fingerprints shared by
    100 of 807 findings on drivers/); code scanning would merge each group into one alert."""
    seen: Counter = Counter()
    for f in findings:
        seen[f.fingerprint] += 1
        yield f, seen[f.fingerprint]


def _rule(d: Diagnostic) -> om.ReportingDescriptor:
    level = LEVELS.get(d.severity, "warning")
    tags = list(dict.fromkeys([*d.tags, d.group]))  # unique, in order: the schema demands it
    props: dict[str, object] = {
        "precision": PRECISION.get(d.confidence, "medium"),
        "problem.severity": PROBLEM_SEVERITY.get(d.severity, "warning"),
    }
    sec = SECURITY_SEVERITY.get(d.severity)
    if sec is not None:
        props["security-severity"] = sec
        # GitHub reads security-severity only from rules tagged "security".
        if "security" not in tags:
            tags.append("security")
    props["tags"] = tags
    return om.ReportingDescriptor(
        id=d.code,
        name=d.name,
        short_description=om.MultiformatMessageString(text=d.summary),
        full_description=om.MultiformatMessageString(text=ruledoc.unwrap(d.doc.what)),
        help=om.MultiformatMessageString(text=ruledoc.as_text(d), markdown=ruledoc.as_markdown(d)),
        help_uri=HELP_URI_BASE + d.code.lower(),
        default_configuration=om.ReportingConfiguration(level=level),
        properties=props,
    )


def _cap(findings: list[Finding]) -> tuple[list[Finding], int]:
    """At most MAX_RESULTS findings, errors kept before warnings and notes; order preserved."""
    if len(findings) <= MAX_RESULTS:
        return list(findings), 0
    rank = {"error": 0, "warning": 1, "note": 2}
    chosen = sorted(range(len(findings)), key=lambda i: (rank.get(findings[i].severity, 1), i))
    keep = sorted(chosen[:MAX_RESULTS])
    return [findings[i] for i in keep], len(findings) - MAX_RESULTS


def _artifact(path: str, root: str) -> om.ArtifactLocation:
    """A root-relative URI under %SRCROOT%, or an absolute file:// URI outside the root."""
    rel = locations.relative_path(path, root)
    if rel is None:
        return om.ArtifactLocation(uri=locations.file_uri(path))
    return om.ArtifactLocation(uri=locations.relative_uri(rel), uri_base_id=SRCROOT)


def _physical(path: str, root: str, line: int, column: int = 0) -> om.PhysicalLocation:
    region = None
    if line >= 1:  # line 0 means "the whole file"; the schema wants startLine >= 1
        region = om.Region(start_line=line, start_column=column if column >= 1 else None)
    return om.PhysicalLocation(artifact_location=_artifact(path, root), region=region)


def _result(f: Finding, rule_index: int, root: str, occurrence: int = 1) -> om.Result:
    props: dict[str, object] = {"function": f.function}
    if f.verdict is not None:
        props["verdict"] = f.verdict
        for key in ("verdict_reason", "dmesg"):
            if key in f.extra:
                props[key] = f.extra[key].split("\n") if key == "dmesg" else f.extra[key]
    return om.Result(
        rule_id=f.code,
        rule_index=rule_index,
        level=LEVELS.get(f.severity, "warning"),
        message=om.Message(text=f.message),
        locations=[om.Location(physical_location=_physical(f.path, root, f.line, f.column))],
        code_flows=_code_flows(f, root),
        related_locations=_related(f, root),
        # The fingerprint hashes code, path, function and normalised text, never a line number,
        # so an alert survives unrelated edits above it.  The second and later findings with
        # one fingerprint get ":n" (as GitHub's own line hashes count identical lines); the
        # first keeps the bare one, as earlier versions wrote it.
        partial_fingerprints=({"dmalint/v1": f.fingerprint if occurrence == 1
                               else f"{f.fingerprint}:{occurrence}"}
                              if f.fingerprint else None),
        properties=props,
    )


def _code_flows(f: Finding, root: str) -> list[om.CodeFlow] | None:
    """The witness path as one thread flow: each step a location with its message."""
    if not f.trace:
        return None
    steps = f.trace[:MAX_THREAD_FLOW_LOCATIONS]
    flow = om.ThreadFlow(locations=[
        om.ThreadFlowLocation(
            location=om.Location(physical_location=_physical(s.path or f.path, root, s.line),
                                 message=om.Message(text=s.message)),
            kinds=[s.kind] if s.kind else None)
        for s in steps])
    return [om.CodeFlow(thread_flows=[flow])]


def _related(f: Finding, root: str) -> list[om.Location] | None:
    """finding.related as locations with ids 1..n (unique, as the schema requires)."""
    entries = list(dict.fromkeys(f.related))[:MAX_RELATED_LOCATIONS]
    if not entries:
        return None
    return [om.Location(id=i, physical_location=_physical(f.path, root, line),
                        message=om.Message(text=msg))
            for i, (line, msg) in enumerate(entries, start=1)]


def _notification(n: Notice, root: str) -> om.Notification:
    return om.Notification(
        level="error",
        message=om.Message(text=f"{n.path}: {n.message}"),
        locations=[om.Location(physical_location=_physical(n.path, root, n.line))],
    )


def _invocation(result: RunResult, dropped: int, root: str) -> om.Invocation:
    """Whether every file was analysed; each one that was not is an error notification."""
    notes = [_notification(n, root) for n in result.errors]
    if dropped:
        notes.append(om.Notification(
            level="warning",
            message=om.Message(text=f"{dropped} results left out: GitHub code scanning accepts "
                                    f"at most {MAX_RESULTS} results per run")))
    return om.Invocation(execution_successful=not result.errors,
                         tool_execution_notifications=notes or None)
