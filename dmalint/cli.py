"""The command line: thin; parses flags, calls the runner, hands the result to a reporter.

Exit codes: 0 no findings, 1 findings, 2 a usage error or a file that could not be analysed
(the findings of the other files are still printed).
"""

from __future__ import annotations

import os
import sys
import textwrap

import click

from dmalint import __version__
from dmalint.contracts.errors import RuleFileError
from dmalint.contracts.loader import load_contracts, load_macro_tables, load_registry

EXIT_CLEAN, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2


def _load_rules_or_exit() -> None:
    try:
        load_macro_tables()
        load_contracts()
        load_registry()
    except RuleFileError as exc:
        click.echo(f"dmalint: error: {exc}", err=True)
        sys.exit(EXIT_ERROR)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="dmalint")
def main() -> None:
    """dmalint: static checker for the Linux kernel DMA API contract."""


@main.command()
@click.argument("paths", nargs=-1, required=True)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="Output format.")
@click.option("--trace", is_flag=True, help="Print each finding's witness path under it.")
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=None,
              help="Worker processes (default: all cores).")
def check(paths: tuple[str, ...], fmt: str, trace: bool, jobs: int | None) -> None:
    """Check C files and directories (recursively, .c and .h) for DMA API misuse."""
    from dmalint.report import json_report, text
    from dmalint.runner import run

    _load_rules_or_exit()
    result = run(list(paths), jobs)
    out = sys.stdout
    if fmt == "json":
        json_report.report(result, out)
    else:
        color = out.isatty() and "NO_COLOR" not in os.environ
        text.report(result, out, trace=trace, color=color)
        text.report_notices(result, sys.stderr)
        click.echo(text.summary_line(result), err=True)
    out.flush()
    if result.errors:
        sys.exit(EXIT_ERROR)
    sys.exit(EXIT_FINDINGS if result.findings else EXIT_CLEAN)


@main.command("rules")
def list_rules() -> None:
    """List every diagnostic: code, name, severity, confidence and summary."""
    _load_rules_or_exit()
    registry = load_registry()
    width = max(len(d.name) for d in registry.diagnostics)
    for d in registry.diagnostics:
        click.echo(f"{d.code}  {d.name:<{width}}  {d.severity:<7}  {d.confidence:<6}  {d.summary}")


@main.command()
@click.argument("code")
def explain(code: str) -> None:
    """Print a diagnostic's documentation (by code, DMA001, or name)."""
    _load_rules_or_exit()
    diag = load_registry().lookup(code)
    if diag is None:
        click.echo(f"dmalint: error: unknown diagnostic '{code}' (see 'dmalint rules')", err=True)
        sys.exit(EXIT_ERROR)
    click.echo(f"{diag.code} {diag.name} ({diag.severity}, confidence {diag.confidence})\n")
    click.echo(f"{diag.summary}.\n")
    for title, body in (("What it checks", diag.doc.what), ("Why it is a bug", diag.doc.why),
                        ("Example", diag.doc.example), ("Fix", diag.doc.fix)):
        click.echo(f"## {title}\n")
        click.echo(textwrap.dedent(body).rstrip() + "\n")


if __name__ == "__main__":  # pragma: no cover
    main()
