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
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from dmalint.contracts.macros import MacroTables, names_regex
from dmalint.parse import _MEMO
from dmalint.wordtrie import WORD_BYTES, WORD_RUN, trie_alternation

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
    for m in _at_word_start(_WHILE, code):
        if raw[m.start() : m.end()] != b"while":
            name = _WORD.match(raw, m.start())
            iterators[m.start()] = tables.cursor_args(name.group(0).decode() if name else "")
    return SourceFile(display, raw, code, defines, includes, iterators)


# --- neutralisation -------------------------------------------------------------------------

# A comment, a string or a character literal.  Each body is written as runs of ordinary bytes
# between escapes (`[^"\\\n]*(?:\\.[^"\\\n]*)*` rather than `(?:\\.|[^"\\\n])*`, and a comment as
# runs of non-stars rather than a lazy `.*?(?:\*/|\Z)`): the same matches, but the engine takes
# a run in one step instead of one alternation per byte (an eighth of drivers/ is comments).
# A comment ends at its first `*/` or at the end of the text.
_LEXICAL = re.compile(
    rb"//[^\n\\]*(?:\\.[^\n\\]*)*|/\*[^*]*(?:\*(?!/)[^*]*)*(?:\*/)?|"
    rb"\"[^\"\\\n]*(?:\\.[^\"\\\n]*)*\"?|'[^'\\\n]*(?:\\.[^'\\\n]*)*'?", re.S
)
# A directive line (`^[ \t]*#`, then up to the first newline no backslash escapes), matched
# from the newline before it: a pattern that starts with a literal lets the engine skip ahead
# to the next newline, where `^` under re.M is tried at every byte (three times slower).  The
# text scanned is the masked text after a newline (so a directive on the first line has one
# too): the match starts at the directive's own offset in the masked text.  Group 1 is the
# directive's name: `[ \t\r\f\v]*` is the `\s*` after `#` that cannot leave the line.
_DIRECTIVE = re.compile(rb"\n[ \t]*#[ \t\r\f\v]*(\w*)[^\n\\]*(?:\\[\s\S][^\n\\]*)*")
_DEFINE = re.compile(rb"([A-Za-z_]\w*)(\([^)]*\))?\s*(.*)", re.S)
# A whole `#define` line (continued lines joined) with no `/`, `"` or `'` in it, so no
# comment or literal: what _record_define's general path (comments and literals dropped, `#`
# and `define` stripped, then _DEFINE) reads there, in one match.  Those three bytes are in
# none of its sets, so on a line with one it does not match at all.
_DEFINE_LINE = re.compile(rb"\s*#\s*define\s*([A-Za-z_]\w*)(\([^)/\"']*\))?\s*([^/\"']*)")
_INCLUDE = re.compile(rb'"([^"]+)"')
# Every byte but a newline to a space (what re.sub(rb"[^\n]", b" ", ...) would do), for
# bytes.translate: blanking runs for every comment and literal of every file read.
_BLANK_TABLE = bytes(0x0A if b == 0x0A else 0x20 for b in range(256))
# `\bwhile\b` without its leading `\b` (see _at_word_start): a literal the engine skips to.
_WHILE = re.compile(rb"while\b")
_WORD = re.compile(rb"[A-Za-z_]\w*")
# Starts by consuming the `(` or `,` (a lookbehind there would stop the engine from skipping
# ahead to the next `(` or `,`: twice as slow); the argument starts at group 1.
# The argument may start on a line of its own (`alloc(dev,\n\t\tstruct foo)`).
_TYPE_ARG_BODY = (
    rb"(\s*)((?:struct|union|enum)[ \t]+\w+|"
    rb"(?:(?:unsigned|signed|long|short|int|char|const|volatile)[ \t]+)+"
    rb"(?:unsigned|signed|long|short|int|char))(\s*)(?=[,)])"
)
_TYPE_ARG = re.compile(rb"[(,]" + _TYPE_ARG_BODY)  # what is meant; searched for as below
# _TYPE_ARG as one pattern per first byte, which is then a literal the engine skips to at
# memory speed, where it tests the set `[(,]` byte by byte (most of the scan's time).  A match
# holds no `(` or `,` after its first byte, so no match hides another: the two patterns'
# matches, merged in order, are _TYPE_ARG's (tests/test_source.py checks it).  The lookahead,
# the first letters of the keywords, turns most `(` and `,` away before the alternatives are
# tried (half the time that is left).
_TYPE_ARGS = tuple(re.compile(first + rb"(?=\s*[ceilsuv])" + _TYPE_ARG_BODY)
                   for first in (rb"\(", rb","))
