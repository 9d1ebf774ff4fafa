"""Replay a finding's witness concretely against the dma-debug model.

Its own small interpreter (nothing from dmalint.engine): integers, abstract objects with fields,
pointers, locals, and the DMA API driven by the contracts' roles.  The path follows the witness's
recorded branch decisions; a condition the witness did not record is evaluated concretely, and a
condition whose concrete value contradicts the witness makes the path infeasible.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field

from tree_sitter import Node

from dmalint.cfg import build_cfg
from dmalint.consteval import char_literal, evaluate, int_literal
from dmalint.contracts.model import Contracts
from dmalint.findings import Finding
from dmalint.parse import iter_functions, parse, text
from dmalint.simulate.model import DMA_MAPPING_ERROR, DmaDebug, same

STEP_BUDGET = 2000
ENOMEM = 12


class GiveUp(Exception):
    def __init__(self, verdict: str, reason: str) -> None:
        super().__init__(reason)
        self.verdict = verdict
        self.reason = reason


class Obj:
    """An abstract object: a struct, an array, a buffer.  Fields and elements by key."""

    _ids = itertools.count(1)

    def __init__(self, name: str, stack: bool = False) -> None:
        self.name = name
        self.stack = stack
        self.fields: dict = {}
        self.id = next(Obj._ids)

    def __repr__(self) -> str:
        return f"&{self.name}"


class Unknown:
    """A value the replay does not know; dereferencing it gives one stable object."""

    def __init__(self, name: str, nonzero: bool = False) -> None:
        self.name = name
        self.nonzero = nonzero
        self._obj: Obj | None = None

    @property
    def obj(self) -> Obj:
        if self._obj is None:
            self._obj = Obj(f"*({self.name})")
        return self._obj

    def __repr__(self) -> str:
        return f"?{self.name}"


@dataclass(frozen=True)
class Ptr:
    obj: Obj
    off: int = 0

    def __repr__(self) -> str:
        return f"&{self.obj.name}" + (f"+{self.off}" if self.off else "")


@dataclass(frozen=True)
class Ref:
    """The address of a local variable or of a field (an out-parameter)."""

    where: object  # dict (locals) or Obj
    key: object
    stack: bool = False

    def __hash__(self) -> int:
        return hash((id(self.where), self.key))

    def __eq__(self, other) -> bool:
        return isinstance(other, Ref) and self.where is other.where and self.key == other.key

    def __repr__(self) -> str:
        return f"&{self.key}"


@dataclass
class Simulated:
    verdict: str
    reason: str
    dmesg: list[str] = field(default_factory=list)
    steps: list[tuple[int, str, list[str]]] = field(default_factory=list)  # line, what, table


_BRANCH = re.compile(r"^'(.*)' is (true|false)$", re.S)
_ASSUME = re.compile(r"^(\w+)\(\) at line (\d+) (succeeded|failed)")


def _norm(s: str) -> str:
    return "".join(s.split())


def find_function(code: bytes, name: str):
    root = parse(code).root_node
    return next((fn for fn in iter_functions(root) if fn.name == name), None)


class Replayer:
    def __init__(self, finding: Finding, src, contracts: Contracts, record: bool = False) -> None:
        self.f = finding
        self.src = src
        self.c = contracts
        self.model = DmaDebug()
        self.locals: dict[str, object] = {}
        self.globals: dict[str, object] = {}
        self.record = record
        self.steps: list[tuple[int, str, list[str]]] = []
        self.branches = [(s.line, _norm(m.group(1)), m.group(2) == "true") for s in finding.trace
                         if s.kind == "branch" and (m := _BRANCH.match(s.message))]
        self.assumes: dict[int, list[bool]] = {}
        for s in finding.trace:
            if s.kind == "assume" and (m := _ASSUME.match(s.message)):
                self.assumes.setdefault(int(m.group(2)), []).append(m.group(3) == "succeeded")
        self.next_addr = 0x10000000
        self.memo: dict = {}
        self.produced: set[int] = set()  # ids of values the DMA API returned (kept on havoc)
        self.line = 0

    # -- values ---------------------------------------------------------------------------
    def fresh(self, name: str, nonzero: bool = False) -> Unknown:
        return Unknown(name, nonzero)

    def truth(self, v) -> bool | None:
        if isinstance(v, bool):
            return v
        if isinstance(v, int):
            return v != 0
        if isinstance(v, (Ptr, Ref, Obj, str)):
            return True
        if isinstance(v, Unknown) and v.nonzero:
            return True
        return None

    def objof(self, v, where: str) -> Obj:
        if isinstance(v, Ptr):
            self.model.touch(v.obj)
            return v.obj
        if isinstance(v, Obj):
            return v
        if isinstance(v, Unknown):
            return v.obj
        if isinstance(v, Ref):
            inner = self.load_ref(v)
            return self.objof(inner, where)
        raise GiveUp("unknown", f"dereference of {v!r} at line {self.line} ({where})")

    def load_ref(self, r: Ref):
        store = r.where if isinstance(r.where, dict) else r.where.fields
        if r.key not in store:
            store[r.key] = self.fresh(str(r.key))
        return store[r.key]

    def store_ref(self, r: Ref, v) -> None:
        store = r.where if isinstance(r.where, dict) else r.where.fields
        store[r.key] = v

    # -- lvalues --------------------------------------------------------------------------
    def lvalue(self, n: Node) -> Ref:
        t = n.type
        if t == "parenthesized_expression" and n.named_child_count:
            return self.lvalue(n.named_children[0])
        if t == "identifier":
            name = text(n)
            if name in self.locals:
                return Ref(self.locals, name, True)
            return Ref(self.globals, name)
        if t == "field_expression":
            base = self.eval(n.child_by_field_name("argument"))
            return Ref(self.objof(base, text(n)), text(n.child_by_field_name("field")))
        if t == "subscript_expression":
            base = self.eval(n.child_by_field_name("argument"))
            idx = self.eval(n.child_by_field_name("index"))
            obj = self.objof(base, text(n))
            off = base.off if isinstance(base, Ptr) else 0
            return Ref(obj, ("[]", idx + off if isinstance(idx, int) else idx))
        if t == "pointer_expression" and text(n.child_by_field_name("operator")) == "*":
            base = self.eval(n.child_by_field_name("argument"))
            if isinstance(base, Ref):
                return base
            obj = self.objof(base, text(n))
            return Ref(obj, ("[]", base.off if isinstance(base, Ptr) else 0))
        if t == "cast_expression":
            return self.lvalue(n.child_by_field_name("value"))
        raise GiveUp("unknown", f"unsupported assignment target '{text(n)}' at line {self.line}")

    def assign(self, target: Node, v) -> None:
        self.store_ref(self.lvalue(target), v)

    # -- expressions ------------------------------------------------------------------------
    def eval(self, n: Node | None):
        if n is None:
            return self.fresh("void")
        t = n.type
        if t == "parenthesized_expression":
            if n.named_child_count and n.named_children[0].type == "compound_statement":
                return self.fresh(text(n)[:20])
            return self.eval(n.named_children[-1]) if n.named_child_count else self.fresh("()")
        if t == "number_literal":
            v = int_literal(text(n))
            return v if v is not None else self.fresh(text(n))
        if t == "char_literal":
            v = char_literal(text(n))
            return v if v is not None else self.fresh(text(n))
        if t in ("true", "false"):
            return 1 if t == "true" else 0
        if t == "null":
            return 0
        if t in ("string_literal", "concatenated_string"):
            return Ptr(Obj("rodata"))
        if t == "identifier":
            return self.ident(text(n))
        if t in ("field_expression", "subscript_expression") or (
                t == "pointer_expression" and text(n.child_by_field_name("operator")) == "*"):
            return self.load_ref(self.lvalue(n))
        if t == "pointer_expression":  # &x
            arg = n.child_by_field_name("argument")
            while arg.type == "parenthesized_expression" and arg.named_child_count:
                arg = arg.named_children[0]
            if arg.type == "identifier" and text(arg) in self.locals:
                v = self.locals[text(arg)]
                if isinstance(v, Obj):
                    return Ptr(v)
                return Ref(self.locals, text(arg), True)
            if arg.type == "subscript_expression":
                base = self.eval(arg.child_by_field_name("argument"))
                idx = self.eval(arg.child_by_field_name("index"))
                if isinstance(base, Ptr) and isinstance(idx, int):
                    return Ptr(base.obj, base.off + idx)
            try:
                ref = self.lvalue(arg)
            except GiveUp:
                return self.fresh(text(n))
            return ref
        if t == "cast_expression":
            return self.eval(n.child_by_field_name("value"))
        if t == "sizeof_expression" or t == "alignof_expression" or t == "offsetof_expression":
            key = ("sizeof", _norm(text(n)))
            return self.memo.setdefault(key, self.fresh(text(n)))
        if t == "assignment_expression":
            op = text(n.child_by_field_name("operator"))
            left = n.child_by_field_name("left")
            v = self.eval(n.child_by_field_name("right"))
            if op != "=":
                v = self.binop(op[:-1], self.eval(left), v)
            self.assign(left, v)
            return v
        if t == "update_expression":
            arg = n.child_by_field_name("argument")
            old = self.eval(arg)
            op = "+" if "++" in text(n.child_by_field_name("operator")) else "-"
            new = self.binop(op, old, 1)
            self.assign(arg, new)
            return new if text(n).lstrip().startswith(("++", "--")) else old
        if t == "unary_expression":
            op = text(n.child_by_field_name("operator"))
            v = self.eval(n.child_by_field_name("argument"))
            if op == "!":
                b = self.truth(v)
                return self.fresh(text(n)) if b is None else int(not b)
            if isinstance(v, int):
                return {"-": -v, "~": ~v, "+": v}.get(op, v)
            return self.fresh(text(n))
        if t == "binary_expression":
            op = text(n.child_by_field_name("operator"))
            left = self.eval(n.child_by_field_name("left"))
            if op in ("&&", "||"):
                b = self.truth(left)
                if b is None:
                    self.eval(n.child_by_field_name("right"))
                    return self.fresh(text(n))
                if (op == "&&" and not b) or (op == "||" and b):
                    return int(b)
                r = self.truth(self.eval(n.child_by_field_name("right")))
                return self.fresh(text(n)) if r is None else int(r)
            return self.binop(op, left, self.eval(n.child_by_field_name("right")))
        if t == "conditional_expression":
            b = self.truth(self.eval(n.child_by_field_name("condition")))
            if b is None:
                return self.fresh(text(n))
            branch = n.child_by_field_name("consequence" if b else "alternative")
            return self.eval(branch) if branch is not None else 1
        if t == "comma_expression":
            self.eval(n.child_by_field_name("left"))
            return self.eval(n.child_by_field_name("right"))
        if t == "call_expression":
            return self.call(n)
        if t in ("initializer_list", "compound_literal_expression"):
            return Obj("literal")
        return self.fresh(text(n)[:40])

    def ident(self, name: str):
        if name in self.locals:
            return self.locals[name]
        if name in self.globals:
            return self.globals[name]
        if name == "NULL":
            return 0
        if name == "DMA_MAPPING_ERROR":
            return DMA_MAPPING_ERROR
        if name in self.c.constants:
            return self.c.constants[name]
        d = self.src.defines.get(name)
        if d is not None and d.params is None:
            v = evaluate(d.value, self.src.defines)
            if v is not None:
                return v
        v = self.globals[name] = self.fresh(name)
        return v

    def binop(self, op: str, a, b):
        if isinstance(a, int) and isinstance(b, int):
            try:
                return {
                    "+": lambda: a + b, "-": lambda: a - b, "*": lambda: a * b,
                    "/": lambda: int(a / b), "%": lambda: a - b * int(a / b),
                    "<<": lambda: a << b, ">>": lambda: a >> b, "&": lambda: a & b,
                    "|": lambda: a | b, "^": lambda: a ^ b, "==": lambda: int(a == b),
                    "!=": lambda: int(a != b), "<": lambda: int(a < b), ">": lambda: int(a > b),
                    "<=": lambda: int(a <= b), ">=": lambda: int(a >= b),
                }[op]()
            except (KeyError, ZeroDivisionError, ValueError):
                return self.fresh(f"{a}{op}{b}")
        if op in ("==", "!="):
            eq = self.equal(a, b)
            if eq is None:
                return self.fresh(f"{a!r}{op}{b!r}")
            return int(eq) if op == "==" else int(not eq)
        if isinstance(a, Ptr) and isinstance(b, int) and op in ("+", "-"):
            return Ptr(a.obj, a.off + b if op == "+" else a.off - b)
        key = (op, _key(a), _key(b))
        if key not in self.memo:
            self.memo[key] = self.fresh(f"({a!r}{op}{b!r})")
        return self.memo[key]

    def equal(self, a, b) -> bool | None:
        for x, y in ((a, b), (b, a)):
            if isinstance(x, (Ptr, Ref, Obj)) and isinstance(y, int):
                return y != 0 and None  # a valid pointer is never NULL; other ints: unknown
            if isinstance(x, Unknown) and x.nonzero and y == 0 and isinstance(y, int):
                return False
        if isinstance(a, Ptr) and isinstance(b, Ptr):
            return a.obj is b.obj and a.off == b.off if a.obj is b.obj else None
        return same(a, b)

    # -- calls ---------------------------------------------------------------------------
    def call(self, n: Node):
        fn = n.child_by_field_name("function")
        name = text(fn) if fn is not None and fn.type == "identifier" else ""
        argn = n.child_by_field_name("arguments")
        args = [a for a in argn.named_children if a.type != "comment"] if argn is not None else []
        if name in self.c.core.transparent or (name and self.c.core.is_transform(name)):
            vals = [self.eval(a) for a in args]
            return vals[0] if vals else self.fresh(name)
        c = self.c
        if name in c.acquires:
            return self.acquire(c.acquires[name], args, n)
        if name in c.releases:
            return self.release(c.releases[name], args)
        if name in c.checks:
            roles = c.checks[name].args
            vals = [self.eval(a) for a in args]
            h = vals[roles["handle"]] if "handle" in roles and roles["handle"] < len(vals) else None
            d = vals[roles["device"]] if "device" in roles and roles["device"] < len(vals) else None
            self.model.line = self.line
            r = self.model.mapping_error(d, h)
            return int(r) if r is not None else self.fresh(text(n)[:40])
        if name in c.syncs:
            return self.sync(c.syncs[name], args)
        if name in c.mmaps:
            for a in args:
                self.eval(a)
            return 0
        vals = [self.eval(a) for a in args]
        if name in ("memset", "memcpy", "memmove", "memcpy_toio", "memcpy_fromio", "strcpy"):
            for v in vals[:2]:
                if isinstance(v, Ptr):
                    self.model.touch(v.obj)
        if name in self.c.core.noreturn:
            raise GiveUp("unknown", f"path ends in {name}() at line {self.line}")
        self.havoc(vals)
        return self.fresh(f"{name or text(fn)[:20]}()")

    def havoc(self, vals) -> None:
        """An unknown callee may write what its pointer arguments reach (except DMA API results)."""
        seen: set[int] = set()
        stack = list(vals)
        while stack and len(seen) < 200:
            v = stack.pop()
            if isinstance(v, Ref):
                if isinstance(v.where, dict):
                    self.store_ref(v, self.fresh(f"{v.key}'"))
                else:
                    self.store_ref(v, self.fresh(f"{v.key}'"))
                continue
            obj = v.obj if isinstance(v, Ptr) else v._obj if isinstance(v, Unknown) else \
                v if isinstance(v, Obj) else None
            if obj is None or id(obj) in seen:
                continue
            seen.add(id(obj))
            for k, fv in list(obj.fields.items()):
                if id(fv) in self.produced or (isinstance(fv, int) and fv in self.produced_ints()):
                    continue
                if isinstance(fv, (Ptr, Unknown, Obj)):
                    stack.append(fv)
                obj.fields[k] = self.fresh(f"{obj.name}.{k}'")

    def produced_ints(self) -> set[int]:
        return {e.addr for e in self.model.entries.values() if isinstance(e.addr, int)} | \
            {DMA_MAPPING_ERROR} | set(self._handed)

    _handed: tuple = ()

    def role(self, roles, vals, r, default=None):
        i = roles.get(r)
        return vals[i] if i is not None and i < len(vals) else default

    def acquire(self, a, args, n: Node):
        vals = [self.eval(x) for x in args]
        roles = a.args
        outcome = self.assumes.get(self.line, [])
        ok = outcome.pop(0) if outcome else True
        m = self.model
        m.line = self.line
        dev = self.role(roles, vals, "device")
        cpu = self.role(roles, vals, "cpu")
        size = self.role(roles, vals, "size")
        direction = self.role(roles, vals, "direction")
        attrs = self.role(roles, vals, "attrs", 0)
        addr = self.next_addr
        self.next_addr += 0x10000
        self._handed = tuple(self._handed) + (addr,)
        if a.failure == "check":
            handle = addr if ok else DMA_MAPPING_ERROR
            on_stack = isinstance(cpu, Ptr) and cpu.obj.stack or isinstance(cpu, Ref) and cpu.stack
            m.map(dev, handle, size, direction, a.debug_type, cpu, on_stack)
            return handle
        if a.failure in ("zero", "negative"):  # scatter-gather
            count = self.role(roles, vals, "count")
            mapped = (count if isinstance(count, int) else self.fresh("mapped", nonzero=True)) \
                if ok else 0
            m.map_sg(dev, cpu, count, mapped if ok else 0, direction)
            if a.failure == "zero":
                return mapped
            return 0 if ok else -ENOMEM
        # failure == "null": an allocation returning a CPU pointer
        buf = Ptr(Obj(f"{a.function}@{self.line}")) if ok else 0
        if ok:
            self.produced.add(id(buf))
        out = a.out_arg
        if out is not None and out < len(vals) and isinstance(vals[out], Ref):
            self.store_ref(vals[out], addr if ok else self.fresh("undefined handle"))
        if a.debug_type == "coherent" and ok:
            m.alloc_coherent(dev, addr, size, buf)
            bit = self.c.cookie_bit
            if bit and isinstance(attrs, int) and attrs & bit:
                m.cookie(buf.obj)
        elif a.debug_type == "pool" and ok:
            m.pool_create(buf, dev, size, name=text(args[0]) if args else "pool")
        elif a.debug_type == "pool-block" and ok:
            m.pool_alloc(self.role(roles, vals, "pool"), buf, addr)
        return buf

    def release(self, r, args):
        vals = [self.eval(x) for x in args]
        roles = r.args
        m = self.model
        m.line = self.line
        dev = self.role(roles, vals, "device")
        handle = self.role(roles, vals, "handle")
        cpu = self.role(roles, vals, "cpu")
        size = self.role(roles, vals, "size")
        direction = self.role(roles, vals, "direction")
        if r.debug_type == "pool":
            m.pool_destroy(cpu)
        elif r.debug_type == "pool-block":
            m.pool_free(self.role(roles, vals, "pool"), cpu, handle)
        elif r.debug_type == "sg":
            m.unmap(dev, cpu, None, direction, "sg", nents=self.role(roles, vals, "count"))
        elif r.debug_type == "coherent":
            if not same(cpu, 0):
                m.unmap(dev, handle, size, 0, "coherent", cpu=cpu)
        else:
            if isinstance(handle, Unknown) and not isinstance(handle, int):
                raise GiveUp("unknown", f"the handle released at line {self.line} is not known "
                             "concretely")
            m.unmap(dev, handle, size, direction, r.debug_type)
        return 0

    def sync(self, s, args):
        vals = [self.eval(x) for x in args]
        roles = s.args
        m = self.model
        m.line = self.line
        dev = self.role(roles, vals, "device")
        direction = self.role(roles, vals, "direction")
        size = self.role(roles, vals, "size")
        off = self.role(roles, vals, "offset", 0)
        if isinstance(size, int) and isinstance(off, int):
            size = size + off
        if "count" in roles:
            m.sync(dev, self.role(roles, vals, "cpu"), None, direction, s.to == "cpu", "sg",
                   nents=self.role(roles, vals, "count"))
        else:
            m.sync(dev, self.role(roles, vals, "handle"), size, direction, s.to == "cpu")
        return 0

    # -- statements ------------------------------------------------------------------------
    def declare(self, d: Node) -> None:
        static = any(c.type == "storage_class_specifier" and text(c) == "static"
                     for c in d.children)
        typ = d.child_by_field_name("type")
        is_record = typ is not None and typ.type in ("struct_specifier", "union_specifier")
        for decl in d.children_by_field_name("declarator"):
            value = None
            target = decl
            if decl.type == "init_declarator":
                target = decl.child_by_field_name("declarator")
                value = decl.child_by_field_name("value")
            name_node = target
            pointer = False
            array = False
            while name_node is not None and name_node.type != "identifier":
                pointer |= name_node.type in ("pointer_declarator", "function_declarator")
                array |= name_node.type == "array_declarator"
                name_node = name_node.child_by_field_name("declarator")
            if name_node is None:
                continue
            name = text(name_node)
            if array or (is_record and not pointer):
                obj = Obj(name, stack=not static)
                self.locals[name] = obj
                if value is not None and value.type != "initializer_list":
                    self.eval(value)
                continue
            self.locals[name] = self.eval(value) if value is not None else self.fresh(name)

    def bind_params(self, fn) -> None:
        decl = fn.node.child_by_field_name("declarator")
        while decl is not None and decl.type != "function_declarator":
            decl = decl.child_by_field_name("declarator")
        params = decl.child_by_field_name("parameters") if decl is not None else None
        for p in params.named_children if params is not None else []:
            d = p.child_by_field_name("declarator")
            while d is not None and d.type != "identifier":
                d = d.child_by_field_name("declarator")
            if d is not None:
                self.locals[text(d)] = self.fresh(text(d))

    def snapshot(self, what: str) -> None:
        if self.record:
            self.steps.append((self.line, what, self.model.table()))


def _key(v):
    return v if isinstance(v, (int, str)) else id(v)


def crosses_functions(finding: Finding) -> bool:
    enters = {s.message for s in finding.trace if s.kind == "enter"}
    return len(enters) > 1 or any(s.path not in (None, finding.path) for s in finding.trace) \
        or any(s.kind in ("call", "return") for s in finding.trace)


def walk(rp: Replayer, cfg, judge) -> Simulated:
    """Follow the witness through cfg; judge(rp, event) returns a Simulated when decided.
    Events: ("line", node) after a node at the finding's line, ("return", node), ("end", None)."""
    g = cfg.graph
    node = cfg.entry
    pending = list(rp.branches)
    visited_line = False
    for _ in range(STEP_BUDGET):
        attrs = g.nodes[node]
        kind = attrs["kind"]
        rp.line = attrs.get("line") or rp.line
        if kind == "exit":
            return judge(rp, ("end", None))
        if visited_line and rp.line != rp.f.line and not pending:
            out = judge(rp, ("after", None))
            if out is not None:
                return out
        ast = attrs.get("ast")
        succ = None
        try:
            if kind == "stmt" and ast is not None:
                if ast.type == "declaration":
                    rp.declare(ast)
                else:
                    rp.eval(ast)
                rp.snapshot(text(ast).split("\n")[0][:70])
            elif kind == "assign":
                rp.assign(attrs["lhs"], rp.eval(attrs["rhs"]))
                rp.snapshot(f"{text(attrs['lhs'])} = {text(attrs['rhs'])}"[:70])
            elif kind == "return":
                if ast is not None:
                    rp.eval(ast)
                rp.snapshot(f"return {text(ast) if ast is not None else ''}"[:70])
                if rp.line == rp.f.line:
                    visited_line = True
                return judge(rp, ("return", node))
            elif kind == "cond":
                succ = _choose(rp, g, node, ast, attrs, pending)
            elif kind == "switch":
                v = rp.eval(ast)
                for _, nxt, e in g.out_edges(node, data=True):
                    for case in e.get("cases", []):
                        if case is not None and isinstance(v, int) and rp.eval(case) == v:
                            succ = nxt
                if succ is None and isinstance(v, int):
                    succ = next(nxt for _, nxt, e in g.out_edges(node, data=True)
                                if None in e.get("cases", []))
                if succ is None:
                    raise GiveUp("unknown", f"switch at line {rp.line} not decided by the witness")
        except GiveUp as stop:
            if visited_line or rp.line == rp.f.line:
                out = judge(rp, ("after", None))
                if out is not None:
                    return out
            raise stop
        if rp.line == rp.f.line:
            visited_line = True
            out = judge(rp, ("line", node))
            if out is not None:
                return out
        if succ is None:
            nexts = [nxt for _, nxt, e in g.out_edges(node, data=True) if not e.get("abort")]
            if not nexts:
                nexts = list(g.successors(node))
            succ = nexts[0]
        node = succ
    raise GiveUp("unknown", f"step budget ({STEP_BUDGET}) ran out")


