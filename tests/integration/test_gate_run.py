"""The gate on the embedded stack: `quotaquake run` with a k6-style abortOnFail threshold stops a slow
limiter's load early and fails that threshold, writes the summary and appends it to a baseline store, and
`quotaquake gate` over that store fails on the night's own verdicts with too few nights to compare."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from quotaquake.gate.baseline import load, run_ids
from quotaquake.gate.summary import read_summary

pytestmark = [pytest.mark.integration, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]
THRESHOLDS = """\
version: 1
thresholds:
  http_req_duration{tier:pro}: [{threshold: "p(95)<4", abortOnFail: true, delayAbortEval: "3s"}]
  qq_over_admitted_cost: ["count<=0"]
"""


def quotaquake(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "QUOTAQUAKE_STATE": str(tmp_path / "stack.json")}
    return subprocess.run(
        [sys.executable, "-m", "quotaquake", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=600
    )


def test_abort_on_fail_stops_a_slow_limiter_and_the_gate_fails_the_night(tmp_path: Path) -> None:
    thresholds = tmp_path / "thresholds.yaml"
    thresholds.write_text(THRESHOLDS, encoding="utf-8")
    store, out = tmp_path / "store", tmp_path / "run"
    done = quotaquake(
        tmp_path, "run", "--scenario", "scenarios/tiered.py", "--rate", "100", "--duration", "60s",
        "--defect", "slow", "--thresholds", str(thresholds), "--out", str(out), "--baseline", str(store),
    )  # fmt: skip
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
    info = json.loads((out / "run.json").read_text())
    aborted = info["aborted"]
    assert aborted["threshold"] == "http_req_duration{tier:pro}: p(95)<4"
    assert 3.0 <= aborted["after_s"] < 40.0  # stopped long before the 60 s planned (slow adds 5-8 ms)
    verdicts = {v["check"]: v for v in json.loads((out / "verdicts.json").read_text())["verdicts"]}
    assert verdicts["threshold http_req_duration{tier:pro}: p(95)<4"]["status"] == "fail"
    assert verdicts["threshold qq_over_admitted_cost: count<=0"]["status"] == "pass"
    summary = read_summary(out / "summary.parquet")
    assert {"http_req_duration", "qq_req_duration_intended", "qq_limiter_decision_ms"} <= set(summary["metric"])
    assert run_ids(load(store)) == [info["run_id"]]
    gate = quotaquake(tmp_path, "gate", "--baseline", str(store), "--out", str(tmp_path / "gate"))
    assert gate.returncode == 1, gate.stdout[-3000:]
    result = json.loads((tmp_path / "gate" / "gate.json").read_text())
    assert "failed in" in result["headline"] and result["window"]["baseline"] == []
