"""Load the data in rules/ (and user additions) into validated, frozen objects."""

from __future__ import annotations

import re
import string
import tomllib
from functools import lru_cache
from importlib import resources

from dmalint.contracts.errors import RuleFileError
from dmalint.contracts.macros import MacroTables, tables_from_data
from dmalint.contracts.model import (
    ARG_ROLES, FAILURE_MODES, IDENTITIES, RESULT_RE, Acquire, Check, Contracts, CoreTables,
    Buffer, BufferMember, Diagnostic, Doc, Mmap, Registry, Release, Sync,
)
from dmalint.events import EVENT_FIELDS


def _rules_dir():
    return resources.files("dmalint.rules")


def read_toml(name: str, text: str) -> dict:
    """Parse TOML, turning a syntax error into a RuleFileError with the line."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        msg = str(exc)
        m = re.search(r"\(at line (\d+), column \d+\)", msg)
        line = getattr(exc, "lineno", None) or (int(m.group(1)) if m else None)
        msg = re.sub(r"\s*\(at line \d+, column \d+\)", "", getattr(exc, "msg", msg))
        raise RuleFileError(name, line, f"invalid TOML: {msg}") from None


@lru_cache(maxsize=1)
def load_macro_tables() -> MacroTables:
    """The built-in kernel macro tables."""
    res = _rules_dir() / "macros.toml"
    return tables_from_data(read_toml(str(res), res.read_text()), str(res))


# --- contracts ----------------------------------------------------------------------------


_SEVERITIES = ("error", "warning", "note")
_CONFIDENCES = ("high", "medium", "low")
_CODE_RE = re.compile(r"^DMA\d{3}$")
_NAME_RE = re.compile(r"^[a-z][a-z0-9-]*$")
# One file per API family, named api-<family>.toml; the other files in rules/ are tables.
CONTRACT_PREFIX = "api-"


class _Locator:
    """Finds the line of an entry in a TOML text, for error messages (tomllib keeps none)."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()

    def line_of(self, value: str, after: int = 0) -> int | None:
        needle = re.compile(r"=\s*\"" + re.escape(value) + r"\"")
        for i, line in enumerate(self.lines[after:], start=after + 1):
            if needle.search(line):
                return i
        return None


def _roles(entry: dict, origin: str, loc: _Locator, key: str, required: tuple[str, ...]) -> dict:
    args = entry.get("args")
    line = loc.line_of(entry.get("function", ""))
    if not isinstance(args, dict):
        raise RuleFileError(origin, line, f"{key} '{entry.get('function')}' needs an 'args' table")
    for role, idx in args.items():
        if role not in ARG_ROLES:
            raise RuleFileError(origin, line, f"unknown argument role '{role}' (known: {', '.join(sorted(ARG_ROLES))})")
        if not isinstance(idx, int) or idx < 0:
            raise RuleFileError(origin, line, f"argument index of '{role}' must be a non-negative integer")
    for role in required:
        if role not in args:
            raise RuleFileError(origin, line, f"{key} '{entry.get('function')}' must declare the '{role}' argument")
    return dict(args)


def _require_str(entry: dict, field: str, origin: str, line: int | None) -> str:
    value = entry.get(field)
    if not isinstance(value, str) or not value:
        raise RuleFileError(origin, line, f"missing or empty string field '{field}'")
    return value