# Two or more macro names before a string literal (`printk(KERN_ERR DRV_NAME "...")`): C
# concatenates what they expand to, but tree-sitter-c takes at most one name in a string
# concatenation.  Upper-case names only, so that keywords and variables are never joined.
_STRING_PREFIXES = re.compile(rb'\b[A-Z_][A-Z0-9_]*(?:[ \t]+[A-Z_][A-Z0-9_]*)+(?=[ \t]*")')
# The quotes a _STRING_PREFIXES match can stand before: right after a name's last character,
# after one blank that follows one, or after two blanks.  A literal first byte, so the engine
# skips from quote to quote; the lookbehinds have fixed widths, as Python's must.
_PREFIXED_QUOTE = re.compile(rb'"(?:(?<=[A-Z0-9_]")|(?<=[A-Z0-9_][ \t]")|(?<=[ \t][ \t]"))')
# A token that starts with a digit but is no C number: a macro argument pasted into a name
# (`tg3_flag(tp, 5701_DMA_BUG)`, `DWC3_VER_IS_PRIOR(DWC3, 220A)`).  Hexadecimal and binary
# literals, exponents and the u/l/f suffixes are numbers and never match.
# What is meant; searched for as below.
_DIGIT_TOKEN = re.compile(rb"\b(?!0[xXbB])\d+(?:_|[A-DG-KM-TV-Za-dg-km-tv-z])\w*")
# _DIGIT_TOKEN as searched for, in the text with every digit from 1 to 9 made a 1: one
# pattern for the tokens that start with 0 and one for the others, each starting with a
# literal the engine skips to at memory speed (the leading assertions would have it try the
# pattern at every byte, and a leading `\d` would have it test a set at every byte).  Each
# checks after its first digit that no word byte came before it (the `\b`); only a leading 0
# can start `0x` or `0b`.  Matches are whole words, so the two never overlap
# (tests/test_source.py checks they find what _DIGIT_TOKEN finds).
_DIGITS_TO_ONE = bytes.maketrans(b"23456789", b"11111111")
_DIGIT_TOKENS = (
    re.compile(rb"0(?<!\w0)(?![xXbB])[01]*(?:_|[A-DG-KM-TV-Za-dg-km-tv-z])\w*"),
    re.compile(rb"1(?<!\w1)[01]*(?:_|[A-DG-KM-TV-Za-dg-km-tv-z])\w*"),
)
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
    """Comments and literals blanked: a copy to scan for code tokens, never parsed.

    What _LEXICAL.sub(blank, raw) returns.  Every match starts with `/`, `"` or `'`; the
    engine would test that set at every byte (most of the time it took), where a substring
    search finds the next of them at memory speed, in a copy with the quotes made slashes.
    _LEXICAL is tried there, as the engine would try it, and the search goes on after the
    match, or after the byte when it has none (a division)."""
    openers = raw.translate(_QUOTES_TO_SLASH)
    pieces = []
    done = 0
    at = openers.find(b"/")
    while at >= 0:
        m = _LEXICAL.match(raw, at)
        if m is None:
            at = openers.find(b"/", at + 1)
            continue
        pieces.append(raw[done:at])
        pieces.append(m.group().translate(_BLANK_TABLE))
        done = m.end()
        at = openers.find(b"/", done)
    pieces.append(raw[done:])
    return b"".join(pieces)


_QUOTES_TO_SLASH = bytes.maketrans(b"\"'", b"//")


def _matching_paren(masked: bytes, open_idx: int, limit: int = 20000,
                    statements: bool = False) -> int:
    """Index of the ')' closing masked[open_idx] == '(', or -1; also -1 at a `;`, `{` or `}`
    in the argument list, unless the macro may wrap statements."""
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
        elif c in (0x3B, 0x7B, 0x7D) and depth <= 1 and not statements:
            return -1  # ; { } inside an argument list: not a macro call we understand
        i += 1
    return -1


