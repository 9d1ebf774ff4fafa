"""Share of functions with ERROR/MISSING nodes, with and without macro neutralisation.

    python benchmarks/parse_health.py KERNEL/drivers [--limit N]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from dmalint.contracts.loader import load_macro_tables
from dmalint.contracts.macros import MacroTables
from dmalint.parse import iter_functions, parse
from dmalint.source import neutralise

_TABLES: MacroTables | None = None


def _count(path: str) -> tuple[int, int, int, list[str]]:
    global _TABLES
    if _TABLES is None:
        _TABLES = load_macro_tables()
    raw = Path(path).read_bytes()
    before = [f.damaged for f in iter_functions(parse(raw).root_node)]
    code, _, _ = neutralise(raw, _TABLES)
    after = list(iter_functions(parse(code).root_node))
    damaged = [f.name for f in after if f.damaged]
    return len(after), sum(before), len(damaged), [f"{path}:{n}" for n in damaged[:3]]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("root")
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("-j", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()
    files = sorted(str(p) for p in Path(args.root).rglob("*.c"))
    if args.limit:
        files = files[:: max(1, len(files) // args.limit)]
    t0 = time.time()
    total = before = after = 0
    samples: list[str] = []
    with ProcessPoolExecutor(args.j) as pool:
        for n, b, a, s in pool.map(_count, files, chunksize=16):
            total += n; before += b; after += a
            samples.extend(s)
    print(f"files {len(files)}  functions {total}  time {time.time() - t0:.1f}s")
    print(f"damaged without neutralisation: {before} ({100 * before / max(total, 1):.2f}%)")
    print(f"damaged with neutralisation:    {after} ({100 * after / max(total, 1):.2f}%)")
    for s in samples[:40]:
        print("  ", s)


if __name__ == "__main__":
    sys.exit(main())
