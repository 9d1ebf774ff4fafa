"""The CPU touching a live streaming mapping without the sync that hands it over (DMA027, DMA028).

Between `dma_map_single()` and `dma_unmap_single()` the buffer belongs to the device.  On a
non-coherent machine:

  * a CPU store made after the mapping sits in the cache; unless the driver syncs it for the
    device (`dma_sync_single_for_device()`), the device reads the stale bytes in memory
    (DMA027, for mappings the device reads: DMA_TO_DEVICE and DMA_BIDIRECTIONAL);
  * a CPU load, once the device may have written, can return stale cache lines unless the driver
    syncs for the CPU first (DMA028, for DMA_FROM_DEVICE and DMA_BIDIRECTIONAL mappings).

dma-debug cannot see either: it tracks the API calls, not the loads and stores.

This is a pass of its own over the function's CFG, not part of the path engine: its state is
which buffer texts point into which live mapping (aliases through locals and members, pointer
arithmetic, `&buf[i]`), who owns each mapping now, and the last unsynced store.  It is
path-sensitive only where it must be: the failure branch of a mapping check ends the mapping,
and every other branch is followed both ways.  Everything the pass needs to know about the API
comes from the contracts: acquires whose `cpu_view = "pointer"` (the CPU argument is the mapped
bytes' kernel address), syncs, releases, checks, and core.toml's CPU copy functions, waits and
register writes.  Precision choices, each to avoid a finding nobody could act on:

  * an unsynced store is reported only when the function returns normally (not `-E...`, not an
    ERR_PTR) with the mapping live: the device is then given bytes it cannot see; a store
    followed by an unmap is not reported (the device may have been done with them);
  * a load is reported only after something that lets the device run: a register write or a
    wait (core.toml `io_writes`, `waits`);
  * a sync or release whose handle matches no tracked mapping counts for every mapping, and a
    handle handed to another function stops the tracking (the callee may sync it).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, replace

from tree_sitter import Node

from dmalint.cfg import CFG
from dmalint.contracts.model import Contracts
from dmalint.engine.state import Step
from dmalint.findings import Event
from dmalint.parse import strip_casts, text, unwrap_parens

# States explored per function before giving up quietly (no finding is better than a guess).
MAX_STATES = 20000
_CAST_LIKE = ("cast_expression", "parenthesized_expression")


def norm(node: Node | None) -> str:
    """An expression's text without whitespace or enclosing parentheses, the key for matching."""
    if node is None:
        return ""
    return "".join(text(unwrap_parens(node)).split())


def pointer_base(node: Node) -> str:
    """The pointer an address expression is based on: `buf + 4` and `(void *)buf` are `buf`,
    `&obj` is `&obj`."""
    node = strip_casts(node)
    if node.type == "binary_expression" and text(node.child_by_field_name("operator")) in ("+", "-"):
        return pointer_base(node.child_by_field_name("left"))
    if node.type == "pointer_expression" and text(node.child_by_field_name("operator")) == "&":
        return "&" + norm(strip_casts(node.child_by_field_name("argument")))
    return norm(node)


def object_bases(node: Node) -> set[str]:
    """The pointers whose pointee contains the object an lvalue names: `p->a.b` lies in `*p`
    and in `&p->a`; `buf[3]` in `buf`; `*(q + 1)` in `q`; a variable `x` in `&x`."""
    node = strip_casts(node)
    out = {"&" + norm(node)}
    t = node.type
    if t == "field_expression":
        arg = node.child_by_field_name("argument")
        if text(node.child_by_field_name("operator")) == "->":
            out.add(pointer_base(arg))
        elif arg is not None:
            out |= object_bases(arg)
    elif t == "subscript_expression":
        arg = node.child_by_field_name("argument")
        if arg is not None:
            out.add(pointer_base(arg))
            out |= object_bases(arg)  # an array member: `p->ring[i]` lies in `*p`
    elif t == "pointer_expression" and text(node.child_by_field_name("operator")) == "*":
        arg = node.child_by_field_name("argument")
        if arg is not None:
            out.add(pointer_base(arg))
    return out


