"""The frozen objects contracts load into. The engine reads roles from these, never names."""

from __future__ import annotations

import re
from functools import lru_cache
from dataclasses import dataclass, field
from typing import Mapping

# Argument roles an API function may declare.  "handle" is the DMA address, "cpu" the CPU-side
# buffer (or page / scatterlist), "count" the entry count of a scatter-gather list.
ARG_ROLES = frozenset({"device", "cpu", "handle", "size", "direction", "attrs", "count", "pool",
                       "flags", "offset"})
# What identifies a region at release: its DMA handle, or the CPU-side object (a scatterlist, a
# pool pointer) that the release and sync functions take.
IDENTITIES = frozenset({"handle", "cpu"})
# How an acquire reports failure: through a check function (DMA_MAPPING_ERROR), by returning
# NULL, by returning 0 (dma_map_sg) or a negative errno (dma_map_sgtable).
FAILURE_MODES = frozenset({"check", "null", "zero", "negative"})
# Where an acquire delivers its handle: its return value, or an out-parameter "arg:N".
RESULT_RE = re.compile(r"^(return|arg:\d+)$")


@dataclass(frozen=True)
class Acquire:
    """A function that creates a DMA region (mapping, allocation)."""

    function: str
    family: str
    debug_type: str
    args: Mapping[str, int]
    failure: str = "check"
    result: str = "return"
    returns: str = "handle"  # what the return value is: the handle, or the cpu address
    managed: bool = False  # released by the driver core (devm/dmam): never a leak
    identity: str = "handle"
    origin: str = ""
    # "pointer": the cpu argument is the kernel address of the mapped bytes, so CPU loads and
    # stores through it touch the mapping (dma_map_single); "" for a page or a list.
    cpu_view: str = ""

    @property
    def out_arg(self) -> int | None:
        return int(self.result.split(":")[1]) if self.result.startswith("arg:") else None


@dataclass(frozen=True)
class Release:
    """A function that ends a DMA region."""

    function: str
    family: str
    debug_type: str
    args: Mapping[str, int]
    managed: bool = False  # the device-managed free (dmam_free_coherent)
    irqs_enabled: bool = False  # must not be called with interrupts disabled
    origin: str = ""


@dataclass(frozen=True)
class Sync:
    """A cache synchronisation of a live streaming mapping, for the CPU or for the device."""

    function: str
    to: str  # "cpu" | "device"
    args: Mapping[str, int]
    origin: str = ""


@dataclass(frozen=True)
class Mmap:
    """Maps an allocation into user space: the one use a NO_KERNEL_MAPPING cookie allows."""

    function: str
    args: Mapping[str, int]
    origin: str = ""


@dataclass(frozen=True)
class Buffer:
    """A call that DMAs one of its arguments (in the core, or by mapping it)."""

    function: str
    arg: int  # the data buffer
    origin: str = ""
    more: tuple[int, ...] = ()  # further DMA'd arguments (a USB control request's setup packet)
    device_reads: tuple[int, ...] = ()  # arguments the device only reads (spi_write's data)
    pipe: int | None = None  # a USB pipe argument: a to-device pipe makes every buffer read-only
    size: int | None = None  # the length of the data buffer (`arg`), in bytes

    @property
    def args(self) -> tuple[int, ...]:
        return (self.arg,) + self.more


@dataclass(frozen=True)
class BufferMember:
    """A member of a transfer descriptor whose buffer the core DMAs when the descriptor is
    submitted (`struct spi_transfer`'s tx_buf and rx_buf)."""

    struct: str
    member: str
    device_reads: bool = False  # the device only reads it (a transmit buffer)
    origin: str = ""


@dataclass(frozen=True)
class Check:
    """A predicate on a handle that is true when the acquire failed."""

    function: str
    args: Mapping[str, int]
    origin: str = ""
    # The acquire families whose failure it is the documented test of (for messages: an
    # ib_dma_map_single() handle is tested with ib_dma_mapping_error()); empty: every family.
    families: tuple[str, ...] = ()


@lru_cache(maxsize=16)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