def neutralise(raw: bytes, tables: MacroTables) -> tuple[bytes, dict[str, Define], list]:
    """Return (code, defines, includes): code is raw with kernel macros made parseable."""
    masked_text = _mask_lexical(raw)
    defines, includes, spans = _preprocess(raw, masked_text)
    buf = bytearray(raw)
    masked = bytearray(masked_text)
    for start, end in spans:
        # The same blank in both: blanking keeps only the newlines, which raw and the masked
        # text have at the same offsets.
        blank = raw[start:end].translate(_BLANK_TABLE)
        buf[start:end] = blank
        masked[start:end] = blank
    masked_b = bytes(masked)
    _blank_attributes(masked_b, buf, masked, tables)
    _string_calls(bytes(masked), buf, masked, tables)
    masked_b = bytes(masked)
    _rewrite_declarators(masked_b, buf, masked, tables)
    # The passes below change buf only: one copy of the masked text serves them all.
    masked_b = bytes(masked)
    _rewrite_iterators(masked_b, buf, tables)
    _join_type_arguments(masked_b, buf)
    _rewrite_case_ranges(masked_b, buf)
    _join_string_prefixes(masked_b, buf)
    _rename_digit_tokens(masked_b, buf)
    _join_offsetof_designators(masked_b, buf)
    return bytes(buf), defines, includes


def _preprocess(raw: bytes, masked: bytes):
    """Find the directives and every conditional branch but the first live one, to blank.

    Without a configuration we cannot know which branch is compiled; the first branch is the one
    a reader sees first and is usually the full-featured one.  ``#if 0`` is dead code.

    Returns (defines, includes, spans): spans are the (start, end) ranges to blank, in order
    and disjoint.  They are blanked by the caller once the scan is over (the scan reads the
    masked text as it was before any blanking, which is what blanking as it went would have
    shown it too: a range is blanked only behind the directive being read)."""
    defines: dict[str, Define] = {}
    includes: list[tuple[str, int]] = []
    frames: list[list[bool]] = []  # [taking, taken_any]
    blocked = 0  # frames not taking their branch: the text is live when there is none
    dead_from = -1
    spans: list[list[int]] = []
    line_of = _LineCounter(raw)
    scan = b"\n" + masked  # see _DIRECTIVE: offsets in scan are one past those in masked
    for m in _DIRECTIVE.finditer(scan):
        start, end = m.start(), m.end() - 1
        name = m.group(1)
        was_live = blocked == 0
        if name in _IF_NAMES:
            taking = not (name == b"if" and scan[m.end(1) : m.end()].strip() in _FALSE)
            frames.append([taking, taking])
            blocked += not taking
        elif name == b"elif" and frames:
            frame = frames[-1]
            blocked -= not frame[0]
            frame[0] = not frame[1] and scan[m.end(1) : m.end()].strip() not in _FALSE
            frame[1] = frame[1] or frame[0]
            blocked += not frame[0]
        elif name == b"else" and frames:
            frame = frames[-1]
            blocked -= not frame[0]
            frame[0] = not frame[1]
            frame[1] = True
            blocked += not frame[0]
        elif name == b"endif" and frames:
            blocked -= not frames.pop()[0]
        elif was_live and name == b"define":
            _record_define(raw[start:end], line_of(start), defines)
        elif was_live and name == b"include":
            inc = _INCLUDE.search(raw, start, end)
            if inc:
                includes.append((inc.group(1).decode("utf-8", "replace"), line_of(start)))
        live = blocked == 0
        if was_live:
            _add_span(spans, start, end)
            if not live:
                dead_from = end
        elif live:
            # The dead text and the directives in it, up to and with this one.
            _add_span(spans, dead_from, end)
        # A directive read in dead text (neither live before nor after it) is blanked with
        # that text, when it ends.
    if blocked and dead_from >= 0:
        _add_span(spans, dead_from, len(raw))
    return defines, includes, spans


_IF_NAMES = frozenset((b"if", b"ifdef", b"ifndef"))
_FALSE = frozenset((b"0", b"(0)"))


def _add_span(spans: list[list[int]], start: int, end: int) -> None:
    """Append [start, end) to spans, or extend the last span when it ends where this one starts
    or one byte before: directives on consecutive lines become one span to blank.  That byte
    is the newline that ended a directive (every span ends where a directive or the text
    ends), and blanking leaves newlines as they are."""
    if spans and start <= spans[-1][1] + 1:
        spans[-1][1] = end
    else:
        spans.append([start, end])


