"""One file through the pipeline: source -> parse -> CFG -> engine -> findings."""

from __future__ import annotations

import re
from bisect import bisect_left
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from tree_sitter import Node

from dmalint.callgraph import buffer_params, called_functions, summarise
from dmalint.cfg import build_cfg
from dmalint.contracts.macros import MacroTables
from dmalint.contracts.model import Contracts, Registry
from dmalint.consteval import Target
from dmalint.cpu_access import cpu_access_events, in_mapped_range
from dmalint.layout import LayoutEngine
from dmalint.driver import FunctionRecord, cross_function
from dmalint.memory import memory_rules
from dmalint.engine.fieldlog import FieldLog, field_key
from dmalint.engine.evaluate import Scope
from dmalint.engine.explore import DEFAULT_BUDGET, Explorer
from dmalint.findings import Event, Finding, Notice, fingerprint
from dmalint.parse import (
    FunctionDef, collect_identifiers, has_pointer_declarator, iter_functions, nodes_in_walk_order,
    parse, text,
)
from dmalint.source import SourceFile
from dmalint.structs import StructIndex, member_writes, type_name, variable_types
from dmalint.transfer_members import member_buffers
from dmalint.wordtrie import MAX_NEEDLES, WORD_BYTES, WORD_RUN, trie_alternation


@dataclass
class FileResult:
    """Everything one file produced."""

    path: str
    findings: list[Finding] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)
    functions: int = 0
    damaged: int = 0
    analysed: int = 0


@lru_cache(maxsize=8)
def _api_pattern(names: frozenset[str]) -> re.Pattern[bytes]:
    return re.compile(rb"\b(?:" + trie_alternation(names) + rb")\s*\(")


def _call_positions(code: bytes, fixed: frozenset[str], extra: frozenset[str]) -> list[int]:
    """Sorted offsets where one of the names is called (`name (`) in code.

    `fixed` (the API's names: the same for every unit) has its regex compiled once; `extra`
    (the unit's own helpers) gets one of its own, and only when there are any: compiling one
    regex of both for every unit cost more than scanning with it.  A match spans a whole
    name and its `(`, so no match of one list can start inside a match of the other: the
    union of the two lists is what one regex of both finds."""
    at = [m.start() for m in _api_pattern(fixed).finditer(code)]
    extra = extra - fixed
    if extra:
        at = sorted(set(at).union(m.start() for m in _api_pattern(extra).finditer(code)))
    return at


def analyse_source(src: SourceFile, contracts: Contracts, registry: Registry,
                   budget: int = DEFAULT_BUDGET, disk_path: Path | None = None,
                   target: Target = Target()) -> FileResult:
    """Findings and notices for one neutralised source file, analysed as a driver of its own."""
    disk = {src.path: disk_path} if disk_path is not None else None
    return analyse_unit([src], contracts, registry, budget, disk, target)[0]


