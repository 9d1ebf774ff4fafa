"""The table of kernel types dmalint sizes without reading kernel headers (rules/kernel_types.toml)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Mapping

from dmalint.consteval import canonical_type_name
from dmalint.contracts.errors import RuleFileError


@dataclass(frozen=True)
class KernelType:
    """A type from a kernel header: its size and alignment on x86-64 (see the table's header)."""

    size: int
    align: int
    approximate: bool = False  # the size depends on the kernel configuration


class KernelTypes:
    """Kernel types and constants dmalint knows without reading kernel headers."""

    def __init__(self, types: Mapping[str, KernelType], constants: Mapping[str, int] | None = None):
        self.types = {_type_key(k): v for k, v in types.items()}
        self.constants = dict(constants or {})

    def get(self, name: str) -> KernelType | None:
        return self.types.get(_type_key(name))

    def extended(self, types: Mapping[str, object] | None = None,
                 constants: Mapping[str, int] | None = None) -> "KernelTypes":
        """These tables plus (or overridden by) a user's entries: name -> KernelType, a
        {size, align[, approximate]} table as in the TOML, or a (size, align) pair."""
        merged = dict(self.types)
        for name, value in (types or {}).items():
            merged[_type_key(name)] = _kernel_type(name, value, "extended()")
        return KernelTypes(merged, {**self.constants, **(constants or {})})


def _type_key(name: str) -> str:
    return canonical_type_name(" ".join(name.split()))


def _kernel_type(name: str, value: object, origin: str) -> KernelType:
    if isinstance(value, KernelType):
        return value
    if isinstance(value, (tuple, list)) and len(value) == 2:
        value = {"size": value[0], "align": value[1]}
    if not isinstance(value, Mapping):
        raise RuleFileError(origin, None, f"type '{name}' needs a table {{ size = N, align = N }}")
    size, align = value.get("size"), value.get("align")
    if not isinstance(size, int) or size < 0 or not isinstance(align, int) or align < 1 or (
            align & (align - 1)):
        raise RuleFileError(origin, None, f"type '{name}': size must be >= 0 and align a power of two")
    unknown_keys = set(value) - {"size", "align", "approximate"}
    if unknown_keys:
        raise RuleFileError(origin, None, f"type '{name}': unknown keys {sorted(unknown_keys)}")
    return KernelType(size, align, bool(value.get("approximate", False)))


def kernel_types_from_data(data: dict, origin: str) -> KernelTypes:
    """Validate the parsed TOML of a kernel type table."""
    unknown_keys = set(data) - {"types", "constants"}
    if unknown_keys:
        raise RuleFileError(origin, None, f"unknown top-level keys {sorted(unknown_keys)}")
    types = {name: _kernel_type(name, value, origin) for name, value in data.get("types", {}).items()}
    constants = data.get("constants", {})
    for name, value in constants.items():
        if not isinstance(value, int):
            raise RuleFileError(origin, None, f"constant '{name}' must be an integer")
    return KernelTypes(types, constants)


@lru_cache(maxsize=1)
def load_kernel_types() -> KernelTypes:
    """The built-in table, rules/kernel_types.toml."""
    from dmalint.contracts.loader import read_toml

    res = resources.files("dmalint.rules") / "kernel_types.toml"
    return kernel_types_from_data(read_toml("rules/kernel_types.toml", res.read_text()),
                                  "rules/kernel_types.toml")
