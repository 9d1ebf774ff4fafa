"""The reference simulator on real code: verdict shares per rule, and the time it adds.

    python benchmarks/simulator.py [--kernel KSRC] [--all | --dir DIR ...] [-j 2] [--json-out FILE]

Runs `dmalint check --format json --no-cache --isolated` over drivers/net/ethernet (or all of
drivers/ with --all, or the directories under KSRC given with --dir) twice: with the simulator off (DMALINT_NO_SIMULATE=1) and on.  Prints, per
rule, the share of findings confirmed / refuted / unknown / static-only, and the CPU seconds
(dmalint and its workers) and wall seconds each run took, and the CPU seconds the simulator
itself spent (each worker reports them through DMALINT_SIM_TIMES).  On a shared machine the
difference between two runs is noise-prone; the simulator's own CPU time is the figure to quote.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

DEFAULT_KERNEL = Path("/work/kernel/linux-source-6.1")
VERDICTS = ("confirmed", "refuted", "unknown", "static-only")
DMALINT = Path(sys.executable).with_name("dmalint")


def timed_run(target: list[Path], jobs: int, simulate: bool, times: Path | None = None
              ) -> tuple[dict, float, float]:
    """(JSON report, CPU seconds of dmalint and its workers, wall seconds).  With `times`,
    the simulator writes the CPU seconds it spent in each worker there."""
    env = dict(os.environ)
    env.pop("DMALINT_NO_SIMULATE", None)
    if not simulate:
        env["DMALINT_NO_SIMULATE"] = "1"
    if times is not None:
        env["DMALINT_SIM_TIMES"] = str(times)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    done = subprocess.run([str(DMALINT), "check", "--format", "json", "--no-cache", "--isolated",
                           "-j", str(jobs), *map(str, target)], env=env, capture_output=True, text=True)
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode not in (0, 1, 2) or not done.stdout.strip():
        sys.exit(f"dmalint failed ({done.returncode}): {done.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return json.loads(done.stdout), cpu, wall


def shares(findings: list[dict]) -> dict[str, Counter]:
    per: dict[str, Counter] = defaultdict(Counter)
    for f in findings:
        v = f.get("verdict", "none")
        per[f["code"]][v] += 1
        per["all"][v] += 1
    return per


def print_table(per: dict[str, Counter]) -> None:
    print(f"{'rule':8} {'n':>5} " + " ".join(f"{v:>12}" for v in VERDICTS))
    for code in sorted(per, key=lambda c: (c == "all", c)):
        n = sum(per[code].values())
        cells = " ".join(f"{per[code][v]:>5} {100 * per[code][v] / n:5.1f}%" for v in VERDICTS)
        print(f"{code:8} {n:>5} {cells}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kernel", type=Path, default=DEFAULT_KERNEL)
    ap.add_argument("--all", action="store_true", help="all of drivers/ (minutes per run)")
    ap.add_argument("--dir", action="append", default=[],
                    help="a directory under KSRC (repeatable), e.g. drivers/iio")
    ap.add_argument("-j", "--jobs", type=int, default=2)
    ap.add_argument("--json-out", type=Path, help="keep the simulated run's JSON report here")
    args = ap.parse_args()
    targets = [args.kernel / d for d in args.dir] or \
        [args.kernel / ("drivers" if args.all else "drivers/net/ethernet")]
    for target in targets:
        if not target.is_dir():
            print(f"no such directory: {target}", file=sys.stderr)
            return 2
    target = targets
    times = Path(tempfile.mkstemp(prefix="dmalint-sim-", suffix=".txt")[1])
    plain, cpu0, wall0 = timed_run(target, args.jobs, simulate=False)
    report, cpu1, wall1 = timed_run(target, args.jobs, simulate=True, times=times)
    sim_cpu = sum(float(line.split()[0]) for line in times.read_text().splitlines() if line)
    times.unlink()
    if args.json_out:
        args.json_out.write_text(json.dumps(report))
    findings = report["findings"]
    print(f"{' '.join(map(str, target))}: {len(findings)} findings ({len(plain['findings'])} without the simulator)")
    print_table(shares(findings))
    per = shares(findings)["all"]
    judged = sum(per.values()) - per["static-only"]
    if judged:
        print(f"unknown among the findings with a runtime counterpart: "
              f"{100 * per['unknown'] / judged:.1f}%")
    print(f"without the simulator: {cpu0:7.1f} s CPU, {wall0:7.1f} s wall")
    print(f"with the simulator:    {cpu1:7.1f} s CPU, {wall1:7.1f} s wall")
    print(f"difference:            {cpu1 - cpu0:7.1f} s CPU ({100 * (cpu1 - cpu0) / cpu0:+.1f}%), "
          f"{wall1 - wall0:7.1f} s wall ({100 * (wall1 - wall0) / wall0:+.1f}%) (noisy on a shared machine)")
    base = cpu1 - sim_cpu
    print(f"the simulator's own CPU time, measured inside it: {sim_cpu:.1f} s, "
          f"{100 * sim_cpu / base:.1f}% on top of the {base:.1f} s the rest of that run took")
    reasons = Counter((f["code"], f.get("verdict"), f.get("verdict_reason", "")[:60])
                      for f in findings if f.get("verdict") in ("unknown", "refuted"))
    print("most common unknown/refuted reasons:")
    for (code, verdict, reason), n in reasons.most_common(15):
        print(f"  {n:4} {code} {verdict}: {reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
