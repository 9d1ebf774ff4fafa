"""The replayer's expression interpreter: C expressions over concrete values, driving the model.

Its own small interpreter (nothing from dmalint.engine): integers, abstract objects with fields,
pointers, locals, and the DMA API driven by the contracts' roles (device, handle, size,
direction, ...), so a new wrapper in rules/ is replayed without code.  Unknown calls return
fresh unknown values and may change what their pointer arguments reach (values become Stale).
Calls to the driver's own functions are handed to `call_helper`, which the replayer overrides.
"""

from __future__ import annotations

from tree_sitter import Node

from dmalint.consteval import char_literal, evaluate, int_literal
from dmalint.contracts.model import Contracts
from dmalint.parse import text
from dmalint.simulate.cache import Cache
from dmalint.simulate.model import DMA_MAPPING_ERROR, DmaDebug
from dmalint.simulate.objects import element_object, lay_out, member_object, ref_place
from dmalint.source import Define
from dmalint.simulate.values import (Handle, Lin, Obj, Ptr, Ref, Stale, Unknown, add,
                                     byte_place, equal, objof_value, resolve, truth)

ENOMEM = 12
MISSING = object()


class GiveUp(Exception):
    """The replay stops: verdict "unknown" (unsupported, undecided) or "refuted" (infeasible)."""

    def __init__(self, verdict: str, reason: str) -> None:
        super().__init__(reason)
        self.verdict = verdict
        self.reason = reason


def norm(s: str) -> str:
    return "".join(s.split())


def _key(v):
    return v if isinstance(v, (int, str)) else id(resolve(v))


def _index(idx, off):
    """An array element's key: an int, or (id of the unknown index, constant offset), so that
    `ring[i]`, `ring[i + 1]` and a pointer stepped with ++ and -- meet again."""
    off = off if isinstance(off, int) else 0
    if isinstance(idx, int):
        return idx + off
    if isinstance(idx, Lin):
        return (id(idx.base), idx.const + off)
    return (id(resolve(idx)), off)


def step_ref(r: "Ref", k: int):
    """&a[i] + k."""
    if isinstance(r.key, tuple) and r.key[0] == "[]":
        i = r.key[1]
        i = i + k if isinstance(i, int) else (i[0], i[1] + k)
        return Ref(r.where, ("[]", i), r.stack)
    return None