def analyse_unit(sources: list[SourceFile], contracts: Contracts, registry: Registry,
                 budget: int = DEFAULT_BUDGET,
                 disk_paths: dict[str, Path] | None = None,
                 target: Target = Target(),
                 more_sources=None, tables: MacroTables | None = None,
                 include_dirs: tuple[str, ...] = ()) -> list[FileResult]:
    """The files of one driver, analysed together: helpers summarised across all of them, and
    what one function keeps in a struct member paired with what another releases.

    tables (default: the built-in ones) neutralise the headers the files include; those are
    looked for next to the including file, then in include_dirs.

    `more_sources(names)`, when given, returns further files of the driver that mention any of
    the names of the functions found so far (their callers); they join the analysis.  The
    runner passes only the files that mention the DMA API first, so that a directory's other
    files (register headers, unrelated code) are never read, neutralised or parsed."""
    parsed = []
    structs = StructIndex(tables, include_dirs)

    def add(batch: list[SourceFile]) -> None:
        for src in batch:
            root = parse(src.code).root_node
            structs.add_source(src, root)
            if disk_paths is not None and src.path in disk_paths:
                structs.add_local_headers(src, disk_paths[src.path])
            parsed.append((src, list(iter_functions(root))))

    add(sources)
    if more_sources is not None:
        names = frozenset(fn.name for _, fns in parsed for fn in fns)
        extra = more_sources(names)
        sources = list(sources) + extra
        add(extra)
    members = structs.resolved()
    every = [fn for _, fns in parsed for fn in fns]
    summaries = summarise(every, contracts)
    buffers = buffer_params(every, contracts)
    cookies = cookie_members(parsed, contracts, structs, members)
    called = called_functions(every)
    helpers = frozenset(summaries) | frozenset(buffers)
    cpu_views = _api_pattern(frozenset(a.function for a in contracts.acquires.values() if a.cpu_view))
    local_names = frozenset(fn.name for fn in every)
    layout: list = []  # built on the first store that needs a member offset

    def layout_engine() -> LayoutEngine:
        if not layout:
            layout.append(LayoutEngine(list(by_path.values()), include_dirs,
                                       target=target, tables=tables))
        return layout[0]

    sizes: dict[str, int | None] = {}

    def sizeof(expr_text: str) -> int | None:
        """`sizeof(struct x)` in bytes when the driver declares struct x and its layout is
        exact (asked only when two sizes differ by sizeofs alone: rare, so the layout engine
        is built on demand)."""
        if expr_text not in sizes:
            sizes[expr_text] = _record_size(expr_text, layout_engine)
        return sizes[expr_text]

    def cpu_access(fn: FunctionDef, cfg, src: SourceFile) -> list[Event]:
        out = []
        for event, check in cpu_access_events(cfg, contracts, fn.name, src.defines, local_names):
            if check is not None:
                held = variable_types(fn.node).get(check.variable)
                if not in_mapped_range(check, held and structs.canonical(held), layout_engine(),
                                       src):
                    continue
            out.append(event)
        return out
    cookie_names = [key[-1].encode() for key in cookies]
    results: dict[str, FileResult] = {}
    records: list[FunctionRecord] = []
    by_path = {src.path: src for src in sources}
    for src, functions in parsed:
        result = results[src.path] = FileResult(src.path)
        # Where the file calls the API: one scan of the file, not one per function.
        calls_at = _call_positions(src.code, contracts.api_names(), helpers)
        views_at = [m.start() for m in cpu_views.finditer(src.code)]
        for fn in functions:
            result.functions += 1
            if fn.damaged:
                result.damaged += 1
            start, end = fn.node.start_byte, fn.node.end_byte
            calls_api = _any_within(calls_at, start, end)
            if not calls_api and not (cookie_names and any(
                    c in src.code[start:end] for c in cookie_names)):
                continue
            line = fn.node.start_point[0] + 1
            if fn.damaged:
                result.notices.append(Notice(src.path, line, "skipped",
                                             f"function {fn.name}() not analysed: it does not parse "
                                             f"(unknown macro or preprocessor construct)"))
                continue
            result.analysed += 1
            explorer = analyse_function(fn, src, contracts, budget, result, summaries, structs,
                                        members, buffers, cookies, sizeof)
            for event in explorer.events_out:
                result.findings.append(to_finding(event, src, registry))
            if _any_within(views_at, start, end):
                for event in cpu_access(fn, explorer.cfg, src):
                    result.findings.append(to_finding(event, src, registry))
            records.append(FunctionRecord(fn.name, src.path, explorer.ev.field_log,
                                          explorer.stored_leaks, fn.name not in called))
    seen = {(f.path, f.line, f.code) for r in results.values() for f in r.findings}
    # Cookies kept in members by one function and touched by another: a second look at the
    # functions that read those members, now that every function's stores are known.
    stored = {side.key: (f"{side.function}() in {side.in_function}()", side.line)
              for rec in records for side in rec.log.stores.values() if side.cookie}
    extra = {k: v for k, v in stored.items() if k not in cookies}
    if extra:
        every_cookie = {**cookies, **extra}
        names = [key[-1].encode() for key in extra]
        for src, functions in parsed:
            for fn in functions:
                body = src.code[fn.node.start_byte : fn.node.end_byte]
                if fn.damaged or not any(n in body for n in names):
                    continue
                explorer = analyse_function(fn, src, contracts, budget, FileResult(src.path),
                                            summaries, structs, members, buffers, every_cookie)
                for event in explorer.events_out:
                    finding = to_finding(event, src, registry)
                    if event.kind == "cookie-touched" and \
                            (finding.path, finding.line, finding.code) not in seen:
                        seen.add((finding.path, finding.line, finding.code))
                        results[src.path].findings.append(finding)
    layout_events = memory_rules(records + _member_buffer_records(parsed, contracts, structs),
                                 by_path, target, contracts.constants.get("DMA_TO_DEVICE"),
                                 lambda: member_writes(every, structs), tables=tables,
                                 include_dirs=include_dirs, engine=layout_engine)
    may_release = frozenset(f for s in summaries.values() if s.kind == "may-release" for f in s.families)
    for path, event in cross_function(records, structs.defined, may_release) + layout_events:
        finding = to_finding(event, by_path[path], registry)
        if (finding.path, finding.line, finding.code) not in seen:
            seen.add((finding.path, finding.line, finding.code))
            results[path].findings.append(finding)
    for result in results.values():
        result.findings.sort(key=Finding.sort_key)
    return [results[src.path] for src in sources]


