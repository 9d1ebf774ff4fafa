"""Where the time goes: cProfile over a directory, in one process, without the cache.

    python benchmarks/hotspots.py KERNEL/drivers/net/ethernet/intel [--top 30] [--sort cumulative]

Prints the top functions with their share of the total; --save FILE keeps the raw profile for
snakeviz or pstats.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dmalint.runner import run  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("paths", nargs="+")
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--sort", default="cumulative", choices=["cumulative", "tottime"])
    ap.add_argument("--save", help="write the raw profile here")
    args = ap.parse_args()
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    result = run(args.paths, jobs=1, timeout=None, cache=None)  # in process: profiled
    prof.disable()
    wall = time.perf_counter() - t0
    if args.save:
        prof.dump_stats(args.save)
    stats = pstats.Stats(prof, stream=io.StringIO())
    total = max(v[3] for v in stats.stats.values())  # the cumulative time of run(): the whole
    rows = []
    for (file, line, name), (cc, nc, tt, ct, _) in stats.stats.items():
        rows.append((ct if args.sort == "cumulative" else tt, tt, ct, nc, f"{_short(file)}:{line}({name})"))
    rows.sort(reverse=True)
    print(f"{result.files} files, {result.functions} functions, {len(result.findings)} findings; "
          f"wall {wall:.1f} s under the profiler")
    print(f"{'cum%':>6} {'own%':>6} {'cum s':>8} {'own s':>8} {'calls':>10}  function")
    for _, tt, ct, nc, where in rows[: args.top]:
        print(f"{100 * ct / total:6.1f} {100 * tt / total:6.1f} {ct:8.2f} {tt:8.2f} {nc:10}  {where}")
    return 0


def _short(file: str) -> str:
    for marker in ("/dmalint/", "/site-packages/", "/lib/python"):
        if marker in file:
            return file[file.index(marker) + 1:]
    return file


if __name__ == "__main__":
    sys.exit(main())
