"""Recall and false positives on ../shared/realbugs (real DMA bugs that kernel developers fixed).

    python benchmarks/realbugs.py [--kernel KSRC] [--cases ../shared/realbugs]

For every case, the buggy file is rebuilt with the corpus's make_corpus.sh and analysed with its
directory's other files beside it.  A case is *found* when a finding lands in the case's function
on the buggy file and that finding is gone on the fixed (original 6.1) file.  Negative cases are
correct functions: any finding in them is a false positive.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

from dmalint.runner import run

HERE = Path(__file__).resolve().parent
DEFAULT_KERNEL = Path("/work/kernel/linux-source-6.1")


def findings_in(path: Path, function: str) -> list:
    """Findings in the function, with the file analysed together with its directory (the
    driver's other files beside it, as dmalint sees a driver directory)."""
    result = run([str(path.parent)], jobs=1, timeout=None)
    return [f for f in result.findings if f.path == str(path)
            and (f.function == function or function.startswith("("))]


def add_siblings(case_dir: Path, file: str, kernel: Path) -> None:
    """Copy the case file's directory siblings (other .c/.h) from the kernel tree."""
    source_dir = kernel / file
    for sibling in source_dir.parent.iterdir():
        if sibling.suffix in (".c", ".h") and sibling.name != source_dir.name:
            target = case_dir / Path(file).parent / sibling.name
            if not target.exists():
                shutil.copyfile(sibling, target)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kernel", type=Path, default=DEFAULT_KERNEL)
    ap.add_argument("--cases", type=Path, default=HERE.parent.parent / "shared" / "realbugs")
    ap.add_argument("--out", type=Path, default=HERE / ".cache" / "realbugs")
    ap.add_argument("--json", action="store_true", help="print one JSON object per case")
    args = ap.parse_args()
    if not (args.cases / "cases.jsonl").exists():
        print(f"no cases at {args.cases}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    built = subprocess.run(["bash", str(args.cases / "make_corpus.sh"), str(args.kernel), str(args.out)],
                           capture_output=True, text=True)
    if built.returncode != 0:
        print(built.stdout, built.stderr, file=sys.stderr)
        return 2
    by_class: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    negatives_fp = 0
    negatives = 0
    for line in (args.cases / "cases.jsonl").read_text().splitlines():
        if not line.strip():
            continue
        case = json.loads(line)
        add_siblings(args.out / case["id"], case["file"], args.kernel)
        buggy = args.out / case["id"] / case["file"]
        fixed = args.kernel / case["file"]
        on_buggy = findings_in(buggy, case["function"])
        if case["kind"] == "negative":
            negatives += 1
            negatives_fp += bool(on_buggy)
            status = "FP" if on_buggy else "clean"
        else:
            on_fixed = {(f.code, f.message.split(" at line")[0]) for f in findings_in(fixed, case["function"])}
            new = [f for f in on_buggy if (f.code, f.message.split(" at line")[0]) not in on_fixed]
            found = bool(new) if case["kind"] == "reverse-fix" else bool(on_buggy)
            by_class[str(case["class"])][0] += found
            by_class[str(case["class"])][1] += 1
            status = "FOUND" if found else "missed"
            on_buggy = new or on_buggy
        codes = ",".join(sorted({f"{f.code}@{f.line}" for f in on_buggy}))
        if args.json:
            print(json.dumps({"id": case["id"], "status": status, "findings": codes}))
        else:
            print(f"{status:7} {case['id']:40} class {case['class']:>4}  {codes}")
    total_found = sum(v[0] for v in by_class.values())
    total = sum(v[1] for v in by_class.values())
    print(f"\nrecall: {total_found}/{total} bug cases; per class: "
          + ", ".join(f"{k}: {v[0]}/{v[1]}" for k, v in sorted(by_class.items())))
    print(f"negatives with a finding in the function: {negatives_fp}/{negatives}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