def points_into(node: Node, aliases: frozenset[str]) -> bool:
    """Whether an address expression points into a buffer known by one of the alias texts."""
    node = strip_casts(node)
    if pointer_base(node) in aliases:
        return True
    if node.type == "pointer_expression" and text(node.child_by_field_name("operator")) == "&":
        arg = node.child_by_field_name("argument")
        return arg is not None and bool(object_bases(arg) & aliases)
    return False


# --- effects: what one CFG node does, in evaluation order -----------------------------------

@dataclass(frozen=True)
class Effect:
    kind: str  # assign | write | read | call
    node: Node
    name: str = ""  # the called function
    args: tuple[Node, ...] = ()
    target: Node | None = None  # assign: the left side
    value: Node | None = None  # assign: the right side


def _effects(ast: Node) -> list[Effect]:
    out: list[Effect] = []
    _visit(ast, out)
    return out


def _visit(n: Node | None, out: list[Effect]) -> None:
    if n is None:
        return
    t = n.type
    if t == "assignment_expression":
        left, right = n.child_by_field_name("left"), n.child_by_field_name("right")
        op = text(n.child_by_field_name("operator"))
        _visit(right, out)
        _lvalue_reads(left, out)
        if op != "=":
            out.append(Effect("read", left))
        out.append(Effect("write", left))
        if op == "=":
            out.append(Effect("assign", n, target=left, value=right))
        return
    if t == "init_declarator":
        value = n.child_by_field_name("value")
        _visit(value, out)
        name = n.child_by_field_name("declarator")
        while name is not None and name.type != "identifier":
            name = name.child_by_field_name("declarator")
        if name is not None and value is not None:
            out.append(Effect("assign", n, target=name, value=value))
        return
    if t == "update_expression":
        arg = n.child_by_field_name("argument")
        _lvalue_reads(arg, out)
        out.append(Effect("read", arg))
        out.append(Effect("write", arg))
        return
    if t == "call_expression":
        fn = n.child_by_field_name("function")
        args = n.child_by_field_name("arguments")
        arg_nodes = tuple(a for a in (args.named_children if args is not None else ())
                          if a.type != "comment")
        for a in arg_nodes:
            _visit(a, out)
        name = text(fn) if fn is not None and fn.type == "identifier" else ""
        out.append(Effect("call", n, name=name, args=arg_nodes))
        return
    if t == "pointer_expression" and text(n.child_by_field_name("operator")) == "&":
        _lvalue_reads(n.child_by_field_name("argument"), out)  # taking an address reads nothing
        return
    if t in ("field_expression", "subscript_expression") or \
            (t == "pointer_expression" and text(n.child_by_field_name("operator")) == "*"):
        out.append(Effect("read", n))
        _lvalue_reads(n, out)
        return
    if t == "sizeof_expression":
        return
    for c in n.named_children:
        _visit(c, out)


def _lvalue_reads(n: Node | None, out: list[Effect]) -> None:
    """The loads an lvalue needs to find its address: `p->q->x` loads `p->q`; `a[i]` loads i."""
    if n is None:
        return
    n = strip_casts(n)
    t = n.type
    if t == "field_expression":
        arg = n.child_by_field_name("argument")
        if text(n.child_by_field_name("operator")) == "->":
            _visit(arg, out)
        else:
            _lvalue_reads(arg, out)
    elif t == "subscript_expression":
        _visit(n.child_by_field_name("argument"), out)
        _visit(n.child_by_field_name("index"), out)
    elif t == "pointer_expression":
        _visit(n.child_by_field_name("argument"), out)


def node_effects(cfg: CFG, n: int) -> list[Effect]:
    data = cfg.node(n)
    kind = data["kind"]
    if kind == "assign":
        lhs, rhs = data["lhs"], data["rhs"]
        out: list[Effect] = []
        _visit(rhs, out)
        _lvalue_reads(lhs, out)
        out.append(Effect("write", lhs))
        out.append(Effect("assign", rhs, target=lhs, value=rhs))
        return out
    ast = data.get("ast")
    if ast is None or kind in ("entry", "exit", "join"):
        return []
    if kind == "stmt" and data.get("declaration_only"):
        return []
    return _effects(ast)