def _choose(rp: Replayer, g, node, ast, attrs, pending) -> int:
    edges = {e.get("branch"): nxt for _, nxt, e in g.out_edges(node, data=True)}
    if None in edges and len(edges) == 1:
        if attrs.get("iterator") is None:
            rp.eval(ast)
        return edges[None]
    label = _norm(text(ast))
    recorded = None
    if pending and pending[0][0] == rp.line and pending[0][1] == label:
        recorded = pending.pop(0)[2]
    concrete = None if attrs.get("iterator") is not None else rp.truth(rp.eval(ast))
    if recorded is not None and concrete is not None and recorded != concrete:
        raise GiveUp("refuted", f"path infeasible: '{text(ast)}' at line {rp.line} is "
                     f"{'true' if concrete else 'false'} in the concrete state, the witness "
                     f"needs it {'true' if recorded else 'false'}")
    choice = recorded if recorded is not None else concrete
    if choice is None:
        raise GiveUp("unknown", f"branch at line {rp.line} not decided by the witness")
    rp.snapshot(f"'{text(ast)[:50]}' is {'true' if choice else 'false'}")
    return edges[choice]


def replay(finding: Finding, src, contracts: Contracts, judge, record: bool = False) -> Simulated:
    if crosses_functions(finding):
        return Simulated("unknown", "witness crosses functions")
    fn = find_function(src.code, finding.function)
    if fn is None:
        return Simulated("unknown", f"function {finding.function}() not found on replay")
    cfg = build_cfg(fn.body, contracts.core.transparent, contracts.core.noreturn, src.iterators)
    rp = Replayer(finding, src, contracts, record)
    rp.bind_params(fn)
    try:
        out = walk(rp, cfg, judge)
    except GiveUp as stop:
        out = Simulated(stop.verdict, stop.reason)
    except RecursionError:
        out = Simulated("unknown", "expression nested too deeply for the replayer")
    out.steps = rp.steps
    return out
