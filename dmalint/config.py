"""Configuration: `.dmalint.toml` or `[tool.dmalint]` in pyproject.toml, then flags -> one Config.

The file is found by walking up from the first path argument's directory: in each directory a
`.dmalint.toml` wins over a pyproject.toml with a `[tool.dmalint]` table (a pyproject.toml
without one is passed over); the walk stops after a directory holding `.git`, or at the root.
Paths in the file (`include-dirs`, `exclude`) are relative to the file's directory.  Command-line
flags override the file; `--isolated` ignores every file.  A bad file is a ConfigError naming
the file and, when it can be found, the line.
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from functools import cached_property
from pathlib import Path

from dmalint.consteval import Target
from dmalint.contracts.errors import RuleFileError
from dmalint.contracts.loader import load_registry, read_toml
from dmalint.contracts.macros import MacroTables, tables_from_data
from dmalint.select import SEVERITIES, Layer, SelectorError, enabled_codes, parse_selector, \
    severity_overrides
from dmalint.source import Define

CONFIG_NAME = ".dmalint.toml"
PYPROJECT = "pyproject.toml"
DEFAULT_GRANULE = 64
DEFAULT_PAGE_SIZE = 4096
MACRO_KEYS = ("attributes", "attribute_functions", "iterators", "declarators", "iterator_cursors",
              "string_functions")


class ConfigError(RuleFileError):
    """A configuration file (or flag) that cannot be used, located by path and line."""


@dataclass(frozen=True)
class Config:
    """Everything a run is configured with; the defaults are dmalint's built-in behaviour."""

    source: str | None = None  # the file it came from, None for defaults and flags only
    root: str = field(default_factory=os.getcwd)  # directory relative paths are resolved in
    layers: tuple[Layer, ...] = ()  # (select, ignore): the file's, then the flags'
    severity: tuple[tuple[str, str], ...] = ()  # (selector, severity) in file order
    macros: dict = field(default_factory=dict, compare=False)  # [macros] as written
    include_dirs: tuple[str, ...] = ()  # absolute
    dma_granule: int | None = None
    page_size: int | None = None
    exclude: tuple[str, ...] = ()
    file_timeout: float | None = None
    jobs: int | None = None
    defines: tuple[Define, ...] = ()  # -D and -include of a kbuild invocation

    def target(self) -> Target:
        """The machine layouts are computed for."""
        return Target(dma_minalign=self.dma_granule or DEFAULT_GRANULE,
                      page_size=self.page_size or DEFAULT_PAGE_SIZE)

    def tables(self, builtin: MacroTables) -> MacroTables:
        """The built-in macro tables with the file's [macros] added."""
        if not self.macros:
            return builtin
        return builtin.extended(tables_from_data(self.macros, self.source or "[macros]"))

    def enabled(self) -> frozenset[str]:
        return enabled_codes(self.layers, load_registry())

    def severities(self) -> dict[str, str]:
        return severity_overrides(self.severity, load_registry())

    def with_flags(self, select: tuple[str, ...] | None = None, ignore: tuple[str, ...] = (),
                   **values) -> "Config":
        """This configuration with command-line values on top (None: not given)."""
        out = self
        if select is not None or ignore:
            for flag, texts in (("--select", select or ()), ("--ignore", ignore)):
                for t in texts:
                    try:
                        parse_selector(t, load_registry())
                    except SelectorError as exc:
                        raise ConfigError(flag, None, str(exc)) from None
            out = dataclasses.replace(out, layers=out.layers + ((select, tuple(ignore)),))
        given = {k: v for k, v in values.items() if v is not None}
        return dataclasses.replace(out, **given) if given else out

    def is_excluded(self, path: str | Path) -> bool:
        """Whether an `exclude` pattern matches the path (relative to the config's directory)
        or one of its parents; a pattern without '/' also matches any single component."""
        if not self.exclude:
            return False
        try:
            rel = Path(os.path.realpath(path)).relative_to(self._real_root)
        except ValueError:  # outside the configured tree: no pattern can name it
            return False
        parts = rel.parts
        for i in range(1, len(parts) + 1):
            sub = "/".join(parts[:i])
            for pat in self.exclude:
                if fnmatchcase(sub, pat) or ("/" not in pat and fnmatchcase(parts[i - 1], pat)):
                    return True
        return False

    @cached_property
    def _real_root(self) -> str:
        return os.path.realpath(self.root)

    def cache_options(self) -> dict:
        """What in the configuration changes analysis results (selection, severities and
        suppressions are applied afterwards and do not)."""
        return {"dma_granule": self.dma_granule or DEFAULT_GRANULE,
                "page_size": self.page_size or DEFAULT_PAGE_SIZE,
                "macros": self.macros, "include_dirs": list(self.include_dirs),
                "defines": [(d.name, d.params, d.value) for d in self.defines]}