# --- the path state ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Mapping:
    """One live mapping on this path: which texts reach its bytes and its handle, who owns it."""

    site: int  # byte offset of the acquire call
    function: str
    line: int
    buffer: str
    direction: int
    direction_text: str
    aliases: frozenset[str]
    handles: frozenset[str]
    exact: frozenset[str] = frozenset()  # aliases known to point at the buffer's first byte
    size_text: str = ""
    owner: str = "device"  # "device" after map / sync_for_device; "cpu" after sync_for_cpu
    ran: bool = False  # the device may have run since it last got the buffer
    # An unsynced CPU store: (line, column, text, range check or None); see RangeCheck.
    pending: tuple | None = None


@dataclass(frozen=True)
class RangeCheck:
    """A store `alias->a.b = x` through a pointer to the buffer's start, when the mapped size
    is not `sizeof(*alias)`: the store is in the mapping only if the member's offset is below
    the mapped size (drivers often map only a descriptor's hardware part), which the layout
    engine decides after the pass (see in_mapped_range)."""

    variable: str  # the alias the store goes through (a local or parameter: its type is known)
    members: tuple[str, ...]
    size_text: str


State = tuple  # a sorted tuple of Mappings


def _replace(st: State, old: Mapping, new: Mapping | None) -> State:
    rest = [m for m in st if m is not old]
    if new is not None:
        rest.append(new)
    return tuple(sorted(rest, key=lambda m: m.site))


def _with(m: Mapping, **changes) -> Mapping:
    return replace(m, **changes)


def _kill_prefix(texts: frozenset[str], target: str) -> frozenset[str]:
    """Texts that no longer mean the same object once `target` is assigned."""
    return frozenset(t for t in texts
                     if t != target and not t.startswith((target + "->", target + ".", target + "[")))


