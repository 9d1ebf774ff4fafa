"""Read a C file and neutralise kernel macros without changing any byte offset.

tree-sitter-c parses C, not kernel C: annotations such as ``__iomem``, iterator macros such as
``list_for_each_entry(...) {`` and ``#if`` blocks that split statements produce ERROR nodes.  We
never run a preprocessor (we do not have the kernel's configuration); instead every rewrite here
replaces text by text of the same byte length, so every position tree-sitter reports is a
position in the original file.
"""

from __future__ import annotations

import bisect
import copy
import re
from dataclasses import dataclass, field
from pathlib import Path

from dmalint.contracts.macros import MacroTables
from dmalint.parse import _MEMO

MAX_FILE_BYTES = 16 * 1024 * 1024


class SourceError(Exception):
    """A file that cannot be analysed; the message says why, for the user."""


@dataclass(frozen=True)
class Define:
    """One ``#define`` seen in an active region."""

    name: str
    value: str
    line: int
    params: tuple[str, ...] | None = None  # None for object-like macros


@dataclass
class SourceFile:
    """A file's original bytes, its neutralised twin, and what the preprocessor lines said."""

    path: str
    raw: bytes
    code: bytes
    defines: dict[str, Define] = field(default_factory=dict)
    includes: list[tuple[str, int]] = field(default_factory=list)
    iterators: dict[int, tuple[int, ...]] = field(default_factory=dict)  # loop offset -> cursor args
    _line_starts: list[int] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        starts = [0]
        starts.extend(m.end() for m in re.finditer(rb"\n", self.raw))
        self._line_starts = starts

    def position(self, offset: int) -> tuple[int, int]:
        """1-based (line, column) of a byte offset."""
        idx = bisect.bisect_right(self._line_starts, offset) - 1
        return idx + 1, offset - self._line_starts[idx] + 1

    def line_text(self, line: int) -> str:
        """The original text of a 1-based line, without its newline."""
        if line < 1 or line > len(self._line_starts):
            return ""
        start = self._line_starts[line - 1]
        end = self.raw.find(b"\n", start)
        return self.raw[start : end if end >= 0 else len(self.raw)].decode("utf-8", "replace")

    @property
    def line_count(self) -> int:
        return len(self._line_starts)


def read_source(path: Path, display: str, tables: MacroTables) -> SourceFile:
    """Read and neutralise one file; raise SourceError with a user-facing reason.

    Inside parse.memo() a file read before (same path, display name and tables) is not read
    and neutralised again: the caller gets a shallow copy of the first result (a driver's
    headers are read by the struct index and again by the layout engine)."""
    sources = _MEMO.sources
    if sources is None:
        return _read_source(path, display, tables)
    key = (str(path), display, id(tables))
    hit = sources.get(key)
    if hit is None:
        try:
            hit = sources[key] = (_read_source(path, display, tables), tables)
        except SourceError as exc:
            hit = sources[key] = (exc, tables)
    if isinstance(hit[0], SourceError):
        raise SourceError(*hit[0].args)
    return copy.copy(hit[0])


def _read_source(path: Path, display: str, tables: MacroTables) -> SourceFile:
    try:
        if path.is_dir():
            raise SourceError("is a directory")
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise SourceError(f"file too large ({size} bytes, limit {MAX_FILE_BYTES})")
        raw = path.read_bytes()
    except SourceError:
        raise
    except OSError as exc:
        raise SourceError(exc.strerror or str(exc)) from None
    check_text(raw)
    return make_source(raw, display, tables)


def check_text(raw: bytes) -> None:
    """Raise SourceError for bytes that are not source text."""
    if b"\0" in raw[:8192]:
        raise SourceError("binary file (contains NUL bytes)")


def make_source(raw: bytes, display: str, tables: MacroTables) -> SourceFile:
    """Build a SourceFile from bytes already in memory (tests, stdin)."""
    code, defines, includes = neutralise(raw, tables)
    # Where an iterator macro became `while`: the loop head assigns its cursor arguments.
    iterators = {}
    for m in _WHILE.finditer(code):
        if raw[m.start() : m.end()] != b"while":
            name = _WORD.match(raw, m.start())
            iterators[m.start()] = tables.cursor_args(name.group(0).decode() if name else "")
    return SourceFile(display, raw, code, defines, includes, iterators)


