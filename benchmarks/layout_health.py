"""Share of driver structs whose layout the layout engine cannot compute, and why.

    nice -n 10 python benchmarks/layout_health.py KERNEL/drivers/media KERNEL/drivers/iio ...
        [--every N] [--top 20] [--dump-types FILE] [--kernel-types TABLE.toml]

Every struct/union defined (with a tag or a typedef name) in a .c file is laid out with that
file's local headers; one process, single-threaded (the machine is shared).  --every N samples
every Nth file.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

from dmalint.contracts.loader import load_macro_tables
from dmalint.contracts.loader import read_toml
from dmalint.layout import KernelTypes, LayoutEngine, kernel_types_from_data, load_kernel_types
from dmalint.source import SourceError, read_source


def measure(files: list[Path], top: int, dump: Path | None = None,
            kernel_types: KernelTypes | None = None) -> None:
    tables = load_macro_tables()
    kernel_types = kernel_types or load_kernel_types()
    cache: dict = {}
    total = unknown = approximate = 0
    kinds: Counter[str] = Counter()
    types: Counter[str] = Counter()
    constants: Counter[str] = Counter()
    t0 = time.time()
    for path in files:
        try:
            src = read_source(path, str(path), tables)
        except SourceError:
            continue
        engine = LayoutEngine([src], kernel_types=kernel_types, cache=cache)
        for layout in engine.declared_structs(src):
            total += 1
            if layout.unknown is None:
                approximate += layout.approximate
                continue
            unknown += 1
            kinds[layout.unknown.kind] += 1
            if layout.unknown.kind == "type":
                types[layout.unknown.name] += 1
            elif layout.unknown.kind == "constant":
                constants[layout.unknown.name] += 1
    elapsed = time.time() - t0
    print(f"files {len(files)}  structs {total}  time {elapsed:.0f}s")
    print(f"unknown layout: {unknown} ({100 * unknown / max(total, 1):.1f}%)   "
          f"approximate: {approximate} ({100 * approximate / max(total, 1):.1f}%)")
    print("unknown by reason: " + ", ".join(f"{k} {v}" for k, v in kinds.most_common()))
    print(f"top {top} unknown types (structs affected):")
    for name, count in types.most_common(top):
        print(f"  {count:6d}  {name}")
    print(f"top {top} unknown constants:")
    for name, count in constants.most_common(top):
        print(f"  {count:6d}  {name}")
    if dump is not None:
        dump.write_text("".join(f"{name}\n" for name, _ in types.most_common()))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("roots", nargs="+")
    ap.add_argument("--every", type=int, default=1, help="sample every Nth file")
    ap.add_argument("--top", type=int, default=20)
    ap.add_argument("--dump-types", type=Path, help="write every unknown type name, most frequent first")
    ap.add_argument("--kernel-types", type=Path, help="a kernel type table to use instead of the built-in one")
    args = ap.parse_args()
    files = sorted(p for root in args.roots for p in Path(root).rglob("*.c"))
    table = None
    if args.kernel_types:
        table = kernel_types_from_data(read_toml(str(args.kernel_types), args.kernel_types.read_text()),
                                       str(args.kernel_types))
    measure(files[:: max(1, args.every)], args.top, args.dump_types, table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
