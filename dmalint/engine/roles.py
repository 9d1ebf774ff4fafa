"""The transfer functions of the contract roles: acquire, check, release, sync, and unknown calls.

A mixin of the Evaluator: it reads `self.c` (contracts), `self.scope`, `self.summaries`,
`self.store` and `self.emit`.  Every decision is taken from the role data in rules/; no function
is named here.
"""

from __future__ import annotations

from tree_sitter import Node

from dmalint.contracts.model import Acquire, Release, Sync
from dmalint.engine.fieldlog import (
    Allocation, Embedded, Side, canonical, embedded_target, field_key, long_key, member_read,
)
from dmalint.engine.state import FAILED, LIVE, RELEASED, Region, State
from dmalint.engine.values import TOP, Addr, Chk, Lin, Res, Value, path_text, sized_difference
from dmalint.parse import unwrap_parens

DMA_BIDIRECTIONAL = "DMA_BIDIRECTIONAL"
_STRING_NODES = frozenset({"string_literal", "concatenated_string"})
_CHECK_PHRASE = {"zero": "a test of the returned count for 0",
                 "negative": "a test of the returned error", "null": "a NULL check"}


def role_of(rel: Release, index: int) -> str | None:
    return next((role for role, i in rel.args.items() if i == index), None)


def _any_family(rel: Release, family: str) -> Release:
    """The release as if of the region's own family: which of a helper's releases runs is not
    known at the call."""
    return Release(rel.function, family, rel.debug_type, rel.args, rel.managed, rel.irqs_enabled,
                   rel.origin)


