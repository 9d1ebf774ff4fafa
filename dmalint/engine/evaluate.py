"""Expression evaluation on one path, and the transfer of every contract role.

The evaluator turns a C expression into a Value, updating the path's State as side effects
happen (assignments, acquires, releases, checks).  It knows roles from the contracts, never a
function name.  Events go to `emit`; the explorer decides which ones become findings.
"""

from __future__ import annotations

import re
from functools import lru_cache
from dataclasses import dataclass, field
from typing import Callable

from tree_sitter import Node

from dmalint.consteval import BasicScope, ConstEval
from dmalint.contracts.model import Contracts
from dmalint.engine.fieldlog import FieldLog, member_read
from dmalint.engine.roles import ContractRoles
from dmalint.engine.state import LIVE, State
from dmalint.engine.values import TOP, ZERO, Addr, Chk, Lin, Path, Res, Value, path_text
from dmalint.parse import node_texts, operator, unwrap_parens
from dmalint.source import Define

_NUMBER = re.compile(r"^(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)[uUlL]*$")
_SHOUT = re.compile(r"^[A-Z_][A-Z0-9_]*$")
EmitFn = Callable[..., None]
MAX_PATH = 8


@dataclass
class Scope:
    """What the function declares: which names are locals, and whether they hold pointers."""

    locals: dict[str, bool]  # name -> is a pointer (or array parameter)
    params: frozenset[str]
    relevant: frozenset[str]  # names whose integer values are worth tracking per path
    relevant_fields: frozenset[str] = frozenset()  # struct members worth tracking likewise
    repeated_tests: frozenset[str] = frozenset()  # storage tested in two or more conditions
    types: dict[str, str] = field(default_factory=dict)  # variable -> struct/typedef name it points to
    members: dict = field(default_factory=dict)  # (struct, member) -> the member's struct type
    stack_objects: frozenset[str] = frozenset()  # locals that live in the frame (not pointers,
    arrays: frozenset[str] = frozenset()  # not static); and those of them that are arrays

    def on_stack(self, value) -> bool:
        """Whether a value is the address of (part of) an object in this function's frame."""
        if not isinstance(value, Addr):
            return False
        path = value.path
        return path[0] in self.stack_objects and not any(p.startswith("->") or p == "*" for p in path[1:])

    def tracks(self, path: Path) -> bool:
        """Whether an integer value stored at path can matter later on the path."""
        if any(p == "[*]" for p in path):
            return False  # "some element": never the same element twice
        if len(path) == 1:
            return path[0] in self.relevant
        last = path[-1]
        return last.lstrip(".->") in self.relevant_fields

    def correlates(self, path: Path) -> bool:
        """Whether a fact about the value at path can decide a later condition."""
        if len(path) == 1:
            return path[0] in self.locals or path_text(path) in self.repeated_tests
        return path_text(path) in self.repeated_tests and self.tracks(path)

    def is_local_storage(self, path: Path) -> bool:
        """True when the path is memory of this function's frame (lost at return)."""
        root = path[0]
        if root not in self.locals:
            return False
        if len(path) == 1:
            return True  # the variable's own slot, pointer or not
        if root in self.params or self.locals[root]:
            return False
        return not any(p.startswith("->") or p == "*" for p in path[1:])