# --- neutralisation -------------------------------------------------------------------------

_LEXICAL = re.compile(
    rb"//(?:[^\n\\]|\\.)*|/\*.*?(?:\*/|\Z)|\"(?:\\.|[^\"\\\n])*\"?|'(?:\\.|[^'\\\n])*'?", re.S
)
_DIRECTIVE = re.compile(rb"^[ \t]*#(?:[^\n\\]|\\.|\\\n)*", re.M)
_DIRECTIVE_NAME = re.compile(rb"#\s*(\w*)\s*(.*)", re.S)
_DEFINE = re.compile(rb"([A-Za-z_]\w*)(\([^)]*\))?\s*(.*)", re.S)
_INCLUDE = re.compile(rb'"([^"]+)"')
# Every byte but a newline to a space (what re.sub(rb"[^\n]", b" ", ...) would do), for
# bytes.translate: blanking runs for every comment and literal of every file read.
_BLANK_TABLE = bytes(0x0A if b == 0x0A else 0x20 for b in range(256))
_WHILE = re.compile(rb"\bwhile\b")
_WORD = re.compile(rb"[A-Za-z_]\w*")
# Starts by consuming the `(` or `,` (a lookbehind there would stop the engine from skipping
# ahead to the next `(` or `,`: twice as slow); the argument starts at group 1.
# The argument may start on a line of its own (`alloc(dev,\n\t\tstruct foo)`).
_TYPE_ARG = re.compile(
    rb"[(,](\s*)((?:struct|union|enum)[ \t]+\w+|"
    rb"(?:(?:unsigned|signed|long|short|int|char|const|volatile)[ \t]+)+"
    rb"(?:unsigned|signed|long|short|int|char))(\s*)(?=[,)])"
)
# Two or more macro names before a string literal (`printk(KERN_ERR DRV_NAME "...")`): C
# concatenates what they expand to, but tree-sitter-c takes at most one name in a string
# concatenation.  Upper-case names only, so that keywords and variables are never joined.
_STRING_PREFIXES = re.compile(rb'\b[A-Z_][A-Z0-9_]*(?:[ \t]+[A-Z_][A-Z0-9_]*)+(?=[ \t]*")')
# A token that starts with a digit but is no C number: a macro argument pasted into a name
# (`tg3_flag(tp, 5701_DMA_BUG)`, `DWC3_VER_IS_PRIOR(DWC3, 220A)`).  Hexadecimal and binary
# literals, exponents and the u/l/f suffixes are numbers and never match.
_DIGIT_TOKEN = re.compile(rb"\b(?!0[xXbB])\d+(?:_|[A-DG-KM-TV-Za-dg-km-tv-z])\w*")
_OFFSETOF = re.compile(rb"\b(?:__builtin_offsetof|offsetof)\s*\(")
_DESIGNATOR = re.compile(rb"\s*[A-Za-z_]\w*(?:\s*(?:\.\s*[A-Za-z_]\w*|\[\s*\w+\s*\]))+\s*")
# A GNU case range's label, matched from its `case`: `case LOW ... HIGH:` (no `;`, brace or
# colon inside either bound; a bound ends with something other than a blank).
_CASE_RANGE = re.compile(
    rb"case\b\s*([^;{}:]*?[^\s;{}:])(\s*)\.\.\.(\s*)([^;{}:]*?[^\s;{}:])\s*:(?!:)")
_NOT_CALLS = {
    b"sizeof", b"typeof", b"__typeof__", b"__typeof", b"_Alignof", b"__alignof__", b"alignof",
    b"offsetof", b"__builtin_offsetof", b"_Generic", b"va_arg", b"if", b"while", b"for",
    b"switch", b"return", b"__builtin_types_compatible_p",
}


def _blank(buf: bytearray, start: int, end: int) -> None:
    """Replace buf[start:end] by spaces, keeping newlines (and so every line number)."""
    buf[start:end] = bytes(buf[start:end]).translate(_BLANK_TABLE)


def _mask_lexical(raw: bytes) -> bytes:
    """Comments and literals blanked: a copy to scan for code tokens, never parsed."""
    return _LEXICAL.sub(lambda m: m.group(0).translate(_BLANK_TABLE), raw)


