"""The command line: thin; parses flags, calls the runner, hands the result to a reporter.

Exit codes: 0 no findings, 1 findings, 2 a usage error or a file that could not be analysed
(the findings of the other files are still printed).
"""

from __future__ import annotations

import dataclasses
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


def _selectors(ctx, param, values: tuple[str, ...]) -> tuple[str, ...] | None:
    """--select/--ignore: comma-separated and repeatable; None when not given."""
    if not values:
        return None
    return tuple(part.strip() for v in values for part in v.split(",") if part.strip())


def _granule(ctx, param, value: int | None) -> int | None:
    if value is not None and (value < 8 or value & (value - 1)):
        raise click.BadParameter(f"{value} is not a power of two >= 8")
    return value


def _config_or_exit(paths, config_file: str | None, isolated: bool, **flags):
    """The configuration file (found or given) with the flags on top; exit 2 when it is bad."""
    from dmalint.config import load_config

    if config_file is not None and isolated:
        click.echo("dmalint: error: --config and --isolated exclude each other", err=True)
        sys.exit(EXIT_ERROR)
    try:
        return load_config(list(paths), config_file, isolated).with_flags(**flags)
    except RuleFileError as exc:
        click.echo(f"dmalint: error: {exc}", err=True)
        sys.exit(EXIT_ERROR)


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
              help="Worker processes (default: the configuration's 'jobs', else all cores).")
@click.option("--file-timeout", type=click.FloatRange(min=0), default=None, metavar="SECONDS",
              help="Give up on a file after this long and report it (0: no limit) "
                   "[default: 20].")
@click.option("--cache-dir", type=click.Path(file_okay=False), default=".dmalint_cache",
              show_default=True, help="Keep per-file results here; unchanged files are not "
                                      "analysed again.")
@click.option("--no-cache", is_flag=True, help="Neither read nor write the cache.")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), default=None,
              help="Read the configuration from FILE (.dmalint.toml, or a pyproject.toml with "
                   "[tool.dmalint]) instead of searching for one.")
@click.option("--isolated", is_flag=True, help="Ignore every configuration file.")
@click.option("--select", multiple=True, callback=_selectors, metavar="RULES",
              help="Only these rules: codes, prefixes (DMA00), names or groups, "
                   "comma-separated; replaces the configuration's selection.")
@click.option("--ignore", multiple=True, callback=_selectors, metavar="RULES",
              help="Leave out these rules (same forms as --select).")
@click.option("--dma-granule", type=int, default=None, callback=_granule, metavar="BYTES",
              help="ARCH_DMA_MINALIGN of the target: 64 by default, 128 for arm64.")
@click.option("--report-unused-suppressions", is_flag=True,
              help="Report 'dmalint: ignore' comments that suppress nothing (exit 1 if any).")
@click.option("--baseline", "baseline_file", type=click.Path(dir_okay=False), default=None,
              help="Hide the findings recorded in this baseline file.")
@click.option("--write-baseline", "write_baseline", type=click.Path(dir_okay=False),
              default=None, help="Record the current findings in FILE, and exit 0.")
@click.option("--diff", "diff_rev", metavar="REV", default=None,
              help="Only findings on lines changed since the git revision REV.")
@click.option("--statistics", is_flag=True,
              help="After the report, print the number of findings per rule on stderr.")
@click.option("--confirmed-only", is_flag=True,
              help="Only findings the reference simulator confirmed (dma-debug would print "
                   "their message).")
