"""Integer constant expressions as the kernel writes them: array bounds, alignments, buffer sizes.

The evaluator walks tree-sitter expression nodes.  Names are resolved through a ``Scope``: the
``#define``s and enum constants a translation unit can see, and (when a layout engine provides it)
the sizes of types and of typed expressions.  The common kernel helper macros (``BIT``, ``ALIGN``,
``DIV_ROUND_UP``, ``ARRAY_SIZE``, ``SZ_4K``, ``PAGE_SIZE``...) are built in, because their headers
are never read.  Anything not understood makes the whole result ``None``: a size is never guessed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Mapping, Protocol

from tree_sitter import Node

from dmalint.parse import parse, text, unwrap_parens
from dmalint.source import Define

MAX_DEPTH = 64  # macro and enum chains deeper than this are treated as unknown (and as loops)


@dataclass(frozen=True)
class Target:
    """The machine sizes are computed for: LP64 (the x86-64 and arm64 ABI) and non-coherent, the
    kind of machine where a buffer sharing a cache line with other data is a bug.  dma_minalign
    is its ``ARCH_DMA_MINALIGN``, which ``ARCH_KMALLOC_MINALIGN`` and ``IIO_DMA_MINALIGN`` follow
    (64 by default, as with 64-byte lines; 128 on arm64).  x86-64 itself is coherent and leaves
    those at 8, so for structs using them the default target is not x86-64."""

    page_size: int = 4096
    l1_line: int = 64
    dma_minalign: int = 64

    @classmethod
    def arm64(cls) -> "Target":
        """arm64 with 4K pages: 64-byte L1 lines, 128-byte ARCH_DMA_MINALIGN."""
        return cls(page_size=4096, l1_line=64, dma_minalign=128)


class Scope(Protocol):
    """What the evaluator asks of its surroundings; every method returns None when unknown."""

    target: Target

    def define(self, name: str) -> Define | None: ...
    def enum_value(self, name: str) -> int | None: ...
    def constant(self, name: str) -> int | None: ...
    def is_type(self, name: str) -> bool: ...
    def type_size(self, node: Node) -> int | None: ...
    def type_align(self, node: Node) -> int | None: ...
    def expr_size(self, node: Node) -> int | None: ...
    def expr_length(self, node: Node) -> int | None: ...
    def member_offset(self, type_node: Node, member: str) -> tuple[int, int] | None: ...


class BasicScope:
    """A scope with ``#define``s, enum constants and integer types only: no structs, no variables."""

    def __init__(self, defines: Mapping[str, Define] | None = None,
                 enums: Mapping[str, int] | None = None, target: Target = Target(),
                 constants: Mapping[str, int] | None = None) -> None:
        self.defines = dict(defines or {})
        self.enums = dict(enums or {})
        self.constants = dict(constants or {})
        self.target = target

    def define(self, name: str) -> Define | None:
        return self.defines.get(name)

    def enum_value(self, name: str) -> int | None:
        return self.enums.get(name)

    def constant(self, name: str) -> int | None:
        return self.constants.get(name)

    def is_type(self, name: str) -> bool:
        return name in INTEGER_TYPES

    def type_size(self, node: Node) -> int | None:
        declarator = node.child_by_field_name("declarator")
        if declarator is not None:
            return 8 if declarator.type == "abstract_pointer_declarator" else None
        spec = INTEGER_TYPES.get(_type_words(node.child_by_field_name("type") or node))
        return spec[0] // 8 if spec else None

    def type_align(self, node: Node) -> int | None:
        return self.type_size(node)

    def expr_size(self, node: Node) -> int | None:
        return None

    def expr_length(self, node: Node) -> int | None:
        return None

    def member_offset(self, type_node: Node, member: str) -> tuple[int, int] | None:
        return None


# Integer types a cast can truncate to: name -> (bits, signed).  Only names whose width is fixed
# by the LP64 ABI or by the kernel's own typedefs (include/linux/types.h, asm-generic/int-ll64.h).
INTEGER_TYPES: dict[str, tuple[int, bool]] = {}
for _bits in (8, 16, 32, 64):
    for _name in (f"u{_bits}", f"__u{_bits}", f"uint{_bits}_t", f"u_int{_bits}_t"):
        INTEGER_TYPES[_name] = (_bits, False)
    for _name in (f"s{_bits}", f"__s{_bits}", f"int{_bits}_t"):
        INTEGER_TYPES[_name] = (_bits, True)