class Evaluator(ContractRoles):
    """Evaluates expressions on one path; the contract roles come from ContractRoles."""

    def __init__(self, contracts: Contracts, scope: Scope, defines: dict[str, Define],
                 emit: EmitFn, function: str, summaries: dict | None = None):
        self.c = contracts
        self.summaries = summaries or {}
        self.released_sites: set = set()  # acquire sites released on some path
        self.field_log = FieldLog()
        self.cookie_keys: frozenset = frozenset()  # members that hold NO_KERNEL_MAPPING cookies
        self.buffer_params: dict[str, dict[int, str]] = {}  # helpers that DMA a parameter
        # sizeof(struct x) -> bytes, from the layout engine (None: sizes stay symbols)
        self.sizeof: Callable[[str], int | None] | None = None
        self.core = contracts.core
        self.scope = scope
        self.defines = defines
        self.emit = emit
        self.function = function
        self._errno = self.core.errno_re
        self.text = node_texts()  # text(), remembered per node for this function

    # -- storage paths -----------------------------------------------------------------------
    def lvalue(self, node: Node, st: State) -> Path | None:
        """The storage path an lvalue expression names, or None when we cannot tell (or when
        it grows past MAX_PATH, as `p = &(*p)->next` does around a loop)."""
        path = self._lvalue(node, st)
        return path if path is None or len(path) <= MAX_PATH else None

    def _lvalue(self, node: Node, st: State) -> Path | None:
        node = unwrap_parens(node)
        t = node.type
        if t == "identifier":
            return (self.text(node),)
        if t == "field_expression":
            base = node.child_by_field_name("argument")
            fld = "." + self.text(node.child_by_field_name("field"))
            op = operator(node)
            if op == "->":
                return self._arrow(base, fld[1:], st, node)
            bp = self.lvalue(base, st)
            return bp + (fld,) if bp else None
        if t == "subscript_expression":
            self.touch(node.child_by_field_name("argument"), st, node)
            bp = self.lvalue(node.child_by_field_name("argument"), st)
            idx = unwrap_parens(node.child_by_field_name("index") or node)
            key = " ".join(self.text(idx).split()) if _stable_index(idx) else "*"
            return bp + (f"[{key}]",) if bp else None
        if t == "pointer_expression" and operator(node) == "*":
            arg = unwrap_parens(node.child_by_field_name("argument"))
            if arg.type == "update_expression":  # *++p, *p++: move the pointer, then deref
                self.eval(arg, st)
                prefix = arg.children and arg.children[0].type in ("++", "--")
                inner = self.lvalue(arg.child_by_field_name("argument"), st)
                return inner + ("*",) if inner and prefix else None
            self.touch(arg, st, node)
            target = self._pointee(arg, st)
            if target is not None:
                return target
            bp = self.lvalue(arg, st)
            return bp + ("*",) if bp else None
        if t == "cast_expression":
            return self.lvalue(node.child_by_field_name("value"), st)
        return None

    def _arrow(self, base: Node, fld: str, st: State, node: Node) -> Path | None:
        """The path of `base->fld`: `x.fld` when base holds &x on this path."""
        self.touch(base, st, node)
        target = self._pointee(base, st)
        if target is not None:
            return target + ("." + fld,)
        bp = self.lvalue(base, st)
        return bp + ("->" + fld,) if bp else None

    def _pointee(self, ptr: Node, st: State) -> Path | None:
        """When a pointer variable holds &x on this path, the path x."""
        p = self.lvalue(ptr, st) if unwrap_parens(ptr).type == "identifier" else None
        if p is not None:
            v = st.env.get(p)
            # Not an element picked by a moving index (`sge = &ring[n++]`): "some element"
            # is never the same storage twice, while the pointer names one until it moves.
            if isinstance(v, Addr) and "[*]" not in v.path:
                return v.path
        return None

    def read(self, path: Path, st: State) -> Value:
        if path in st.env:
            return st.env[path]
        return Lin.sym(("init",) + path)

    def store(self, path: Path | None, value: Value, st: State, node: Node,
              by_acquire: bool = False) -> None:
        """Assign value to path; a region handle stored outside the frame escapes the function.
        `by_acquire`: the acquire itself wrote it (an out-parameter), not a later store."""
        if path is not None:
            n = len(path)
            if n == 1 and st.regions:
                self._let_go(path[0], st)
            stale = [k for k in st.env if len(k) > n and k[:n] == path]
            # An index changed: ring[i] no longer names the same element.
            indexed = [k for k in st.env if _indexed(k)]
            if indexed:
                word = _word_re(path_text(path))
                stale += [k for k in indexed if any(p.startswith("[") and word.search(p) for p in k[1:])]
            for key in stale:
                st.env.pop(key, None)
            if not isinstance(value, (Res, Chk, Addr)) and not self.scope.tracks(path) \
                    and not (self.cookie_keys and member_read(value) is not None):
                st.env.pop(path, None)
            elif any(p == "[*]" for p in path):
                st.env.pop(path, None)
            else:
                st.env[path] = value
        if path is not None and len(path) > 1 and not self.scope.is_local_storage(path):
            self.log_write(path, node)
            if not isinstance(value, Res):
                self.log_other_store(path, value)
                if self.field_log.region_paths:
                    self.log_member_value(path, value, st)
        if isinstance(value, Res):
            reg = st.regions.get(value.rid)
            if reg is None:
                return
            if path is not None and not self.scope.is_local_storage(path):
                self.log_store(path, value, reg, st, node)
            where = path_text(path) if path is not None else " ".join(self.text(node).split())
            if reg.handle_text.endswith("()"):
                reg = reg.but(handle_text=where)
            if path is None or not self.scope.is_local_storage(path):
                if by_acquire:
                    reg = reg.but(escaped=True)
                elif not reg.escaped:
                    line, col = _pos(node)
                    reg = reg.but(escaped=True, store_line=line, store_col=col,
                                  store_how=f"stored in '{where}'",
                                  store_root=self._through_pointer(path))
            st.regions[value.rid] = reg

    def _through_pointer(self, path: Path | None) -> str | None:
        """The local pointer variable a store path goes through first (`mp` of `mp->mapping`),
        if any."""
        if path is not None and len(path) > 1 and path[1].startswith("->") \
                and path[0] in self.scope.locals:
            return path[0]
        return None

    def _let_go(self, name: str, st: State) -> None:
        """`name` is pointed elsewhere: a live region first stored through it (`mp->mapping`)
        now lives in an object this function no longer names (linked into a list or a ring
        it filled), so ownership went with that object; the release this function makes of
        `mp->mapping` on another path is of a later object's region, not this one."""
        for rid, reg in list(st.regions.items()):
            if reg.store_root == name and not reg.handed and reg.status == LIVE:
                st.regions[rid] = reg.but(handed=True)

    # -- expressions -------------------------------------------------------------------------
    def eval(self, node: Node | None, st: State) -> Value:
        if node is None:
            return TOP
        t = node.type
        if t == "parenthesized_expression":
            if node.named_child_count and node.named_children[0].type == "compound_statement":
                return self._statement_expr_value(node.named_children[0], st)
            return self.eval(node.named_children[0] if node.named_child_count else None, st)
        if t == "number_literal":
            return _number(self.text(node))
        if t in ("true",):
            return Lin.of(1)
        if t in ("false", "null"):
            return ZERO
        if t == "char_literal":
            return TOP
        if t == "identifier":
            return self._identifier(node, st)
        if t in ("field_expression", "subscript_expression"):
            if t == "subscript_expression":
                self.eval(node.child_by_field_name("index"), st)
            path = self.lvalue(node, st)
            if path is None:
                self.eval(node.child_by_field_name("argument"), st)
                return TOP
            return self.read(path, st)
        if t == "assignment_expression":
            return self._assignment(node, st)
        if t == "call_expression":
            return self.call(node, st)
        if t == "cast_expression":
            return self.eval(node.child_by_field_name("value"), st)
        if t == "pointer_expression":
            op = operator(node)
            arg = node.child_by_field_name("argument")
            if op == "&":
                path = self.lvalue(arg, st)
                if path is None:
                    self.eval(arg, st)
                return Addr(path) if path is not None else TOP
            path = self.lvalue(node, st)
            if path is None:
                self.eval(arg, st)
                return TOP
            return self.read(path, st)
        if t == "unary_expression":
            return self._unary(node, st)
        if t == "binary_expression":
            return self._binary(node, st)
        if t == "update_expression":
            return self._update(node, st)
        if t == "conditional_expression":
            self.eval(node.child_by_field_name("condition"), st)
            a = self.eval(node.child_by_field_name("consequence"), st)
            b = self.eval(node.child_by_field_name("alternative"), st)
            return a if a == b and a is not TOP else TOP
        if t == "comma_expression":
            self.eval(node.child_by_field_name("left"), st)
            return self.eval(node.child_by_field_name("right"), st)
        if t == "sizeof_expression":
            return Lin.sym(("sizeof", " ".join(self.text(node).split())))
        if t in ("string_literal", "concatenated_string", "compound_literal_expression",
                 "initializer_list"):
            for child in node.named_children:
                if child.type not in ("string_content", "escape_sequence", "string_literal"):
                    self.eval(child, st)
            return TOP
        for child in node.named_children:  # anything else: evaluate for side effects
            self.eval(child, st)
        return TOP

    def _statement_expr_value(self, block: Node, st: State) -> Value:
        stmts = [c for c in block.named_children if c.type != "comment"]
        if stmts and stmts[-1].type == "expression_statement" and stmts[-1].named_child_count:
            return self.eval(stmts[-1].named_children[0], st)
        return TOP

    def _identifier(self, node: Node, st: State) -> Value:
        name = self.text(node)
        path = (name,)
        if name in self.scope.arrays:
            return Addr(path)  # an array decays to its address
        if path in st.env:
            return st.env[path]
        if name in self.scope.locals:
            return self.read(path, st)
        if name in self.c.constants:
            return Lin.of(self.c.constants[name])
        if name == "NULL":
            return ZERO
        # The driver's own macros first: ELS_CMD_MAP_SIZE looks like an errno name (E...) but
        # the file or its header says what it is.
        define = self.defines.get(name)
        if define is not None and define.params is None:
            return self._define_value(define, 0)
        if self._errno.match(name):
            return Lin.sym(("errno", name))
        if _SHOUT.match(name):
            return Lin.sym(("macro", name))
        return self.read(path, st)

    def value_of_text(self, source: str) -> Value:
        """The value of a constant argument known only by its text (from a helper's body)."""
        source = source.strip()
        if _NUMBER.match(source):
            return _number(source)
        if re.fullmatch(r"[A-Za-z_]\w*", source):
            if source in self.c.constants:
                return Lin.of(self.c.constants[source])
            define = self.defines.get(source)
            if define is not None and define.params is None:
                return self._define_value(define, 0)
            if _SHOUT.match(source):
                return Lin.sym(("macro", source))
        return TOP

    def _define_value(self, define: Define, depth: int) -> Value:
        """An object-like macro that is an integer, a known name, or a simple sum of them."""
        value = define.value.strip()
        while value.startswith("(") and value.endswith(")"):
            value = value[1:-1].strip()
        if _NUMBER.match(value):
            return _number(value)
        if depth < 4 and re.fullmatch(r"[A-Za-z_]\w*", value):
            inner = self.defines.get(value)
            if inner is not None and inner.params is None:
                return self._define_value(inner, depth + 1)
            if value in self.c.constants:
                return Lin.of(self.c.constants[value])
        m = re.fullmatch(r"\(?\s*([A-Za-z_]\w*|\d+)\s*([+-])\s*([A-Za-z_]\w*|\d+)\s*\)?", value)
        if depth < 4 and m:
            parts = []
            for tok in (m.group(1), m.group(3)):
                if tok.isdigit():
                    parts.append(Lin.of(int(tok)))
                elif tok in self.defines and self.defines[tok].params is None:
                    parts.append(self._define_value(self.defines[tok], depth + 1))
                else:
                    parts.append(Lin.sym(("macro", tok)))
            if all(isinstance(p, Lin) for p in parts):
                return parts[0].add(parts[1], 1 if m.group(2) == "+" else -1)
        folded = self._fold(define)
        if folded is not None:
            return Lin.of(folded)
        return Lin.sym(("macro", define.name))

    def _fold(self, define: Define) -> int | None:
        """Any other constant #define: `(DMA_ATTR_A | DMA_ATTR_B)`, `SZ_4K - 64`, `BIT(3)`."""
        cache = self.__dict__.setdefault("_folded", {})
        if define.name not in cache:
            scope = BasicScope(self.defines, constants=self.c.constants)
            try:
                cache[define.name] = ConstEval(scope).eval_text(define.value)
            except (RecursionError, ValueError):
                cache[define.name] = None
        return cache[define.name]

    def _assignment(self, node: Node, st: State) -> Value:
        left = node.child_by_field_name("left")
        op = operator(node)
        right = self.eval(node.child_by_field_name("right"), st)
        path = self.lvalue(left, st)
        if op != "=":
            old = self.read(path, st) if path is not None else TOP
            right = _arith(op[:-1], old, right)
        self.store(path, right, st, left)
        return right

    def assign(self, left: Node, right: Node, st: State, at: Node) -> None:
        """A synthetic assignment from the CFG (the arms of `x = c ? a : b`)."""
        self.store(self.lvalue(left, st), self.eval(right, st), st, at)

    def _unary(self, node: Node, st: State) -> Value:
        op = operator(node)
        v = self.eval(node.child_by_field_name("argument"), st)
        if op == "-" and isinstance(v, Lin):
            return v.scale(-1)
        if op == "+":
            return v
        if op == "!":
            if isinstance(v, Chk):
                return v.flip()
            if isinstance(v, Lin) and v.is_const:
                return Lin.of(int(v.const == 0))
        return TOP

    def _binary(self, node: Node, st: State) -> Value:
        op = operator(node)
        a = self.eval(node.child_by_field_name("left"), st)
        b = self.eval(node.child_by_field_name("right"), st)
        if op in ("==", "!=") and isinstance(a, Chk) and b == ZERO:
            return a if op == "!=" else a.flip()
        if op in ("+", "-"):
            for v in (a, b):
                if isinstance(v, Res):
                    self.cookie_misuse(v, node, st, "used in pointer arithmetic")
        return _arith(op, a, b)

    def _update(self, node: Node, st: State) -> Value:
        arg = node.child_by_field_name("argument")
        op = operator(node)
        path = self.lvalue(arg, st)
        old = self.read(path, st) if path is not None else TOP
        new = _arith("+" if op == "++" else "-", old, Lin.of(1))
        self.store(path, new, st, node)
        prefix = node.children and node.children[0].type in ("++", "--")
        return new if prefix else old

    # -- calls -------------------------------------------------------------------------------
    def call(self, node: Node, st: State) -> Value:
        fn_node = node.child_by_field_name("function")
        name = self.text(fn_node) if fn_node is not None and fn_node.type == "identifier" else ""
        args_node = node.child_by_field_name("arguments")
        arg_nodes = [a for a in args_node.named_children if a.type != "comment"] if args_node else []
        if name in self.core.transparent:
            vals = [self.eval(a, st) for a in arg_nodes]
            return vals[0] if vals else TOP
        if name in self.core.member_stores:
            indices = self.core.member_stores[name]
            if len(arg_nodes) > max(indices):
                return self._member_store(*(arg_nodes[i] for i in indices), st, node)
        if name in self.core.member_loads:
            indices = self.core.member_loads[name]
            if len(arg_nodes) > max(indices):
                return self._member_load(*(arg_nodes[i] for i in indices), st, node)
        vals = [self.eval(a, st) for a in arg_nodes]
        self.dma_buffers(name, node, arg_nodes, vals, st)
        handled, value = self.contract_call(name, node, arg_nodes, vals, st)
        if handled:
            return value
        if self.core.is_transform(name):
            return vals[0] if vals else TOP
        if name in self.core.error_pointers:
            return Lin.sym(("errptr",))
        if name in self.core.irq_disable:
            st.irqs_off = min(st.irqs_off + 1, 3)
        elif name in self.core.irq_enable:
            st.irqs_off = max(st.irqs_off - 1, 0)
        self.unknown_call(name or self.text(fn_node), node, arg_nodes, vals, st)
        return self.call_result(node, st)

    def _member_path(self, obj: Node, member: Node, st: State, node: Node) -> Path | None:
        """The path of `(obj)->member` for a macro given the object and the member's name, as
        `_lvalue` builds that of `ptr->name` (and `&x` gives `x.name`); None when it cannot be
        named (then the object is evaluated for its side effects)."""
        path = None
        if member.type == "identifier":
            fld = self.text(member)
            target = unwrap_parens(obj)
            if target.type == "pointer_expression" and operator(target) == "&":
                base = self.lvalue(target.child_by_field_name("argument"), st)
                path = base + ("." + fld,) if base else None
            else:
                path = self._arrow(obj, fld, st, node)
        if path is not None and len(path) > MAX_PATH:
            path = None
        if path is None:
            self.eval(obj, st)
        return path

    def _member_store(self, obj: Node, member: Node, value: Node, st: State, node: Node) -> Value:
        """`dma_unmap_addr_set(ptr, name, v)`: `(ptr)->name = v`.  The member argument is a
        name, never evaluated (it is often spelt like the variable stored)."""
        v = self.eval(value, st)
        self.store(self._member_path(obj, member, st, node), v, st, node)
        return TOP

    def _member_load(self, obj: Node, member: Node, st: State, node: Node) -> Value:
        """`dma_unmap_addr(ptr, name)`: the value of `(ptr)->name`."""
        path = self._member_path(obj, member, st, node)
        return self.read(path, st) if path is not None else TOP

    def call_result(self, node: Node, st: State) -> Value:
        """The value a call returns this time: a symbol named by the call site.  What the path
        learnt of the value this site returned before (a loop's previous round) is forgotten:
        the call returns afresh, and keeping one interval per round's tests multiplied the
        states of a loop without bound (e1000_tx_map: 1,500 states at one node)."""
        sym = ("call", node.start_byte)
        if st.facts:
            stale = [f for f in st.facts
                     if f == sym or (f[0] == "rel" and any(t == sym for t, _ in f[1:]))]
            for f in stale:
                del st.facts[f]
        return Lin.sym(sym)


