"""dmalint on the real kernel tree: speed, memory, parse health, findings per rule.

    python benchmarks/run.py [--kernel PATH] [--subset drivers] [-j N] [--sample 200]

Without --kernel it uses /work/kernel/linux-source-6.1 when present, else fetches Debian's
linux-source-6.1 into benchmarks/.cache/ (apt-get download, dpkg -x, tar xf; kept between runs).
It prints a compact report and writes the figures to benchmarks/out/latest.json.

What it measures, in order:
  1. a cold run over the subset through the runner API (-j all cores, the CLI's per-file time
     limit, a fresh cache that is filled as the CLI would);
  2. a warm re-run with that cache;
  3. a single-file run of the CLI as a subprocess (wall time including start-up);
  4. time per stage, in this process, on an evenly spread sample of files: the stage functions are
     wrapped with timers (the runner does not record stages).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

from dmalint import __version__  # noqa: E402
from dmalint.cache import Cache  # noqa: E402
from dmalint.runner import DEFAULT_FILE_TIMEOUT, default_cache_options, discover, run  # noqa: E402

DEFAULT_KERNEL = Path("/work/kernel/linux-source-6.1")
CACHE = HERE / ".cache"
PACKAGE = "linux-source-6.1"
SINGLE_FILE = "drivers/net/ethernet/realtek/r8169_main.c"


# --- the tree --------------------------------------------------------------------------------

def kernel_tree(arg: str | None) -> Path:
    """The kernel source tree: --kernel, the shared copy, or Debian's package (fetched once)."""
    if arg:
        return Path(arg)
    if (DEFAULT_KERNEL / "drivers").is_dir():
        return DEFAULT_KERNEL
    tree = CACHE / PACKAGE
    if (tree / "drivers").is_dir():
        return tree
    CACHE.mkdir(parents=True, exist_ok=True)
    debs = sorted(CACHE.glob(f"{PACKAGE}_*.deb"))
    if not debs:
        print(f"fetching {PACKAGE} with apt-get download ...", file=sys.stderr)
        subprocess.run(["apt-get", "download", PACKAGE], cwd=CACHE, check=True)
        debs = sorted(CACHE.glob(f"{PACKAGE}_*.deb"))
    pkg = CACHE / "pkg"
    if not pkg.is_dir():
        subprocess.run(["dpkg", "-x", str(debs[-1]), str(pkg)], check=True)
    [tarball] = list((pkg / "usr" / "src").glob(f"{PACKAGE}.tar.*"))
    print(f"unpacking {tarball.name} ...", file=sys.stderr)
    subprocess.run(["tar", "xf", str(tarball), "-C", str(CACHE)], check=True)
    return tree


def count_lines(files) -> int:
    total = 0
    for path, _ in files:
        try:
            with open(path, "rb") as f:
                total += sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
        except OSError:
            pass
    return total


# --- measurements ----------------------------------------------------------------------------

def cpu_now() -> dict[str, float]:
    t = os.times()
    return {"self": t.user + t.system, "children": t.children_user + t.children_system}


def timed_run(paths: list[str], jobs: int, cache: Cache | None) -> tuple[object, dict]:
    cpu0, wall0 = cpu_now(), time.perf_counter()
    result = run(paths, jobs=jobs, timeout=DEFAULT_FILE_TIMEOUT, cache=cache)
    wall, cpu1 = time.perf_counter() - wall0, cpu_now()
    cpu = {k: round(cpu1[k] - cpu0[k], 2) for k in cpu0}
    return result, {"wall_s": round(wall, 2), "cpu_s": cpu, "cpu_total_s": round(sum(cpu.values()), 2)}


def peak_memory_mb() -> dict[str, float]:
    """ru_maxrss is in KiB on Linux: this process, and the largest of its finished children."""
    return {"self_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "largest_child_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)}


def skip_reasons(result, examples: int = 3) -> dict:
    by_reason: Counter = Counter()
    first: dict[str, list[str]] = {}
    for n in result.errors:
        reason = re.sub(r"\d+(\.\d+)?", "N", n.message)
        by_reason[reason] += 1
        first.setdefault(reason, [])
        if len(first[reason]) < examples:
            first[reason].append(n.path)
    return {r: {"files": c, "first": first[r]} for r, c in by_reason.most_common()}


