"""GitHub Actions workflow commands: each finding becomes an annotation on the pull request.

    ::error file=drivers/foo/bar.c,line=10,col=2,title=DMA001 unchecked-dma-mapping::message

No upload step and no code-scanning licence needed; the runner turns these stdout lines into
annotations. Paths are relative to root (default: the working directory, which in a workflow
is the checkout), because annotations only attach to repository-relative paths.
"""

from __future__ import annotations

from typing import TextIO

from dmalint.findings import Finding, Notice
from dmalint.report import locations
from dmalint.runner import RunResult

COMMANDS = {"error": "error", "warning": "warning", "note": "notice"}


def escape_data(text: str) -> str:
    """A command's message: %, CR and LF would end or corrupt the command."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """A property value: also ':' and ',', which separate the properties."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def command(name: str, message: str, **props: object) -> str:
    """One workflow command line; properties whose value is None are left out."""
    given = ",".join(f"{k}={escape_property(str(v))}" for k, v in props.items() if v is not None)
    return f"::{name}{' ' + given if given else ''}::{escape_data(message)}"


def _path(path: str, root: str) -> str:
    """Repository-relative when under root; otherwise as given (GitHub will not attach it)."""
    rel = locations.relative_path(path, root)
    return rel if rel is not None else path


def finding_line(f: Finding, root: str) -> str:
    """The annotation for one finding."""
    return command(COMMANDS.get(f.severity, "warning"), f.message,
                   file=_path(f.path, root), line=f.line if f.line >= 1 else None,
                   col=f.column if f.column >= 1 else None, title=f"{f.code} {f.name}")


def notice_line(n: Notice, root: str) -> str:
    """The annotation for a file that could not be analysed."""
    return command("error", f"dmalint could not analyse this file: {n.message}",
                   file=_path(n.path, root), line=n.line if n.line >= 1 else None,
                   title="dmalint: file not analysed")


def report(result: RunResult, stream: TextIO, root: str | None = None, **_: object) -> None:
    """Write one workflow command per finding and per file that was not analysed."""
    root_dir = locations.resolve_root(root)
    for f in result.findings:
        stream.write(finding_line(f, root_dir) + "\n")
    for n in result.errors:
        stream.write(notice_line(n, root_dir) + "\n")