@lru_cache(maxsize=65536)
def _indexed(path: Path) -> bool:
    """Whether a storage path goes through an element (`ring`, `[i]`, `.dma`); asked for every
    stored path on every store, so remembered."""
    return any(p[:1] == "[" for p in path[1:])


@lru_cache(maxsize=4096)
def _word_re(name: str) -> re.Pattern[str]:
    return re.compile(r"(?<![\w.>])" + re.escape(name) + r"(?![\w])")


def _stable_index(idx: Node) -> bool:
    """An index we can name: identifiers, numbers and arithmetic over them (`i + 1`)."""
    stack = [idx]
    while stack:
        n = stack.pop()
        if n.type not in ("identifier", "number_literal", "binary_expression",
                          "parenthesized_expression", "field_expression", "field_identifier"):
            return False
        stack.extend(n.named_children)
    return True


def _pos(node: Node) -> tuple[int, int]:
    return node.start_point[0] + 1, node.start_point[1] + 1


def _number(s: str) -> Value:
    s = s.rstrip("uUlL")
    try:
        if s.lower().startswith("0x"):
            return Lin.of(int(s, 16))
        if len(s) > 1 and s.startswith("0") and s.isdigit():
            return Lin.of(int(s, 8))
        return Lin.of(int(s))
    except ValueError:
        return TOP