def stage_times(files, sample: int) -> dict:
    """Seconds per stage on an evenly spread sample, in this process, by wrapping the stages."""
    import dmalint.analysis as analysis
    from dmalint.contracts.loader import load_contracts, load_macro_tables, load_registry
    from dmalint.source import SourceError, read_source

    if not files or sample <= 0:
        return {}
    picked = files[:: max(1, len(files) // sample)][:sample]
    totals: Counter = Counter()

    def timer(name, fn):
        def wrapped(*a, **kw):
            t0 = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                totals[name] += time.perf_counter() - t0
        return wrapped

    saved = {}
    for attr, stage in (("parse", "parse"), ("build_cfg", "cfg"), ("summarise", "summaries")):
        if hasattr(analysis, attr):
            saved[attr] = getattr(analysis, attr)
            setattr(analysis, attr, timer(stage, saved[attr]))
    explorer_run = None
    if hasattr(analysis, "Explorer"):
        explorer_run = analysis.Explorer.run
        analysis.Explorer.run = timer("engine", explorer_run)
    tables, contracts, registry = load_macro_tables(), load_contracts(), load_registry()
    try:
        for path, display in picked:
            t0 = time.perf_counter()
            try:
                src = read_source(path, display, tables)
            except SourceError:
                continue
            totals["read+neutralise"] += time.perf_counter() - t0
            t0 = time.perf_counter()
            try:
                analysis.analyse_source(src, contracts, registry)
            except RecursionError:
                pass
            totals["analyse_source"] += time.perf_counter() - t0
    finally:
        for attr, fn in saved.items():
            setattr(analysis, attr, fn)
        if explorer_run is not None:
            analysis.Explorer.run = explorer_run
    whole = totals["read+neutralise"] + totals["analyse_source"]
    staged = sum(v for k, v in totals.items() if k not in ("read+neutralise", "analyse_source"))
    out = {"files": len(picked), "total_s": round(whole, 2)}
    for name in ("read+neutralise", "parse", "summaries", "cfg", "engine"):
        if name in totals:
            out[name] = {"s": round(totals[name], 2), "share": round(totals[name] / whole, 3)}
    other = totals["analyse_source"] - staged
    out["other"] = {"s": round(other, 2), "share": round(other / whole, 3) if whole else 0}
    return out


def single_file_run(kernel: Path, runs: int = 3) -> dict:
    """The pre-commit case: the CLI on one large file, start-up included; the best of a few
    runs (wall and CPU), with dmalint's modules byte-compiled as an installed package has them
    (PYTHONDONTWRITEBYTECODE would otherwise make every start compile them anew)."""
    target = kernel / SINGLE_FILE
    if not target.exists():
        return {}
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "dmalint")],
                   capture_output=True)
    best_wall = best_cpu = None
    for _ in range(runs):
        cpu0, t0 = cpu_now()["children"], time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "dmalint.cli", "check", "--no-cache", SINGLE_FILE],
                              cwd=kernel, capture_output=True,
                              env={k: v for k, v in dict(os.environ, PYTHONPATH=str(REPO)).items()
                                   if k != "PYTHONDONTWRITEBYTECODE"})
        wall, cpu = time.perf_counter() - t0, cpu_now()["children"] - cpu0
        best_wall = wall if best_wall is None else min(best_wall, wall)
        best_cpu = cpu if best_cpu is None else min(best_cpu, cpu)
    return {"file": SINGLE_FILE, "wall_s": round(best_wall, 2), "cpu_s": round(best_cpu, 2),
            "exit": proc.returncode, "summary": proc.stderr.decode().strip().splitlines()[-1:]}


def _guarded(fn, *args) -> dict:
    """A side measurement that fails (say, rules/ edited mid-run) must not lose the main one."""
    try:
        return fn(*args)
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}