class _LineCounter:
    """Line numbers for increasing offsets without rescanning from the start."""

    def __init__(self, raw: bytes) -> None:
        self.raw, self.pos, self.line = raw, 0, 1

    def __call__(self, offset: int) -> int:
        self.line += self.raw.count(b"\n", self.pos, offset)
        self.pos = offset
        return self.line


def _record_define(text: bytes, line: int, defines: dict[str, Define]) -> None:
    # Most defines (a name and a number or an expression) have no comment or literal: one
    # match reads them.  Trailing blanks, which the general path strips, are in the value,
    # whose blank runs are joined below anyway.
    m = _DEFINE_LINE.fullmatch(text.replace(b"\\\n", b" "))
    if m is None:
        body = _LEXICAL.sub(b" ", text.replace(b"\\\n", b" ")).lstrip()
        body = body[1:].lstrip()[len(b"define") :].strip()
        m = _DEFINE.match(body)
        if not m:
            return
    name_b, params_b, value_b = m.groups()
    name = name_b.decode("ascii", "replace")
    params = None
    if params_b is not None:
        params = tuple([p.strip().decode("ascii", "replace") for p in params_b[1:-1].split(b",")])
    value = b" ".join(value_b.split()).decode("utf-8", "replace")
    defines[name] = Define(name, value, line, params)


def _blank_attributes(masked: bytes, buf: bytearray, mmask: bytearray, tables: MacroTables) -> None:
    words = [(tables.attribute_re, tables.attributes)]
    calls = [(tables.attribute_function_re, tables.attribute_functions, False)]
    # The driver's own macros defined to nothing: a small regex of those this text uses (most
    # are include guards, never used in code), not a new one of every table name per unit.
    # Their arguments may be whole statements (`IF_EVENT(printk(...);)`).
    own = frozenset(n for n in tables.driver_blank if n.encode() in masked)
    if own:
        words.append((names_regex(own, rb"\b"), own))
    own = frozenset(n for n in tables.driver_blank_functions if n.encode() in masked)
    if own:
        calls.append((names_regex(own, rb"\s*\("), own, True))
    for pattern, names in words:
        for m in _name_matches(pattern, names, rb"\b", masked):
            _blank(buf, m.start(), m.end())
            _blank(mmask, m.start(), m.end())
    for pattern, names, statements in calls:
        for m in _name_matches(pattern, names, rb"\s*\(", masked):
            close = _matching_paren(masked, m.end() - 1, statements=statements)
            if close > 0:
                _blank(buf, m.start(), close + 1)
                _blank(mmask, m.start(), close + 1)


def _rewrite_declarators(masked: bytes, buf: bytearray, mmask: bytearray, tables: MacroTables):
    """``NAME(x)`` -> ``type x`` in place, when the type fits in the width of ``NAME(``."""
    if tables.declarator_re is None:
        return
    for m in _name_matches(tables.declarator_re, tables.declarators, rb"\s*\(", masked):
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
    needles = _least_needles(needles)
    starts = set()
    for needle in needles:
        at = masked.find(needle)
        while at >= 0:
            start = at
            while start > 0 and masked[start - 1] in WORD_BYTES:
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


# Any `#define NAME body` or `#define NAME(params) body`, its body through continuation lines.
_ANY_DEFINE = re.compile(rb"#[ \t]*define[ \t]+([A-Za-z_]\w*)(\([^)\n]*\))?((?:[^\n\\]|\\[\s\S])*)")
_BODY_NOISE = re.compile(rb"/\*[\s\S]*?\*/|//[^\n]*|\\\r?\n|\s+")
_CONTINUATION = re.compile(rb"\\\r?\n")
_FOR_HEAD = re.compile(r"\s*for\s*\(")
# Words a macro may stand for and still be blanked: storage classes and qualifiers, which
# change nothing dmalint reads (`#define STATIC static`, empty in a debug build).
_BLANKABLE_WORDS = frozenset({b"static", b"inline", b"__inline", b"__inline__", b"extern",
                              b"register", b"volatile", b"const"})


