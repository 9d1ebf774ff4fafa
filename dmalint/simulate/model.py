"""An independent model of the kernel's CONFIG_DMA_API_DEBUG (kernel/dma/debug.c, 6.1), of
mm/dmapool.c's debug checks, and of DMA_ATTR_NO_KERNEL_MAPPING cookies.

The table holds live entries keyed by (device, DMA address).  Each operation checks what the
kernel checks and records a Report with the kernel's message text.  Values may be concrete
(ints, hashable objects) or opaque: two opaque values are equal only when they are the same
object; a comparison the model cannot decide is recorded in `undecided`, never reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

DMA_MAPPING_ERROR = (1 << 64) - 1

TYPE_NAMES = {"single": "single", "sg": "scather-gather",  # sic: the kernel's spelling
              "coherent": "coherent", "resource": "resource"}
DIR_NAMES = {0: "DMA_BIDIRECTIONAL", 1: "DMA_TO_DEVICE", 2: "DMA_FROM_DEVICE", 3: "DMA_NONE"}
DMA_BIDIRECTIONAL, DMA_TO_DEVICE, DMA_FROM_DEVICE = 0, 1, 2

# map_err_type (enum map_err_types)
MAP_ERR_CHECK_NOT_APPLICABLE = "MAP_ERR_CHECK_NOT_APPLICABLE"
MAP_ERR_NOT_CHECKED = "MAP_ERR_NOT_CHECKED"
MAP_ERR_CHECKED = "MAP_ERR_CHECKED"


def same(a, b) -> bool | None:
    """True/False when decidable, None when not (opaque values that are different objects).
    A value may decide for itself through a `decide_eq(other)` method (symbolic sizes)."""
    if a is b:
        return True
    if isinstance(a, int) and isinstance(b, int) and not isinstance(a, bool):
        return a == b
    for x, y in ((a, b), (b, a)):
        if hasattr(x, "decide_eq"):
            return x.decide_eq(y)
    try:
        if hash(a) == hash(b) and a == b:
            return True
    except TypeError:
        pass
    return None


def _hex(v) -> str:
    return f"0x{v:016x}" if isinstance(v, int) else str(v)


def _num(v) -> str:
    return str(v) if isinstance(v, int) else f"<{v}>"


def _dir(v) -> str:
    return DIR_NAMES.get(v, str(v)) if isinstance(v, int) else f"<{v}>"


@dataclass
class Entry:
    dev: object
    addr: object
    size: object
    type: str
    direction: object
    cpu: object = None
    sg_call_ents: object = 0
    sg_mapped_ents: object = 0
    map_err: str = MAP_ERR_CHECK_NOT_APPLICABLE
    line: int = 0
    site: int = 0  # the line in the replayed function whose call made it (helpers)
    cacheline: object = None  # its first L1 line, when the replay knows where the buffer lies

    def describe(self) -> str:
        out = (f"[{TYPE_NAMES.get(self.type, self.type)}] dev={self.dev} addr={_hex(self.addr)} "
               f"size={_num(self.size)} dir={_dir(self.direction)}")
        if self.type == "sg":
            out += f" sg_call_ents={_num(self.sg_call_ents)} mapped={_num(self.sg_mapped_ents)}"
        if self.map_err != MAP_ERR_CHECK_NOT_APPLICABLE:
            out += f" {self.map_err}"
        return out + f" (line {self.line})"


@dataclass(frozen=True)
class Report:
    """One message the kernel would print: `DMA-API: <driver> <device>: <text>`."""

    line: int
    dev: object
    text: str
    source: str = "DMA-API"  # or "dmapool", "fault"
    site: int = 0  # the line in the replayed function whose call led here (a helper's caller)
    in_helper: bool = False

    def dmesg(self, driver: str = "driver") -> str:
        """`DMA-API: <driver> <device>: ...`; the device is named by the expression that held it."""
        if self.source == "DMA-API":
            dev = str(self.dev).lstrip("?") if self.dev is not None else "NULL"
            return f"DMA-API: {driver} {dev}: {self.text}"
        return f"{self.source}: {self.text}"


@dataclass
class Op:
    """One operation the model performed: whether it found its entry and what it could not
    compare.  A verdict of "no violation" needs the operation found and its comparisons decided."""

    line: int
    site: int
    kind: str  # map, unmap, sync, check, pool-free, pool-destroy, touch
    found: bool = True
    undecided: tuple[str, ...] = ()
    compared: dict = field(default_factory=dict)  # what -> (given, recorded, same?)


@dataclass
class Pool:
    name: object
    dev: object
    size: object
    blocks: dict = field(default_factory=dict)  # cpu -> dma
    freed: set = field(default_factory=set)


class DmaDebug:
    """The table and the checks.  `line` is set by the caller before each operation."""

    def __init__(self) -> None:
        self.entries: dict[tuple, Entry] = {}
        self.reports: list[Report] = []
        self.undecided: list[str] = []
        self.pools: dict[object, Pool] = {}
        self.cookies: set = set()
        self.ops: list[Op] = []
        self.released: list[tuple[Entry, int]] = []  # entries check_unmap removed, and where
        self._pending_undecided: list[str] = []
        self._pending_compared: dict = {}
        self.line = 0
        self.site = 0
        self.in_helper = False

    # -- helpers -----------------------------------------------------------------------------
    def _err(self, dev, text: str, source: str = "DMA-API") -> None:
        self.reports.append(Report(self.line, dev, text, source, self.site or self.line,
                                   self.in_helper))

    def _op(self, kind: str, found: bool = True) -> Op:
        op = Op(self.line, self.site or self.line, kind, found)
        self.ops.append(op)
        self._pending_undecided = []
        self._pending_compared = {}
        return op

    def _close(self, op: Op) -> None:
        op.undecided = tuple(self._pending_undecided)
        op.compared = dict(self._pending_compared)

    def _find(self, dev, addr) -> Entry | None:
        # The device is matched unless provably different: a driver replayed without its
        # probe has one device, reached through different pointers.
        for (d, a), e in self.entries.items():
            if same(a, addr) and same(d, dev) is not False:
                return e
        return None

    def _key(self, entry: Entry):
        return next(k for k, e in self.entries.items() if e is entry)

    def _differs(self, a, b, what: str) -> bool:
        s = same(a, b)
        self._pending_compared[what] = (a, b, s)
        if s is None:
            self.undecided.append(f"{what} at line {self.line}: {a} vs {b}")
            self._pending_undecided.append(what)
            return False
        return not s

    # -- map / alloc ---------------------------------------------------------------------------
    def map(self, dev, addr, size, direction, type_: str = "single", cpu=None,
            on_stack: bool = False, rodata: bool = False, cacheline=None,
            skip_sync: bool = False) -> None:
        """debug_dma_map_page / debug_dma_map_single / debug_dma_map_resource: check_for_stack,
        check_for_illegal_area, then add_dma_entry with its cacheline tracking."""
        self._op("map")
        if on_stack:
            self._err(dev, f"device driver maps memory from stack [addr={cpu}]")
        if rodata:
            self._err(dev, "device driver maps memory from kernel text or rodata "
                      f"[addr={cpu}] [len={_num(size)}]")
        if same(addr, DMA_MAPPING_ERROR):
            return  # the kernel adds no entry for a failed mapping
        entry = Entry(dev, addr, size, type_, direction, cpu, map_err=MAP_ERR_NOT_CHECKED,
                      line=self.line, site=self.site or self.line)
        # active_cacheline_insert(): the mapping's first L1 line, unless the device only reads
        if cacheline is not None and same(direction, DMA_TO_DEVICE) is False:
            entry.cacheline = cacheline
            if any(e.cacheline == cacheline for e in self.entries.values()) and not skip_sync:
                self._err(dev, "cacheline tracking EEXIST, overlapping mappings aren't "
                          "supported")
        self.entries[(dev, addr)] = entry

    def map_sg(self, dev, sg, nents, mapped, direction) -> None:
        """debug_dma_map_sg: one entry per mapped segment; keyed here by the list itself."""
        if same(mapped, 0):
            return
        self.entries[(dev, sg)] = Entry(dev, sg, None, "sg", direction, sg, nents, mapped,
                                        line=self.line, site=self.site or self.line)

    def alloc_coherent(self, dev, addr, size, cpu) -> None:
        if cpu is None or same(cpu, 0):
            return
        self.entries[(dev, addr)] = Entry(dev, addr, size, "coherent", DMA_BIDIRECTIONAL, cpu,
                                          line=self.line, site=self.site or self.line)

    def mapping_error(self, dev, addr) -> bool | None:
        """debug_dma_mapping_error: marks the first matching unchecked entry checked."""
        e = self._find(dev, addr)
        if e is not None and e.map_err == MAP_ERR_NOT_CHECKED:
            e.map_err = MAP_ERR_CHECKED
        return same(addr, DMA_MAPPING_ERROR)

    # -- unmap / free: check_unmap ------------------------------------------------------------
    def unmap(self, dev, addr, size, direction, type_: str = "single", cpu=None,
              nents=None) -> None:
        entry = self._find(dev, addr)
        op = self._op("unmap", entry is not None)
        if entry is None:
            if same(addr, DMA_MAPPING_ERROR):
                self._err(dev, "device driver tries to free an invalid DMA memory address")
            else:
                self._err(dev, "device driver tries to free DMA memory it has not allocated "
                          f"[device address={_hex(addr)}] [size={_num(size)} bytes]")
            return
        if type_ != "sg" and self._differs(size, entry.size, "size"):
            self._err(dev, "device driver frees DMA memory with different size "
                      f"[device address={_hex(addr)}] [map size={_num(entry.size)} bytes] "
                      f"[unmap size={_num(size)} bytes]")
        if type_ != entry.type:
            self._err(dev, "device driver frees DMA memory with wrong function "
                      f"[device address={_hex(addr)}] [size={_num(size)} bytes] "
                      f"[mapped as {TYPE_NAMES.get(entry.type, entry.type)}] "
                      f"[unmapped as {TYPE_NAMES.get(type_, type_)}]")
        elif entry.type == "coherent" and cpu is not None and self._differs(cpu, entry.cpu, "cpu"):
            self._err(dev, "device driver frees DMA memory with different CPU address "
                      f"[device address={_hex(addr)}] [size={_num(size)} bytes] "
                      f"[cpu alloc address={entry.cpu}] [cpu free address={cpu}]")
        if type_ == "sg" and nents is not None and not same(nents, 0) \
                and self._differs(nents, entry.sg_call_ents, "sg entry count"):
            self._err(dev, "device driver frees DMA sg list with different entry count "
                      f"[map count={_num(entry.sg_call_ents)}] [unmap count={_num(nents)}]")
        if self._differs(direction, entry.direction, "direction"):
            self._err(dev, "device driver frees DMA memory with different direction "
                      f"[device address={_hex(addr)}] [size={_num(size)} bytes] "
                      f"[mapped with {_dir(entry.direction)}] [unmapped with {_dir(direction)}]")
        if entry.map_err == MAP_ERR_NOT_CHECKED:
            self._err(dev, "device driver failed to check map error"
                      f"[device address={_hex(addr)}] [size={_num(size)} bytes] "
                      f"[mapped as {TYPE_NAMES.get(entry.type, entry.type)}]")
        del self.entries[self._key(entry)]
        self.released.append((entry, self.line))
        self._close(op)

    # -- sync: check_sync -------------------------------------------------------------------
    def sync(self, dev, addr, size, direction, to_cpu: bool, type_: str = "single",
             nents=None) -> None:
        entry = self._find(dev, addr)
        op = self._op("sync", entry is not None)
        if entry is None:
            self._err(dev, "device driver tries to sync DMA memory it has not allocated "
                      f"[device address={_hex(addr)}] [size={_num(size)} bytes]")
            return
        if size is not None and entry.size is not None and not (
                isinstance(size, int) and isinstance(entry.size, int)):
            self._pending_undecided.append("sync size")
        if size is not None and entry.size is not None and isinstance(size, int) \
                and isinstance(entry.size, int) and size > entry.size:
            self._err(dev, "device driver syncs DMA memory outside allocated range "
                      f"[device address={_hex(entry.addr)}] [allocation size={entry.size} bytes] "
                      f"[sync offset+size={size}]")
        if not same(entry.direction, DMA_BIDIRECTIONAL):
            if self._differs(direction, entry.direction, "sync direction"):
                self._err(dev, "device driver syncs DMA memory with different direction "
                          f"[device address={_hex(addr)}] [size={_num(entry.size)} bytes] "
                          f"[mapped with {_dir(entry.direction)}] [synced with {_dir(direction)}]")
            e_from = same(entry.direction, DMA_FROM_DEVICE)
            r_to = same(direction, DMA_TO_DEVICE)
            e_to = same(entry.direction, DMA_TO_DEVICE)
            r_from = same(direction, DMA_FROM_DEVICE)
            if to_cpu and e_from is False and r_to is False:
                self._err(dev, "device driver syncs device read-only DMA memory for cpu "
                          f"[device address={_hex(addr)}] [size={_num(entry.size)} bytes] "
                          f"[mapped with {_dir(entry.direction)}] [synced with {_dir(direction)}]")
            if not to_cpu and e_to is False and r_from is False:
                self._err(dev, "device driver syncs device write-only DMA memory to device "
                          f"[device address={_hex(addr)}] [size={_num(entry.size)} bytes] "
                          f"[mapped with {_dir(entry.direction)}] [synced with {_dir(direction)}]")
        if type_ == "sg" and nents is not None and not same(nents, 0) \
                and self._differs(nents, entry.sg_call_ents, "sg entry count"):
            self._err(dev, "device driver syncs DMA sg list with different entry count "
                      f"[map count={_num(entry.sg_call_ents)}] [sync count={_num(nents)}]")
        self._close(op)

    # -- unbind -------------------------------------------------------------------------------
    def release_device(self, dev=None) -> None:
        """dma_debug_device_change(BUS_NOTIFY_UNBOUND_DRIVER): PCI and pSeries VIO only."""
        live = [e for e in self.entries.values() if dev is None or same(e.dev, dev)]
        if live:
            e = live[0]
            self._err(e.dev, "device driver has pending DMA allocations while released from "
                      f"device [count={len(live)}]\nOne of leaked entries details: "
                      f"[device address={_hex(e.addr)}] [size={_num(e.size)} bytes] "
                      f"[mapped with {_dir(e.direction)}] "
                      f"[mapped as {TYPE_NAMES.get(e.type, e.type)}]")

    # -- dmapool (mm/dmapool.c with pool debugging) ----------------------------------------
    def pool_create(self, pool, dev, size, name="pool") -> None:
        self.pools[pool] = Pool(name, dev, size)

    def pool_alloc(self, pool, cpu, dma) -> None:
        p = self.pools.get(pool)
        if p is not None and cpu is not None:
            p.blocks[cpu] = dma
            p.freed.discard(cpu)

    def pool_free(self, pool, cpu, dma) -> None:
        p = self.pools.get(pool)
        self._op("pool-free", p is not None)
        if p is None:
            return
        if cpu in p.blocks:
            del p.blocks[cpu]
            p.freed.add(cpu)
            return
        if cpu in p.freed:
            self._err(p.dev, f"dma_pool_free {p.name}, dma {_hex(dma)} already free", "dmapool")
            return
        for other in self.pools.values():
            if other is not p and cpu in other.blocks:
                self._err(p.dev, f"dma_pool_free {p.name}, {cpu}/{_hex(dma)} (bad dma)",
                          "dmapool")
                return

    def pool_destroy(self, pool) -> None:
        p = self.pools.pop(pool, None)
        self._op("pool-destroy", p is not None)
        if p is not None and p.blocks:
            self._err(p.dev, f"dma_pool_destroy {p.name}, {next(iter(p.blocks))} busy", "dmapool")

    # -- NO_KERNEL_MAPPING cookies ------------------------------------------------------------
    def cookie(self, cpu) -> None:
        self.cookies.add(cpu)

    def foreign(self, kind: str) -> None:
        """An operation on a region mapped before the replay began: not judged."""
        self._op(kind, found=False)

    def check_stack(self, dev, cpu) -> None:
        """A transfer helper that maps its buffer in the core (usb, spi): the same check."""
        self._op("map")
        self._err(dev, f"device driver maps memory from stack [addr={cpu}]")

    def touch(self, cpu) -> None:
        if cpu in self.cookies:
            self._op("touch")
            self._err(None, f"unable to handle kernel paging request: CPU access to "
                      f"DMA_ATTR_NO_KERNEL_MAPPING cookie {cpu}", "fault")

    # -- checkpoints: a helper replay that gives up leaves no trace -------------------------
    def checkpoint(self) -> tuple:
        return ({k: replace(e) for k, e in self.entries.items()}, len(self.reports),
                len(self.undecided), len(self.ops), set(self.cookies), len(self.released),
                {k: Pool(p.name, p.dev, p.size, dict(p.blocks), set(p.freed))
                 for k, p in self.pools.items()})

    def restore(self, cp: tuple) -> None:
        entries, nrep, nund, nops, cookies, nrel, pools = cp
        self.entries = entries
        del self.reports[nrep:], self.undecided[nund:], self.ops[nops:], self.released[nrel:]
        self.cookies = cookies
        self.pools = pools

    # -- display --------------------------------------------------------------------------------
    def table(self) -> list[str]:
        out = [e.describe() for e in self.entries.values()]
        for p in self.pools.values():
            out.append(f"[pool] {p.name} busy={len(p.blocks)}")
        return out
