"""A non-coherent CPU cache at the DMA granule (ARCH_DMA_MINALIGN), over laid-out objects.

What dma-debug cannot see: on a machine whose caches the device does not snoop, the streaming
DMA API keeps memory and cache consistent by cache maintenance on whole lines, and a buffer that
shares a line with other data loses either the device's data or the CPU's.  The model follows
arm64's dma-direct (arch/arm64/mm/cache.S, arch_sync_dma_for_device/for_cpu):

  map / sync_for_device   clean the buffer's lines (dirty lines are written back; they stay cached)
  device transfer         FROM_DEVICE/BIDIRECTIONAL: the device writes the mapped bytes in memory
  unmap / sync_for_cpu    not for TO_DEVICE: invalidate the buffer's lines; a line the buffer only
                          partly covers is cleaned and invalidated (dcache_inval_poc), so a dirty
                          copy is written back over the device's data first
  eviction                a dirty line may be written back at any time

Memory and cached copies hold, per byte, a tag saying who wrote it last ("device", the CPU write
at line N, or the value before the replay).  After the device's transfer is made visible to the
CPU, mapped bytes whose memory tag is not the device's are the device's data lost.  Where an
architecture invalidates a partly covered line without cleaning it, the CPU's write to the
neighbour is lost instead (`invalidate_instead`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

DMA_BIDIRECTIONAL, DMA_TO_DEVICE, DMA_FROM_DEVICE = 0, 1, 2
_DIRS = {0: "DMA_BIDIRECTIONAL", 1: "DMA_TO_DEVICE", 2: "DMA_FROM_DEVICE"}
BEFORE = "before"  # what memory held before the replay
DEVICE = "device"


@dataclass
class Mapping:
    root: object  # the outermost laid-out object (values.Obj)
    off: int
    size: int
    direction: int | None  # None: not known (a transfer helper): the device may write it
    line: int
    site: int
    key: object = None  # the DMA handle (streaming maps) or None
    live: bool = True
    writes: list = field(default_factory=list)  # CPU writes into its lines while live
    done: bool = False  # the device's transfer is complete
    concurrent: "Write | None" = None  # a CPU write elsewhere in the driver, run while it is live
    note: str = ""  # an assumption the verdict must state

    @property
    def end(self) -> int:
        return self.off + self.size

    def device_writes(self) -> bool:
        return self.direction != DMA_TO_DEVICE

    def dir_name(self) -> str:
        return _DIRS.get(self.direction, "with a direction not known")


@dataclass(frozen=True)
class Write:
    root: object
    off: int
    size: int
    who: str  # "line 48: cl_irq() writes 'irq_count'"
    line: int


@dataclass(frozen=True)
class Loss:
    """Bytes of one line that hold the wrong data after the transfer."""

    mapping: Mapping
    line_index: int
    lo: int
    hi: int  # [lo, hi) in the object
    cause: tuple[Write, ...]  # the CPU writes that put the line in the state that lost them
    how: str  # "write-back at the unmap (line 42)", "eviction"


class Cache:
    """Lines of granule bytes, per laid-out object, with a tag per byte."""

    def __init__(self, granule: int = 64) -> None:
        self.granule = granule
        self.memory: dict[tuple[int, int], list[str]] = {}  # (id(root), line) -> byte tags
        self.lines: dict[tuple[int, int], list] = {}  # cached copies: [tags, dirty, writes]
        self.mappings: list[Mapping] = []
        self.losses: list[Loss] = []
        self.events: list[str] = []
        self.roots: dict[int, object] = {}
        self.line = 0

    # -- bytes --------------------------------------------------------------------------------
    def _span(self, off: int, size: int) -> range:
        g = self.granule
        return range(off // g, (off + max(size, 1) - 1) // g + 1)

    def _mem(self, root, idx: int) -> list[str]:
        key = (id(root), idx)
        if key not in self.memory:
            self.roots[id(root)] = root
            self.memory[key] = [BEFORE] * self.granule
        return self.memory[key]

    def _fill(self, root, idx: int) -> list:
        key = (id(root), idx)
        if key not in self.lines:
            self.lines[key] = [list(self._mem(root, idx)), False, []]
        return self.lines[key]

    def _write_back(self, root, idx: int) -> bool:
        entry = self.lines.get((id(root), idx))
        if entry is None or not entry[1]:
            return False
        self._mem(root, idx)[:] = entry[0]
        entry[1] = False
        entry[2] = []  # those writes are in memory now
        return True

    # -- the CPU ------------------------------------------------------------------------------
    def cpu_write(self, root, off: int, size: int, who: str, line: int) -> None:
        w = Write(root, off, size, who, line)
        g = self.granule
        for idx in self._span(off, size):
            entry = self._fill(root, idx)
            lo, hi = max(off, idx * g), min(off + size, (idx + 1) * g)
            for b in range(lo, hi):
                entry[0][b - idx * g] = who
            entry[1] = True
            entry[2].append(w)
        for m in self.mappings:
            if m.live and m.root is root and self._shares(m, off, size):
                m.writes.append(w)
                inside = off < m.end and m.off < off + size
                self.events.append(f"line {line}: the CPU writes bytes {off}-{off + size - 1} "
                                   f"({who.split(': ', 1)[-1]}) while bytes {m.off}-{m.end - 1} "
                                   f"are mapped {m.dir_name()}"
                                   + ("" if inside else ": the same cache line"))

    def _shares(self, m: Mapping, off: int, size: int) -> bool:
        return bool(set(self._span(off, size)) & set(self._span(m.off, m.size)))

    # -- the DMA API ----------------------------------------------------------------------------
    def map(self, root, off: int, size: int, direction, line: int, site: int,
            key=None) -> Mapping:
        """dma_map_*: arch_sync_dma_for_device cleans the buffer's lines."""
        m = Mapping(root, off, size, direction, line, site, key)
        cleaned = [idx for idx in self._span(off, size) if self._write_back(root, idx)]
        self.mappings.append(m)
        self.events.append(f"map bytes {off}-{off + size - 1} {m.dir_name()}: clean "
                           f"{self._lines(off, size)}"
                           + (f" (dirty line {cleaned[0]} written back)" if cleaned else ""))
        return m

    def _lines(self, off: int, size: int) -> str:
        span = self._span(off, size)
        return f"line {span[0]}" if len(span) == 1 else f"lines {span[0]}-{span[-1]}"

    def find(self, key) -> Mapping | None:
        return next((m for m in reversed(self.mappings) if m.live and m.key is not None
                     and m.key == key), None)

    def device_transfer(self, m: Mapping) -> None:
        """The device has written the buffer (once per mapping: the model's one transfer).  A
        concurrent CPU write is interleaved first, when the path itself made none in its lines."""
        w = m.concurrent
        if w is not None and not m.done and not m.writes:
            self.cpu_write(w.root, w.off, w.size, w.who, w.line)
        if m.done or not m.device_writes():
            m.done = True
            return
        self.events.append(f"the device writes bytes {m.off}-{m.end - 1} in memory")
        g = self.granule
        for idx in self._span(m.off, m.size):
            mem = self._mem(m.root, idx)
            for b in range(max(m.off, idx * g), min(m.end, (idx + 1) * g)):
                mem[b - idx * g] = DEVICE
        m.done = True

    def for_cpu(self, m: Mapping, line: int, how: str) -> None:
        """dma_unmap_* / dma_sync_*_for_cpu: invalidate, cleaning partly covered lines first."""
        self.device_transfer(m)
        if not m.device_writes():
            return  # arm64 does no maintenance for DMA_TO_DEVICE here
        g = self.granule
        for idx in self._span(m.off, m.size):
            key = (id(m.root), idx)
            entry = self.lines.get(key)
            partial = m.off > idx * g or m.end < (idx + 1) * g
            if entry is not None and entry[1] and partial:
                # A fully mapped line is only invalidated: its dirty bytes are the buffer's own
                # (a CPU write to the buffer itself, another rule's matter).
                writes = tuple(entry[2])
                self._write_back(m.root, idx)
                self.events.append(f"{how}: line {idx} is partly mapped and dirty: clean+"
                                   "invalidate writes it back to memory")
                self._check(m, idx, writes, f"the clean+invalidate of the partly mapped line "
                            f"at {how} (line {line})")
            self.lines.pop(key, None)

    def for_device(self, m: Mapping) -> None:
        """dma_sync_*_for_device: clean again; the device may transfer again."""
        for idx in self._span(m.off, m.size):
            self._write_back(m.root, idx)
        m.done = False

    def unmap(self, m: Mapping, line: int, how: str = "the unmap") -> None:
        self.for_cpu(m, line, how)
        m.live = False

    def evict(self, m: Mapping, why: str) -> None:
        """Write back the dirty lines of a mapping that stays live (the device owns it)."""
        self.device_transfer(m)
        for idx in self._span(m.off, m.size):
            entry = self.lines.get((id(m.root), idx))
            if entry is not None and entry[1]:
                writes = tuple(entry[2])
                self._write_back(m.root, idx)
                self.events.append(f"line {idx} is dirty: evicted, written back to memory")
                self._check(m, idx, writes, why)

    # -- what went wrong ------------------------------------------------------------------------
    def _check(self, m: Mapping, idx: int, writes: tuple, how: str) -> None:
        if not m.device_writes():
            return
        g = self.granule
        mem = self._mem(m.root, idx)
        bad = [b for b in range(max(m.off, idx * g), min(m.end, (idx + 1) * g))
               if mem[b - idx * g] != DEVICE]
        if bad:
            self.losses.append(Loss(m, idx, bad[0], bad[-1] + 1, writes, how))
            self.events.append(f"LOST: memory bytes {bad[0]}-{bad[-1]} hold the CPU's stale "
                               "copy, not the device's data")

    def invalidate_instead(self, m: Mapping) -> list[Write]:
        """On a CPU whose invalidate drops partly covered lines without cleaning them (the
        other behaviour architectures have had): the CPU writes that would be lost instead."""
        return [w for w in m.writes if w.off + w.size <= m.off or w.off >= m.end]

    # -- checkpoints and display ------------------------------------------------------------------
    def checkpoint(self) -> tuple:
        return ({k: list(v) for k, v in self.memory.items()},
                {k: [list(t), d, list(w)] for k, (t, d, w) in self.lines.items()},
                [(m, m.live, list(m.writes), m.done) for m in self.mappings],
                len(self.losses), len(self.events))

    def restore(self, cp: tuple) -> None:
        memory, lines, maps, nloss, nev = cp
        self.memory, self.lines = memory, lines
        self.mappings = []
        for m, live, writes, done in maps:
            m.live, m.writes, m.done = live, writes, done
            self.mappings.append(m)
        del self.losses[nloss:], self.events[nev:]

    def drain(self) -> list[str]:
        """The cache maintenance and transfers since the last call."""
        out, self._shown = self.events[getattr(self, "_shown", 0):], len(self.events)
        return out

    def table(self) -> list[str]:
        """One line per cache line a mapping touches: the bytes mapped, cached and dirty ones."""
        out = []
        g = self.granule
        for m in self.mappings:
            if not m.live and not any(loss.mapping is m for loss in self.losses):
                continue
            name = _root_name(m.root)
            for idx in self._span(m.off, m.size):
                entry = self.lines.get((id(m.root), idx))
                lo, hi = max(m.off, idx * g), min(m.end, (idx + 1) * g)
                if hi - lo == g and (entry is None or not entry[1]):
                    continue  # a line the buffer fills, clean: nothing to see
                state = "not cached" if entry is None else ("dirty" if entry[1] else "clean")
                what = f"cache: {name} line {idx} (bytes {idx * g}-{(idx + 1) * g - 1}): {state}"
                what += f"; bytes {lo}-{hi - 1} {'mapped ' + m.dir_name() if m.live else 'unmapped'}"
                if entry is not None and entry[1]:
                    cpu = sorted({w.who for w in entry[2]})
                    what += "; CPU writes in it: " + ", ".join(cpu[:3])
                mem = self._mem(m.root, idx)
                if m.done and m.device_writes():
                    stale = sum(1 for b in range(lo, hi) if mem[b - idx * g] != DEVICE)
                    what += f"; memory holds the device's data in {hi - lo - stale} of " \
                            f"{hi - lo} mapped bytes"
                out.append(what)
        return out


def _root_name(root) -> str:
    layout = getattr(root, "layout", None)
    name = getattr(root, "name", "?")
    name = "*" + name[2:-1] if name.startswith("*(") and name.endswith(")") else name
    return f"{name} ({layout.name})" if layout is not None else name