class ContractRoles:
    """Role transfers over a path State (mixed into the Evaluator)."""

    # -- dispatch ----------------------------------------------------------------------------
    def contract_call(self, name: str, node: Node, arg_nodes: list[Node], vals: list[Value],
                      st: State) -> tuple[bool, Value]:
        """(True, value) when the call has a contract role or a summary; (False, TOP) if not."""
        acquire = self.c.acquires.get(name)
        if acquire is not None:
            return True, self.acquire(acquire, node, arg_nodes, vals, st)
        release = self.c.releases.get(name)
        if release is not None:
            self.release(release, node, arg_nodes, vals, st)
            return True, TOP
        sync = self.c.syncs.get(name)
        if sync is not None:
            self.sync(sync, node, arg_nodes, vals, st)
            return True, TOP
        mmap = self.c.mmaps.get(name)
        if mmap is not None:
            reg, _ = self.region_of(mmap.args, vals, st)
            if reg is not None:
                self.attrs_match(reg, mmap.function, mmap.args, vals, node, st)
            return True, self.call_result(node, st)
        check = self.c.checks.get(name)
        if check is not None:
            return True, self.check(name, check.args.get("handle", 0), node, arg_nodes, vals, st)
        summary = self.summaries.get(name)
        if summary is None:
            return False, TOP
        if summary.kind == "check":
            value = self.check(name, summary.param, node, arg_nodes, vals, st)
            return True, value.flip() if isinstance(value, Chk) and summary.negated else value
        if summary.kind == "acquire":
            return True, self.acquire(summary.contract, node, arg_nodes, vals, st)
        if summary.kind == "acquire-into":
            return True, self._acquire_into(summary, node, arg_nodes, vals, st)
        if summary.kind == "release":
            done: set = set()
            for rel, roles in summary.releases:
                self._release_through(name, rel, roles, node, arg_nodes, vals, st, done,
                                      exact=summary.exact_release(rel, roles))
            return True, self.call_result(node, st)
        if summary.kind == "may-release" and any(not (isinstance(v, Lin) and v.is_const) for v in vals):
            # It frees something of these families we cannot name: whatever we hold of them
            # may be gone, so it is no longer ours to judge.
            for reg in list(st.regions.values()):
                if reg.status == LIVE and self.contract_of(reg).family in summary.families:
                    st.regions[reg.rid] = reg.but(escaped=True, handed=True)
        return False, TOP

    def contract_of(self, reg: Region) -> Acquire:
        """The acquire contract of a region: the API's, or a wrapper's summary."""
        acq = self.c.acquires.get(reg.acquire)
        if acq is None:
            acq = self.summaries[reg.acquire].contract
        return acq

    def _acquire_into(self, summary, node: Node, arg_nodes: list[Node], vals: list[Value],
                      st: State) -> Value:
        """An allocation helper: the region lands in the caller's storage; the helper's return
        value is non-zero exactly when the acquire failed."""
        self.acquire(summary.contract, node, arg_nodes, vals, st)
        rid = node.start_byte
        for ref, part in ((summary.cpu_into, "cpu"), (summary.handle_into, "handle")):
            if ref is None:
                continue
            path = self._caller_path(ref, arg_nodes, vals, st)
            if path is not None:
                self.store(path, Res(rid, part), st, node, by_acquire=True)
        return Chk(rid)

    def _caller_path(self, ref, arg_nodes: list[Node], vals: list[Value], st: State):
        """The caller's storage a helper's `param->a.b` names."""
        if ref.index >= len(arg_nodes):
            return None
        base = vals[ref.index]
        path = base.path if isinstance(base, Addr) else self.lvalue(arg_nodes[ref.index], st)
        if path is None:
            return None
        fields = ref.fields
        if isinstance(base, Addr) and fields and fields[0].startswith("->"):
            fields = ("." + fields[0][2:],) + fields[1:]
        return path + fields

    def _release_through(self, helper: str, rel: Release, roles, node: Node, arg_nodes: list[Node],
                         vals: list[Value], st: State, done: set, exact: bool) -> None:
        """A helper's release, with its arguments rebuilt from the caller's.  A region is
        released once per call even when the helper has several releases of it on different
        branches; then (`exact` False) its arguments are not compared with the acquire's."""
        width = max(rel.args.values()) + 1
        inner_vals: list[Value] = [TOP] * width
        inner_nodes: list[Node | None] = [None] * width
        for role, ref in roles:
            idx = rel.args[role]
            if isinstance(ref, str):
                inner_vals[idx] = self.value_of_text(ref)
                continue
            if ref.index >= len(arg_nodes):
                continue
            inner_nodes[idx] = arg_nodes[ref.index]
            if not ref.fields:
                inner_vals[idx] = vals[ref.index]
                continue
            path = self._caller_path(ref, arg_nodes, vals, st)
            if path is not None:
                inner_vals[idx] = self.read(path, st)
        reg = self.region_of(rel.args, inner_vals, st)[0]
        if reg is None or reg.rid in done:
            return
        done.add(reg.rid)
        st.step(node.start_point[0] + 1, "call", f"{helper}() calls {rel.function}()")
        if not exact:
            inner_vals = [v if role_of(rel, i) in ("handle", "cpu") else TOP
                          for i, v in enumerate(inner_vals)]
            rel = _any_family(rel, self.contract_of(reg).family)
        self.release(rel, node, [n if n is not None else node for n in inner_nodes], inner_vals, st)

    def check_phrase(self, acq: Acquire) -> str:
        """How the failure of this acquire is tested, for messages."""
        if acq.failure == "check":
            name = self.c.check_for(acq.family)
            return f"{'an' if name[:1] in 'aeiou' else 'a'} {name}() check"
        return _CHECK_PHRASE[acq.failure]

    # -- acquire -----------------------------------------------------------------------------
    def acquire(self, acq: Acquire, node: Node, arg_nodes: list[Node], vals: list[Value],
                st: State) -> Value:
        rid = node.start_byte
        line = node.start_point[0] + 1

        def arg(role: str) -> tuple[Value | None, str]:
            idx = acq.args.get(role)
            if idx is None or idx >= len(vals):
                return None, ""
            return vals[idx], " ".join(self.text(arg_nodes[idx]).split())

        old = st.regions.get(rid)
        if old is not None and any(isinstance(v, Res) and v.rid == rid for v in st.env.values()):
            # The same call runs again (a loop, a retry) while its previous region is still
            # held: keep that one apart as the site's previous instance.
            prev = ("prev", rid)
            st.regions[prev] = old.but(rid=prev)
            for k, v in list(st.env.items()):
                if isinstance(v, Res) and v.rid == rid:
                    st.env[k] = Res(prev, v.part, v.offset)
        size, size_text = arg("size")
        direction, direction_text = arg("direction")
        count, count_text = arg("count")
        cpu, cpu_text = arg("cpu")
        pool, _ = arg("pool")
        attrs, attrs_text = arg("attrs")
        # A scatterlist mapping is named by its list, a handle by where it is stored (set later).
        name = cpu_text if acq.identity == "cpu" and cpu_text else f"{acq.function}()"
        st.regions[rid] = Region(rid, acq.function, line, name, cpu=cpu, size=size,
                                 size_text=size_text, direction=direction,
                                 direction_text=direction_text, count=count,
                                 count_text=count_text, pool=pool, attrs=attrs,
                                 attrs_text=attrs_text)
        st.step(line, "acquire", f"{acq.function}() acquires a DMA region")
        out = acq.out_arg
        if out is not None and out < len(vals) and isinstance(vals[out], Addr):
            self.store(vals[out].path, Res(rid, "handle"), st, node, by_acquire=True)
        if "cpu" in acq.args and acq.identity == "handle" and acq.returns == "handle" \
                and acq.args["cpu"] < len(arg_nodes):
            d = direction.const if isinstance(direction, Lin) and direction.is_const else None
            self.log_embedded(arg_nodes[acq.args["cpu"]], d, acq.function, node, st,
                              size_text if "size" in acq.args else "")
        if acq.failure == "null" and acq.returns == "cpu" and acq.identity == "handle" \
                and not acq.managed and "pool" not in acq.args and size is not None:
            self.field_log.allocations.append(Allocation(
                acq.function, size, size_text, line, node.start_point[1] + 1, self.function,
                _in_loop(node), rid, tuple(st.steps())))
        held_in = member_read(cpu) if acq.identity == "cpu" else None
        if held_in is not None and not self.scope.is_local_storage(held_in):
            # a scatterlist kept in a struct member: pair it with releases elsewhere
            self.log_store(held_in, Res(rid, "cpu"), st.regions[rid], st, node, owned=False)
        return Res(rid, acq.returns)

    # -- finding the region a call is about ----------------------------------------------------
    def region_of(self, roles, vals: list[Value], st: State) -> tuple[Region | None, str]:
        """The region a release or sync names, through its handle or its CPU-side argument."""
        for role in ("handle", "cpu"):
            idx = roles.get(role)
            if idx is None or idx >= len(vals):
                continue
            v = vals[idx]
            if isinstance(v, Res) and not v.offset and v.rid in st.regions:
                return st.regions[v.rid], role
            if role == "cpu" and isinstance(v, (Lin, Addr)) and not (isinstance(v, Lin) and not v.terms):
                for reg in st.regions.values():
                    if self.contract_of(reg).identity == "cpu" and reg.cpu == v:
                        return reg, role
        return None, ""

    # -- release -----------------------------------------------------------------------------
    def release(self, rel: Release, node: Node, arg_nodes: list[Node], vals: list[Value],
                st: State) -> None:
        reg, _ = self.region_of(rel.args, vals, st)
        line = node.start_point[0] + 1
        self.field_log.released_families.add(rel.family)
        if reg is None:
            self._irqs_check(rel, node, st, None)
            self.log_release(rel, node, arg_nodes, vals, st)
            return  # a region acquired elsewhere: judged across functions, by the driver pass
        acq = self.contract_of(reg)
        if reg.status == RELEASED:
            self.emit("double-release", node, st, reg, release=rel.function,
                      first_line=reg.release_line)
        elif reg.status == FAILED:
            if acq.failure != "null":  # freeing NULL is a documented no-op
                self.emit("release-after-failure", node, st, reg, release=rel.function,
                          check=self.check_phrase(acq))
        else:
            if acq.failure != "null":  # freeing NULL is allowed, so no test is needed first
                self.use(reg, node, f"released by {rel.function}()", st)
            if acq.managed != rel.managed:
                self.emit("managed-release", node, st, reg, release=rel.function,
                          reason=("it is device-managed and is freed again when the driver "
                                  "unbinds" if acq.managed else
                                  "it was not allocated with a device-managed function"))
            elif acq.family != rel.family:
                self.emit("release-family-mismatch", node, st, reg, release=rel.function,
                          acquire_family=acq.family, release_family=rel.family)
            self.compare("direction", reg.direction, reg.direction_text, rel.args, rel.function,
                         node, arg_nodes, vals, st, reg)
            self.compare("size", reg.size, reg.size_text, rel.args, rel.function, node,
                         arg_nodes, vals, st, reg)
            self.compare_count(reg, rel.args, rel.function, node, arg_nodes, vals, st,
                               "release-count-mismatch")
            self._cpu_check(reg, rel, node, arg_nodes, vals, st)
            self._pool_checks(reg, acq, rel, node, arg_nodes, vals, st)
            self.attrs_match(reg, rel.function, rel.args, vals, node, st)
        self._irqs_check(rel, node, st, reg)
        self.released_sites.add(reg.rid)
        self.field_log.released_keys |= self.field_log.keys_of_region.get(reg.rid, set())
        st.regions[reg.rid] = st.regions[reg.rid].but(status=RELEASED, release_line=line)
        st.step(line, "release", f"{rel.function}() releases the region from line {reg.line}")

    def _irqs_check(self, rel: Release, node: Node, st: State, reg: Region | None) -> None:
        if rel.irqs_enabled and st.irqs_off > 0:
            target = reg or Region(node.start_byte, "", node.start_point[0] + 1,
                                   " ".join(self.text(node).split())[:60])
            self.emit("release-irqs-disabled", node, st, target, release=rel.function)

    def _cpu_check(self, reg: Region, rel: Release, node: Node, arg_nodes, vals, st) -> None:
        """A free whose CPU address belongs to another region than its handle."""
        h, c = rel.args.get("handle"), rel.args.get("cpu")
        if h is None or c is None or c >= len(vals) or h >= len(vals):
            return
        hv, cv = vals[h], vals[c]
        if isinstance(hv, Res) and hv.rid == reg.rid and isinstance(cv, Res) and cv.rid != reg.rid \
                and cv.rid in st.regions:
            other = st.regions[cv.rid]
            self.emit("release-cpu-mismatch", node, st, reg, release=rel.function,
                      cpu=" ".join(self.text(arg_nodes[c]).split()), other_line=other.line)

    def _pool_checks(self, reg: Region, acq: Acquire, rel: Release, node, arg_nodes, vals, st):
        """A block freed to another pool; a pool destroyed with blocks still out."""
        p = rel.args.get("pool")
        if p is not None and p < len(vals) and isinstance(vals[p], Res) and isinstance(reg.pool, Res) \
                and vals[p].rid != reg.pool.rid:
            self.emit("pool-mismatch", node, st, reg, release=rel.function,
                      pool=" ".join(self.text(arg_nodes[p]).split()))
        if acq.identity == "cpu" and acq.returns == "cpu":
            for block in list(st.regions.values()):
                if isinstance(block.pool, Res) and block.pool.rid == reg.rid and block.status == LIVE \
                        and not block.escaped:
                    self.emit("pool-destroy-busy", node, st, block, release=rel.function,
                              pool=reg.handle_text)

    # -- sync --------------------------------------------------------------------------------
    def sync(self, sync: Sync, node: Node, arg_nodes: list[Node], vals: list[Value],
             st: State) -> None:
        reg, _ = self.region_of(sync.args, vals, st)
        if reg is None:
            return
        line = node.start_point[0] + 1
        if reg.status in (RELEASED, FAILED):
            what = (f"it was released at line {reg.release_line}" if reg.status == RELEASED
                    else "the mapping failed")
            self.emit("sync-unmapped", node, st, reg, sync=sync.function, reason=what)
            return
        self.use(reg, node, f"synced by {sync.function}()", st)
        self._sync_direction(reg, sync, node, arg_nodes, vals, st)
        idx = sync.args.get("size")
        if idx is not None and idx < len(vals) and isinstance(reg.size, Lin) and isinstance(vals[idx], Lin):
            off_idx = sync.args.get("offset")
            end = vals[idx]
            if off_idx is not None and off_idx < len(vals) and isinstance(vals[off_idx], Lin):
                end = end.add(vals[off_idx])
            diff = end.add(reg.size, -1)
            if diff.is_const and diff.const > 0:
                self.emit("sync-outside-region", node, st, reg, sync=sync.function,
                          acquire_size=reg.size_text,
                          sync_size=" ".join(self.text(arg_nodes[idx]).split()))
        self.compare_count(reg, sync.args, sync.function, node, arg_nodes, vals, st,
                           "sync-count-mismatch")
        st.step(line, "sync", f"{sync.function}() hands the region to the {sync.to}")

    def _sync_direction(self, reg: Region, sync: Sync, node, arg_nodes, vals, st) -> None:
        """dma-debug's check_sync: a bidirectional mapping may be synced any way; otherwise the
        direction must be the mapped one, and read-only/write-only rules apply."""
        idx = sync.args.get("direction")
        if idx is None or idx >= len(vals):
            return
        mapped, synced = reg.direction, vals[idx]
        if not (isinstance(mapped, Lin) and mapped.is_const and isinstance(synced, Lin) and synced.is_const):
            return
        consts = self.c.constants
        bidi, to_dev, from_dev = (consts.get(DMA_BIDIRECTIONAL), consts.get("DMA_TO_DEVICE"),
                                  consts.get("DMA_FROM_DEVICE"))
        e, r = mapped.const, synced.const
        if e == bidi:
            return
        synced_text = " ".join(self.text(arg_nodes[idx]).split())
        reasons = []
        if r != e:
            reasons.append("syncs DMA memory with different direction")
        if sync.to == "cpu" and e != from_dev and r != to_dev:
            reasons.append("syncs device read-only DMA memory for cpu")
        if sync.to == "device" and e != to_dev and r != from_dev:
            reasons.append("syncs device write-only DMA memory to device")
        if reasons:
            self.emit("sync-direction-mismatch", node, st, reg, sync=sync.function,
                      reason="; ".join(reasons), acquire_direction=reg.direction_text,
                      sync_direction=synced_text)

    # -- argument comparisons ------------------------------------------------------------------
    def compare(self, role: str, acquired: Value | None, acquired_text: str, roles, function: str,
                node: Node, arg_nodes: list[Node], vals: list[Value], st: State,
                reg: Region) -> None:
        """Report when a release's argument provably differs from the acquire's."""
        idx = roles.get(role)
        if idx is None or idx >= len(vals) or not isinstance(acquired, Lin):
            return
        released = vals[idx]
        if not isinstance(released, Lin):
            return
        diff = acquired.add(released, -1)
        if not diff.is_const and self.sizeof is not None:
            diff = sized_difference(acquired, released, self.sizeof)
        if diff is not None and diff.is_const and diff.const != 0:
            released_text = " ".join(self.text(arg_nodes[idx]).split())
            self.emit(f"release-{role}-mismatch", node, st, reg, release=function,
                      **{f"acquire_{role}": acquired_text, f"release_{role}": released_text})

    def compare_count(self, reg: Region, roles, function: str, node: Node, arg_nodes, vals, st,
                      event: str) -> None:
        """The entry count must be the one passed to the map, not the one it returned."""
        idx = roles.get("count")
        if idx is None or idx >= len(vals) or reg.count is None:
            return
        v = vals[idx]
        given = " ".join(self.text(arg_nodes[idx]).split())
        if isinstance(v, Res) and v.rid == reg.rid and v.part == "count":
            reason = f"the count {reg.acquire}() returned, not the {reg.count_text} it was given"
        elif isinstance(v, Lin) and isinstance(reg.count, Lin) and \
                (lambda d: d.is_const and d.const != 0)(v.add(reg.count, -1)):
            reason = f"{given}, but {reg.count_text} entries were mapped"
        else:
            return
        self.emit(event, node, st, reg, call=function, count=given, reason=reason)

    # -- checks --------------------------------------------------------------------------------
    def check(self, name: str, handle_idx: int, node: Node, arg_nodes: list[Node],
              vals: list[Value], st: State) -> Value:
        line = node.start_point[0] + 1
        v = vals[handle_idx] if handle_idx < len(vals) else TOP
        checked = " ".join(self.text(arg_nodes[handle_idx]).split()) if handle_idx < len(arg_nodes) else "?"
        own = st.regions.get(v.rid) if isinstance(v, Res) and v.part == "handle" and not v.offset else None
        pending = [r for r in st.regions.values()
                   if r.status == LIVE and not r.checked and not r.wrong_test and r is not own
                   and self.contract_of(r).failure == "check"]
        target = max(pending, key=lambda r: r.line) if pending else None
        reason = None
        if own is not None and own.checked and target is not None and target.line > own.line:
            reason = f"a mapping already checked at line {own.check_line}"
        elif own is None and target is not None:
            if isinstance(v, Res) and v.part == "cpu":
                target = st.regions.get(v.rid, target)
                reason = "the CPU address that was mapped, not the DMA handle"
            elif isinstance(v, Lin) and v.terms and any(r.cpu == v for r in pending):
                target = next(r for r in pending if r.cpu == v)
                reason = "the CPU address that was mapped, not the DMA handle"
        if reason is not None and target is not None:
            self.emit("wrong-handle-checked", node, st, target, check=name, checked=checked,
                      reason=reason)
            st.regions[target.rid] = target.but(wrong_test=True)
        if own is None:
            return TOP
        if not own.checked:
            own = own.but(checked=True, check_line=line)
            st.regions[own.rid] = own
            st.step(line, "check", f"{name}() checks the mapping from line {own.line}")
        return Chk(own.rid)

    # -- uses and hand-overs -------------------------------------------------------------------
    def use(self, reg: Region, node: Node, how: str, st: State) -> None:
        """The region reaches the device or another function: its acquire must have been
        tested for failure first."""
        acq = self.contract_of(reg)
        if reg.status != LIVE or reg.checked or reg.wrong_test:
            return
        event = "unchecked-alloc-use" if acq.failure == "null" else "unchecked-use"
        self.emit(event, node, st, reg, check=self.check_phrase(acq), how=how)

    def unknown_call(self, name: str, node: Node, arg_nodes: list[Node], vals: list[Value],
                     st: State) -> None:
        """A call we have no contract for: a region value passed in is used (and, unless the
        callee only writes a register, handed over); storage passed by address may be
        rewritten, and any region stored there is handed over with it."""
        if name in self.core.managed_actions:
            self._managed_action(arg_nodes, st)
        # A call given a string literal formats its other arguments (a driver's own debug
        # macro, snprintf): printing a handle or a count is no use of the mapping.  Unless the
        # tables list it as a borrow, the call is still taken to hand the region over, as any
        # unknown callee is: the leak rules stay silent rather than guess what it keeps.
        prints = any(a.type in _STRING_NODES for a in arg_nodes)
        borrowed = name in self.core.io_writes or name in self.core.borrows
        for arg, v in zip(arg_nodes, vals):
            if isinstance(v, Res):
                reg = st.regions.get(v.rid)
                if reg is None:
                    continue
                # A NULL allocation passed to a logging macro or to IS_ERR_OR_NULL() is no
                # fault: for those only dereferences and copies (memset, memcpy) count.
                if not prints:
                    if self.contract_of(reg).failure != "null" or name in self.core.cpu_copies:
                        self.use(reg, arg, f"passed to {name}()", st)
                    self.cookie_misuse(v, arg, st, f"passed to {name}()")
                if not borrowed:
                    st.regions[v.rid] = st.regions[v.rid].but(escaped=True, handed=True)
            elif isinstance(v, Addr):
                path = v.path
                n = len(path)
                self.log_other_store(path, TOP)
                for key in [k for k in st.env if k[:n] == path]:
                    held = st.env.pop(key)
                    if isinstance(held, Res) and held.rid in st.regions:
                        st.regions[held.rid] = st.regions[held.rid].but(escaped=True, handed=True)
            elif isinstance(v, Lin) and v.terms:
                # A scatterlist or pool passed on, or the object holding it: its region goes too.
                root = self.text(arg) if arg.type == "identifier" else None
                for reg in list(st.regions.values()):
                    if reg.status != LIVE or self.contract_of(reg).identity != "cpu":
                        continue
                    if reg.cpu == v:
                        if not prints:
                            self.use(reg, arg, f"passed to {name}()", st)
                        if not borrowed:
                            st.regions[reg.rid] = st.regions[reg.rid].but(escaped=True, handed=True)
                    elif root is not None and isinstance(reg.cpu, Addr) and reg.cpu.path[0] == root:
                        st.regions[reg.rid] = st.regions[reg.rid].but(escaped=True, handed=True)

    # -- the field log, for the driver-level pass ----------------------------------------------
    def log_store(self, path, value: Res, reg: Region, st: State, node: Node,
                  owned: bool = True) -> None:
        """A region (or its mapped count) stored into a struct member."""
        key = field_key(path, self.scope.types, self.scope.members)
        if key is None:
            return
        log = self.field_log
        if value.part == "count" and self.contract_of(reg).identity == "cpu":
            log.count_stores[key] = (reg.acquire, node.start_point[0] + 1)
            return
        log.keys_of_region.setdefault(reg.rid, set()).add(key)
        log.region_paths.setdefault(reg.rid, set()).add(tuple(path))
        for other, held in st.env.items():  # a size member filled in before the region
            if isinstance(held, Lin) and len(other) == len(path) and other[:-1] == path[:-1] \
                    and other != path:
                self._link_size(reg, other, held)
        acq = self.contract_of(reg)
        types = self.scope.types
        log.merge(log.stores, (reg.rid, key), Side(
            key, reg.acquire, acq.family, acq.managed, canonical(reg.size, types, self.scope.members), reg.size_text,
            canonical(reg.direction, types, self.scope.members), reg.direction_text, canonical(reg.count, types, self.scope.members),
            reg.count_text, reg.line, self.function, tuple(st.steps()),
            indexed=any(p.startswith("[") for p in path), long_key=long_key(path, types),
            cookie=self.is_cookie(reg) and value.part == "cpu", owned=owned))

    def log_release(self, rel: Release, node: Node, arg_nodes: list[Node], vals: list[Value],
                    st: State) -> None:
        """A release of a handle read from a struct member: paired by the driver pass."""
        key = chain = None
        for role in ("handle", "cpu"):
            idx = rel.args.get(role)
            if idx is not None and idx < len(vals):
                read = member_read(vals[idx])
                found = field_key(read, self.scope.types, self.scope.members)
                if found is not None:
                    self.field_log.released_keys.add(found)  # both the handle's and the cpu's
                    if key is None:
                        key, chain = found, long_key(read, self.scope.types)
        if key is None:
            return
        types = self.scope.types

        def arg(role: str) -> tuple[Value, str]:
            idx = rel.args.get(role)
            if idx is None or idx >= len(vals):
                return TOP, ""
            return canonical(vals[idx], types, self.scope.members), " ".join(self.text(arg_nodes[idx]).split())

        size, size_text = arg("size")
        direction, direction_text = arg("direction")
        count, count_text = arg("count")
        cidx = rel.args.get("count")
        count_key = field_key(member_read(vals[cidx]), types, self.scope.members) if cidx is not None and cidx < len(vals) else None
        line = node.start_point[0] + 1
        self.field_log.merge(self.field_log.releases, (line, key, rel.function), Side(
            key, rel.function, rel.family, rel.managed, size, size_text, direction,
            direction_text, count, count_text, line, self.function, tuple(st.steps()), count_key,
            long_key=chain))

    def log_write(self, path, node: Node) -> None:
        """The CPU writes a struct member (for the cache-line rule's ranking)."""
        writes = self.field_log.writes
        for key in (field_key(path, self.scope.types, self.scope.members),
                    long_key(path, self.scope.types)):
            if key is not None and key not in writes:
                writes[key] = (node.start_point[0] + 1, self.function)

    def log_member_value(self, path, value: Value, st: State) -> None:
        """A number stored into a member beside one holding a region (`curr->size = c_size`
        next to `curr->head`): how the region's size relates to it."""
        if not isinstance(value, Lin):
            return
        beside = path[:-1]
        for rid, paths in self.field_log.region_paths.items():
            reg = st.regions.get(rid)
            if reg is not None and any(p[:-1] == beside and p != path for p in paths):
                self._link_size(reg, path, value)

    def _link_size(self, reg: Region, path, value: Lin) -> None:
        if not isinstance(reg.size, Lin):
            return
        diff = reg.size.add(value, -1)
        key = field_key(path, self.scope.types, self.scope.members)
        if key is None or not diff.is_const:
            return
        links = self.field_log.size_links.setdefault(reg.rid, {})
        if key in links and links[key] != diff.const:
            links[key] = None  # another path stores another value: no relation
        else:
            links[key] = diff.const

    def log_other_store(self, path, value: Value) -> None:
        """A member that also receives values we do not track (another API, a copy): pairing
        its releases with our acquires would be guesswork."""
        if isinstance(value, Lin) and value.is_const:
            return  # clearing a handle (= 0) is bookkeeping, not another source
        key = field_key(path, self.scope.types, self.scope.members)
        if key is not None:
            self.field_log.polluted.add(key)

    # -- NO_KERNEL_MAPPING cookies -------------------------------------------------------------
    def is_cookie(self, reg: Region | None) -> bool:
        bit = self.c.cookie_bit
        return bool(bit) and reg is not None and isinstance(reg.attrs, Lin) and \
            reg.attrs.is_const and bool(reg.attrs.const & bit)

    def cookie_misuse(self, v: Res, node: Node, st: State, how: str) -> None:
        """The CPU address of a cookie allocation is not memory: any touch is a bug."""
        reg = st.regions.get(v.rid)
        if v.part == "cpu" and self.is_cookie(reg) and reg.status == LIVE:
            self.emit("cookie-touched", node, st, reg, how=how, attribute=self.c.cookie_attribute)

    def touch(self, base: Node, st: State, at: Node) -> None:
        """`p->x`, `p[i]`, `*p`: if p is a cookie here, or was read from a member that holds
        cookies in this driver, the CPU dereferences it."""
        while base.type in ("parenthesized_expression", "cast_expression"):
            inner = base.child_by_field_name("value") if base.type == "cast_expression" else \
                (base.named_children[0] if base.named_child_count else None)
            if inner is None:
                return
            base = inner
        path = self.lvalue(base, st) if base.type in ("identifier", "field_expression") else None
        if path is None:
            return
        v = st.env.get(path)
        if v is None:
            v = self.read(path, st)
        if isinstance(v, Res):
            self.cookie_misuse(v, at, st, "dereferenced")
            reg = st.regions.get(v.rid)
            if reg is not None and v.part == "cpu" and self.contract_of(reg).failure == "null":
                shown = " ".join(self.text(at).split())
                self.use(reg, at, f"dereferenced as '{shown}'", st)  # NULL faults here
            return
        source = member_read(v)
        key = field_key(source, self.scope.types, self.scope.members) if source else None
        if key is not None and key in self.cookie_keys:
            where, line = self.cookie_keys[key]
            target = Region(at.start_byte, where.split("()")[0], line, path_text(source))
            self.emit("cookie-touched", at, st, target, how="dereferenced",
                      attribute=self.c.cookie_attribute,
                      acquire_line=f"{line} in {where.split(' in ')[-1]}")

    def attrs_match(self, reg: Region, function: str, roles, vals: list[Value], node: Node,
                    st: State) -> None:
        """A cookie must be freed and mmapped with the attribute it was allocated with."""
        if not self.is_cookie(reg):
            return
        idx = roles.get("attrs")
        v = vals[idx] if idx is not None and idx < len(vals) else None
        if isinstance(v, Lin) and v.is_const and v.const & self.c.cookie_bit:
            return
        if idx is not None and not (isinstance(v, Lin) and v.is_const):
            return  # attributes we cannot read: not judged
        self.emit("cookie-attrs-mismatch", node, st, reg, call=function,
                  attribute=self.c.cookie_attribute)

    # -- buffers DMA'd from the stack ----------------------------------------------------------
    def dma_buffers(self, name: str, node: Node, arg_nodes: list[Node], vals: list[Value],
                    st: State) -> None:
        """A call that DMAs an argument (directly, or through the driver's helpers) must not
        get the address of a local variable."""
        targets = {}
        buf = self.c.buffers.get(name)
        if buf is not None:
            for idx in buf.args:
                targets[idx] = f"{name}()"
        for idx, via in self.buffer_params.get(name, {}).items():
            targets.setdefault(idx, f"{name}() -> {via}")
        for idx, via in targets.items():
            if buf is not None and idx in buf.args and name not in self.c.acquires and idx < len(arg_nodes):
                self.log_embedded(arg_nodes[idx], self._transfer_direction(buf, idx, arg_nodes),
                                  name, node, st)
            if idx < len(vals) and self.scope.on_stack(vals[idx]):
                buffer = " ".join(self.text(arg_nodes[idx]).split())
                target = Region(node.start_byte, name, node.start_point[0] + 1, buffer)
                self.emit("stack-dma", arg_nodes[idx], st, target, call=via,
                          variable=path_text(vals[idx].path[:1]))

    def _transfer_direction(self, buf, idx: int, arg_nodes: list[Node]) -> int | None:
        """DMA_TO_DEVICE when the device only reads this argument (spi_write's data, a setup
        packet, a buffer sent down a `usb_sndbulkpipe()`), else None: unknown."""
        to_device = self.c.constants.get("DMA_TO_DEVICE")
        if idx in buf.device_reads:
            return to_device
        if buf.pipe is not None and buf.pipe < len(arg_nodes):
            pipe = unwrap_parens(arg_nodes[buf.pipe])
            if pipe.type == "call_expression" and \
                    self.text(pipe.child_by_field_name("function")) in self.c.to_device_pipes:
                return to_device
        return None

    def _managed_action(self, arg_nodes: list[Node], st: State) -> None:
        """devm_add_action(dev, release_helper, data): what the helper releases is now released
        by the driver core, like a dmam_* allocation."""
        families: set[str] = set()
        for arg in arg_nodes:
            summary = self.summaries.get(self.text(arg)) if arg.type == "identifier" else None
            if summary is not None and summary.kind in ("release", "may-release"):
                families |= set(summary.families)
        for reg in list(st.regions.values()):
            if reg.status == LIVE and self.contract_of(reg).family in families:
                st.regions[reg.rid] = reg.but(escaped=True, handed=True)

    # -- buffers embedded in structs, for the cache-line rule ------------------------------------
    def log_embedded(self, arg: Node, direction: int | None, call: str, node: Node, st: State,
                     size_text: str = "") -> None:
        """`&p->cmd`, `p->buf` (an array member), `&p->buf[0]`, through casts: the struct of
        `p` and the member chain, when `p`'s type is known."""
        target = embedded_target(arg, self.scope.types)
        if target is None:
            return
        self.field_log.embedded.append(Embedded(
            target[0], target[1], direction, call,
            " ".join(self.text(arg).split()), node.start_point[0] + 1, node.start_point[1] + 1,
            self.function, tuple(st.steps()), size_text))


def _in_loop(node: Node) -> bool:
    """Whether a call sits inside a loop of its function."""
    n = node.parent
    while n is not None and n.type != "function_definition":
        if n.type in ("for_statement", "while_statement", "do_statement"):
            return True
        n = n.parent
    return False


