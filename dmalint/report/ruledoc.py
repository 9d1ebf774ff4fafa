"""A diagnostic's documentation rendered for reporters: plain text and Markdown.

The registry keeps four sections per rule (What it checks / Why it is a bug / Example / Fix).
A section that starts indented is C code (the registry's convention; a goto label inside it may
sit at column 0); anything else is prose that may already use Markdown backticks.
"""

from __future__ import annotations

import textwrap
from typing import NamedTuple

from dmalint.contracts.model import Diagnostic

SECTION_TITLES = ("What it checks", "Why it is a bug", "Example", "Fix")


class Section(NamedTuple):
    title: str
    body: str  # dedented, without leading/trailing blank lines
    is_code: bool


def is_code(raw: str) -> bool:
    """True when a raw section is a code sample: its first non-blank line is indented."""
    first = next((line for line in raw.splitlines() if line.strip()), "")
    return first[:1] in (" ", "\t")


def sections(diag: Diagnostic) -> list[Section]:
    """The four doc sections in order."""
    raws = (diag.doc.what, diag.doc.why, diag.doc.example, diag.doc.fix)
    return [Section(title, textwrap.dedent(raw).strip("\n").rstrip(), is_code(raw))
            for title, raw in zip(SECTION_TITLES, raws)]


def unwrap(body: str) -> str:
    """A hard-wrapped prose paragraph as one line (for one-line fields like fullDescription)."""
    return " ".join(body.split())


def as_text(diag: Diagnostic) -> str:
    """The doc as plain text: each section under its title, code indented."""
    parts = [f"{diag.code} {diag.name}: {diag.summary}."]
    for s in sections(diag):
        body = textwrap.indent(s.body, "    ") if s.is_code else s.body
        parts.append(f"{s.title}:\n{body}")
    return "\n\n".join(parts) + "\n"


def as_markdown(diag: Diagnostic) -> str:
    """The doc as Markdown: sections as headings, code samples fenced as C."""
    parts = [f"**{diag.code} {diag.name}**: {diag.summary}."]
    for s in sections(diag):
        body = f"```c\n{s.body}\n```" if s.is_code else s.body
        parts.append(f"## {s.title}\n\n{body}")
    return "\n\n".join(parts) + "\n"