def driver_macros(raw: bytes, keep=None) -> tuple[dict[str, tuple[int, ...]], frozenset[str],
                                                   frozenset[str]]:
    """What raw's own #defines tell the neutraliser, which no table can list for every driver:
    (loops, names, function names).

    loops: the function-like macros whose body is a `for` head (benet's
    `for_all_rx_queues(adapter, rxo, i) for (i = 0, rxo = ...; ...; i++, rxo++)`), each with
    the positions of its cursors, the parameters the head assigns (`rxo`, `i`), which the
    explorer treats as assigned on every round.

    names, function names: what raw defines to nothing, whose uses the preprocessor blanks
    (tree-sitter would otherwise see `STATIC void f(...)` or `IF_EVENT(printk(...);)` and break
    the function): object-like macros every definition of which is empty or only storage
    classes and qualifiers (`STATIC`), and function-like macros with an empty definition,
    which is what a build without the driver's debugging sees (`#define IF_EVENT(A)` beside
    the debug one).  `keep(body)`: a function-like macro with a definition for which it is
    true is never blanked (one that calls the DMA API in the other build must stay a call)."""
    loops: dict[str, tuple[int, ...]] = {}
    objects: dict[str, bool] = {}  # name -> every definition blankable
    empty: set[str] = set()  # function-like macros with an empty definition
    kept: set[str] = set()  # ... and those with a definition keep() is true for
    if b"define" not in raw:
        return loops, frozenset(), frozenset()
    for m in _ANY_DEFINE.finditer(raw):
        name, params, body = m.group(1).decode("latin-1"), m.group(2), m.group(3)
        words = _BODY_NOISE.sub(b" ", body).split()
        if params is None:
            objects[name] = objects.get(name, True) and _BLANKABLE_WORDS.issuperset(words)
        elif not words:
            empty.add(name)
        else:
            if keep is not None and keep(body):
                kept.add(name)
            cursors = _loop_cursors(params, body)
            if cursors:
                loops[name] = cursors
    return loops, frozenset(n for n, ok in objects.items() if ok), frozenset(empty - kept)


def _loop_cursors(params: bytes, body: bytes) -> tuple[int, ...]:
    """The positions of the parameters a `for` head body assigns; () for any other body."""
    text = _CONTINUATION.sub(b" ", body).decode("latin-1")
    if not _FOR_HEAD.match(text):
        return ()
    head = _for_head(text)
    if head is None:
        return ()
    names = [p.strip() for p in params[1:-1].decode("latin-1").split(",")]
    return tuple(i for i, p in enumerate(names)
                 if re.fullmatch(r"[A-Za-z_]\w*", p) and _assigns(head, p))


def _for_head(body: str) -> str | None:
    """The text inside `for ( ... )` at the start of body, or None if it does not close."""
    start = body.index("(")
    depth = 0
    for i in range(start, len(body)):
        if body[i] == "(":
            depth += 1
        elif body[i] == ")":
            depth -= 1
            if depth == 0:
                return body[start + 1 : i]
    return None


def _assigns(head: str, name: str) -> bool:
    """Whether the for head assigns the parameter (`name =`, `(name) =`, `name++`, `--name`,
    `name += ...`), not only reads it."""
    n = re.escape(name)
    ref = rf"(?:\b{n}\b|\(\s*{n}\s*\))"
    return re.search(rf"{ref}\s*(?:[-+*/%&|^]|<<|>>)?=(?!=)|{ref}\s*(?:\+\+|--)|"
                     rf"(?:\+\+|--)\s*{ref}", head) is not None


def _least_needles(needles: tuple[bytes, ...]) -> tuple[bytes, ...]:
    """needles without the words that contain another needle (`skb_queue_walk_safe` holds
    `skb_queue_walk`): such a word occurs only where the other does, in the same word, so
    _iterator_heads finds the same word starts with one text search fewer each (a search of
    the whole text each, most of that pass's time)."""
    least = _LEAST_NEEDLES.get(needles)
    if least is None:
        least = _LEAST_NEEDLES[needles] = tuple(
            needle for needle in needles
            if not (WORD_RUN.fullmatch(needle)
                    and any(other != needle and other in needle for other in needles)))
    return least


_LEAST_NEEDLES: dict[tuple[bytes, ...], tuple[bytes, ...]] = {}


