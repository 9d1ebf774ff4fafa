"""The progress line: only on a terminal, only after the delay, erased at the end."""

from __future__ import annotations

import io

from dmalint.progress import Progress
from dmalint.runner import run


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_not_a_terminal_prints_nothing():
    out = io.StringIO()
    p = Progress(out, delay=0)
    p(1, 2)
    p.close()
    assert out.getvalue() == ""


def test_drawn_after_the_delay_throttled_and_erased():
    out, clock = io.StringIO(), Clock()
    p = Progress(out, delay=2.0, interval=0.5, enabled=True, clock=clock)
    p(1, 10)  # too early
    clock.now += 2.5
    p(2, 10)
    clock.now += 0.1
    p(3, 10)  # within the interval: skipped
    clock.now += 0.1
    p(10, 10)  # the last one is always drawn
    p.close()
    assert out.getvalue() == ("\rdmalint: 2/10 files" "\rdmalint: 10/10 files"
                              "\r" + " " * 20 + "\r")


def test_runner_reports_every_file(tmp_path):
    for name in ("a.c", "b.c"):
        (tmp_path / "x").mkdir(exist_ok=True)
        (tmp_path / "x" / name).write_text("static int g(void)\n{\n\treturn 0;\n}\n")
    (tmp_path / "y.c").write_text("int h;\n")
    calls = []
    run([str(tmp_path)], jobs=1, timeout=None, progress=lambda d, t: calls.append((d, t)))
    assert calls == [(2, 3), (3, 3)]  # x/ as one driver unit (the larger: first), then y.c