for _bits in (16, 32, 64):
    for _name in (f"__le{_bits}", f"__be{_bits}"):
        INTEGER_TYPES[_name] = (_bits, False)
INTEGER_TYPES.update({
    "char": (8, True), "signed char": (8, True), "unsigned char": (8, False),
    "short": (16, True), "unsigned short": (16, False),
    "int": (32, True), "unsigned": (32, False), "unsigned int": (32, False),
    "long": (64, True), "unsigned long": (64, False),
    "long long": (64, True), "unsigned long long": (64, False),
    "bool": (8, False), "_Bool": (8, False),
    "size_t": (64, False), "ssize_t": (64, True), "uintptr_t": (64, False),
    "intptr_t": (64, True), "ptrdiff_t": (64, True), "dma_addr_t": (64, False),
    "phys_addr_t": (64, False), "resource_size_t": (64, False), "loff_t": (64, True),
    "gfp_t": (32, False), "uint": (32, False), "ulong": (64, False), "ushort": (16, False),
    "uchar": (8, False),
})


def _type_words(node: Node) -> str:
    """Canonical C spelling of a simple type node or text: 'unsigned long int' -> 'unsigned long'."""
    return canonical_type_name(text(node))


_SIGN_WORDS = {"signed", "unsigned"}
_SIZE_WORDS = {"short", "long", "char", "int"}
_QUALIFIERS = {"const", "volatile", "__volatile__", "__const"}


def canonical_type_name(spelled: str) -> str:
    """A type's spelling with whitespace and qualifiers normalised; C's integer keywords in one
    canonical order ('long unsigned int' -> 'unsigned long').  Macro arguments that neutralisation
    joined with underscores ('unsigned_long') are split back."""
    words = spelled.split()
    if len(words) == 1 and "_" in words[0]:
        parts = [p for p in words[0].split("_") if p]
        if parts and set(parts) <= _SIGN_WORDS | _SIZE_WORDS | _QUALIFIERS:
            words = parts
    words = [w for w in words if w not in _QUALIFIERS]
    if not words or not set(words) <= _SIGN_WORDS | _SIZE_WORDS:
        return " ".join(words)
    unsigned = "unsigned" in words
    if "char" in words:
        return "unsigned char" if unsigned else ("signed char" if "signed" in words else "char")
    longs = words.count("long")
    base = "short" if "short" in words else "long long" if longs >= 2 else "long" if longs else "int"
    return ("unsigned " + base) if unsigned else base


# --- parsing a text expression -------------------------------------------------------------

_PREFIX = b"int __dmalint_expr = ("
_SUFFIX = b");\n"


@lru_cache(maxsize=4096)
def parse_expression(source: str) -> Node | None:
    """The expression node for C text (a macro body, a config value), or None if it does not parse.

    The text goes through the same macro neutralisation as files, so ``sizeof_field(struct a, b)``
    and annotations parse as they would in a driver."""
    from dmalint.contracts.loader import load_macro_tables
    from dmalint.source import neutralise

    if not source.strip() or "\n" in source.strip() or ";" in source or "{" in source:
        return None
    raw = _PREFIX + source.encode("utf-8", "replace") + _SUFFIX
    code, _, _ = neutralise(raw, load_macro_tables())
    root = parse(code).root_node
    if root.has_error:
        return None
    decl = root.named_children[0] if root.named_child_count == 1 else None
    init = decl.child_by_field_name("declarator") if decl is not None else None
    value = init.child_by_field_name("value") if init is not None else None
    return unwrap_parens(value) if value is not None else None


# --- literals ------------------------------------------------------------------------------

_INT_RE = re.compile(r"^(0[xX][0-9a-fA-F']+|0[bB][01']+|0[0-7']*|[1-9][0-9']*)([uUlL]*)$")


def int_literal(spelled: str) -> int | None:
    """The value of a C integer literal (hex, octal, binary, suffixes), or None for a float."""
    m = _INT_RE.match(spelled.strip())
    if not m:
        return None
    digits = m.group(1).replace("'", "")
    if digits[:2] in ("0x", "0X"):
        return int(digits[2:], 16)
    if digits[:2] in ("0b", "0B"):
        return int(digits[2:], 2)
    if digits.startswith("0") and len(digits) > 1:
        return int(digits[1:], 8)
    return int(digits)


_ESCAPES = {"n": 10, "t": 9, "r": 13, "0": 0, "\\": 92, "'": 39, '"': 34, "a": 7, "b": 8,
            "f": 12, "v": 11, "?": 63, "e": 27}