def parse_contract_file(origin: str, text: str, into: dict) -> None:
    """Validate one API family file and add its entries to `into`."""
    data = read_toml(origin, text)
    loc = _Locator(text)
    known = {"family", "constants", "acquire", "release", "check", "sync", "mmap", "buffer",
             "cookie", "description", "to_device_pipes", "buffer_member"}
    for key in data:
        if key not in known:
            raise RuleFileError(origin, None, f"unknown top-level key '{key}'")
    for name, value in data.get("constants", {}).items():
        if not isinstance(value, int):
            raise RuleFileError(origin, loc.line_of(name), f"constant '{name}' must be an integer")
        into["constants"][name] = value
    for entry in data.get("acquire", []):
        fn = _require_str(entry, "function", origin, None)
        line = loc.line_of(fn)
        failure = entry.get("failure", "check")
        if failure not in FAILURE_MODES:
            raise RuleFileError(origin, line, f"failure must be one of {sorted(FAILURE_MODES)}")
        result = entry.get("result", "return")
        if not RESULT_RE.match(result):
            raise RuleFileError(origin, line, "result must be 'return' or 'arg:N'")
        returns = entry.get("returns", "handle")
        if returns not in ("handle", "cpu", "count"):
            raise RuleFileError(origin, line, "returns must be 'handle', 'cpu' or 'count'")
        identity = entry.get("identity", "handle")
        if identity not in IDENTITIES:
            raise RuleFileError(origin, line, f"identity must be one of {sorted(IDENTITIES)}")
        cpu_view = entry.get("cpu_view", "")
        if cpu_view not in ("", "pointer"):
            raise RuleFileError(origin, line, "cpu_view must be 'pointer' or absent")
        acq = Acquire(fn, _require_str(entry, "family", origin, line),
                      _require_str(entry, "debug_type", origin, line),
                      _roles(entry, origin, loc, "acquire", ()), failure, result, returns,
                      bool(entry.get("managed", False)), identity, f"{origin}:{line}", cpu_view)
        _add_unique(into["acquires"], fn, acq, origin, line)
    for entry in data.get("release", []):
        fn = _require_str(entry, "function", origin, None)
        line = loc.line_of(fn)
        args = _roles(entry, origin, loc, "release", ())
        if "handle" not in args and "cpu" not in args:
            raise RuleFileError(origin, line, f"release '{fn}' must declare a 'handle' or 'cpu' argument")
        rel = Release(fn, _require_str(entry, "family", origin, line),
                      _require_str(entry, "debug_type", origin, line), args,
                      bool(entry.get("managed", False)), bool(entry.get("irqs_enabled", False)),
                      f"{origin}:{line}")
        _add_unique(into["releases"], fn, rel, origin, line)
    for entry in data.get("sync", []):
        fn = _require_str(entry, "function", origin, None)
        line = loc.line_of(fn)
        if entry.get("to") not in ("cpu", "device"):
            raise RuleFileError(origin, line, "sync 'to' must be 'cpu' or 'device'")
        args = _roles(entry, origin, loc, "sync", ())
        if "handle" not in args and "cpu" not in args:
            raise RuleFileError(origin, line, f"sync '{fn}' must declare a 'handle' or 'cpu' argument")
        _add_unique(into["syncs"], fn, Sync(fn, entry["to"], args, f"{origin}:{line}"), origin, line)
    if "cookie" in data:
        if not isinstance(data["cookie"], str):
            raise RuleFileError(origin, None, "'cookie' must name an attribute constant")
        into["cookie"] = data["cookie"]
    for entry in data.get("mmap", []):
        fn = _require_str(entry, "function", origin, None)
        line = loc.line_of(fn)
        _add_unique(into["mmaps"], fn, Mmap(fn, _roles(entry, origin, loc, "mmap", ("cpu",)),
                                            f"{origin}:{line}"), origin, line)
    for entry in data.get("buffer", []):
        fn = _require_str(entry, "function", origin, None)
        line = loc.line_of(fn)
        indices = entry.get("args", [entry.get("arg")])
        if not isinstance(indices, list) or not indices or \
                not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in indices):
            raise RuleFileError(origin, line, f"buffer '{fn}' needs a non-negative integer 'arg' "
                                              f"(or a list 'args')")
        reads = entry.get("device_reads", [])
        pipe = entry.get("pipe")
        if not isinstance(reads, list) or not all(isinstance(i, int) and i in indices for i in reads):
            raise RuleFileError(origin, line, f"buffer '{fn}': device_reads must list some of its args")
        if pipe is not None and (not isinstance(pipe, int) or isinstance(pipe, bool) or pipe < 0):
            raise RuleFileError(origin, line, f"buffer '{fn}': pipe must be an argument index")
        size = entry.get("size")
        if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
            raise RuleFileError(origin, line, f"buffer '{fn}': size must be an argument index")
        _add_unique(into["buffers"], fn, Buffer(fn, indices[0], f"{origin}:{line}", tuple(indices[1:]),
                                                tuple(reads), pipe, size), origin, line)
    for entry in data.get("buffer_member", []):
        member = _require_str(entry, "member", origin, None)
        line = loc.line_of(member)
        struct = _require_str(entry, "struct", origin, line)
        into.setdefault("buffer_members", {})
        _add_unique(into["buffer_members"], member,
                    BufferMember(struct, member, bool(entry.get("device_reads", False)),
                                 f"{origin}:{line}"), origin, line)
    pipes = data.get("to_device_pipes", [])
    if not isinstance(pipes, list) or not all(isinstance(p, str) for p in pipes):
        raise RuleFileError(origin, loc.line_of("to_device_pipes"), "to_device_pipes must be a list of names")
    into.setdefault("to_device_pipes", set()).update(pipes)
    for entry in data.get("check", []):
        fn = _require_str(entry, "function", origin, None)
        line = loc.line_of(fn)
        families = entry.get("families", [])
        if not isinstance(families, list) or not all(isinstance(f, str) for f in families):
            raise RuleFileError(origin, line, f"check '{fn}': families must be a list of family names")
        chk = Check(fn, _roles(entry, origin, loc, "check", ("handle",)), f"{origin}:{line}",
                    tuple(families))
        _add_unique(into["checks"], fn, chk, origin, line)