@dataclass(frozen=True)
class CoreTables:
    """C and kernel idioms that are not DMA API but that the engine must understand."""

    transparent: frozenset[str] = frozenset()
    noreturn: frozenset[str] = frozenset()
    value_transforms: frozenset[str] = frozenset()
    io_writes: frozenset[str] = frozenset()
    borrows: frozenset[str] = frozenset()
    managed_actions: frozenset[str] = frozenset()
    irq_disable: frozenset[str] = frozenset()
    irq_enable: frozenset[str] = frozenset()
    error_pointers: frozenset[str] = frozenset()
    success_errnos: frozenset[str] = frozenset()
    errno_pattern: str = r"^E[A-Z0-9_]+$"
    value_transform_pattern: str = r"^$"
    int_return_types: frozenset[str] = frozenset()
    waits: frozenset[str] = frozenset()
    # Library calls that load or store through pointer arguments: name -> (written argument
    # indices, read argument indices).
    cpu_copies: Mapping[str, tuple[tuple[int, ...], tuple[int, ...]]] = field(default_factory=dict)
    # Macros that store a value in a member, `NAME(ptr, member, value)` being
    # `(ptr)->member = (value)`: name -> the (object, member, value) argument indices.
    member_stores: Mapping[str, tuple[int, int, int]] = field(default_factory=dict)
    # ... and macros that read one: `dma_unmap_addr(ptr, member)` -> (object, member) indices.
    member_loads: Mapping[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def errno_re(self) -> re.Pattern[str]:
        return re.compile(self.errno_pattern)

    def is_transform(self, name: str) -> bool:
        """Whether a call returns its first argument in another byte order or width."""
        return name in self.value_transforms or _compiled(self.value_transform_pattern).match(name) is not None


@dataclass(frozen=True)
class Contracts:
    """Every API function's role, indexed by name, plus constants the contracts compare."""

    acquires: Mapping[str, Acquire] = field(default_factory=dict)
    releases: Mapping[str, Release] = field(default_factory=dict)
    checks: Mapping[str, Check] = field(default_factory=dict)
    syncs: Mapping[str, Sync] = field(default_factory=dict)
    constants: Mapping[str, int] = field(default_factory=dict)
    core: CoreTables = field(default_factory=CoreTables)
    mmaps: Mapping[str, Mmap] = field(default_factory=dict)
    buffers: Mapping[str, Buffer] = field(default_factory=dict)
    cookie_attribute: str | None = None  # the attribute that makes an allocation a cookie
    to_device_pipes: frozenset[str] = frozenset()  # usb_sndbulkpipe(): the device only reads
    buffer_members: Mapping[str, BufferMember] = field(default_factory=dict)  # by member name

    @property
    def cookie_bit(self) -> int:
        return self.constants.get(self.cookie_attribute, 0) if self.cookie_attribute else 0

    def api_names(self) -> frozenset[str]:
        """Every API function name: a function mentioning none of them is not analysed."""
        return (frozenset(self.acquires) | frozenset(self.releases) | frozenset(self.checks)
                | frozenset(self.syncs) | frozenset(self.mmaps) | frozenset(self.buffers))

    def check_for(self, family: str) -> str:
        """The name of the check that tests a family's acquires, for messages."""
        named = next((c.function for c in self.checks.values() if family in c.families), None)
        return named or next((c.function for c in self.checks.values() if not c.families),
                             "the mapping error check")

    def release_for(self, family: str) -> str:
        """The name of the usual release of a family, for messages."""
        return next((r.function for r in self.releases.values()
                     if r.family == family and not r.managed), "its release")


@dataclass(frozen=True)
class Doc:
    what: str
    why: str
    example: str
    fix: str


@dataclass(frozen=True)
class Diagnostic:
    """One entry of the registry: a stable code and everything a user reads about it."""

    code: str
    name: str
    event: str
    severity: str
    confidence: str
    group: str
    summary: str
    message: str
    doc: Doc
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Registry:
    """All diagnostics, by code, by name and by the engine event that raises them."""

    diagnostics: tuple[Diagnostic, ...]

    def by_code(self, code: str) -> Diagnostic | None:
        return next((d for d in self.diagnostics if d.code == code.upper()), None)

    def by_name(self, name: str) -> Diagnostic | None:
        return next((d for d in self.diagnostics if d.name == name), None)

    def by_event(self, event: str) -> Diagnostic | None:
        return next((d for d in self.diagnostics if d.event == event), None)

    def lookup(self, key: str) -> Diagnostic | None:
        """A diagnostic by code (DMA001) or name (unchecked-dma-mapping)."""
        return self.by_code(key) or self.by_name(key)
