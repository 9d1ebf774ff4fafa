"""Errors raised while loading contracts, macro tables and configuration."""

from __future__ import annotations


class RuleFileError(Exception):
    """A malformed rule or configuration file, located by path and (when known) line."""

    def __init__(self, path: str, line: int | None, message: str) -> None:
        self.path, self.line, self.message = path, line, message
        where = f"{path}:{line}" if line else path
        super().__init__(f"{where}: {message}")