def _add_unique(table: dict, fn: str, value, origin: str, line: int | None) -> None:
    if fn in table:
        raise RuleFileError(origin, line, f"'{fn}' is declared twice (first at {table[fn].origin})")
    table[fn] = value


def parse_core(origin: str, text: str) -> CoreTables:
    data = read_toml(origin, text)
    lists = {}
    for key in ("transparent", "noreturn", "value_transforms", "io_writes", "error_pointers",
                "int_return_types", "irq_disable", "irq_enable", "success_errnos", "borrows",
                "managed_actions", "waits"):
        value = data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise RuleFileError(origin, None, f"'{key}' must be a list of strings")
        lists[key] = frozenset(value)
    patterns = {}
    for key, default in (("errno_pattern", r"^E[A-Z0-9_]+$"), ("value_transform_pattern", r"^$")):
        patterns[key] = data.get(key, default)
        try:
            re.compile(patterns[key])
        except (re.error, TypeError) as exc:
            raise RuleFileError(origin, None, f"{key} is not a valid regex: {exc}") from None
    copies = {}
    table = data.get("cpu_copies", {})
    if not isinstance(table, dict):
        raise RuleFileError(origin, None, "'cpu_copies' must be a table")
    for name, spec in table.items():
        if not isinstance(spec, dict) or set(spec) - {"writes", "reads"} or not all(
                isinstance(v, list) and all(isinstance(i, int) and i >= 0 for i in v)
                for v in spec.values()):
            raise RuleFileError(origin, None, f"cpu_copies.{name} must be "
                                              f"{{ writes = [indices], reads = [indices] }}")
        copies[name] = (tuple(spec.get("writes", [])), tuple(spec.get("reads", [])))
    members = {}
    for key, roles in (("member_stores", "[object, member, value]"),
                       ("member_loads", "[object, member]")):
        table = data.get(key, {})
        if not isinstance(table, dict):
            raise RuleFileError(origin, None, f"'{key}' must be a table")
        members[key] = {}
        width = roles.count(",") + 1
        for name, spec in table.items():
            if not isinstance(spec, list) or len(spec) != width or len(set(spec)) != width or \
                    not all(isinstance(i, int) and i >= 0 for i in spec):
                raise RuleFileError(origin, None, f"{key}.{name} must be {roles}: {width} "
                                                  f"different argument indices")
            members[key][name] = tuple(spec)
    return CoreTables(**patterns, **lists, cpu_copies=copies, **members)