def char_literal(spelled: str) -> int | None:
    """The value of a one-character C literal ('a', '\\n', '\\x1f', '\\012')."""
    body = spelled[1:-1] if len(spelled) >= 3 and spelled[0] == spelled[-1] == "'" else None
    if body is None:
        return None
    if len(body) == 1:
        return ord(body)
    if body[0] != "\\":
        return None
    if body[1] in "xX":
        return int(body[2:], 16) if re.fullmatch(r"[0-9a-fA-F]{1,2}", body[2:]) else None
    if re.fullmatch(r"[0-7]{1,3}", body[1:]):
        return int(body[1:], 8)
    return _ESCAPES.get(body[1:]) if len(body) == 2 else None


# --- built-in kernel macros ----------------------------------------------------------------

def _sizes_table() -> dict[str, int]:
    """include/linux/sizes.h: SZ_1 .. SZ_512, SZ_1K .. SZ_512K, SZ_1M .., SZ_1G .., SZ_1T .."""
    out: dict[str, int] = {}
    for shift in range(0, 64):
        unit, unit_shift = ("", 0) if shift < 10 else ("K", 10) if shift < 20 else (
            "M", 20) if shift < 30 else ("G", 30) if shift < 40 else ("T", 40)
        out[f"SZ_{1 << (shift - unit_shift)}{unit}"] = 1 << shift
    return out


SIZES = _sizes_table()


