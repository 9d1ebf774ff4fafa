"""The kernel macro tables (rules/macros.toml plus user additions) as compiled regexes."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property, lru_cache

from dmalint.wordtrie import MAX_NEEDLES, trie_alternation


@dataclass(frozen=True)
class Declarator:
    """A declarator macro: NAME(arg) declares arg of `type` (an array when `array`)."""

    name: str
    type: str
    array: bool = False


@dataclass(frozen=True)
class MacroTables:
    """What source.neutralise needs to know about kernel macros."""

    attributes: frozenset[str] = frozenset()
    attribute_functions: frozenset[str] = frozenset()
    iterators: frozenset[str] = frozenset()
    declarators: dict[str, Declarator] = field(default_factory=dict, hash=False, compare=False)
    cursors: dict[str, tuple[int, ...]] = field(default_factory=dict, hash=False, compare=False)
    string_functions: frozenset[str] = frozenset()
    # Macros the driver being analysed defines to nothing (source.driver_macros): blanked like
    # attributes, but matched by a small regex of their own (they change with every unit).
    driver_blank: frozenset[str] = frozenset()
    driver_blank_functions: frozenset[str] = frozenset()

    def extended(self, other: "MacroTables") -> "MacroTables":
        """These tables with a user's additions (or a driver's own macros)."""
        return MacroTables(
            self.attributes | other.attributes,
            self.attribute_functions | other.attribute_functions,
            self.iterators | other.iterators,
            {**self.declarators, **other.declarators},
            {**self.cursors, **other.cursors},
            self.string_functions | other.string_functions,
            self.driver_blank | other.driver_blank,
            self.driver_blank_functions | other.driver_blank_functions,
        )

    def cursor_args(self, iterator: str) -> tuple[int, ...]:
        """Which arguments an iterator macro assigns each round (default: the first)."""
        return self.cursors.get(iterator, (0,))

    @cached_property
    def attribute_re(self) -> re.Pattern[bytes]:
        return _word_alternation(self.attributes, suffix=rb"\b")

    @cached_property
    def attribute_function_re(self) -> re.Pattern[bytes]:
        return _word_alternation(self.attribute_functions, suffix=rb"\s*\(")

    @cached_property
    def string_function_re(self) -> re.Pattern[bytes]:
        return _word_alternation(self.string_functions, suffix=rb"\s*\(")

    @cached_property
    def iterator_re(self) -> re.Pattern[bytes]:
        names = trie_alternation(self.iterators) if self.iterators else b""
        alt = rb"\w*for_each\w*" + (b"|" + names if names else b"")
        return re.compile(rb"\b(" + alt + rb")\s*\(")

    @cached_property
    def iterator_needles(self) -> tuple[bytes, ...] | None:
        """Substrings every match of iterator_re contains (None: too many to search for)."""
        others = sorted(n.encode() for n in self.iterators if "for_each" not in n)
        return (b"for_each", *others) if len(others) < MAX_NEEDLES else None

    @cached_property
    def declarator_re(self) -> re.Pattern[bytes] | None:
        if not self.declarators:
            return None
        return _word_alternation(frozenset(self.declarators), suffix=rb"\s*\(")


def _word_alternation(words: frozenset[str], suffix: bytes) -> re.Pattern[bytes]:
    if not words:
        return re.compile(rb"(?!x)x")  # matches nothing
    return re.compile(rb"\b(" + trie_alternation(words) + rb")" + suffix)


def tables_from_data(data: dict, origin: str) -> MacroTables:
    """Build tables from the parsed TOML of a macro file (or a config's [macros] table)."""
    from dmalint.contracts.errors import RuleFileError

    def names(key: str) -> frozenset[str]:
        value = data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise RuleFileError(origin, None, f"'{key}' must be a list of identifiers")
        return frozenset(value)

    declarators: dict[str, Declarator] = {}
    for entry in data.get("declarators", []):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or not isinstance(
            entry.get("type"), str
        ):
            raise RuleFileError(origin, None, "each [[declarators]] needs string 'name' and 'type'")
        declarators[entry["name"]] = Declarator(entry["name"], entry["type"], bool(entry.get("array")))
    cursors: dict[str, tuple[int, ...]] = {}
    for name, idx in data.get("iterator_cursors", {}).items():
        if not isinstance(idx, list) or not all(isinstance(i, int) and i >= 0 for i in idx):
            raise RuleFileError(origin, None, f"iterator_cursors.{name} must be a list of argument indices")
        cursors[name] = tuple(idx)
    return MacroTables(
        names("attributes"), names("attribute_functions"), names("iterators"), declarators, cursors,
        names("string_functions"),
    )


# Any of the words as a whole word, then suffix, for a driver's own names (a unit's files mostly
# use the same few): remembered for the run.
names_regex = lru_cache(maxsize=256)(_word_alternation)