@lru_cache(maxsize=1)
def load_contracts() -> Contracts:
    """Every API family file in rules/, plus core.toml."""
    into: dict = {"acquires": {}, "releases": {}, "checks": {}, "syncs": {}, "constants": {},
                  "mmaps": {}, "buffers": {}, "cookie": None}
    root = _rules_dir()
    for res in sorted(root.iterdir(), key=lambda r: r.name):
        if res.name.startswith(CONTRACT_PREFIX) and res.name.endswith(".toml"):
            parse_contract_file(f"rules/{res.name}", res.read_text(), into)
    core_res = root / "core.toml"
    core = parse_core("rules/core.toml", core_res.read_text())
    if into["cookie"] is not None and into["cookie"] not in into["constants"]:
        raise RuleFileError("rules/", None, f"cookie attribute {into['cookie']} has no constant value")
    return Contracts(into["acquires"], into["releases"], into["checks"], into["syncs"],
                     into["constants"], core, into["mmaps"], into["buffers"], into["cookie"],
                     frozenset(into.get("to_device_pipes", ())), into.get("buffer_members", {}))


def parse_registry(origin: str, text: str) -> Registry:
    """Validate the registry: unique codes and names, known events, templates over known fields."""
    data = read_toml(origin, text)
    loc = _Locator(text)
    out: list[Diagnostic] = []
    seen_codes: set[str] = set()
    seen_names: set[str] = set()
    for entry in data.get("diagnostic", []):
        code = entry.get("code", "")
        line = loc.line_of(code) if isinstance(code, str) else None
        if not isinstance(code, str) or not _CODE_RE.match(code):
            raise RuleFileError(origin, line, f"code '{code}' is not of the form DMA000")
        if code in seen_codes:
            raise RuleFileError(origin, line, f"code {code} is used twice")
        name = _require_str(entry, "name", origin, line)
        if not _NAME_RE.match(name) or name in seen_names:
            raise RuleFileError(origin, line, f"name '{name}' must be unique kebab-case")
        event = _require_str(entry, "event", origin, line)
        if event not in EVENT_FIELDS:
            raise RuleFileError(origin, line, f"unknown event '{event}'")
        severity = entry.get("severity")
        if severity not in _SEVERITIES:
            raise RuleFileError(origin, line, f"severity must be one of {_SEVERITIES}")
        confidence = entry.get("confidence")
        if confidence not in _CONFIDENCES:
            raise RuleFileError(origin, line, f"confidence must be one of {_CONFIDENCES}")
        message = _require_str(entry, "message", origin, line)
        fields = {f for _, f, _, _ in string.Formatter().parse(message) if f}
        unknown = fields - set(EVENT_FIELDS[event])
        if unknown:
            raise RuleFileError(origin, line, f"message uses fields {sorted(unknown)} that event '{event}' does not carry")
        doc = entry.get("doc", {})
        for section in ("what", "why", "example", "fix"):
            if not isinstance(doc.get(section), str) or not doc[section].strip():
                raise RuleFileError(origin, line, f"doc section '{section}' is missing")
        seen_codes.add(code)
        seen_names.add(name)
        out.append(Diagnostic(code, name, event, severity, confidence,
                              _require_str(entry, "group", origin, line),
                              _require_str(entry, "summary", origin, line), message,
                              Doc(doc["what"].strip(), doc["why"].strip(),
                                  doc["example"].strip("\n"), doc["fix"].strip("\n")),
                              tuple(entry.get("tags", ()))))
    events = [d.event for d in out]
    dupes = {e for e in events if events.count(e) > 1}
    if dupes:
        raise RuleFileError(origin, None, f"events raised by two diagnostics: {sorted(dupes)}")
    return Registry(tuple(out))


@lru_cache(maxsize=1)
def load_registry() -> Registry:
    res = _rules_dir() / "registry.toml"
    return parse_registry("rules/registry.toml", res.read_text())