# --- report ----------------------------------------------------------------------------------

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kernel", help="kernel source tree (default: see above)")
    ap.add_argument("--subset", default="drivers", help="directory of the tree to check")
    ap.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--sample", type=int, default=200, help="files for the per-stage timing")
    ap.add_argument("--no-warm", action="store_true", help="skip the warm re-run with the cache")
    ap.add_argument("--out", default=str(HERE / "out" / "latest.json"))
    ap.add_argument("--findings", help="also write the cold run's findings here (JSON), to "
                                       "compare two versions")
    args = ap.parse_args()

    out = Path(args.out).resolve()
    findings_out = Path(args.findings).resolve() if args.findings else None
    kernel = kernel_tree(args.kernel).resolve()
    os.chdir(kernel)  # paths as a kernel developer sees them: drivers/...
    files, _ = discover([args.subset])
    lines = count_lines(files)
    cache_dir = Path(tempfile.mkdtemp(prefix="dmalint-bench-cache-"))
    try:
        cache = Cache.open(cache_dir, default_cache_options())
        result, cold = timed_run([args.subset], args.jobs, cache)
        memory = peak_memory_mb()
        warm = None
        if not args.no_warm:
            warm_result, warm = timed_run([args.subset], args.jobs, cache)
            warm["cached_files"] = warm_result.cached
            warm["same_findings"] = warm_result.findings == result.findings
            sizes = [p.stat().st_size for p in cache_dir.rglob("*.json")]
            warm["cache_entries"], warm["cache_mb"] = len(sizes), round(sum(sizes) / 2**20, 1)
    finally:
        shutil.rmtree(cache_dir, ignore_errors=True)
    if findings_out is not None:
        findings_out.write_text(json.dumps(
            [[f.path, f.line, f.column, f.code, f.function, f.message, f.fingerprint]
             for f in result.findings], indent=0) + "\n")
    single = _guarded(single_file_run, kernel)
    stages = _guarded(stage_times, files, args.sample)

    slowest = sorted(result.file_seconds.items(), key=lambda kv: -kv[1])[:10]
    over_budget: dict[str, list[str]] = {}  # file -> functions whose paths exceeded the budget
    for n in result.notices:
        if n.kind == "incomplete":
            m = re.match(r"function (\w+)\(\)", n.message)
            over_budget.setdefault(n.path, []).append(m.group(1) if m else "?")
    # The runner analyses a directory's files together (a driver) and shares the unit's time
    # equally among them, so the directory is the unit whose time is exact.
    by_dir: Counter = Counter()
    for name, seconds in result.file_seconds.items():
        by_dir[os.path.dirname(name)] += seconds
    skipped_functions = sum(1 for n in result.notices if n.kind == "skipped")
    incomplete = sum(1 for n in result.notices if n.kind == "incomplete")
    report = {
        "dmalint": __version__, "kernel": str(kernel), "subset": args.subset, "jobs": args.jobs,
        "cores": os.cpu_count(), "files": result.files, "lines": lines,
        "cold": {**cold, "files_per_s": round(result.files / cold["wall_s"], 1),
                 "lines_per_s": round(lines / cold["wall_s"])},
        "warm": warm, "memory": memory,
        "files_not_analysed": skip_reasons(result),
        "functions": {"total": result.functions, "damaged": result.damaged,
                      "damaged_share": round(result.damaged / max(result.functions, 1), 4),
                      "analysed": result.analysed, "skipped_for_damage": skipped_functions,
                      "over_budget": incomplete},
        "findings": {"total": len(result.findings),
                     "by_rule": dict(sorted(Counter(f.code for f in result.findings).items()))},
        "stages_sample": stages,
        "slowest_files": [{"file": f, "s": round(s, 2), "cpu_s": round(result.file_cpu.get(f, 0), 2),
                           "over_budget": over_budget.get(f, [])} for f, s in slowest],
        "slowest_directories": [
            {"dir": d, "s": round(s, 2),
             "over_budget": sorted(f"{os.path.basename(p)}:{fn}" for p, fns in over_budget.items()
                                   if os.path.dirname(p) == d for fn in fns)}
            for d, s in by_dir.most_common(10)],
        "single_file": single,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print_report(report, out)
    return 0


def print_report(r: dict, out: Path) -> None:
    c = r["cold"]
    print(f"dmalint {r['dmalint']} on {r['kernel']}/{r['subset']}  (-j{r['jobs']} on {r['cores']} cores)")
    print(f"  files {r['files']:,}  lines {r['lines']:,}")
    print(f"  cold:  wall {c['wall_s']:.1f} s  cpu {c['cpu_total_s']:.1f} s (self {c['cpu_s']['self']:.1f}, "
          f"children {c['cpu_s']['children']:.1f})  {c['files_per_s']} files/s  {c['lines_per_s']:,} lines/s")
    if r["warm"]:
        w = r["warm"]
        print(f"  warm:  wall {w['wall_s']:.1f} s  cpu {w['cpu_total_s']:.1f} s  "
              f"{w['cached_files']:,} files from cache  same findings: {w['same_findings']}  "
              f"(cache {w['cache_entries']:,} entries, {w['cache_mb']} MB)")
    m = r["memory"]
    print(f"  peak memory: runner {m['self_mb']} MB, largest worker {m['largest_child_mb']} MB")
    f = r["functions"]
    print(f"  functions {f['total']:,}: damaged {f['damaged']:,} ({100 * f['damaged_share']:.2f}%), "
          f"analysed {f['analysed']:,}, skipped for damage {f['skipped_for_damage']}, "
          f"over budget {f['over_budget']}")
    print(f"  findings {r['findings']['total']}: " +
          ", ".join(f"{k} {v}" for k, v in r["findings"]["by_rule"].items()))
    print("  files not analysed:" + (" none" if not r["files_not_analysed"] else ""))
    for reason, d in r["files_not_analysed"].items():
        print(f"    {d['files']:5}  {reason}   e.g. {', '.join(d['first'])}")
    s = r["stages_sample"]
    if "error" in s:
        print(f"  stages: not measured: {s['error']}")
    elif s:
        print(f"  stages on a sample of {s['files']} files ({s['total_s']} s): " +
              ", ".join(f"{k} {100 * v['share']:.0f}%" for k, v in s.items() if isinstance(v, dict)))
    print("  slowest directories (a driver's files are analysed together):")
    for x in r["slowest_directories"]:
        why = f"  over budget: {', '.join(x['over_budget'])}" if x.get("over_budget") else ""
        print(f"    {x['s']:7.2f} s  {x['dir']}{why}")
    print("  slowest files (a directory's time shared among its files):")
    for x in r["slowest_files"]:
        why = f"  over budget: {', '.join(x['over_budget'])}" if x.get("over_budget") else ""
        print(f"    {x['s']:7.2f} s  {x['file']}{why}")
    sf = r["single_file"]
    if "error" in sf:
        print(f"  single file: not measured: {sf['error']}")
    elif sf:
        print(f"  single file (CLI, with start-up, best of 3): {sf['file']} {sf['wall_s']} s wall, "
              f"{sf.get('cpu_s')} s CPU, exit {sf['exit']}")
    print(f"  written to {out}")


if __name__ == "__main__":
    sys.exit(main())