def _at_word_start(rest: re.Pattern[bytes], text: bytes) -> list[re.Match[bytes]]:
    r"""What (`\b` + rest).finditer(text) finds, for a rest that never matches the empty string.

    A pattern that starts with `\b` is tried by the engine at every byte of the text; rest,
    when it starts with a literal (`while`, `__`), is searched for at memory speed, and the
    `\b` is checked here, where rest matched.  After a match without it the search goes on
    from the next byte, as the engine would: the leftmost match of `\b` + rest is the leftmost
    match of rest with a word boundary before it."""
    found = []
    pos = 0
    search = rest.search
    while (m := search(text, pos)) is not None:
        at = m.start()
        # \b for a bytes pattern: a word byte ([A-Za-z0-9_]) on one side only.
        if (at > 0 and text[at - 1] in WORD_BYTES) != (text[at] in WORD_BYTES):
            found.append(m)
            pos = m.end()
        else:
            pos = at + 1
    return found


class _NameSearch:
    r"""Finds what a pattern of contracts.macros, `\b(names)suffix`, finds, faster.

    The names are split by their first two bytes, and each group searched for without the
    leading `\b` (_at_word_start): each such pattern starts with a literal the engine skips to
    at memory speed (most names start with `__`), where the whole pattern starts with an
    assertion and is tried at every byte.  Exact when every name is a word (`\w+`): a match
    is then a whole word (and a suffix that cannot start a name), so matches of different
    groups never overlap and each word start matches in at most one group.  Otherwise, or
    for a pattern of another shape, the pattern itself is used."""

    # Past this many groups, one scan with the whole pattern is cheaper.
    MAX_GROUPS = 8

    def __init__(self, pattern: re.Pattern[bytes], names, suffix: bytes) -> None:
        self.pattern = pattern
        self.groups: list[tuple[bytes, re.Pattern[bytes]]] | None = None
        encoded = [name.encode() for name in names]
        if not names or not all(WORD_RUN.fullmatch(n) for n in encoded):
            return
        if pattern.pattern != rb"\b(" + trie_alternation(names) + rb")" + suffix:
            return
        by_prefix: dict[bytes, list[str]] = {}
        for name, raw_name in zip(names, encoded):
            by_prefix.setdefault(raw_name[:2], []).append(name)
        if len(by_prefix) <= self.MAX_GROUPS:
            # With each group, the start all its names share: a text without it (a test at
            # memory speed) has no match of the group (`asmlinkage` is a group of its own).
            self.groups = [
                (bytes(os.path.commonprefix([name.encode() for name in group])),
                 re.compile(rb"(" + trie_alternation(group) + rb")" + suffix))
                for group in by_prefix.values()]

    def matches(self, text: bytes) -> list[re.Match[bytes]]:
        if self.groups is None:
            return list(self.pattern.finditer(text))
        found = [m for needle, group in self.groups if needle in text
                 for m in _at_word_start(group, text)]
        if len(self.groups) > 1:
            found.sort(key=_match_start)
        return found


def _match_start(m: re.Match[bytes]) -> int:
    return m.start()


# id(pattern) -> its search.  The search holds the pattern, so no other object takes its id
# while it is here.  Keyed by id: hashing a pattern hashes its text, which is long.
_NAME_SEARCHES: dict[int, _NameSearch] = {}


def _name_matches(pattern: re.Pattern[bytes], names, suffix: bytes,
                  text: bytes) -> list[re.Match[bytes]]:
    """pattern.finditer(text) as a list, for a table pattern built from names and suffix."""
    search = _NAME_SEARCHES.get(id(pattern))
    if search is None:
        search = _NAME_SEARCHES[id(pattern)] = _NameSearch(pattern, names, suffix)
    return search.matches(text)


def _join_type_arguments(masked: bytes, buf: bytearray) -> None:
    """A type as a macro argument, ``container_of(p, struct foo, m)``, becomes one identifier
    (``struct_foo``) so that the argument list parses as expressions."""
    for m in _type_arguments(masked):
        owner = _call_owner(masked, m.start(1))
        if owner is None or owner in _NOT_CALLS:
            continue
        start, end = m.start(2), m.end(2)
        buf[start:end] = re.sub(rb"[ \t]+", lambda s: b"_" * len(s.group(0)), bytes(buf[start:end]))