def _builtin_constant(name: str, target: Target) -> int | None:
    """Constants whose value the target fixes (page size, cache lines) or that linux/sizes.h names."""
    if name in SIZES:
        return SIZES[name]
    page_shift = target.page_size.bit_length() - 1
    table = {
        "PAGE_SIZE": target.page_size, "PAGE_SHIFT": page_shift,
        "PAGE_MASK": ~(target.page_size - 1),
        "L1_CACHE_BYTES": target.l1_line, "SMP_CACHE_BYTES": target.l1_line,
        "L1_CACHE_SHIFT": target.l1_line.bit_length() - 1,
        "ARCH_DMA_MINALIGN": target.dma_minalign, "ARCH_KMALLOC_MINALIGN": target.dma_minalign,
        "IIO_DMA_MINALIGN": target.dma_minalign, "DMA_MINALIGN": target.dma_minalign,
        "MAX_SKB_FRAGS": max(16, 65536 // target.page_size + 1),  # include/linux/skbuff.h
        "BITS_PER_LONG": 64, "BITS_PER_LONG_LONG": 64, "BITS_PER_BYTE": 8,
        "true": 1, "false": 0, "NULL": 0,
    }
    return table.get(name)


def _ilog2(x: int) -> int | None:
    return x.bit_length() - 1 if x > 0 else None


def _div(a: int, b: int) -> int | None:
    """C division: truncation toward zero."""
    if b == 0:
        return None
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def _mod(a: int, b: int) -> int | None:
    q = _div(a, b)
    return None if q is None else a - q * b


def _align(x: int, a: int) -> int | None:
    return (x + a - 1) & ~(a - 1) if a > 0 else None


def _round_up_any(x: int, y: int) -> int | None:
    return ((x + y - 1) // y) * y if y > 0 else None


def _pow2_up(x: int) -> int | None:
    return 1 << (x - 1).bit_length() if x > 0 else None


# name -> (number of value arguments, function).  Macros whose first argument is a type
# (max_t, min_t, clamp_t) skip it; those taking types or expressions are handled in the evaluator.
_VALUE_MACROS: dict[str, tuple[int, Callable[..., int | None]]] = {
    "BIT": (1, lambda n: 1 << n if n >= 0 else None),
    "BIT_ULL": (1, lambda n: 1 << n if n >= 0 else None),
    "_BITUL": (1, lambda n: 1 << n if n >= 0 else None),
    "_BITULL": (1, lambda n: 1 << n if n >= 0 else None),
    "BIT_MASK": (1, lambda n: 1 << (n % 64)),
    "GENMASK": (2, lambda h, l: ((1 << (h - l + 1)) - 1) << l if h >= l >= 0 else None),
    "GENMASK_ULL": (2, lambda h, l: ((1 << (h - l + 1)) - 1) << l if h >= l >= 0 else None),
    "ALIGN": (2, _align), "__ALIGN_KERNEL": (2, _align), "round_up": (2, _align),
    "ALIGN_DOWN": (2, lambda x, a: x & ~(a - 1) if a > 0 else None),
    "round_down": (2, lambda x, a: x & ~(a - 1) if a > 0 else None),
    "roundup": (2, _round_up_any),
    "rounddown": (2, lambda x, y: x - x % y if y > 0 else None),
    "DIV_ROUND_UP": (2, lambda n, d: (n + d - 1) // d if d > 0 else None),
    "DIV_ROUND_UP_ULL": (2, lambda n, d: (n + d - 1) // d if d > 0 else None),
    "__KERNEL_DIV_ROUND_UP": (2, lambda n, d: (n + d - 1) // d if d > 0 else None),
    "DIV_ROUND_CLOSEST": (2, lambda n, d: (n + d // 2) // d if d > 0 and n >= 0 else None),
    "BITS_TO_LONGS": (1, lambda n: (n + 63) // 64), "BITS_TO_U64": (1, lambda n: (n + 63) // 64),
    "BITS_TO_U32": (1, lambda n: (n + 31) // 32), "BITS_TO_BYTES": (1, lambda n: (n + 7) // 8),
    "max": (2, max), "min": (2, min), "max3": (3, max), "min3": (3, min),
    "__max": (2, max), "__min": (2, min),
    "clamp": (3, lambda v, lo, hi: min(max(v, lo), hi)),
    "clamp_val": (3, lambda v, lo, hi: min(max(v, lo), hi)),
    "abs": (1, abs),
    "array_size": (2, lambda a, b: a * b), "size_mul": (2, lambda a, b: a * b),
    "array3_size": (3, lambda a, b, c: a * b * c), "size_add": (2, lambda a, b: a + b),
    "ilog2": (1, _ilog2), "order_base_2": (1, lambda n: (n - 1).bit_length() if n > 0 else None),
    "roundup_pow_of_two": (1, _pow2_up),
    "rounddown_pow_of_two": (1, lambda n: 1 << (n.bit_length() - 1) if n > 0 else None),
    "_AC": (2, lambda x, _t: x), "_UL": (1, lambda x: x), "_ULL": (1, lambda x: x),
    "UL": (1, lambda x: x), "ULL": (1, lambda x: x), "U32_C": (1, lambda x: x),
    "U64_C": (1, lambda x: x), "UINT64_C": (1, lambda x: x),
}
_TYPED_MACROS = {"max_t": 2, "min_t": 2, "clamp_t": 3}  # first argument is a type


def builtin_macro_names() -> frozenset[str]:
    """Every function-like macro the evaluator knows without reading a header."""
    return frozenset(_VALUE_MACROS) | frozenset(_TYPED_MACROS) | {
        "ARRAY_SIZE", "sizeof_field", "FIELD_SIZEOF", "offsetof", "offsetofend",
        "__builtin_offsetof"}


# --- the evaluator ---------------------------------------------------------------------------

_IDENT = re.compile(r"[A-Za-z_]\w*")


class ConstEval:
    """Evaluate integer constant expressions in one scope."""

    def __init__(self, scope: Scope | None = None) -> None:
        self.scope: Scope = scope if scope is not None else BasicScope()
        self._active: set[str] = set()  # macros being expanded (self-reference = unknown)
        self._depth = 0

    def eval_text(self, source: str) -> int | None:
        """Evaluate C text (a macro body, an attribute argument)."""
        node = parse_expression(source)
        return None if node is None else self.eval(node)

    def eval(self, node: Node | None) -> int | None:
        """The integer value of an expression node, or None when any part is unknown."""
        if node is None or self._depth > MAX_DEPTH:
            return None
        self._depth += 1
        try:
            return self._eval(node)
        finally:
            self._depth -= 1

    def _eval(self, node: Node) -> int | None:
        kind = node.type
        handler = getattr(self, "_e_" + kind, None)
        return handler(node) if handler is not None else None

    # literals and names
    def _e_number_literal(self, node: Node) -> int | None:
        spelled = text(node).strip()
        sign = -1 if spelled.startswith("-") else 1
        value = int_literal(spelled.lstrip("+-").strip())
        return None if value is None else sign * value

    def _e_char_literal(self, node: Node) -> int | None:
        return char_literal(text(node))

    def _e_true(self, node: Node) -> int:
        return 1

    def _e_false(self, node: Node) -> int:
        return 0

    def _e_null(self, node: Node) -> int:
        return 0

    def _e_identifier(self, node: Node) -> int | None:
        return self.name(text(node))

    def name(self, name: str) -> int | None:
        """The value of an identifier: a #define, an enum constant, or a built-in constant."""
        define = self.scope.define(name)
        if define is not None and define.params is None and name not in self._active:
            self._active.add(name)
            try:
                value = self.eval_text(define.value)
            finally:
                self._active.discard(name)
            return value
        if define is not None:
            return None  # a function-like macro used as a name, or a macro loop
        value = self.scope.enum_value(name)
        if value is not None:
            return value
        value = self.scope.constant(name)
        if value is not None:
            return value
        return _builtin_constant(name, self.scope.target)

    # operators
    def _e_parenthesized_expression(self, node: Node) -> int | None:
        kids = node.named_children
        return self.eval(kids[-1]) if kids else None

    def _e_comma_expression(self, node: Node) -> int | None:
        return self.eval(node.child_by_field_name("right"))

    def _e_unary_expression(self, node: Node) -> int | None:
        value = self.eval(node.child_by_field_name("argument"))
        if value is None:
            return None
        op = text(node.child_by_field_name("operator"))
        return {"-": -value, "+": value, "~": ~value, "!": int(not value)}.get(op)

    def _e_binary_expression(self, node: Node) -> int | None:
        left_node = node.child_by_field_name("left")
        op = text(node.child_by_field_name("operator"))
        right_node = node.child_by_field_name("right")
        cast = self._paren_type(left_node)
        if cast is not None and op in ("-", "+"):
            # `(u32)-1` parses as a subtraction from a parenthesised name that is a type
            value = self.eval(right_node)
            return None if value is None else self._cast(cast, -value if op == "-" else value)
        if op == "&&":
            left = self.eval(left_node)
            return None if left is None else (0 if not left else self._truth(right_node))
        if op == "||":
            left = self.eval(left_node)
            return None if left is None else (1 if left else self._truth(right_node))
        left, right = self.eval(left_node), self.eval(right_node)
        if left is None or right is None:
            return None
        if op in ("<<", ">>") and (right < 0 or right > 127):
            return None
        ops: dict[str, Callable[[int, int], int | None]] = {
            "+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b,
            "/": _div, "%": _mod, "<<": lambda a, b: a << b, ">>": lambda a, b: a >> b,
            "&": lambda a, b: a & b, "|": lambda a, b: a | b, "^": lambda a, b: a ^ b,
            "==": lambda a, b: int(a == b), "!=": lambda a, b: int(a != b),
            "<": lambda a, b: int(a < b), ">": lambda a, b: int(a > b),
            "<=": lambda a, b: int(a <= b), ">=": lambda a, b: int(a >= b),
        }
        fn = ops.get(op)
        return fn(left, right) if fn is not None else None

    def _truth(self, node: Node | None) -> int | None:
        value = self.eval(node)
        return None if value is None else int(bool(value))

    def _e_conditional_expression(self, node: Node) -> int | None:
        cond = self.eval(node.child_by_field_name("condition"))
        if cond is None:
            return None
        branch = "consequence" if cond else "alternative"
        return self.eval(node.child_by_field_name(branch))

    def _e_cast_expression(self, node: Node) -> int | None:
        value = self.eval(node.child_by_field_name("value"))
        if value is None:
            return None
        return self._cast(node.child_by_field_name("type"), value)

    def _cast(self, type_node: Node | None, value: int) -> int | None:
        """A value converted to a type: truncated for integer types of known width."""
        if type_node is None:
            return None
        declarator = type_node.child_by_field_name("declarator")
        if declarator is not None and declarator.type == "abstract_pointer_declarator":
            return value & (1 << 64) - 1
        spelled = canonical_type_name(text(type_node.child_by_field_name("type") or type_node))
        spec = INTEGER_TYPES.get(spelled)
        if spec is None:
            # A typedef of unknown signedness: the value passes if it fits whatever the sign.
            size = self.scope.type_size(type_node) if self.scope.is_type(spelled) else None
            return value if size and 0 <= value < 1 << (size * 8 - 1) else None
        bits, signed = spec
        value &= (1 << bits) - 1
        if signed and value >= 1 << (bits - 1):
            value -= 1 << bits
        return value

    def _paren_type(self, node: Node | None) -> Node | None:
        """The identifier inside `(name)` when name is a type (so the parentheses are a cast)."""
        if node is None or node.type != "parenthesized_expression" or node.named_child_count != 1:
            return None
        inner = node.named_children[0]
        if inner.type in ("identifier", "type_identifier", "primitive_type") and (
            self.scope.is_type(text(inner)) or text(inner) in INTEGER_TYPES
        ):
            return inner
        return None

    # sizeof, alignof, offsetof
    def _e_sizeof_expression(self, node: Node) -> int | None:
        type_node = node.child_by_field_name("type")
        if type_node is not None:
            return self.scope.type_size(type_node)
        value = node.child_by_field_name("value")
        if value is None:
            return None
        inner = unwrap_parens(value)
        if inner.type in ("identifier", "primitive_type") and self._names_type(text(inner)):
            return self.scope.type_size(inner)
        if inner.type == "string_literal":
            return _string_size(inner)
        return self.scope.expr_size(inner)

    def _names_type(self, name: str) -> bool:
        """Whether an identifier in `sizeof(name)` names a type rather than a variable."""
        return self.scope.is_type(name) or name in INTEGER_TYPES

    def _e_alignof_expression(self, node: Node) -> int | None:
        type_node = node.child_by_field_name("type")
        return self.scope.type_align(type_node) if type_node is not None else None

    def _e_offsetof_expression(self, node: Node) -> int | None:
        type_node, member = node.child_by_field_name("type"), node.child_by_field_name("member")
        if type_node is None or member is None:
            return None
        found = self.scope.member_offset(type_node, text(member))
        return found[0] if found else None

    # calls: built-in macros, the driver's function-like macros, and `(type)(value)` casts
    def _e_call_expression(self, node: Node) -> int | None:
        fn = node.child_by_field_name("function")
        args_node = node.child_by_field_name("arguments")
        args = list(args_node.named_children) if args_node is not None else []
        cast = self._paren_type(fn)
        if cast is not None and len(args) == 1:
            value = self.eval(args[0])
            return None if value is None else self._cast(cast, value)
        if fn is None or fn.type != "identifier":
            return None
        name = text(fn)
        define = self.scope.define(name)
        if define is not None and define.params is not None:
            return self._expand(define, args)
        if name in _VALUE_MACROS:
            arity, impl = _VALUE_MACROS[name]
            if len(args) != arity:
                return None
            values = [self.eval(a) for a in args]
            if any(v is None for v in values):
                return None
            return impl(*values)
        if name in _TYPED_MACROS:
            if len(args) != _TYPED_MACROS[name] + 1:
                return None
            values = [self.eval(a) for a in args[1:]]
            if any(v is None for v in values):
                return None
            result = (max(values) if name == "max_t" else min(values) if name == "min_t"
                      else min(max(values[0], values[1]), values[2]))
            return self._cast(args[0], result)
        return self._type_macro(name, args)

    def _type_macro(self, name: str, args: list[Node]) -> int | None:
        """Built-in macros over types and typed expressions."""
        if name == "ARRAY_SIZE" and len(args) == 1:
            return self.scope.expr_length(unwrap_parens(args[0]))
        if name in ("sizeof_field", "FIELD_SIZEOF") and len(args) == 2:
            found = self.scope.member_offset(args[0], text(args[1]))
            return found[1] if found else None
        if name in ("offsetof", "__builtin_offsetof") and len(args) == 2:
            found = self.scope.member_offset(args[0], text(args[1]))
            return found[0] if found else None
        if name == "offsetofend" and len(args) == 2:
            found = self.scope.member_offset(args[0], text(args[1]))
            return found[0] + found[1] if found else None
        return None

    def _expand(self, define: Define, args: list[Node]) -> int | None:
        """A function-like macro of the driver, expanded by substituting argument text."""
        params = [p for p in (define.params or ()) if p]
        if "..." in params or "#" in define.value or len(params) != len(args):
            return None
        if define.name in self._active:
            return None
        values = {p: "(" + text(a) + ")" for p, a in zip(params, args)}
        body = _IDENT.sub(lambda m: values.get(m.group(0), m.group(0)), define.value)
        self._active.add(define.name)
        try:
            return self.eval_text(body)
        finally:
            self._active.discard(define.name)


def _string_size(node: Node) -> int | None:
    """sizeof("literal"): its characters plus the terminating NUL (simple escapes only)."""
    size = 0
    for part in node.named_children:
        if part.type == "string_content":
            size += len(part.text or b"")
        elif part.type == "escape_sequence":
            size += 1
        else:
            return None
    return size + 1


def evaluate(source: str, defines: Mapping[str, Define] | None = None,
             target: Target = Target()) -> int | None:
    """Evaluate C text with only the given #defines and the built-in kernel macros."""
    return ConstEval(BasicScope(defines, target=target)).eval_text(source)