class Interp:
    """Evaluates expressions of one function frame at a time; the heap outlives frames."""

    def __init__(self, contracts: Contracts, src) -> None:
        self.c = contracts
        self.src = src
        self.model = DmaDebug()
        self.cache = Cache()
        self.layouts = None  # objects.Layouts: struct layouts, when the replayer has them
        self.frame: dict[str, object] = {}
        self.globals: dict[str, object] = {}
        # Driver state across functions: what one replayed function stored in (or read from) a
        # struct member, for a later function that reads the same member of an object it did
        # not build itself: member -> (segment, value).
        self.members: dict[str, tuple[int, object]] = {}
        self.segment = 0
        self.memo: dict = {}
        self.line = 0
        self.next_addr = 0x10000000
        self.outcomes: dict[int, list[bool]] = {}  # acquire line -> the witness's results
        self.journal: list | None = None
        self.notes: list[str] = []
        self.externals: dict[int, Obj] = {}  # driver state the replay has read or written
        self.facts: dict[int, tuple[object, bool]] = {}  # id(value) -> (value, truth)
        self.keep: list = []  # values whose ids are used as keys: never freed during a replay
        self.made: dict[int, tuple] = {}  # id(unknown comparison) -> (op, a, b)
        self.known: dict[int, tuple[object, int]] = {}  # id(unknown) -> (it, its value)

    # -- values ---------------------------------------------------------------------------
    def fresh(self, name: str, nonzero: bool = False) -> Unknown:
        return Unknown(name, nonzero)

    def truth(self, v) -> bool | None:
        """C truth, or what an earlier branch on this very value established."""
        t = truth(self.known_value(v))
        if t is None and id(v) in self.facts:
            return self.facts[id(v)][1]
        return t

    def assume(self, v, value: bool, origin=None) -> None:
        """The witness decided a branch on an unknown value: the same value stays so (the
        replay keeps the object, so its id is not reused).  `x == 3` taken true (or `x != 3`
        false) also makes x 3 from then on."""
        if isinstance(v, (Unknown, Lin)):
            self.facts[id(v)] = (v, value, origin)  # origin: the branch that decided it
            made = self.made.get(id(v))
            if made is not None:
                op, a, b = made
                if (op == "==") == value and op in ("==", "!="):
                    for x, c in ((a, b), (b, a)):
                        if isinstance(c, int) and not isinstance(c, Handle) and \
                                isinstance(x, Unknown) and not isinstance(x, Stale):
                            self.known[id(x)] = (x, c)

    def known_value(self, v):
        k = self.known.get(id(v)) if isinstance(v, Unknown) else None
        return k[1] if k is not None else v

    def objof(self, v, where: str) -> Obj:
        rv = resolve(v)
        if isinstance(rv, Ptr):
            self._model().touch(rv.obj)
            if rv.off != 0:
                # &ring[3] -> the element at 3 (the same one ring[3] names); an unknown offset
                # is one shared "somewhere inside" element
                key = ("[]", rv.off if rv.off is not None else "?")
                self.element(rv.obj, key)
                return self.objof(self.load_ref(Ref(rv.obj, key)), where)
        if isinstance(rv, Ref):
            return self.objof(self.load_ref(rv), where)
        obj = objof_value(v)
        if obj is None:
            raise GiveUp("unknown", f"dereference of {v!r} at line {self.line} ({where})")
        if obj.external:
            self.externals[id(obj)] = obj
        return obj

    def array_of(self, v, where: str) -> Obj:
        """The object a pointer indexes into (p[i], *p): for &ring[3], the ring."""
        rv = resolve(v)
        if isinstance(rv, Ptr):
            self._model().touch(rv.obj)
            return rv.obj
        return self.objof(v, where)

    def load_ref(self, r: Ref):
        store = r.where if isinstance(r.where, dict) else r.where.fields
        if r.key in store:
            return store[r.key]
        if isinstance(r.where, Obj) and r.where.external:
            v = self._member(r.where, r.key)
            if v is not MISSING:
                return v
        if isinstance(r.where, Obj) and r.where.zeroed:
            # dma_alloc_coherent() memory is zeroed (since 5.0): an unwritten member reads 0,
            # an unwritten element is a zeroed struct
            v = store[r.key] = Obj(f"{r.where.name}[{r.key[1]}]", zeroed=True) \
                if isinstance(r.key, tuple) else 0
            return v
        v = store[r.key] = self.fresh(str(r.key))
        if isinstance(r.where, Obj) and isinstance(r.key, tuple) and not isinstance(r.key[1], int):
            v.within = r.where  # what it points to lies inside the array, nobody knows where
        if isinstance(r.where, Obj) and r.where.external and isinstance(r.key, str):
            self.members.setdefault(r.key, (self.segment, v))
        return v

    def _member(self, obj: Obj, key):
        """Driver state an earlier replayed function left in this member (or array slot)."""
        if isinstance(key, str):
            seg, v = self.members.get(key, (self.segment, MISSING))
            return v if seg < self.segment else MISSING
        if isinstance(key, tuple) and key[0] == "[]" and not isinstance(key[1], int):
            earlier = [k for k, s in getattr(obj, "written", {}).items() if s < self.segment]
            if len(earlier) == 1:  # the slot the witness stored the region in
                return obj.fields[earlier[0]]
        return MISSING

    def store_ref(self, r: Ref, v) -> None:
        store = r.where if isinstance(r.where, dict) else r.where.fields
        if self.journal is not None:
            self.journal.append((store, r.key, store.get(r.key, MISSING)))
        store[r.key] = v
        if isinstance(r.where, Obj):
            self.cpu_store(r)
            if not hasattr(r.where, "written"):
                r.where.written = {}
            r.where.written[r.key] = self.segment
            if r.where.external and isinstance(r.key, str):
                self.members[r.key] = (self.segment, v)

    def rollback(self, mark: int) -> None:
        """Undo the stores made since the journal had `mark` entries."""
        while len(self.journal) > mark:
            store, key, old = self.journal.pop()
            if old is MISSING:
                store.pop(key, None)
            else:
                store[key] = old

    # -- laid-out objects (simulate/objects.py) ------------------------------------------------
    def member(self, obj: Obj, name: str, n: Node, argn: Node) -> None:
        """Lay out the struct `p->name` reaches, and place an array or struct member in it."""
        if self.layouts is None:
            return
        if obj.layout is None and not getattr(obj, "tried", False):
            obj.tried = True
            arrow = text(n.child_by_field_name("operator")) == "->"
            lay_out(obj, self.layouts.record(argn, self.src, arrow))
        if obj.layout is None or name in obj.fields:
            return
        if obj.external and self._member(obj, name) is not MISSING:
            return  # driver state an earlier replayed function left there
        sub = member_object(obj, name, self.layouts.type_of(n, self.src), self.layouts,
                            self.src)
        if sub is not None:
            obj.fields[name] = sub
            if obj.external:
                self.members.setdefault(name, (self.segment, sub))

    def element(self, arr: Obj, key) -> None:
        """Place a struct element of a laid-out array (or of structs after a struct pointer)."""
        if self.layouts is None or key in arr.fields or arr.elem is None:
            return
        if arr.external and self._member(arr, key) is not MISSING:
            return
        sub = element_object(arr, key[1] if isinstance(key[1], int) else None, self.layouts,
                             self.src)
        if sub is not None:
            arr.fields[key] = sub

    def cast(self, n: Node, v):
        """A pointer into a laid-out object cast to another pointer type steps by the new
        type's size: a view of the same bytes (what the view's elements hold is its own)."""
        rv = resolve(v)
        if self.layouts is None or not isinstance(rv, Ptr) or rv.obj.elem is None:
            return v
        typ = n.child_by_field_name("type")
        decl = typ.child_by_field_name("declarator") if typ is not None else None
        if decl is None or decl.type != "abstract_pointer_declarator":
            return v
        place = byte_place(rv)
        size = 1 if text(typ.child_by_field_name("type")) == "void" else None
        if size is None:
            sizen = f"sizeof({text(typ)[:-1].strip()})" if text(typ).endswith("*") else ""
            size = self._type_size(sizen) if sizen else None
        if size is None or size == rv.obj.elem or place is None or place[0].layout is None:
            return v
        view = Obj(f"({text(typ)}){rv.obj.name}", stack=rv.obj.stack,
                   external=rv.obj.external)
        view.parent, view.base, view.elem = place[0], place[1], size
        return Ptr(view)

    def _type_size(self, sizeof_text: str) -> int | None:
        unit = self.layouts.unit(self.src) if self.layouts is not None else None
        if unit is None:
            return None
        try:
            from dmalint.consteval import ConstEval
            return ConstEval(unit).eval_text(sizeof_text)
        except (RecursionError, ValueError, AttributeError):
            return None

    def cpu_store(self, r: Ref) -> None:
        """A store into a laid-out object is a CPU write the cache sees."""
        place = ref_place(r)
        if place is not None:
            root, off, size, name = place
            self.cache.cpu_write(root, off, size, f"line {self.line}: {self.function_name()}() "
                                 f"writes '{name}'", self.line)

    def function_name(self) -> str:
        """The function being replayed (the replayer knows; a bare interpreter does not)."""
        return "the CPU"

    # -- lvalues --------------------------------------------------------------------------
    def lvalue(self, n: Node) -> Ref:
        t = n.type
        if t == "parenthesized_expression" and n.named_child_count:
            return self.lvalue(n.named_children[-1])
        if t == "identifier":
            name = text(n)
            if name in self.frame:
                return Ref(self.frame, name, True)
            return Ref(self.globals, name)
        if t == "field_expression":
            argn = n.child_by_field_name("argument")
            obj = self.objof(self.eval(argn), text(n))
            name = text(n.child_by_field_name("field"))
            self.member(obj, name, n, argn)
            return Ref(obj, name)
        if t == "subscript_expression":
            base = self.eval(n.child_by_field_name("argument"))
            idx = self.eval(n.child_by_field_name("index"))
            obj = self.array_of(base, text(n))
            rb = resolve(base)
            off = rb.off if isinstance(rb, Ptr) else 0
            self.keep.append(idx)  # its id is part of the element's key
            key = ("[]", _index(idx, off))
            self.element(obj, key)
            return Ref(obj, key)
        if t == "pointer_expression" and text(n.child_by_field_name("operator")) == "*":
            base = self.eval(n.child_by_field_name("argument"))
            if isinstance(base, Ref):
                return base
            obj = self.array_of(base, text(n))
            rb = resolve(base)
            return Ref(obj, ("[]", rb.off if isinstance(rb, Ptr) else 0))
        if t == "cast_expression":
            return self.lvalue(n.child_by_field_name("value"))
        if t == "call_expression":  # an accessor macro used as an lvalue: sg_dma_address(sg)
            argn = n.child_by_field_name("arguments")
            args = [a for a in argn.named_children if a.type != "comment"] if argn else []
            if args:
                return Ref(self.objof(self.eval(args[0]), text(n)),
                           text(n.child_by_field_name("function")) + "()")
        raise GiveUp("unknown", f"unsupported assignment target '{text(n)[:40]}' at line "
                     f"{self.line}")

    def assign(self, target: Node, v) -> None:
        self.store_ref(self.lvalue(target), v)

    # -- expressions ------------------------------------------------------------------------
    def eval(self, n: Node | None):
        if n is None:
            return self.fresh("void")
        t = n.type
        if t == "parenthesized_expression":
            if n.named_child_count and n.named_children[0].type == "compound_statement":
                return self.fresh(text(n)[:20])  # ({ ... }): the CFG ran its statements
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
            obj = Obj("rodata")
            obj.rodata = True  # check_for_illegal_area(): a literal lies in .rodata
            return Ptr(obj)
        if t == "identifier":
            return self.ident(text(n))
        if t in ("field_expression", "subscript_expression") or (
                t == "pointer_expression" and text(n.child_by_field_name("operator")) == "*"):
            v = self.load_ref(self.lvalue(n))
            return Ptr(v) if isinstance(v, Obj) and v.array else v  # an array decays
        if t == "pointer_expression":  # &x
            return self.address_of(n)
        if t == "cast_expression":
            return self.cast(n, self.eval(n.child_by_field_name("value")))
        if t in ("sizeof_expression", "alignof_expression", "offsetof_expression"):
            if t == "sizeof_expression" and self.layouts is not None:
                size = self.layouts.sizeof(n, self.src)
                if size is not None:
                    return size
            key = ("sizeof", norm(text(n)))
            return self.memo.setdefault(key, self.fresh(text(n), nonzero=True))
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
            k = 1 if "++" in text(n.child_by_field_name("operator")) else -1
            new = (step_ref(old, k) if isinstance(old, Ref) else None) or \
                add(old, k, lambda: self.fresh(text(arg)))
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
            return self.binary(n)
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

    def address_of(self, n: Node):
        arg = n.child_by_field_name("argument")
        while arg.type == "parenthesized_expression" and arg.named_child_count:
            arg = arg.named_children[-1]
        if arg.type == "identifier" and text(arg) in self.frame:
            v = self.frame[text(arg)]
            if isinstance(v, Obj):
                return Ptr(v)
            return Ref(self.frame, text(arg), True)
        if arg.type == "subscript_expression":
            base = resolve(self.eval(arg.child_by_field_name("argument")))
            idx = self.eval(arg.child_by_field_name("index"))
            if isinstance(base, Ptr) and isinstance(idx, int):
                return Ptr(base.obj, base.off + idx if base.off is not None else None)
        try:
            ref = self.lvalue(arg)
        except GiveUp:
            return self.fresh(text(n))
        v = self.load_ref(ref) if ref.key in (ref.where if isinstance(ref.where, dict)
                                              else ref.where.fields) else None
        if isinstance(v, Obj):  # &priv->embedded_struct
            return Ptr(v)
        return ref

    def binary(self, n: Node):
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

    def ident(self, name: str):
        if name in self.frame:
            v = self.frame[name]
            return Ptr(v) if isinstance(v, Obj) else v  # an array or struct decays to its address
        if name in self.globals:
            return self.globals[name]
        if name == "NULL":
            return 0
        if name == "DMA_MAPPING_ERROR":
            return DMA_MAPPING_ERROR
        if name in self.c.constants:
            return self.c.constants[name]
        d = self.src.defines.get(name) or self.find_define(name)
        if d is not None and d.params is None:
            v = evaluate(d.value, self._defines())
            if v is not None:
                return v
        v = self.globals[name] = self.fresh(name)
        return v

    def find_define(self, name: str):
        """A #define outside the current file (a header of the driver); the replayer knows."""
        return None

    def _defines(self):
        """The file's #defines with the contracts' constants (DMA_ATTR_*, DMA_TO_DEVICE)."""
        key = ("defines", id(self.src))
        if key not in self.memo:
            extra = {k: Define(k, str(v), 0) for k, v in self.c.constants.items()
                     if k not in self.src.defines}
            self.memo[key] = {**self.src.defines, **extra}
        return self.memo[key]

    def binop(self, op: str, a, b):
        a, b = self.known_value(a), self.known_value(b)
        if isinstance(a, Handle) or isinstance(b, Handle):
            # A handle's bits are the model's choice, not a fact: only its identity (and
            # DMA_MAPPING_ERROR) is decided; `dma & BIT(27)`, `dma + len > mask` are not.
            eq = equal(a, b) if op in ("==", "!=") else None
            if eq is None:
                return self._same_unknown(op, a, b)
            return int(eq) if op == "==" else int(not eq)
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
            eq = equal(a, b)
            if eq is None:
                return self._same_unknown(op, a, b)
            return int(eq) if op == "==" else int(not eq)
        if op in ("+", "-") and isinstance(b, int):
            v = add(a, b if op == "+" else -b, lambda: None)
            if v is not None:
                return v
        if op == "+" and isinstance(a, int):
            v = add(b, a, lambda: None)
            if v is not None:
                return v
        if op in ("+", "-") and isinstance(a, Ref) and isinstance(b, int):
            r = step_ref(a, b if op == "+" else -b)
            if r is not None:
                return r
        if op in ("+", "-") and isinstance(resolve(a), Ptr):
            return Ptr(resolve(a).obj, None)  # p + n: still inside p's object
        if op == "+" and isinstance(resolve(b), Ptr):
            return Ptr(resolve(b).obj, None)
        if op in ("<", ">", "<=", ">=") and isinstance(a, Lin) and isinstance(b, Lin) \
                and a.base is b.base:
            return self.binop(op, a.const, b.const)
        return self._same_unknown(op, a, b)

    def _same_unknown(self, op: str, a, b) -> Unknown:
        """The same operation on the same values gives the same unknown (so a branch decided on
        it once stays decided)."""
        key = (op, _key(a), _key(b))
        if key not in self.memo:
            self.memo[key] = (self.fresh(f"({a!r}{op}{b!r})"), a, b)  # keep a, b: ids stay theirs
            self.made[id(self.memo[key][0])] = (op, a, b)
        return self.memo[key][0]

    # -- calls ---------------------------------------------------------------------------
    def call(self, n: Node):
        fn = n.child_by_field_name("function")
        name = text(fn) if fn is not None and fn.type == "identifier" else ""
        argn = n.child_by_field_name("arguments")
        args = [a for a in argn.named_children if a.type != "comment"] if argn is not None else []
        c = self.c
        if name in c.core.transparent or (name and c.core.is_transform(name)):
            vals = [self.eval(a) for a in args]
            return vals[0] if vals else self.fresh(name)
        api = c.acquires.get(name) or c.releases.get(name) or c.checks.get(name) \
            or c.syncs.get(name)
        if api is not None:
            vals = [self.eval(a) for a in args]
            self.call_line = n.start_point[0] + 1  # the line the finding's message names
            if name in c.acquires:
                return self.acquire(api, vals, args)
            if name in c.releases:
                return self.release(api, vals)
            if name in c.checks:
                return self.check(api, vals, n)
            return self.sync(api, vals)
        vals = [self.eval(a) for a in args]
        self.call_line = n.start_point[0] + 1
        if name in c.mmaps:
            return 0
        if name in c.buffers:
            self.transfer(c.buffers[name], vals)
        if name in c.core.cpu_copies:
            written, read = c.core.cpu_copies[name]
            for i in (*written, *read):
                if i < len(vals) and isinstance(resolve(vals[i]), Ptr):
                    self._model().touch(resolve(vals[i]).obj)
        if name in c.core.noreturn:
            raise GiveUp("unknown", f"path ends in {name}() at line {self.line}")
        if name:
            done, v = self.call_helper(name, vals, n)
            if done:
                return v
            if name.isupper() or self._macro(name):
                # A function-like macro of constants is pure: same arguments, same value.
                key = ("macro", name, tuple(_key(v) for v in vals))
                return self.memo.setdefault(key, (self.fresh(f"{name}()"), vals))[0]
        self.havoc(vals)
        return self.fresh(f"{name or text(fn)[:20]}()")

    def _macro(self, name: str) -> bool:
        d = self.src.defines.get(name)
        return d is not None and d.params is not None

    def call_helper(self, name: str, vals, n: Node):
        """A call to one of the driver's own functions: (True, value) when replayed."""
        return False, None

    def havoc(self, vals) -> None:
        """An unknown callee may write what its pointer arguments reach: those values go Stale.
        It may also reach driver state through a pointer we do not see (netdev_priv), so what
        the replay only read from driver state goes Stale too; what the replay itself wrote
        there, and locals whose address it does not get, keep their values."""
        seen: set[int] = set()
        self._stale_all(list(vals), seen, written_too=True)
        self._stale_all(list(self.externals.values()), seen, written_too=False)

    def _stale_all(self, stack: list, seen: set[int], written_too: bool) -> None:
        while stack and len(seen) < 300:
            v = stack.pop()
            if isinstance(v, Ref):
                old = self.load_ref(v)
                if not isinstance(old, Obj):
                    self.store_ref(v, Stale(old, f"{v.key}'"))
                continue
            obj = objof_value(v) if isinstance(resolve(v), (Ptr, Obj, Unknown)) else None
            if obj is None or id(obj) in seen:
                continue
            seen.add(id(obj))
            written = getattr(obj, "written", {})
            for k, fv in list(obj.fields.items()):
                if isinstance(resolve(fv), (Ptr, Obj)) or isinstance(fv, Unknown) and fv._obj:
                    stack.append(fv)
                if isinstance(fv, (Obj, Stale)) or self.produced(fv) or \
                        (not written_too and k in written):
                    continue
                if self.journal is not None:
                    self.journal.append((obj.fields, k, fv))
                obj.fields[k] = Stale(fv, f"{obj.name}.{k}'")

    @staticmethod
    def produced(v) -> bool:
        """A handle or buffer the DMA API returned: an unknown callee does not replace the
        driver's DMA regions behind its back (their release is what we judge)."""
        return isinstance(v, Handle) or isinstance(v, Ptr) and v.obj.api

    def role(self, roles, vals, r, default=None):
        i = roles.get(r)
        return resolve(vals[i]) if i is not None and i < len(vals) else default

    call_line = 0

    def _model(self) -> DmaDebug:
        self.model.line = self.call_line or self.line
        return self.model

    def acquire(self, a, vals, args):
        roles = a.args
        outcome = self.outcomes.get(self.call_line or self.line, [])
        ok = outcome.pop(0) if outcome else True
        m = self._model()
        dev = self.role(roles, vals, "device")
        cpu = self.role(roles, vals, "cpu")
        size = self.role(roles, vals, "size")
        direction = self.role(roles, vals, "direction")
        attrs = self.role(roles, vals, "attrs", 0)
        addr = Handle(self.next_addr)
        self.next_addr += 0x10000
        if a.failure == "check":
            handle = addr if ok else DMA_MAPPING_ERROR
            on_stack = isinstance(cpu, Ptr) and cpu.obj.stack or isinstance(cpu, Ref) and cpu.stack
            rodata = isinstance(cpu, Ptr) and getattr(cpu.obj, "rodata", False)
            skip = self.c.constants.get("DMA_ATTR_SKIP_CPU_SYNC", 0)
            skip_sync = isinstance(attrs, int) and bool(attrs & skip) or \
                not isinstance(attrs, int)  # attributes not known: do not claim the message
            m.map(dev, handle, size, direction, a.debug_type, cpu, on_stack, rodata,
                  self.cacheline(cpu), skip_sync)
            if ok:
                self.cache_map(cpu, size, direction, handle)
            return self._deliver(a, vals, handle)
        if a.failure in ("zero", "negative"):  # scatter-gather
            count = self.role(roles, vals, "count")
            # An IOMMU may merge segments: with an unknown nents the model returns nents - 1,
            # a count dma-debug tells apart from nents; a constant nents is mapped whole.
            mapped = (count if isinstance(count, int) else add(count, -1, lambda: self.fresh(
                "mapped", nonzero=True))) if ok else 0
            m.map_sg(dev, cpu, count, mapped, direction)
            if a.failure == "zero":
                return mapped
            return 0 if ok else -ENOMEM
        # failure == "null": an allocation returning a CPU pointer
        buf = Ptr(Obj(f"{a.function}@{self.line}", api=True,
                      zeroed=a.debug_type == "coherent")) if ok else 0
        out = a.out_arg
        if out is not None and out < len(vals) and isinstance(vals[out], Ref):
            self.store_ref(vals[out], addr if ok else self.fresh("undefined handle"))
        if not ok:
            return 0
        if a.debug_type == "coherent":
            m.alloc_coherent(dev, addr, size, buf)
            bit = self.c.cookie_bit
            if bit and isinstance(attrs, int) and attrs & bit:
                m.cookie(buf.obj)
        elif a.debug_type == "pool":
            m.pool_create(buf, dev, size, name=text(args[0]) if args else "pool")
        elif a.debug_type == "pool-block":
            m.pool_alloc(self.role(roles, vals, "pool"), buf, addr)
        return buf

    def _deliver(self, a, vals, handle):
        out = a.out_arg
        if out is not None and out < len(vals) and isinstance(vals[out], Ref):
            self.store_ref(vals[out], handle)
            return 0
        return handle

    def release(self, r, vals):
        roles = r.args
        m = self._model()
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
            if truth(cpu) is not False:  # dma_free_coherent(NULL) is a no-op
                m.unmap(dev, handle, size, 0, "coherent", cpu=cpu)
        else:
            if isinstance(handle, (Unknown, Lin)):
                # Mapped before the replayed path began: dma-debug would find its entry, the
                # replay cannot; the operation is recorded as not judged.
                m.foreign("unmap")
                return 0
            m.unmap(dev, handle, size, direction, r.debug_type)
            mapping = self.cache.find(handle)
            if mapping is not None:
                self.cache.unmap(mapping, self.call_line or self.line)
        return 0

    def check(self, ck, vals, n: Node):
        roles = ck.args
        r = self._model().mapping_error(self.role(roles, vals, "device"),
                                        self.role(roles, vals, "handle"))
        return int(r) if r is not None else self.fresh(text(n)[:40])

    def sync(self, s, vals):
        roles = s.args
        m = self._model()
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
            handle = self.role(roles, vals, "handle")
            m.sync(dev, handle, size, direction, s.to == "cpu")
            mapping = self.cache.find(handle)
            if mapping is not None and s.to == "cpu":
                self.cache.for_cpu(mapping, self.call_line or self.line, "the sync for the CPU")
            elif mapping is not None:
                self.cache.for_device(mapping)
        return 0

    def place(self, v) -> tuple | None:
        """(outermost laid-out object, byte offset) a pointer value designates, or None."""
        rv = resolve(v)
        if isinstance(rv, Ref):
            p = ref_place(rv)
            return (p[0], p[1]) if p is not None else None
        p = byte_place(rv)
        if p is None or p[1] is None or p[0].layout is None:
            return None
        return p

    def cacheline(self, cpu):
        """dma-debug's cacheline number of a buffer: its first L1 line (objects are taken to
        start on a line, as kmalloc'd memory does on the machines where this matters)."""
        p = self.place(cpu)
        l1 = self.layouts.target.l1_line if self.layouts is not None else 64
        return (id(p[0]), p[1] // l1) if p is not None else None

    def cache_map(self, cpu, size, direction, handle) -> None:
        """A streaming map of bytes of a laid-out object: the cache cleans its lines."""
        p = self.place(cpu)
        if p is not None and isinstance(size, int) and not isinstance(size, bool) and size > 0:
            d = direction if isinstance(direction, int) else None
            self.cache.map(p[0], p[1], size, d, self.call_line or self.line,
                           getattr(self, "site", 0) or self.line, handle)

    def transfer(self, b, vals) -> None:
        """A call that DMAs its buffer argument in the core: dma-debug checks that mapping."""
        buf = resolve(vals[b.arg]) if b.arg < len(vals) else None
        if isinstance(buf, Ptr) and buf.obj.stack or isinstance(buf, Ref) and buf.stack:
            self._model().check_stack(None, buf)

    # -- declarations ------------------------------------------------------------------------
    def declare(self, d: Node, evaluate_init: bool = True) -> None:
        static = any(c.type == "storage_class_specifier" and text(c) == "static"
                     for c in d.children)
        typ = d.child_by_field_name("type")
        is_record = typ is not None and typ.type in ("struct_specifier", "union_specifier")
        for decl in d.children_by_field_name("declarator"):
            value = None
            target = decl
            if decl.type == "init_declarator":
                target = decl.child_by_field_name("declarator")
                value = decl.child_by_field_name("value") if evaluate_init else None
            name_node = target
            pointer = array = False
            while name_node is not None and name_node.type != "identifier":
                pointer |= name_node.type in ("pointer_declarator", "function_declarator")
                array |= name_node.type == "array_declarator"
                name_node = name_node.child_by_field_name("declarator")
            if name_node is None:
                continue
            name = text(name_node)
            if array or (is_record and not pointer):
                obj = Obj(name, stack=not static)
                self.frame[name] = obj
                if value is not None and value.type != "initializer_list":
                    self.eval(value)
                continue
            self.frame[name] = self.eval(value) if value is not None else self.fresh(name)