def _matching_paren(masked: bytes, open_idx: int, limit: int = 20000) -> int:
    """Index of the ')' closing masked[open_idx] == '(', or -1."""
    depth = 0
    end = min(len(masked), open_idx + limit)
    i = open_idx
    while i < end:
        c = masked[i]
        if c == 0x28:
            depth += 1
        elif c == 0x29:
            depth -= 1
            if depth == 0:
                return i
        elif c in (0x3B, 0x7B, 0x7D) and depth <= 1:
            return -1  # ; { } inside an argument list: not a macro call we understand
        i += 1
    return -1


def neutralise(raw: bytes, tables: MacroTables) -> tuple[bytes, dict[str, Define], list]:
    """Return (code, defines, includes): code is raw with kernel macros made parseable."""
    buf = bytearray(raw)
    masked = bytearray(_mask_lexical(raw))
    defines, includes = _preprocess(raw, masked, buf)
    masked_b = bytes(masked)
    _blank_attributes(masked_b, buf, masked, tables)
    _string_calls(bytes(masked), buf, masked, tables)
    masked_b = bytes(masked)
    _rewrite_declarators(masked_b, buf, masked, tables)
    _rewrite_iterators(bytes(masked), buf, tables)
    _join_type_arguments(bytes(masked), buf)
    _rewrite_case_ranges(bytes(masked), buf)
    _join_string_prefixes(bytes(masked), buf)
    _rename_digit_tokens(bytes(masked), buf)
    _join_offsetof_designators(bytes(masked), buf)
    return bytes(buf), defines, includes


def _preprocess(raw: bytes, masked: bytearray, buf: bytearray):
    """Blank directives and every conditional branch but the first live one.

    Without a configuration we cannot know which branch is compiled; the first branch is the one
    a reader sees first and is usually the full-featured one.  ``#if 0`` is dead code.
    """
    defines: dict[str, Define] = {}
    includes: list[tuple[str, int]] = []
    frames: list[list[bool]] = []  # [taking, taken_any]
    live = True
    dead_from = -1
    line_of = _LineCounter(raw)
    for m in _DIRECTIVE.finditer(bytes(masked)):
        start, end = m.span()
        text = raw[start:end]
        name_m = _DIRECTIVE_NAME.match(bytes(masked[start:end]).lstrip())
        name = name_m.group(1) if name_m else b""
        rest = name_m.group(2).strip() if name_m else b""
        was_live = live
        if name in (b"if", b"ifdef", b"ifndef"):
            taking = not (name == b"if" and rest in (b"0", b"(0)"))
            frames.append([taking, taking])
        elif name == b"elif" and frames:
            frame = frames[-1]
            frame[0] = not frame[1] and rest not in (b"0", b"(0)")
            frame[1] = frame[1] or frame[0]
        elif name == b"else" and frames:
            frame = frames[-1]
            frame[0] = not frame[1]
            frame[1] = True
        elif name == b"endif" and frames:
            frames.pop()
        elif was_live and name == b"define":
            _record_define(raw[start:end], line_of(start), defines)
        elif was_live and name == b"include":
            inc = _INCLUDE.search(text)
            if inc:
                includes.append((inc.group(1).decode("utf-8", "replace"), line_of(start)))
        live = all(f[0] for f in frames)
        if was_live and not live:
            dead_from = end
        elif not was_live and live and dead_from >= 0:
            _blank(buf, dead_from, start)
            _blank(masked, dead_from, start)
        _blank(buf, start, end)
        _blank(masked, start, end)
    if not live and dead_from >= 0:
        _blank(buf, dead_from, len(buf))
        _blank(masked, dead_from, len(masked))
    return defines, includes


class _LineCounter:
    """Line numbers for increasing offsets without rescanning from the start."""

    def __init__(self, raw: bytes) -> None:
        self.raw, self.pos, self.line = raw, 0, 1

    def __call__(self, offset: int) -> int:
        self.line += self.raw.count(b"\n", self.pos, offset)
        self.pos = offset
        return self.line


def _record_define(text: bytes, line: int, defines: dict[str, Define]) -> None:
    body = _LEXICAL.sub(b" ", text.replace(b"\\\n", b" ")).lstrip()
    body = body[1:].lstrip()[len(b"define") :].strip()
    m = _DEFINE.match(body)
    if not m:
        return
    name = m.group(1).decode("ascii", "replace")
    params = None
    if m.group(2) is not None:
        params = tuple(p.strip().decode("ascii", "replace") for p in m.group(2)[1:-1].split(b","))
    value = b" ".join(m.group(3).split()).decode("utf-8", "replace")
    defines[name] = Define(name, value, line, params)


