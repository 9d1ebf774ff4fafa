"""Run a function over many items in worker processes, with a time limit per item.

No single item may hang or crash the run.  Each worker runs one item at a time under two limits:

  - a soft limit: SIGALRM after ``timeout`` seconds raises in the worker, which reports the item
    as timed out and takes the next one (cheap: the worker lives on);
  - a hard limit: an item still running ``grace`` seconds after that (stuck in C code, where a
    Python signal handler cannot run) gets its worker killed and replaced.

A worker that dies (a crash in C code, the OOM killer) costs only its current item, which is
reported as such.  Outcomes are yielded as they arrive; callers order them by index.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import signal
import sys
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

TIMED_OUT = "timed out"


@dataclass
class Outcome:
    """What became of one item: its value, or why there is none."""

    index: int
    value: object = None
    failure: str | None = None  # None: value is fn(item); else a user-facing reason
    seconds: float = 0.0  # wall time spent on the item in its worker
    cpu: float = 0.0  # CPU time of the worker on the item (0 when the worker was lost)


class _SoftTimeout(BaseException):
    """Raised by SIGALRM; a BaseException so that no `except Exception` in the analysis eats it."""


def _on_alarm(signum, frame) -> None:
    raise _SoftTimeout()


def call_with_limit(fn: Callable, item, index: int, timeout: float | None) -> Outcome:
    """fn(item) in this process, stopped by SIGALRM after timeout seconds (main thread only)."""
    start, cpu0 = time.perf_counter(), time.process_time()
    value, failure = None, None
    try:
        if timeout:
            signal.setitimer(signal.ITIMER_REAL, timeout)
        try:
            value = fn(item)
        finally:
            if timeout:
                signal.setitimer(signal.ITIMER_REAL, 0)
    except _SoftTimeout:
        value, failure = None, TIMED_OUT
    except Exception as exc:  # fn is meant to catch everything; this is the last line of defence
        value, failure = None, f"internal error: {type(exc).__name__}: {exc}; please report"
    return Outcome(index, value, failure, time.perf_counter() - start, time.process_time() - cpu0)


def _worker_main(conn, fn: Callable, timeout: float | None) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles ^C and stops us
    if timeout:
        signal.signal(signal.SIGALRM, _on_alarm)
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        index, item, limit = msg
        out = call_with_limit(fn, item, index, limit)
        try:
            conn.send(out)
        except (EOFError, OSError):
            return
        except Exception as exc:  # the value does not pickle
            conn.send(Outcome(index, None, f"internal error: result not transferable: "
                                           f"{type(exc).__name__}: {exc}; please report",
                              out.seconds, out.cpu))


class _Worker:
    def __init__(self, ctx, fn: Callable, timeout: float | None) -> None:
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker_main, args=(child, fn, timeout), daemon=True)
        self.proc.start()
        child.close()
        self.index: int | None = None
        self.started = 0.0
        self.hard: float | None = None

    def give(self, index: int, item, limit: float | None = None, hard: float | None = None) -> None:
        self.conn.send((index, item, limit))
        self.index, self.started, self.hard = index, time.monotonic(), hard

    def stop(self, kill: bool = False) -> None:
        if self.proc.is_alive():
            if kill:
                self.proc.kill()
            else:
                try:
                    self.conn.send(None)
                except OSError:
                    self.proc.kill()
        self.proc.join(timeout=None if kill else 5)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()
        self.conn.close()

    def death_reason(self) -> str:
        self.proc.join(timeout=5)
        code = self.proc.exitcode
        if code is not None and code < 0:
            try:
                how = f"killed by signal {signal.Signals(-code).name}"
            except ValueError:
                how = f"killed by signal {-code}"
        else:
            how = f"exit status {code}"
        return f"internal error: worker process died ({how}); please report"


def _context():
    # fork starts workers in milliseconds and lets them inherit loaded rules; elsewhere, spawn.
    if sys.platform.startswith("linux"):
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context()


def map_with_limits(fn: Callable, items: Iterable, jobs: int, timeout: float | None,
                    grace: float | None = None,
                    weight: Callable[[object], float] | None = None) -> Iterator[Outcome]:
    """Yield one Outcome per item (in completion order), using up to jobs worker processes.
    `weight(item)` scales the time limit of an item (a unit of several files gets their sum)."""
    todo = deque(enumerate(items))
    if not todo:
        return

    def limits(item) -> tuple[float | None, float | None]:
        if not timeout:
            return None, None
        soft = timeout * (weight(item) if weight is not None else 1)
        return soft, soft + (grace if grace is not None else max(2.0, soft / 2))

    ctx = _context()
    workers = [_Worker(ctx, fn, timeout) for _ in range(max(1, min(jobs, len(todo))))]
    try:
        while True:
            for w in workers:
                if w.index is None and todo:
                    index, item = todo.popleft()
                    w.give(index, item, *limits(item))
            busy = [w for w in workers if w.index is not None]
            if not busy:
                return
            wait = None
            deadlines = [w.started + w.hard for w in busy if w.hard is not None]
            if deadlines:
                wait = max(0.0, min(deadlines) - time.monotonic())
            ready = set(multiprocessing.connection.wait(
                [w.conn for w in busy] + [w.proc.sentinel for w in busy], wait))
            now = time.monotonic()
            for i, w in enumerate(workers):
                if w.index is None:
                    continue
                lost = None
                if w.conn in ready:
                    try:
                        out = w.conn.recv()
                    except (EOFError, OSError):
                        lost = w.death_reason()
                    else:
                        w.index = None
                        yield out
                        continue
                elif w.proc.sentinel in ready:
                    lost = w.death_reason()
                elif w.hard is not None and now - w.started >= w.hard:
                    lost = TIMED_OUT
                if lost is None:
                    continue
                index, seconds = w.index, now - w.started
                w.stop(kill=True)
                workers[i] = _Worker(ctx, fn, timeout)
                yield Outcome(index, None, lost, seconds)
    finally:
        for w in workers:
            w.stop(kill=sys.exc_info()[0] is not None)