def _type_arguments(masked: bytes) -> list[re.Match[bytes]]:
    """_TYPE_ARG.finditer(masked) as a list, from _TYPE_ARGS."""
    found = [m for pattern in _TYPE_ARGS for m in pattern.finditer(masked)]
    found.sort(key=_match_start)
    return found


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
                (start == 0 or masked[start - 1] not in WORD_BYTES):
            low, high = bytes(buf[m.start(1):m.end(1)]), bytes(buf[m.start(4):m.end(4)])
            gap1, gap2 = bytes(buf[m.start(2):m.end(2)]), bytes(buf[m.start(3):m.end(3)])
            buf[m.start(1):m.end(4)] = b"(" + low + gap1 + b"," + gap2 + high + b")"
            at = masked.find(b"...", m.end())
        else:
            at = masked.find(b"...", at + 3)


def _string_calls(masked: bytes, buf: bytearray, mmask: bytearray, tables: MacroTables) -> None:
    """A call of a macro that expands to a string literal (`__stringify(__LINE__)`) becomes a
    string literal of the same width; one that spans lines is left alone."""
    for m in _name_matches(tables.string_function_re, tables.string_functions, rb"\s*\(", masked):
        close = _matching_paren(masked, m.end() - 1)
        if close < 0 or b"\n" in masked[m.start() : close]:
            continue
        width = close + 1 - m.start()
        buf[m.start() : close + 1] = b'"' + b" " * (width - 2) + b'"'
        _blank(mmask, m.start(), close + 1)


def _join_string_prefixes(masked: bytes, buf: bytearray) -> None:
    """`KERN_ERR DRV_NAME "..."` -> `KERN_ERR_DRV_NAME "..."`: one name, which tree-sitter-c
    concatenates with the literal (also when the literal starts the next line)."""
    code = bytes(buf)
    for m in (*_string_prefix_matches(code), *_line_end_prefix_matches(code)):
        if masked[m.start()] != code[m.start()]:
            continue  # inside a comment or a literal
        buf[m.start() : m.end()] = re.sub(rb"[ \t]+", lambda g: b"_" * len(g.group(0)),
                                          code[m.start() : m.end()])


def _string_prefix_matches(code: bytes):
    r"""_STRING_PREFIXES.finditer(code), run only over the lines that have a quote it can stand
    before (_PREFIXED_QUOTE): a match and the quote after it never leave their line, so the
    matches in those lines are all the matches, in the same order, and most lines have none
    (over the whole text the pattern, which starts with `\b`, is tried at every byte)."""
    line_end = -1
    for quote in _PREFIXED_QUOTE.finditer(code):
        if quote.start() < line_end:
            continue  # that line is done
        line_start = code.rfind(b"\n", 0, quote.start()) + 1
        line_end = code.find(b"\n", quote.start())
        if line_end < 0:
            line_end = len(code)
        # `\b` still sees the byte before pos: the bounds only stop the scan at the line's.
        yield from _STRING_PREFIXES.finditer(code, line_start, line_end)


# A line that starts with a string literal, and names at the end of the line before it
# (`printk(KERN_ERR DRV_NAME\n\t"...")`).
_QUOTE_LINE = re.compile(rb'\n[ \t]*"')
_LINE_END_PREFIXES = re.compile(rb'\b[A-Z_][A-Z0-9_]*(?:[ \t]+[A-Z_][A-Z0-9_]*)+[ \t]*$')


def _line_end_prefix_matches(code: bytes):
    """Two or more upper-case names that end a line whose next line starts with a string
    literal: _STRING_PREFIXES's case, with the literal on the next line.  Only the lines
    before such a line are searched (the pattern ends at the line's end)."""
    for quote in _QUOTE_LINE.finditer(code):
        end = quote.start()
        start = code.rfind(b"\n", 0, end) + 1
        m = _LINE_END_PREFIXES.search(code, start, end)
        if m is not None:
            yield m


def _rename_digit_tokens(masked: bytes, buf: bytearray) -> None:
    """`5701_DMA_BUG` -> `_701_DMA_BUG`: an identifier, where C would have pasted one."""
    digits = masked.translate(_DIGITS_TO_ONE)
    for pattern in _DIGIT_TOKENS:
        for m in pattern.finditer(digits):
            buf[m.start()] = ord("_")


def _join_offsetof_designators(masked: bytes, buf: bytearray) -> None:
    """`offsetof(struct cb, u.tcb.tbd)` -> `offsetof(struct cb, u_tcb_tbd)`: tree-sitter-c
    takes a single member name there.  The joined name has no offset, so the value is
    unknown rather than a parse error."""
    if b"offsetof" not in masked:
        return  # both names contain it; most files have neither (a search at memory speed)
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