def _blank_attributes(masked: bytes, buf: bytearray, mmask: bytearray, tables: MacroTables) -> None:
    for m in tables.attribute_re.finditer(masked):
        _blank(buf, m.start(), m.end())
        _blank(mmask, m.start(), m.end())
    for m in tables.attribute_function_re.finditer(masked):
        close = _matching_paren(masked, m.end() - 1)
        if close > 0:
            _blank(buf, m.start(), close + 1)
            _blank(mmask, m.start(), close + 1)


def _rewrite_declarators(masked: bytes, buf: bytearray, mmask: bytearray, tables: MacroTables):
    """``NAME(x)`` -> ``type x`` in place, when the type fits in the width of ``NAME(``."""
    if tables.declarator_re is None:
        return
    for m in tables.declarator_re.finditer(masked):
        spec = tables.declarators[m.group(1).decode()]
        close = _matching_paren(masked, m.end() - 1)
        width = m.end() - m.start()
        type_bytes = spec.type.encode()
        if close < 0 or len(type_bytes) > width:
            continue
        args = masked[m.end() : close]
        buf[m.start() : m.end()] = type_bytes.ljust(width)
        if spec.array:
            comma = args.find(b",")
            if comma < 0:
                continue
            buf[m.end() + comma] = ord("[")
            buf[close] = ord("]")
        else:
            buf[close] = ord(" ")
        mmask[m.start() : close + 1] = buf[m.start() : close + 1]


_STATEMENT_BEFORE = frozenset(b";{}):")


def _rewrite_iterators(masked: bytes, buf: bytearray, tables: MacroTables) -> None:
    """``list_for_each_entry(a, b, c) {`` -> ``while              (a, b, c) {``."""
    for m in _iterator_heads(masked, tables):
        name_len = len(m.group(1))
        if name_len < 5:
            continue
        close = _matching_paren(masked, m.end() - 1)
        if close < 0:
            continue
        after = masked[close + 1 : close + 200].lstrip()
        if not after or after[:1] in b";,)=+-*/&|?<>[].":
            continue  # used as an expression or a declaration, not as a loop head
        before = masked[max(0, m.start() - 200) : m.start()].rstrip()
        if before and before[-1] not in _STATEMENT_BEFORE and not before.endswith(b"else"):
            continue
        buf[m.start() : m.start() + name_len] = b"while".ljust(name_len)


def _iterator_heads(masked: bytes, tables: MacroTables):
    """tables.iterator_re.finditer(masked), without running the regex over the whole text: it
    is tried only at the start of words that contain one of its needles (`for_each`, the
    other names), found by substring search at memory speed."""
    needles = tables.iterator_needles
    if needles is None:
        yield from tables.iterator_re.finditer(masked)
        return
    starts = set()
    for needle in needles:
        at = masked.find(needle)
        while at >= 0:
            start = at
            while start > 0 and masked[start - 1] in _WORD_BYTES:
                start -= 1
            starts.add(start)
            at = masked.find(needle, at + 1)
    end = -1
    for start in sorted(starts):
        if start < end:
            continue
        m = tables.iterator_re.match(masked, start)
        if m is not None:
            yield m
            end = m.end()


_WORD_BYTES = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")


def _join_type_arguments(masked: bytes, buf: bytearray) -> None:
    """A type as a macro argument, ``container_of(p, struct foo, m)``, becomes one identifier
    (``struct_foo``) so that the argument list parses as expressions."""
    for m in _TYPE_ARG.finditer(masked):
        owner = _call_owner(masked, m.start(1))
        if owner is None or owner in _NOT_CALLS:
            continue
        start, end = m.start(2), m.end(2)
        buf[start:end] = re.sub(rb"[ \t]+", lambda s: b"_" * len(s.group(0)), bytes(buf[start:end]))


