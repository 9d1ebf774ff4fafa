"""Where a report goes: stdout, or a file replaced atomically.

A CI step that uploads dmalint.sarif must never see half a file (dmalint killed by a timeout,
a full disk): the report is written to a temporary file in the same directory, then renamed
over the target, which is atomic on POSIX and Windows.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from typing import Iterator, TextIO


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def open_output(path: str | None) -> Iterator[TextIO]:
    """Yield stdout (path None or '-') or a temporary file that becomes path on success."""
    if path is None or path == "-":
        yield sys.stdout
        sys.stdout.flush()
        return
    target = os.path.abspath(path)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(target),
                               prefix=f".{os.path.basename(target)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        # mkstemp creates the file 0600; give the report the mode a plain open() would.
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
