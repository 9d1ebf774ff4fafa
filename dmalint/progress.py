"""A progress line on stderr for long runs: `dmalint: 120/480 files`, redrawn in place.

Shown only on a terminal, and only once a run has lasted `delay` seconds, so short runs, pipes,
CI logs and machine-readable output never see it.  The line is erased when the run ends.
"""

from __future__ import annotations

import time
from typing import TextIO


class Progress:
    """Call with (done, total) as files finish; close() when the run is over."""

    def __init__(self, stream: TextIO, delay: float = 2.0, interval: float = 0.1,
                 enabled: bool | None = None, clock=time.monotonic) -> None:
        self.stream = stream
        self.enabled = _isatty(stream) if enabled is None else enabled
        self.delay, self.interval, self.clock = delay, interval, clock
        self.start = clock()
        self.last = None  # when the line was last drawn
        self.width = 0

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        now = self.clock()
        if now - self.start < self.delay or (self.last is not None and now - self.last < self.interval
                                             and done < total):
            return
        text = f"dmalint: {done}/{total} files"
        self.stream.write("\r" + text.ljust(self.width))
        self.stream.flush()
        self.width, self.last = len(text), now

    def close(self) -> None:
        """Erase the line, if one was drawn."""
        if self.last is not None:
            self.stream.write("\r" + " " * self.width + "\r")
            self.stream.flush()
            self.last = None


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