def _arith(op: str, a: Value, b: Value) -> Value:
    """Arithmetic on linear forms; a region handle plus an offset is no longer the handle; an
    address plus an offset still points into the same object."""
    if isinstance(a, Addr) and isinstance(b, Lin) and op in ("+", "-"):
        return a
    if isinstance(b, Addr) and isinstance(a, Lin) and op == "+":
        return b
    if isinstance(a, Res) and isinstance(b, Lin) and op in ("+", "-"):
        return a if b == ZERO else Res(a.rid, a.part, True)
    if isinstance(b, Res) and isinstance(a, Lin) and op == "+":
        return b if a == ZERO else Res(b.rid, b.part, True)
    if not isinstance(a, Lin) or not isinstance(b, Lin):
        return TOP
    if op == "+":
        return a.add(b)
    if op == "-":
        return a.add(b, -1)
    if op == "*":
        if a.is_const:
            return b.scale(a.const)
        if b.is_const:
            return a.scale(b.const)
        # n * sizeof(struct x): one symbol for the product, so that two sizes built the same
        # way compare (and the sizeof can be resolved when they are compared)
        sa, sb = a.single(), b.single()
        if sa is not None and sb is not None:
            first, second = sorted((sa[0], sb[0]), key=repr)
            return Lin.sym(("mul", first, second)).scale(sa[1] * sb[1])
        return TOP
    if a.is_const and b.is_const:
        x, y = a.const, b.const
        try:
            result = {
                "/": lambda: int(x / y) if y else None, "%": lambda: x % y if y else None,
                "<<": lambda: x << y if 0 <= y < 64 else None, ">>": lambda: x >> y if y >= 0 else None,
                "&": lambda: x & y, "|": lambda: x | y, "^": lambda: x ^ y,
                "==": lambda: int(x == y), "!=": lambda: int(x != y), "<": lambda: int(x < y),
                "<=": lambda: int(x <= y), ">": lambda: int(x > y), ">=": lambda: int(x >= y),
                "&&": lambda: int(bool(x) and bool(y)), "||": lambda: int(bool(x) or bool(y)),
            }.get(op, lambda: None)()
        except (OverflowError, ValueError):
            result = None
        return Lin.of(result) if result is not None else TOP
    if op == "<<" and b.is_const and 0 <= b.const < 64:
        return a.scale(1 << b.const)
    return TOP
