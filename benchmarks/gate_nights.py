"""The nightly gate measured against itself: short "nights" of real ``quotaquake run``s into a baseline store,
then ``quotaquake gate`` over them.

1. ``--nights`` nights of the correct stack (each its own ``quotaquake run``: stack up, load, verify, stack
   down; ``--baseline`` appends its summary). The gate is then run on the first n of them for every n from
   ``--too-few`` (too few nights: unknown, saying how many are needed) and from 7 to ``--nights`` with the
   newest 2 as the current runs: every regression it flags there is a false one.
2. ``--slow`` nights with ``--defect slow`` (+5-8 ms per limiter decision) after the correct ones: the gate
   over the newest 2 must flag the limiter's and the latency's regression, with its ratio.
3. One night with ``--defect racy`` after the correct ones: the gate fails on quota accuracy (the night's
   own verdict) whatever the baseline says.

Every night runs ``--scenario`` at ``--rate`` for ``--duration`` with the CI thresholds (the seed's targets,
unrelaxed); the machine is shared, so the host samples of each night (``qq_host_other_cpu``) are printed.

    .venv/bin/python benchmarks/gate_nights.py --nights 10 --slow 2
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CI_THRESHOLDS = REPO / "tests" / "integration" / "thresholds-ci.yaml"


@dataclass(frozen=True)
class Night:
    name: str
    run_id: str
    defect: str | None
    code: int
    seconds: float


@dataclass(frozen=True)
class GateRun:
    label: str
    nights: int
    code: int
    status: str
    headline: str
    regressed: list[str]
    gated: int


def record_night(root: Path, store: Path, index: int, defect: str | None, args: argparse.Namespace) -> Night:
    """One ``quotaquake run`` appending its summary to ``store``."""
    out = root / f"night-{index:02d}{'-' + defect if defect else ''}"
    command = [
        sys.executable, "-m", "quotaquake", "run", "--scenario", args.scenario, "--rate", str(args.rate),
        "--duration", args.duration, "--thresholds", str(CI_THRESHOLDS), "--baseline", str(store),
        "--out", str(out), "--commit", f"night-{index:02d}",
    ]  # fmt: skip
    if defect:
        command += ["--defect", defect]
    started = time.monotonic()
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=900, check=False)
    (out / "night.log").parent.mkdir(parents=True, exist_ok=True)
    (out / "night.log").write_text(done.stdout + done.stderr, encoding="utf-8")
    if done.returncode not in (0, 1, 3):
        raise SystemExit(f"night {index} failed with exit code {done.returncode}: see {out / 'night.log'}")
    run_id = json.loads((out / "run.json").read_text(encoding="utf-8"))["run_id"]
    return Night(out.name, run_id, defect, done.returncode, time.monotonic() - started)


def store_of(store: Path, run_ids: list[str], target: Path) -> Path:
    """A store with only ``run_ids`` of ``store`` (copies of their files)."""
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    for run_id in run_ids:
        shutil.copyfile(store / f"{run_id}.parquet", target / f"{run_id}.parquet")
    return target


def gate(label: str, store: Path, nights: int, last: int, out: Path) -> GateRun:
    command = [sys.executable, "-m", "quotaquake", "gate", "--baseline", str(store), "--last", str(last),
               "--thresholds", str(CI_THRESHOLDS), "--out", str(out)]  # fmt: skip
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=900, check=False)
    if done.returncode not in (0, 1, 3):
        raise SystemExit(f"gate {label} failed with exit code {done.returncode}:\n{done.stdout}{done.stderr}")
    result = json.loads((out / "gate.json").read_text(encoding="utf-8"))
    regressed = [
        f"{c['metric']}{_tags(c['tags'])}: {c['aggregation']} {c['change_percent']}"
        for c in result["gated"]
        if c["change"] == "regressed"
    ]
    return GateRun(
        label, nights, done.returncode, result["status"], result["headline"], regressed, len(result["gated"])
    )


def _tags(tags: dict[str, str]) -> str:
    return "{" + ",".join(f"{k}:{v}" for k, v in sorted(tags.items())) + "}" if tags else ""


def other_cpu(store: Path, run_id: str) -> float | None:
    import pandas as pd

    frame = pd.read_parquet(store / f"{run_id}.parquet")
    row = frame[(frame["metric"] == "qq_host_other_cpu") & (frame["aggregation"] == "value")]
    return None if row.empty else float(row["value"].iloc[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nights", type=int, default=10, help="correct nights (>= 8)")
    parser.add_argument("--slow", type=int, default=2, help="nights with --defect slow")
    parser.add_argument("--too-few", type=int, default=4, help="nights for the 'too few' gate")
    parser.add_argument("--scenario", default="scenarios/burst.py")
    parser.add_argument("--rate", type=float, default=400.0)
    parser.add_argument("--duration", default="15s")
    parser.add_argument("--out", type=Path, default=REPO / "reports" / "bench-gate-nights")
    parser.add_argument("--reuse", action="store_true", help="reuse the nights already recorded under --out")
    args = parser.parse_args()
    root: Path = args.out.resolve()
    store = root / "store"
    if not args.reuse:
        shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True, exist_ok=True)
    nights_file = root / "nights.json"
    nights: list[Night] = [Night(**n) for n in json.loads(nights_file.read_text())] if args.reuse else []
    plan = [None] * args.nights + ["slow"] * args.slow + ["racy"]
    for index, defect in enumerate(plan):
        if index < len(nights):
            continue
        night = record_night(root, store, index, defect, args)
        nights.append(night)
        nights_file.write_text(json.dumps([n.__dict__ for n in nights], indent=1), encoding="utf-8")
        cpu = other_cpu(store, night.run_id)
        print(f"night {index:2d} {defect or 'correct':8s} exit {night.code}  {night.seconds:5.1f} s  "
              f"other processes {cpu if cpu is not None else '-'} cores", flush=True)  # fmt: skip
    correct = [n.run_id for n in nights if n.defect is None]
    slow = [n.run_id for n in nights if n.defect == "slow"]
    racy = [n.run_id for n in nights if n.defect == "racy"]
    runs: list[GateRun] = []
    work = root / "gates"
    subset = store_of(store, correct[: args.too_few], work / "stores" / "too-few")
    runs.append(gate("too few", subset, args.too_few, 1, work / "too-few"))
    for n in range(7, len(correct) + 1):
        subset = store_of(store, correct[:n], work / "stores" / f"correct-{n}")
        runs.append(gate(f"correct {n - 2}+2", subset, n, 2, work / f"correct-{n}"))
    subset = store_of(store, correct + slow, work / "stores" / "slow")
    runs.append(gate(f"slow {len(correct)}+{len(slow)}", subset, len(correct) + len(slow), len(slow), work / "slow"))
    subset = store_of(store, correct + racy, work / "stores" / "racy")
    runs.append(gate(f"racy {len(correct)}+1", subset, len(correct) + 1, 1, work / "racy"))
    print()
    print(f"{'gate':16s} {'exit':>4s} {'status':8s} {'gated regressions':>17s}  headline")
    for run in runs:
        print(f"{run.label:16s} {run.code:4d} {run.status:8s} {len(run.regressed):17d}  {run.headline[:240]}")
        for line in run.regressed:
            print(f"{'':48s}  {line}")
    false = sum(len(r.regressed) for r in runs if r.label.startswith("correct"))
    print(
        f"\nfalse regressions over {sum(r.label.startswith('correct') for r in runs)} gates of correct nights: {false}"
    )
    (root / "gates.json").write_text(json.dumps([r.__dict__ for r in runs], indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