def check(paths: tuple[str, ...], fmt: str, output: str | None, trace: bool,
          jobs: int | None, file_timeout: float | None, cache_dir: str, no_cache: bool,
          config_file: str | None, isolated: bool, select: tuple[str, ...] | None,
          ignore: tuple[str, ...] | None, dma_granule: int | None,
          report_unused_suppressions: bool, baseline_file: str | None,
          write_baseline: str | None, diff_rev: str | None, statistics: bool,
          confirmed_only: bool) -> None:
    """Check C files and directories (recursively, .c and .h) for DMA API misuse."""
    from dmalint import baseline, postfilter
    from dmalint.cache import Cache
    from dmalint.gitdiff import ChangedLines, DiffError
    from dmalint.progress import Progress
    from dmalint.report import github, json_report, sarif, statistics as stats, text
    from dmalint.report.output import open_output
    from dmalint.runner import DEFAULT_FILE_TIMEOUT, default_cache_options, run

    _load_rules_or_exit()
    config = _config_or_exit(paths, config_file, isolated, select=select, ignore=ignore or (),
                             dma_granule=dma_granule, jobs=jobs, file_timeout=file_timeout)
    recorded = changed = None
    try:
        if baseline_file is not None and write_baseline is None:
            recorded = baseline.load(baseline_file)
        if diff_rev is not None:
            changed = ChangedLines.since(diff_rev, list(paths))
    except (baseline.BaselineError, DiffError) as exc:
        click.echo(f"dmalint: error: {exc}", err=True)
        sys.exit(EXIT_ERROR)
    cache = None if no_cache else Cache.open(cache_dir, default_cache_options(config))
    timeout = config.file_timeout if config.file_timeout is not None else DEFAULT_FILE_TIMEOUT
    progress = Progress(sys.stderr)
    try:
        result = run(list(paths), config.jobs, timeout=timeout or None, cache=cache,
                     config=config, progress=progress)
    finally:
        progress.close()
    done = postfilter.apply(result, config, report_unused_suppressions, recorded, changed)
    result = done.result
    if confirmed_only:
        result = dataclasses.replace(result, findings=[f for f in result.findings
                                                       if f.verdict == "confirmed"])
    if write_baseline is not None:
        try:
            n = baseline.write(write_baseline, done.current)
        except baseline.BaselineError as exc:
            click.echo(f"dmalint: error: {exc}", err=True)
            sys.exit(EXIT_ERROR)
        text.report_notices(result, sys.stderr)
        click.echo(f"dmalint: wrote {n} finding{'s' * (n != 1)} to the baseline {write_baseline}",
                   err=True)
        sys.exit(EXIT_ERROR if result.errors else EXIT_CLEAN)
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
    else:  # machine formats carry no suppression notices (json has them in "notices" too)
        text.report_notices(dataclasses.replace(
            result, notices=[n for n in result.notices if n.kind == "suppression"]), sys.stderr)
    if recorded is not None:
        click.echo(f"dmalint: {done.baselined} finding{'s' * (done.baselined != 1)} hidden by "
                   f"the baseline {baseline_file}", err=True)
    if fmt == "text" or output is not None:  # a report written to a file leaves stdout silent
        click.echo(text.summary_line(result), err=True)
    if statistics:
        stats.report(result.findings, sys.stderr)
    if result.errors:
        sys.exit(EXIT_ERROR)
    unused = report_unused_suppressions and done.unused_suppressions
    sys.exit(EXIT_FINDINGS if result.findings or unused else EXIT_CLEAN)


@main.command(context_settings={"ignore_unknown_options": True, "help_option_names": []})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def kbuild(args: tuple[str, ...]) -> None:
    """The checker for kbuild: make C=1 CHECK="dmalint kbuild" M=drivers/foo.

    Takes the compiler's flags and the C file as kbuild passes them; uses -I, -D, -include and
    --arch, ignores the rest.  Prints sparse-style lines on stderr and exits 0 even with
    findings, unless --error-exit is given (or DMALINT_KBUILD_ERROR=1 is set)."""
    from dmalint import kbuild as kb, postfilter
    from dmalint.runner import DEFAULT_FILE_TIMEOUT, run

    if args in (("--help",), ("-h",)):
        click.echo(click.get_current_context().get_help())
        return
    parsed = kb.parse_compiler_args(list(args))
    if not parsed.files:
        click.echo("dmalint kbuild: error: no C file in the arguments", err=True)
        sys.exit(EXIT_ERROR)
    _load_rules_or_exit()
    config = _config_or_exit(parsed.files, None, False)
    defines = {**parsed.defines,
               **kb.forced_defines(parsed.forced_includes, config.tables(load_macro_tables()))}
    config = config.with_flags(
        include_dirs=config.include_dirs + tuple(os.path.abspath(d) for d in parsed.include_dirs),
        defines=tuple(defines.values()),
        dma_granule=None if config.dma_granule is not None else kb.granule_for(parsed.arch))
    timeout = config.file_timeout if config.file_timeout is not None else DEFAULT_FILE_TIMEOUT
    result = run(parsed.files, 1, timeout=timeout or None, cache=None, config=config)
    result = postfilter.apply(result, config).result
    kb.report(result, sys.stderr)
    if kb.error_exit_requested(parsed) and (result.findings or result.errors):
        sys.exit(EXIT_ERROR if result.errors else EXIT_FINDINGS)


@main.command()
@click.argument("target")
@click.argument("paths", nargs=-1)
def replay(target: str, paths: tuple[str, ...]) -> None:
    """Replay a finding against the dma-debug model, step by step.

    TARGET is PATH:LINE (the file's directory is analysed again) or a finding's fingerprint
    (from the JSON output; looked for under PATHS, default '.').  Prints each simulated step
    with the live entries after it, the verdict, and the dmesg lines the kernel would print."""
    from dmalint.runner import DEFAULT_FILE_TIMEOUT, run
    from dmalint.simulate.show import TargetError, parse_target, pick, replay_findings

    _load_rules_or_exit()
    try:
        where, path, line, fingerprint = parse_target(target, paths)
    except TargetError as exc:
        click.echo(f"dmalint: error: {exc}", err=True)
        sys.exit(EXIT_ERROR)
    config = _config_or_exit(where, None, False)
    timeout = config.file_timeout if config.file_timeout is not None else DEFAULT_FILE_TIMEOUT
    os.environ.pop("DMALINT_NO_SIMULATE", None)  # replaying is simulating
    result = run(where, 1, timeout=timeout or None, cache=None, config=config)
    found = pick(result.findings, path, line, fingerprint)
    if not found:
        click.echo(f"dmalint: error: no finding at {target}", err=True)
        sys.exit(EXIT_ERROR)
    replay_findings(found, config.tables(load_macro_tables()), sys.stdout, config.include_dirs)


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