_RECORD_SIZEOF = re.compile(r"sizeof\s*\(\s*((?:struct|union)\s+\w+)\s*\)")


def _record_size(expr_text: str, layout_engine) -> int | None:
    """The size of `sizeof(struct x)` from the driver's declarations, None unless exact."""
    m = _RECORD_SIZEOF.fullmatch(expr_text)
    if m is None:
        return None
    try:
        record = layout_engine().struct(m.group(1))
    except (RecursionError, ValueError, OSError):
        return None
    if record is None or record.unknown is not None or record.approximate or record.size is None:
        return None
    return record.size


def _any_within(positions: list[int], start: int, end: int) -> bool:
    """Whether a sorted list of byte offsets has one in [start, end)."""
    i = bisect_left(positions, start)
    return i < len(positions) and positions[i] < end


def _member_buffer_records(parsed, contracts: Contracts, structs: StructIndex) -> list[FunctionRecord]:
    """Buffers stored into transfer descriptors (`.rx_buf = st->rx`), as records the cache-line
    rule reads: any function of the unit may build a transfer, DMA API calls or not."""
    names = [m.encode() for m in contracts.buffer_members]
    out = []
    for src, functions in parsed:
        if not any(name in src.code for name in names):
            continue
        for fn in functions:
            if fn.damaged:
                continue
            body = src.code[fn.node.start_byte : fn.node.end_byte]
            if not any(name in body for name in names):
                continue
            types = variable_types(fn.node)
            found = member_buffers(fn, contracts, {k: structs.canonical(v) for k, v in types.items()},
                                   structs.canonical)
            if found:
                out.append(FunctionRecord(fn.name, src.path, FieldLog(embedded=found), [], False))
    return out


@lru_cache(maxsize=8)
def mention_pattern(names: frozenset[str]) -> re.Pattern[bytes]:
    """Any of the names as a whole word (to find files worth reading)."""
    return re.compile(rb"\b(?:" + trie_alternation(names) + rb")\b")


# A name of word characters only, which WORD_RUN can find whole (a GNU `$` in a name cannot).
_PLAIN_NAME = re.compile(r"\w+", re.ASCII)
# Compiling the regex of a driver's few hundred function names costs about 40 us a name (20 ms
# for 500), while it then scans text twice as fast as collecting the text's words (100 against
# 50 MB/s): below this many bytes of text per name, collecting the words is cheaper.
_COMPILE_BYTES_PER_NAME = 4096


