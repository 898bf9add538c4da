"""Cold start and teardown of the embedded stack (issue 2 targets: <= 5 s up, <= 3 s down).

Runs `quotaquake stack up` / `stack down` as a user would (separate processes, Python start-up
included) N times against a throwaway state file and prints each time and the median.

    .venv/bin/python benchmarks/stack_startup.py [--runs 5] [--replicas 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def timed(args: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "quotaquake", *args], cwd=REPO, env=env, check=True, stdout=subprocess.DEVNULL
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--replicas", type=int, default=3)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "QUOTAQUAKE_STATE": str(Path(tmp) / "stack.json")}
        ups, downs = [], []
        for run in range(options.runs):
            ups.append(timed(["stack", "up", "--replicas", str(options.replicas)], env))
            downs.append(timed(["stack", "down"], env))
            print(f"run {run + 1}: up {ups[-1]:.2f} s, down {downs[-1]:.2f} s")
    print(
        f"median: up {statistics.median(ups):.2f} s (target <= 5 s, ratio {statistics.median(ups) / 5:.2f}), "
        f"down {statistics.median(downs):.2f} s (target <= 3 s, ratio {statistics.median(downs) / 3:.2f})"
    )


if __name__ == "__main__":
    main()