def _rewrite_case_ranges(masked: bytes, buf: bytearray) -> None:
    """`case LOW ... HIGH:` (a GNU case range, which tree-sitter-c does not parse) becomes
    `case (LOW , HIGH):`, the same length: the `...` gives its bytes to the comma and the
    parentheses.  A comma expression is never a case label in C, so the range stays readable
    to whoever needs its bounds (the simulator's switch)."""
    at = masked.find(b"...")
    while at >= 0:
        # Only `...` inside a case label: its `case` is close before it (variadic `...` in a
        # parameter list or a macro has none).
        # Matched in buf, where character literals (`case 'a' ... 'z':`) are still there;
        # `case` and `...` were found in the masked text, so neither is in a comment.
        start = masked.rfind(b"case", max(0, at - 200), at)
        m = _CASE_RANGE.match(buf, start) if start >= 0 else None
        if m is not None and m.start(2) <= at < m.end(3) and \
                (start == 0 or masked[start - 1] not in _WORD_BYTES):
            low, high = bytes(buf[m.start(1):m.end(1)]), bytes(buf[m.start(4):m.end(4)])
            gap1, gap2 = bytes(buf[m.start(2):m.end(2)]), bytes(buf[m.start(3):m.end(3)])
            buf[m.start(1):m.end(4)] = b"(" + low + gap1 + b"," + gap2 + high + b")"
            at = masked.find(b"...", m.end())
        else:
            at = masked.find(b"...", at + 3)


def _string_calls(masked: bytes, buf: bytearray, mmask: bytearray, tables: MacroTables) -> None:
    """A call of a macro that expands to a string literal (`__stringify(__LINE__)`) becomes a
    string literal of the same width; one that spans lines is left alone."""
    for m in tables.string_function_re.finditer(masked):
        close = _matching_paren(masked, m.end() - 1)
        if close < 0 or b"\n" in masked[m.start() : close]:
            continue
        width = close + 1 - m.start()
        buf[m.start() : close + 1] = b'"' + b" " * (width - 2) + b'"'
        _blank(mmask, m.start(), close + 1)


def _join_string_prefixes(masked: bytes, buf: bytearray) -> None:
    """`KERN_ERR DRV_NAME "..."` -> `KERN_ERR_DRV_NAME "..."`: one name, which tree-sitter-c
    concatenates with the literal."""
    code = bytes(buf)
    for m in _STRING_PREFIXES.finditer(code):
        if masked[m.start()] != code[m.start()]:
            continue  # inside a comment or a literal
        buf[m.start() : m.end()] = re.sub(rb"[ \t]+", lambda g: b"_" * len(g.group(0)),
                                          code[m.start() : m.end()])


def _rename_digit_tokens(masked: bytes, buf: bytearray) -> None:
    """`5701_DMA_BUG` -> `_701_DMA_BUG`: an identifier, where C would have pasted one."""
    for m in _DIGIT_TOKEN.finditer(masked):
        buf[m.start()] = ord("_")


def _join_offsetof_designators(masked: bytes, buf: bytearray) -> None:
    """`offsetof(struct cb, u.tcb.tbd)` -> `offsetof(struct cb, u_tcb_tbd)`: tree-sitter-c
    takes a single member name there.  The joined name has no offset, so the value is
    unknown rather than a parse error."""
    for m in _OFFSETOF.finditer(masked):
        close = _matching_paren(masked, m.end() - 1)
        if close < 0:
            continue
        comma = masked.rfind(b",", m.end(), close)
        if comma < 0 or not _DESIGNATOR.fullmatch(masked, comma + 1, close):
            continue
        buf[comma + 1 : close] = bytes(buf[comma + 1 : close]).translate(_DESIGNATOR_JOIN)


_DESIGNATOR_JOIN = bytes.maketrans(b".[]", b"___")


def _call_owner(masked: bytes, pos: int) -> bytes | None:
    """The identifier whose call's argument list contains pos, or None if not a call."""
    depth = 0
    i = pos - 1
    lower = max(0, pos - 4000)
    while i >= lower:
        c = masked[i]
        if c == 0x29:
            depth += 1
        elif c == 0x28:
            if depth == 0:
                j = i - 1
                while j >= 0 and masked[j] in b" \t\n":
                    j -= 1
                end = j + 1
                while j >= 0 and (chr(masked[j]).isalnum() or masked[j] == 0x5F):
                    j -= 1
                word = masked[j + 1 : end]
                return word if word and _WORD.fullmatch(word) else None
            depth -= 1
        elif c in (0x3B, 0x7B, 0x7D):
            return None
        i -= 1
    return None
