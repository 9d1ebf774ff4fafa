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
@click.option("--format", "fmt", type=click.Choice(["text", "json", "sarif", "github"]),
              default="text", show_default=True,
              help="Output format: text, json, sarif (SARIF 2.1.0 for code scanning) or github "
                   "(GitHub Actions annotations).")
@click.option("-o", "--output", "output", type=click.Path(dir_okay=False, writable=True),
              default=None, help="Write the report to FILE (atomically) instead of stdout.")
@click.option("--trace", is_flag=True, help="Print each finding's witness path under it.")
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=None,
              help="Worker processes (default: all cores).")
@click.option("--file-timeout", type=click.FloatRange(min=0), default=20.0, show_default=True,
              metavar="SECONDS",
              help="Give up on a file after this long and report it (0: no limit).")
@click.option("--cache-dir", type=click.Path(file_okay=False), default=".dmalint_cache",
              show_default=True, help="Keep per-file results here; unchanged files are not "
                                      "analysed again.")
@click.option("--no-cache", is_flag=True, help="Neither read nor write the cache.")
def check(paths: tuple[str, ...], fmt: str, output: str | None, trace: bool,
          jobs: int | None, file_timeout: float, cache_dir: str, no_cache: bool) -> None:
    """Check C files and directories (recursively, .c and .h) for DMA API misuse."""
    from dmalint.report import github, json_report, sarif, text
    from dmalint.report.output import open_output
    from dmalint.cache import Cache
    from dmalint.runner import default_cache_options, run

    _load_rules_or_exit()
    cache = None if no_cache else Cache.open(cache_dir, default_cache_options())
    result = run(list(paths), jobs, timeout=file_timeout or None, cache=cache)
    reporters = {"json": json_report.report, "sarif": sarif.report, "github": github.report}
    try:
        with open_output(output) as out:
            if fmt in reporters:
                reporters[fmt](result, out)
            else:
                color = out.isatty() and "NO_COLOR" not in os.environ
                text.report(result, out, trace=trace, color=color)
    except OSError as exc:  # e.g. --output into a missing or read-only directory
        click.echo(f"dmalint: error: cannot write {output or 'stdout'}: {exc.strerror or exc}",
                   err=True)
        sys.exit(EXIT_ERROR)
    if fmt == "text":
        text.report_notices(result, sys.stderr)
    if fmt == "text" or output is not None:  # a report written to a file leaves stdout silent
        click.echo(text.summary_line(result), err=True)
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