@lru_cache(maxsize=8)
def mention_test(names: frozenset[str]):
    """`test(raw)`: whether the bytes mention any of the names as a whole word.

    Every file of a run is asked this (900 MB for drivers/), and the regex runs at some
    80 MB/s, while a substring search runs at memory speed.  So the names' prefixes (`dma_`,
    `usb_`: up to the first underscore) are looked for, and only where one starts is the word
    there looked up among the names: 2.5 times faster over drivers/ (4.4 s against 10.7 s of
    CPU), and no regex of the names is compiled."""
    if not names:
        return lambda raw: False
    prefix = {name: name[: name.find("_", 1) + 1] if name.find("_", 1) > 0 else name
              for name in names}
    shared = Counter(prefix.values())
    # A prefix shared by a few names stands for them (`dma_`); a rarer one would match much
    # text for nothing (`sg_` is in every `msg_`), so those names stand for themselves.
    needles = {(p if shared[p] >= 3 and len(p) >= 4 else name).encode()
               for name, p in prefix.items()}
    if len(needles) > MAX_NEEDLES or not all(_PLAIN_NAME.fullmatch(n) for n in names):
        pattern = mention_pattern(names)
        return lambda raw: pattern.search(raw) is not None
    ordered = sorted(needles)
    wanted = frozenset(n.encode() for n in names)

    def test(raw: bytes) -> bool:
        for needle in ordered:  # every name starts with a needle
            at = raw.find(needle)
            while at >= 0:
                if at == 0 or raw[at - 1] not in WORD_BYTES:  # a word starts here
                    word = WORD_RUN.match(raw, at)
                    if word.group(0) in wanted:
                        return True
                at = raw.find(needle, at + 1)
        return False
    return test


def mentioning(names: frozenset[str], texts: list[bytes]) -> list[bool]:
    """For each text, whether it mentions any of the names as a whole word: what
    mention_test(names) says, without compiling a regex of the names when there is too little
    text to repay it (a driver's other files, asked about the driver's function names: a new
    set of names for every driver)."""
    if not names:
        return [False] * len(texts)
    if sum(map(len, texts)) >= _COMPILE_BYTES_PER_NAME * len(names) or \
            not all(_PLAIN_NAME.fullmatch(n) for n in names):
        test = mention_test(names)
        return [test(raw) for raw in texts]
    wanted = frozenset(n.encode() for n in names)
    return [not wanted.isdisjoint(WORD_RUN.findall(raw)) for raw in texts]


def analyse_function(fn: FunctionDef, src: SourceFile, contracts: Contracts, budget: int,
                     result: FileResult, summaries: dict | None = None,
                     structs: StructIndex | None = None, members: dict | None = None,
                     buffers: dict | None = None, cookies: dict | None = None,
                     sizeof=None) -> Explorer:
    """Explore one function; the explorer keeps its events and its field log."""
    cfg = build_cfg(fn.body, contracts.core.transparent, contracts.core.noreturn, src.iterators)
    scope = function_scope(fn, contracts)
    if structs is not None:
        scope.types = {k: structs.canonical(v) for k, v in scope.types.items()}
        scope.members = members or {}
    explorer = Explorer(cfg, contracts, scope, src.defines, fn.name, return_kind(fn, contracts),
                        uses_errno_convention(fn, contracts), budget, summaries)
    explorer.ev.buffer_params = buffers or {}
    explorer.ev.cookie_keys = cookies or {}
    explorer.ev.sizeof = sizeof
    out = explorer.run()
    explorer.events_out = out.events
    if not out.complete:
        result.notices.append(Notice(src.path, fn.node.start_point[0] + 1, "incomplete",
                                     f"function {fn.name}() has more paths than the analysis "
                                     f"budget ({budget} steps); some paths were not explored"))
    return explorer


def to_finding(event: Event, src: SourceFile, registry: Registry) -> Finding:
    diag = registry.by_event(event.kind)
    if diag is None:  # an event no diagnostic claims: a programming error, not a user's
        raise KeyError(f"no diagnostic for engine event {event.kind!r}")
    message = diag.message.format(**{k: ("?" if v is None else v) for k, v in event.fields.items()})
    fp = fingerprint(diag.code, src.path, event.function, src.line_text(event.line), event.anchor)
    return Finding(src.path, event.line, event.column, diag.code, diag.name, diag.severity,
                   diag.confidence, message, event.function, event.trace, event.related, fp)