class CpuAccess:
    """Runs the pass over one function's CFG and returns its events."""

    def __init__(self, cfg: CFG, contracts: Contracts, function: str, defines: dict | None = None,
                 local_functions: frozenset[str] = frozenset()):
        self.cfg = cfg
        self.local = local_functions
        self.c = contracts
        self.function = function
        self.defines = defines or {}
        core = contracts.core
        self.neutral = core.borrows | core.transparent  # calls that neither sync nor take a handle
        self.waits = core.io_writes | core.waits
        self.copies = core.cpu_copies
        k = contracts.constants
        self.device_reads = tuple(k[n] for n in ("DMA_TO_DEVICE", "DMA_BIDIRECTIONAL") if n in k)
        self.device_writes = tuple(k[n] for n in ("DMA_FROM_DEVICE", "DMA_BIDIRECTIONAL") if n in k)
        self.events: dict[tuple, Event] = {}
        self.checks: dict[tuple, RangeCheck] = {}
        self._effects: dict[int, list[Effect]] = {}
        self._parent: dict = {}

    # -- driving -----------------------------------------------------------------------------
    def run(self) -> list[tuple[Event, "RangeCheck | None"]]:
        g = self.cfg.graph
        start = (self.cfg.entry, ())
        parent: dict = {start: None}
        self._parent = parent
        queue = deque([start])
        while queue and len(parent) < MAX_STATES:
            key = queue.popleft()
            node, st = key
            steps: list[Step] = []
            st = self._transfer(node, st, key, steps)
            if st is None:
                continue
            for succ in g.successors(node):
                edge = g.edges[node, succ]
                if edge.get("abort"):
                    continue
                nst, step = self._edge(node, succ, edge, st)
                if nst is None:
                    continue
                if succ == self.cfg.exit:
                    self._judge_exit(node, nst, key, steps + ([step] if step else []))
                    continue
                nkey = (succ, nst)
                if nkey not in parent:
                    parent[nkey] = (key, tuple(steps) + ((step,) if step else ()))
                    queue.append(nkey)
        return [(ev, self.checks.get(k)) for k, ev in self.events.items()]

    def _trace(self, key) -> list[Step]:
        """The witness up to the node of `key`: the steps recorded along its BFS parents."""
        parent = self._parent
        chunks = []
        while key is not None:
            link = parent.get(key)
            if link is None:
                break
            key, steps = link
            chunks.append(steps)
        out = [Step(self.cfg.node(self.cfg.entry)["line"], "enter", f"enter {self.function}()")]
        for steps in reversed(chunks):
            out.extend(steps)
        return out

    # -- one node ----------------------------------------------------------------------------
    def _transfer(self, node: int, st: State, key, steps: list[Step]) -> State | None:
        kind = self.cfg.kind(node)
        if kind not in ("stmt", "assign", "cond", "switch", "return"):
            return st
        effects = self._effects.get(node)
        if effects is None:
            effects = self._effects[node] = node_effects(self.cfg, node)
        for eff in effects:
            st = self._apply(eff, st, key, steps)
        return st

    def _apply(self, eff: Effect, st: State, key, steps: list[Step]) -> State:
        k = eff.kind
        if k == "call":
            return self._call(eff, st, key, steps)
        if not st:
            return st
        if k == "assign":
            return self._assign(eff, st, steps)
        cands = object_bases(eff.node) if k == "write" else _read_bases(eff.node)
        if not cands:
            return st
        for m in st:
            if not (cands & m.aliases):
                continue
            if k == "write" and m.direction in self.device_reads and m.pending is None:
                line, col = _pos(eff.node)
                step = Step(line, "write", f"the CPU writes '{norm(eff.node)}', inside the buffer "
                                           f"mapped at line {m.line}, after the mapping")
                steps.append(step)
                check = _range_check(eff.node, m)
                st = _replace(st, m, _with(m, pending=(line, col, f"'{norm(eff.node)}'", check)))
            elif k == "read" and m.direction in self.device_writes and m.owner == "device" \
                    and m.ran:
                self._report_read(m, eff.node, key, steps)
        return st

    def _assign(self, eff: Effect, st: State, steps: list[Step]) -> State:
        target = norm(eff.target)
        value = eff.value
        out = st
        for m in st:
            aliases = _kill_prefix(m.aliases, target)
            exact = _kill_prefix(m.exact, target)
            handles = _kill_prefix(m.handles, target)
            if value is not None and points_into(value, m.aliases) and not _past_end(value, m):
                aliases |= {target}
                if norm(strip_casts(value)) in m.exact:
                    exact |= {target}
            if value is not None and (self._handle_text(value) in m.handles
                                      or strip_casts(value).start_byte == m.site):
                handles |= {target}
            if aliases != m.aliases or handles != m.handles or exact != m.exact:
                out = _replace(out, m, _with(m, aliases=aliases, handles=handles, exact=exact))
        return out

    def _call(self, eff: Effect, st: State, key, steps: list[Step]) -> State:
        name, args = eff.name, eff.args
        c = self.c
        acq = c.acquires.get(name)
        if acq is not None:
            return self._map(acq, eff, st, steps)
        if not st:
            return st
        if name in self.copies:
            writes, reads = self.copies[name]
            for idx in reads:
                if idx < len(args):
                    for m in st:
                        if points_into(args[idx], m.aliases) and m.direction in self.device_writes \
                                and m.owner == "device" and m.ran:
                            self._report_read(m, args[idx], key, steps, via=name)
            for idx in writes:
                if idx < len(args):
                    for m in list(st):
                        if points_into(args[idx], m.aliases) and m.pending is None \
                                and m.direction in self.device_reads:
                            line, col = _pos(eff.node)
                            steps.append(Step(line, "write", f"{name}() writes into the buffer mapped "
                                                             f"at line {m.line}, after the mapping"))
                            st = _replace(st, m, _with(m, pending=(line, col, f"with {name}()", None)))
            return st
        sync = c.syncs.get(name)
        rel = c.releases.get(name)
        if sync is not None or rel is not None:
            roles = sync.args if sync is not None else rel.args
            idx = roles.get("handle")
            handle = self._handle_text(args[idx]) if idx is not None and idx < len(args) else ""
            hits = [m for m in st if handle and handle in m.handles] or list(st)
            line = _pos(eff.node)[0]
            for m in hits:
                if rel is not None:
                    st = _replace(st, m, None)
                elif sync.to == "cpu":
                    st = _replace(st, m, _with(m, owner="cpu"))
                else:
                    st = _replace(st, m, _with(m, owner="device", ran=False, pending=None))
            if hits and sync is not None:
                steps.append(Step(line, "sync", f"{name}() hands the buffer to the {sync.to}"))
            return st
        if name in c.checks or name in self.neutral or c.core.is_transform(name):
            return st
        if name in self.waits:
            ran = [m for m in st if not m.ran]
            if ran:
                steps.append(Step(_pos(eff.node)[0], "call", f"{name}() lets the device run"))
            for m in ran:
                st = _replace(st, m, _with(m, ran=True))
            return st
        # A function of the driver's own that is given a mapping's handle (or the object holding
        # it) may sync or release it: stop following that mapping.  Kernel services given a
        # handle (dmaengine prep, descriptor writes) do not sync the driver's mappings.
        if name not in self.local:
            return st
        for a in args:
            base = self._handle_text(a)
            for m in st:
                if base and any(h == base or h.startswith((base + "->", base + ".")) for h in m.handles):
                    st = _replace(st, m, None)
        return st

    def _map(self, acq, eff: Effect, st: State, steps: list[Step]) -> State:
        if acq.cpu_view != "pointer":
            return st
        roles = acq.args
        args = eff.args
        ci, di = roles.get("cpu"), roles.get("direction")
        if ci is None or di is None or ci >= len(args) or di >= len(args):
            return st
        direction = self._constant(norm(args[di]))
        if direction is None:
            return st
        site = eff.node.start_byte
        st = tuple(m for m in st if m.site != site)  # a loop maps again at the same site
        handles = frozenset()
        parent = eff.node.parent
        while parent is not None and parent.type in _CAST_LIKE:
            parent = parent.parent
        if parent is not None and parent.type == "assignment_expression":
            handles = frozenset({norm(parent.child_by_field_name("left"))})
        elif parent is not None and parent.type == "init_declarator":
            decl = parent.child_by_field_name("declarator")
            handles = frozenset({norm(decl)})
        line = _pos(eff.node)[0]
        buf = args[ci]
        base = pointer_base(buf)
        exact = frozenset({base}) if norm(strip_casts(buf)) == base else frozenset()
        si = roles.get("size")
        # Spaces kept: `sizeof(struct oal)` must still evaluate.
        size_text = " ".join(text(args[si]).split()) if si is not None and si < len(args) else ""
        m = Mapping(site, acq.function, line, base, direction, norm(args[di]),
                    frozenset({base}), handles, exact, size_text)
        steps.append(Step(line, "acquire", f"{acq.function}() maps '{norm(buf)}' {norm(args[di])}: "
                                           f"the device owns it now"))
        return tuple(sorted(st + (m,), key=lambda x: x.site))

    # -- edges -------------------------------------------------------------------------------
    def _edge(self, node: int, succ: int, edge: dict, st: State):
        if self.cfg.kind(node) != "cond" or "branch" not in edge:
            return st, None
        cond = self.cfg.node(node).get("ast")
        truth = edge["branch"]
        step = Step(self.cfg.node(node)["line"], "branch", f"'{_short(cond)}' is {str(truth).lower()}")
        call = strip_casts(cond) if cond is not None else None
        if call is not None and call.type == "call_expression" and st:
            name = text(call.child_by_field_name("function"))
            chk = self.c.checks.get(name)
            if chk is not None:
                args = call.child_by_field_name("arguments")
                arg_nodes = [a for a in args.named_children if a.type != "comment"] if args else []
                idx = chk.args.get("handle")
                if idx is not None and idx < len(arg_nodes):
                    handle = self._handle_text(arg_nodes[idx])
                    for m in st:
                        if handle in m.handles and truth:
                            st = _replace(st, m, None)  # the mapping failed: nothing to own
        return st, step

    def _judge_exit(self, node: int, st: State, key, steps: list[Step]) -> None:
        kind = self.cfg.kind(node)
        data = self.cfg.node(node)
        if data.get("unresolved_goto") is not None:
            return
        pending = [m for m in st if m.pending is not None]
        if not pending:
            return
        if kind == "return" and self._failure_return(data.get("ast"), key):
            return
        for m in pending:
            ev_key = ("cpu-write-unsynced", m.site, m.pending[0])
            if ev_key in self.events:
                continue
            trace = self._trace(key) + steps + [
                Step(data.get("line") or m.pending[0], "return",
                     f"returns with the buffer still mapped and the write of line {m.pending[0]} "
                     f"not synced for the device")]
            line, col, what, check = m.pending
            if check is not None:
                self.checks[ev_key] = check
            fields = {"acquire": m.function, "acquire_line": m.line, "buffer": m.buffer,
                      "direction": m.direction_text, "written": what,
                      "sync": self._sync_name("device")}
            self.events[ev_key] = Event("cpu-write-unsynced", line, col, self.function, fields,
                                        tuple(trace),
                                        related=((m.line, f"{m.function}() maps the buffer here"),),
                                        anchor=f"{m.function}:{m.buffer}:{what}")

    def _failure_return(self, value: Node | None, key) -> bool:
        """`return -ENOMEM;`, `return ERR_PTR(err);`, or `return ret;` where, on this path, ret
        last received an errno or was tested true (`if (ret) goto out;`): the caller will not
        use what was set up."""
        if value is None:
            return False
        v = strip_casts(value)
        if _is_error_value(v, self.c):
            return True
        if v.type != "identifier":
            return False
        name = text(v)
        nodes = self._path_nodes(key)
        for i in range(len(nodes) - 1, -1, -1):
            n = nodes[i]
            data = self.cfg.node(n)
            if data["kind"] == "cond" and i + 1 < len(nodes):
                cond = data.get("ast")
                if cond is not None and _tests(cond, name):
                    edge = self.cfg.graph.edges[n, nodes[i + 1]]
                    return bool(edge.get("branch")) == _true_means_error(cond)
                continue
            assigned = [e for e in self._effects.get(n, ()) if e.kind == "assign"
                        and norm(e.target) == name]
            if assigned:
                return _is_error_value(strip_casts(assigned[-1].value), self.c)
        return False

    def _path_nodes(self, key) -> list[int]:
        nodes = []
        while key is not None:
            nodes.append(key[0])
            link = self._parent.get(key)
            key = link[0] if link is not None else None
        nodes.reverse()
        return nodes

    def _report_read(self, m: Mapping, node: Node, key, steps: list[Step], via: str = "") -> None:
        ev_key = ("cpu-read-unsynced", m.site)
        if ev_key in self.events:
            return
        line, col = _pos(node)
        read = f"'{norm(node)}' with {via}()" if via else f"'{norm(node)}'"
        what = f"{via}() reads '{norm(node)}'" if via else f"reads '{norm(node)}'"
        trace = self._trace(key) + steps + [
            Step(line, "read", f"the CPU {what} while the device owns the buffer")]
        fields = {"acquire": m.function, "acquire_line": m.line, "buffer": m.buffer,
                  "direction": m.direction_text, "read": read, "sync": self._sync_name("cpu")}
        self.events[ev_key] = Event("cpu-read-unsynced", line, col, self.function, fields, tuple(trace),
                                    related=((m.line, f"{m.function}() maps the buffer here"),),
                                    anchor=f"{m.function}:{m.buffer}:{norm(node)}")

    # -- helpers -----------------------------------------------------------------------------
    def _handle_text(self, node: Node) -> str:
        """A handle argument's text, through casts and byte-order transforms."""
        node = strip_casts(node)
        while node.type == "call_expression":
            fn = text(node.child_by_field_name("function"))
            args = node.child_by_field_name("arguments")
            if not (self.c.core.is_transform(fn) or fn in self.c.core.transparent) or args is None \
                    or not args.named_child_count:
                break
            node = strip_casts(args.named_children[0])
        return norm(node)

    def _constant(self, name: str) -> int | None:
        seen = 0
        while name not in self.c.constants and name in self.defines and seen < 4:
            name = "".join(self.defines[name].value.split())
            seen += 1
        return self.c.constants.get(name)

    def _sync_name(self, to: str) -> str:
        return next((s.function for s in self.c.syncs.values()
                     if s.to == to and "handle" in s.args), f"a sync for the {to}")