# --- finding and reading the file --------------------------------------------------------------

_TOOL_TABLE = re.compile(r"^\s*\[\s*tool\s*\.\s*dmalint\s*[\].]", re.M)


def find_config_file(start: str | Path) -> Path | None:
    """The configuration that applies to start (a file or directory), or None."""
    d = Path(os.path.realpath(start))
    if not d.is_dir():
        d = d.parent
    for here in (d, *d.parents):
        own = here / CONFIG_NAME
        if own.is_file():
            return own
        pyproject = here / PYPROJECT
        if pyproject.is_file() and _mentions_tool_table(pyproject):
            return pyproject
        if (here / ".git").exists():
            return None
    return None


def _mentions_tool_table(path: Path) -> bool:
    try:
        return bool(_TOOL_TABLE.search(path.read_text(encoding="utf-8", errors="replace")))
    except OSError:
        return False


def load_config(paths: list[str] | tuple[str, ...], explicit: str | None = None,
                isolated: bool = False) -> Config:
    """The configuration for a run over paths: --config FILE, else the file found by walking
    up from the first path, else the defaults (always the defaults when isolated)."""
    if isolated:
        return Config()
    if explicit is not None:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigError(explicit, None, "no such configuration file")
    else:
        path = find_config_file(paths[0] if paths else ".")
        if path is None:
            return Config()
    return read_config(path)