def function_scope(fn: FunctionDef, contracts: Contracts) -> Scope:
    """Locals, parameters, and the names whose integer values matter for the paths."""
    locals_: dict[str, bool] = {}
    params: set[str] = set()
    types: dict[str, str] = {}
    declarator = fn.node.child_by_field_name("declarator")
    while declarator is not None and declarator.type != "function_declarator":
        declarator = declarator.child_by_field_name("declarator")
    if declarator is not None:
        plist = declarator.child_by_field_name("parameters")
        for p in plist.named_children if plist is not None else []:
            name = _name_of(p.child_by_field_name("declarator"))
            if name:
                params.add(name)
                locals_[name] = True
                _record_type(name, p.child_by_field_name("type"), types)
    relevant: set[str] = set()
    fields: set[str] = set()
    tests: Counter = Counter()
    frame: set[str] = set()  # objects in the stack frame
    arrays: set[str] = set()
    api = contracts.api_names()
    for n in nodes_in_walk_order(fn.body, _SCOPE_TYPES):
        t = n.type
        if t == "declaration":
            static = any(c.type == "storage_class_specifier" and text(c) in ("static", "extern")
                         for c in n.children)
            for d in n.children_by_field_name("declarator"):
                target = d.child_by_field_name("declarator") if d.type == "init_declarator" else d
                name = _name_of(target)
                if name:
                    locals_[name] = has_pointer_declarator(target)
                    _record_type(name, n.child_by_field_name("type"), types)
                    outer = _outer_declarator(target)
                    if not static and outer != "pointer_declarator":
                        frame.add(name)
                        if outer == "array_declarator":
                            arrays.add(name)
        elif t in ("if_statement", "while_statement", "do_statement", "for_statement",
                   "switch_statement", "return_statement", "conditional_expression"):
            cond = n.child_by_field_name("condition")
            collect_identifiers(cond if cond is not None else n, relevant, fields)
            if cond is not None and t != "return_statement":
                for operand in _tested_storage(cond):
                    tests[operand] += 1
        elif t == "call_expression" and text(n.child_by_field_name("function")) in api:
            collect_identifiers(n.child_by_field_name("arguments"), relevant, fields)
    repeated = frozenset(k for k, v in tests.items() if v > 1)
    return Scope(locals_, frozenset(params), frozenset(relevant), frozenset(fields), repeated, types,
                 stack_objects=frozenset(frame), arrays=frozenset(arrays))


_SCOPE_TYPES = frozenset({"declaration", "if_statement", "while_statement", "do_statement",
                          "for_statement", "switch_statement", "return_statement",
                          "conditional_expression", "call_expression"})


def _outer_declarator(decl: Node | None) -> str | None:
    """The outermost declarator kind of a variable: `u8 *p` pointer, `u8 b[4]` array, else
    None (a scalar or struct object)."""
    while decl is not None and decl.type in ("parenthesized_declarator", "attributed_declarator"):
        decl = decl.named_children[0] if decl.named_child_count else None
    if decl is not None and decl.type in ("pointer_declarator", "array_declarator"):
        return decl.type
    return None


def _record_type(name: str, type_node: Node | None, types: dict[str, str]) -> None:
    """The struct, union or typedef name a variable is declared with (for field keys)."""
    held = type_name(type_node)
    if held is not None:
        types[name] = held


def _name_of(decl: Node | None) -> str | None:
    while decl is not None:
        if decl.type == "identifier":
            return text(decl)
        nxt = decl.child_by_field_name("declarator")
        if nxt is None:
            return None
        decl = nxt
    return None