def _read_bases(node: Node) -> set[str]:
    """The pointers a load goes through (only the outermost access: inner ones are their own
    read effects)."""
    node = strip_casts(node)
    t = node.type
    if t == "field_expression":
        arg = node.child_by_field_name("argument")
        if text(node.child_by_field_name("operator")) == "->":
            return {pointer_base(arg)}
        return object_bases(arg) if arg is not None else set()
    if t == "subscript_expression":
        arg = node.child_by_field_name("argument")
        return ({pointer_base(arg)} | object_bases(arg)) if arg is not None else set()
    if t == "pointer_expression":
        arg = node.child_by_field_name("argument")
        return {pointer_base(arg)} if arg is not None else set()
    return set()


def _is_error_value(v: Node | None, contracts: Contracts) -> bool:
    """`-ENOMEM`, `-1`, `ERR_PTR(...)`."""
    if v is None:
        return False
    if v.type == "unary_expression" and text(v.child_by_field_name("operator")) == "-":
        return True
    return v.type == "call_expression" and \
        text(v.child_by_field_name("function")) in contracts.core.error_pointers


def _tests(cond: Node, name: str) -> bool:
    """Whether an atomic condition tests the variable: `ret`, `ret < 0`, `ret != 0`."""
    c = strip_casts(cond)
    if c.type == "identifier":
        return text(c) == name
    if c.type == "binary_expression":
        return norm(c.child_by_field_name("left")) == name and \
            norm(c.child_by_field_name("right")) == "0"
    return False


