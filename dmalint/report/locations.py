"""Where a finding is, as CI systems want it: a POSIX path relative to the scanned root.

Code-scanning services (GitHub, GitLab) match a result to a file of the repository by a path
relative to the checkout; an absolute path from the build machine matches nothing.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote


def resolve_root(root: str | None) -> str:
    """The absolute directory paths are made relative to (default: the working directory)."""
    return os.path.abspath(root if root is not None else os.getcwd())


def relative_path(path: str, root: str) -> str | None:
    """path relative to root with '/' separators, or None when path lies outside root."""
    absolute = os.path.abspath(path)
    try:
        rel = os.path.relpath(absolute, root)
    except ValueError:  # another drive on Windows: never under root
        return None
    if rel == os.pardir or rel.startswith(os.pardir + os.sep):
        return None
    return Path(rel).as_posix()


def file_uri(path: str) -> str:
    """An absolute file:// URI (percent-encoded) for a path outside the root."""
    return Path(os.path.abspath(path)).as_uri()


def relative_uri(rel: str) -> str:
    """A relative URI reference for a POSIX relative path: spaces, '#', '%', ... encoded."""
    return quote(rel, safe="/")


def root_uri(root: str) -> str:
    """The root as a file:// URI ending in '/', as SARIF requires of a uriBaseId's value."""
    uri = Path(root).as_uri()
    return uri if uri.endswith("/") else uri + "/"