def _tested_storage(cond: Node) -> list[str]:
    """Texts of the variables and members a condition tests (`p->flags`, `mapped`)."""
    out = []
    stack = [cond]
    while stack:
        n = stack.pop()
        if n.type in ("identifier", "field_expression"):
            out.append(" ".join(text(n).split()).replace(" ", ""))
            if n.type == "field_expression":
                continue
        elif n.type == "call_expression":
            stack.append(n.child_by_field_name("arguments"))
            continue
        stack.extend(c for c in n.named_children if c is not None)
    return out


def return_kind(fn: FunctionDef, contracts: Contracts) -> str:
    """'void', 'pointer', 'int' (the -errno convention applies), 'bool' or 'other'."""
    declarator = fn.node.child_by_field_name("declarator")
    if declarator is not None and declarator.type == "pointer_declarator":
        return "pointer"
    type_text = " ".join(text(fn.node.child_by_field_name("type")).split())
    type_text = re.sub(r"\b(static|inline|const|extern|__inline__|__inline)\b", "", type_text).strip()
    type_text = " ".join(type_text.split())
    if type_text == "void":
        return "void"
    if type_text in ("bool", "_Bool"):
        return "bool"
    if type_text in contracts.core.int_return_types:
        return "int"
    return "other"


def uses_errno_convention(fn: FunctionDef, contracts: Contracts) -> bool:
    """True when the function returns or assigns `-E...` somewhere: then a non-zero int it
    returns after testing it is an error code."""
    errno = contracts.core.errno_re
    stack = [fn.body]
    while stack:
        n = stack.pop()
        if n.type == "unary_expression" and text(n.child_by_field_name("operator")) == "-":
            arg = n.child_by_field_name("argument")
            if arg is not None and arg.type == "identifier" and errno.match(text(arg)):
                return True
        stack.extend(n.named_children)
    return False


def cookie_members(parsed, contracts: Contracts, structs: StructIndex, members: dict) -> dict:
    """Struct members that receive a NO_KERNEL_MAPPING allocation anywhere in the driver:
    field key -> where ("dma_alloc_attrs() in foo_alloc()", line).  Found from the text of the
    attributes argument (a constant, or a #define that names the attribute)."""
    name = contracts.cookie_attribute
    if not name:
        return {}
    out: dict = {}
    for src, functions in parsed:
        if name.encode() not in src.raw:
            continue
        mentions = {name} | {d for d, v in src.defines.items() if name in v.value}
        for fn in functions:
            scope = None
            for n in _walk(fn.body):
                if n.type != "assignment_expression":
                    continue
                call = n.child_by_field_name("right")
                while call is not None and call.type in ("parenthesized_expression", "cast_expression"):
                    call = call.child_by_field_name("value") or (call.named_children[0] if call.named_child_count else None)
                if call is None or call.type != "call_expression":
                    continue
                acq = contracts.acquires.get(text(call.child_by_field_name("function")))
                idx = acq.args.get("attrs") if acq is not None else None
                args = call.child_by_field_name("arguments")
                if idx is None or args is None or idx >= args.named_child_count:
                    continue
                if not set(re.findall(r"[A-Za-z_]\w*", text(args.named_children[idx]))) & mentions:
                    continue
                scope = scope or function_scope(fn, contracts)
                types = {k: structs.canonical(v) for k, v in scope.types.items()}
                key = field_key(_syntactic_path(n.child_by_field_name("left")), types, members)
                if key is not None:
                    out[key] = (f"{acq.function}() in {fn.name}()", n.start_point[0] + 1)
    return out


def _syntactic_path(node: Node | None):
    """`a->b.c` as the storage path ("a", "->b", ".c"), without evaluation."""
    parts = []
    while node is not None and node.type == "field_expression":
        op = text(node.child_by_field_name("operator"))
        parts.append(("->" if op == "->" else ".") + text(node.child_by_field_name("field")))
        node = node.child_by_field_name("argument")
    if node is None or node.type != "identifier":
        return None
    return (text(node),) + tuple(reversed(parts))


def _walk(node: Node):
    stack = [node]
    while stack:
        n = stack.pop()
        yield n
        stack.extend(n.named_children)