def _true_means_error(cond: Node) -> bool:
    """`if (ret)`, `if (ret < 0)`, `if (ret != 0)` are true on failure; `ret == 0`, `ret >= 0`
    are true on success."""
    c = strip_casts(cond)
    if c.type == "binary_expression":
        return text(c.child_by_field_name("operator")) in ("<", "!=")
    return True


def _past_end(value: Node, m: Mapping) -> bool:
    """`buf + len` where len is the mapped size: the first byte after the mapping (drivers keep
    their own bookkeeping there, behind what they give the device)."""
    v = strip_casts(value)
    if v.type != "binary_expression" or text(v.child_by_field_name("operator")) != "+":
        return False
    return norm(v.child_by_field_name("right")) == "".join(m.size_text.split())


def _range_check(node: Node, m: Mapping) -> RangeCheck | None:
    """The check a store `p->a.b = x` needs when p points at the buffer's start and the mapped
    size is not `sizeof(*p)` / `sizeof(p[0])`."""
    members: list[str] = []
    n = strip_casts(node)
    while n.type == "field_expression":
        members.append(text(n.child_by_field_name("field")))
        if text(n.child_by_field_name("operator")) == "->":
            base = norm(n.child_by_field_name("argument"))
            if base not in m.exact:
                return None
            size = "".join(m.size_text.split())
            if any(size in (f"sizeof(*{a})", f"sizeof({a}[0])", f"sizeof*{a}") for a in m.exact | {base}):
                return None
            return RangeCheck(base, tuple(reversed(members)), m.size_text)
        n = strip_casts(n.child_by_field_name("argument"))
    return None


def _pos(node: Node) -> tuple[int, int]:
    return node.start_point[0] + 1, node.start_point[1] + 1


def _short(node: Node | None) -> str:
    s = " ".join(text(node).split())
    return s if len(s) <= 60 else s[:57] + "..."


def cpu_access_events(cfg: CFG, contracts: Contracts, function: str, defines: dict | None = None,
                      local_functions: frozenset[str] = frozenset()
                      ) -> list[tuple[Event, RangeCheck | None]]:
    """DMA027/DMA028 events of one function, each with the range check it still needs."""
    return CpuAccess(cfg, contracts, function, defines, local_functions).run()


def in_mapped_range(check: RangeCheck, variable_type: str | None, layout, src) -> bool:
    """Whether the member a store writes lies inside the mapped bytes.  Unknown (no type, no
    layout, a size that does not evaluate) counts as outside: no finding on a guess."""
    if variable_type is None or layout is None:
        return False
    field = layout.field_path(variable_type, list(check.members))
    if field is None or field.offset is None:
        return False
    try:
        size = layout.evaluator(src).eval_text(check.size_text)
    except (RecursionError, ValueError):
        return False
    return size is not None and field.offset < size