def read_config(path: Path) -> Config:
    """Parse and validate one configuration file."""
    shown = _shown(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(shown, None, f"cannot read: {getattr(exc, 'strerror', None) or exc}") \
            from None
    data = read_toml(shown, text)
    locate = _Locator(text)
    if path.name == PYPROJECT:
        data = data.get("tool", {}).get("dmalint")
        if not isinstance(data, dict):
            raise ConfigError(shown, None, "no [tool.dmalint] table")
        locate.start = locate.header("tool.dmalint")
    return _validate(data, shown, str(path.resolve().parent), locate)


def _shown(path: Path) -> str:
    """A path for messages: relative when under the working directory."""
    full = os.path.abspath(path)
    rel = os.path.relpath(full)
    return full if rel.startswith("..") else rel


class _Locator:
    """Lines of keys and values in a TOML text, for error messages (tomllib keeps none)."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()
        self.start = 0

    def header(self, table: str) -> int:
        pat = re.compile(r"^\s*\[\s*" + r"\s*\.\s*".join(map(re.escape, table.split("."))))
        return next((i for i, line in enumerate(self.lines) if pat.match(line)), 0)

    def key(self, key: str) -> int | None:
        k = r"[\"']?" + re.escape(key) + r"[\"']?"
        return self._find(re.compile(r"^\s*" + k + r"\s*=|[{,]\s*" + k + r"\s*=|"
                                     r"^\s*\[\s*(?:[\w-]+\s*\.\s*)*" + k + r"\s*\]"))

    def value(self, value: object) -> int | None:
        if isinstance(value, str):
            return self._find(re.compile(r"[\"']" + re.escape(value) + r"[\"']"))
        return self._find(re.compile(r"=\s*" + re.escape(str(value)) + r"\b"))

    def _find(self, pat: re.Pattern) -> int | None:
        for i in range(self.start, len(self.lines)):
            if pat.search(self.lines[i]):
                return i + 1
        return None


_KEYS = ("select", "ignore", "severity", "macros", "include-dirs", "dma-granule", "page-size",
         "exclude", "file-timeout", "jobs")


def _validate(data: dict, shown: str, root: str, loc: _Locator) -> Config:
    def fail(message: str, line: int | None) -> ConfigError:
        return ConfigError(shown, line, message)

    for key in data:
        if key not in _KEYS:
            hint = f" (did you mean '{key.replace('_', '-')}'?)" if key.replace("_", "-") in _KEYS else ""
            raise fail(f"unknown key '{key}'{hint}; known keys: {', '.join(_KEYS)}", loc.key(key))
    registry = load_registry()

    def strings(key: str) -> tuple[str, ...]:
        value = data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise fail(f"'{key}' must be a list of strings", loc.key(key))
        return tuple(value)

    def selectors(key: str) -> tuple[str, ...]:
        texts = strings(key)
        for t in texts:
            try:
                parse_selector(t, registry)
            except SelectorError as exc:
                raise fail(f"{key}: {exc}", loc.value(t) or loc.key(key)) from None
        return texts

    select = selectors("select") if "select" in data else None
    ignore = selectors("ignore")
    severity = data.get("severity", {})
    if not isinstance(severity, dict):
        raise fail("'severity' must be a table of rule = \"error\" | \"warning\" | \"note\"",
                   loc.key("severity"))
    for key, level in severity.items():
        try:
            parse_selector(key, registry)
        except SelectorError as exc:
            raise fail(f"severity: {exc}", loc.key(key)) from None
        if level not in SEVERITIES:
            raise fail(f"severity of '{key}' must be one of {', '.join(SEVERITIES)}, not {level!r}",
                       loc.key(key))
    macros = data.get("macros", {})
    if not isinstance(macros, dict):
        raise fail("'macros' must be a table (the keys of rules/macros.toml)", loc.key("macros"))
    for key in macros:
        if key not in MACRO_KEYS:
            raise fail(f"unknown key 'macros.{key}'; known keys: {', '.join(MACRO_KEYS)}",
                       loc.key(key))
    try:
        tables_from_data(macros, shown)
    except RuleFileError as exc:
        raise fail(f"macros: {exc.message}", loc.key("macros")) from None
    include_dirs = []
    for d in strings("include-dirs"):
        full = os.path.normpath(os.path.join(root, d))
        if not os.path.isdir(full):
            raise fail(f"include-dirs: '{d}' is not a directory (relative to {root})",
                       loc.value(d))
        include_dirs.append(full)
    exclude = tuple(_pattern(p) for p in strings("exclude"))
    granule = _integer(data, "dma-granule", fail, loc, power_of_two=True, minimum=8)
    page = _integer(data, "page-size", fail, loc, power_of_two=True, minimum=1024)
    jobs = _integer(data, "jobs", fail, loc, minimum=1)
    timeout = data.get("file-timeout")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                                or timeout < 0):
        raise fail("'file-timeout' must be a number of seconds >= 0 (0: no limit)",
                   loc.key("file-timeout"))
    return Config(shown, root, ((select, ignore),) if select is not None or ignore else (),
                  tuple(severity.items()), macros, tuple(include_dirs), granule, page, exclude,
                  float(timeout) if timeout is not None else None, jobs)


def _integer(data: dict, key: str, fail, loc: _Locator, power_of_two: bool = False,
             minimum: int = 0) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum or \
            (power_of_two and value & (value - 1)):
        kind = "a power of two" if power_of_two else "an integer"
        raise fail(f"'{key}' must be {kind} >= {minimum}, not {value!r}", loc.key(key))
    return value


def _pattern(text: str) -> str:
    """An exclude pattern in the form is_excluded matches: no './', no leading or trailing '/'."""
    while text.startswith("./"):
        text = text[2:]
    return text.strip("/")
