"""Throughput and peak memory of verification on a generated history (default 10M rows).

    .venv/bin/python benchmarks/verify_throughput.py [--rows 10000000] [--dir /tmp/qq-bench] [--keep]

Generates a simulated run (correct token-bucket limiter, a Redis fault window) unless ``--dir`` already
holds one of that size, then runs verification in a fresh child process and reports:

* rows/s through all checkers (``run_checks``), and end to end (``verify_run``: Parquet read + checks +
  verdicts.json);
* peak memory per row: the child's resident-set high-water mark (``VmHWM`` in /proc/self/status, reset
  with ``/proc/self/clear_refs`` after imports and a warm-up on a tiny run that compiles/loads the numba
  kernels) minus its resident set (``VmRSS``) at that point. This is the ru_maxrss quantity made
  resettable: it counts everything resident (numpy, Arrow buffers, pandas), unlike tracemalloc, which
  misses Arrow's memory pool. CPU seconds (``time.process_time``) are reported next to wall time because
  the 2-core machine is shared.

Goals (issue 5): >= 2M rows/s through all checkers, <= 150 bytes/row peak memory.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the repository, for tests.support
GOAL_ROWS_PER_S = 2_000_000
GOAL_BYTES_PER_ROW = 150


def consumers_for(rows: int):  # -> (consumers, duration_s)
    from tests.support.synthetic import SyntheticConsumer

    shape = [("free", 400, 3.0), ("pro", 200, 20.0), ("enterprise", 100, 10.0), ("partner", 100, 10.0)]
    consumers = [SyntheticConsumer(f"{tier}-{i + 1}", tier, rate) for tier, n, rate in shape for i in range(n)]
    consumers += [SyntheticConsumer(f"anon:10.0.{i // 250}.{i % 250 + 1}", "anonymous", 1.0) for i in range(200)]
    total_rate = sum(c.rate for c in consumers)
    return tuple(consumers), rows / total_rate


def generate(run_dir: Path, rows: int) -> None:
    from quotaquake.policy import load_policy
    from tests.support.synthetic import SyntheticRun, write_run

    policy = load_policy(REPO / "stack" / "policy.yaml")
    consumers, duration = consumers_for(rows)
    fault = (duration * 0.4, duration * 0.4 + 30.0)
    spec = SyntheticRun(policy=policy, consumers=consumers, duration_s=duration, redis_fault=fault, seed=42)
    write_run(run_dir, spec, parts=8)


def child(run_dir: Path, warm_dir: Path) -> dict[str, float]:
    from quotaquake.verify.data.rundata import load_run
    from quotaquake.verify.engine import run_checks, verify_run
    from quotaquake.verify.thresholds import Thresholds

    verify_run(warm_dir)  # compile / load the numba kernels, import everything
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current resident set
    baseline_kib = _status_kib("VmRSS")
    started, cpu_started = time.perf_counter(), time.process_time()
    run = load_run(run_dir)
    loaded, cpu_loaded = time.perf_counter(), time.process_time()
    verdicts = run_checks(run, Thresholds())
    checked, cpu_checked = time.perf_counter(), time.process_time()
    peak_kib = _status_kib("VmHWM")
    rows = len(run.history)
    return {
        "rows": rows,
        "load_s": loaded - started,
        "checks_s": checked - loaded,
        "load_cpu_s": cpu_loaded - cpu_started,
        "checks_cpu_s": cpu_checked - cpu_loaded,
        "peak_delta_bytes": (peak_kib - baseline_kib) * 1024.0,
        "ru_maxrss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024.0,
        "statuses": {v.check: v.status for v in verdicts},  # type: ignore[dict-item]
    }


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/qq-bench"))
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    run_dir, warm_dir = args.dir / f"run-{args.rows}", args.dir / "warm"
    if args.child:
        print(json.dumps(child(run_dir, warm_dir)))
        return 0
    for folder, rows in ((warm_dir, 20_000), (run_dir, args.rows)):
        if not (folder / "run.json").exists():
            started = time.perf_counter()
            generate(folder, rows)
            print(f"generated {folder} in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    out = subprocess.run(
        [sys.executable, __file__, "--child", "--rows", str(args.rows), "--dir", str(args.dir)],
        check=True,
        capture_output=True,
        text=True,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    rows = result["rows"]
    checks_rate = rows / result["checks_s"]
    total_rate = rows / (result["load_s"] + result["checks_s"])
    per_row = result["peak_delta_bytes"] / rows
    print(f"rows                      {rows:,}")
    print(f"load (Parquet -> frame)   {result['load_s']:.2f} s")
    print(
        f"all checkers              {result['checks_s']:.2f} s  -> {checks_rate / 1e6:.2f} M rows/s "
        f"(goal >= {GOAL_ROWS_PER_S / 1e6:.0f} M); CPU {result['checks_cpu_s']:.2f} s -> "
        f"{rows / result['checks_cpu_s'] / 1e6:.2f} M rows/CPU-s"
    )
    print(f"load + checkers           {total_rate / 1e6:.2f} M rows/s (load CPU {result['load_cpu_s']:.2f} s)")
    print(
        f"peak memory (ru_maxrss)   +{result['peak_delta_bytes'] / 2**20:.0f} MiB = {per_row:.0f} bytes/row "
        f"(goal <= {GOAL_BYTES_PER_ROW})"
    )
    print(f"verdicts                  {result['statuses']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
