"""`quotaquake run` end to end on the embedded stack: every seeded limiter defect is caught by the check
meant for it, and the correct stack passes. These are the proofs that the checks can fail."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]
CI_THRESHOLDS = Path(__file__).with_name("thresholds-ci.yaml")
# 25 s of tiered load at 200 req/s with Redis killed after a 3 s warm-up (and restored by the rollback).
REDIS_KILL_UNDER_LOAD = (
    "--scenario", "scenarios/tiered.py", "--rate", "200", "--duration", "25s",
    "--chaos", "chaos/redis-kill.json", "--chaos-delay", "3s",
)  # fmt: skip


def quotaquake_run(tmp_path: Path, *args: str) -> tuple[int, dict[str, dict], str]:
    out = tmp_path / "run"
    env = {**os.environ, "QUOTAQUAKE_STATE": str(tmp_path / "stack.json")}
    result = subprocess.run(
        [sys.executable, "-m", "quotaquake", "run", "--out", str(out), "--thresholds", str(CI_THRESHOLDS), *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    verdicts_file = out / "verdicts.json"
    assert verdicts_file.exists(), result.stdout[-3000:] + result.stderr[-3000:]
    verdicts = {v["check"]: v for v in json.loads(verdicts_file.read_text())["verdicts"]}
    assert not (tmp_path / "stack.json").exists(), "the run must stop the stack it started"
    assert (out / "stack-logs" / "lb.log").is_file(), "the logs of the stack it started are kept"
    return result.returncode, verdicts, result.stdout + result.stderr


def failing(verdicts: dict[str, dict]) -> set[str]:
    return {name for name, v in verdicts.items() if v["status"] == "fail"}


def test_correct_stack_passes(tmp_path):
    code, verdicts, output = quotaquake_run(
        tmp_path, "--scenario", "scenarios/burst.py", "--rate", "400", "--duration", "15s"
    )
    assert failing(verdicts) == set(), output[-4000:]
    assert verdicts["quota-accuracy"]["status"] == "pass"
    assert code in (0, 3), output[-2000:]
    assert (tmp_path / "run" / "index.html").exists() and (tmp_path / "run" / "junit.xml").exists()


def test_racy_limiter_fails_quota_accuracy_naming_consumers(tmp_path):
    code, verdicts, output = quotaquake_run(
        tmp_path, "--scenario", "scenarios/burst.py", "--rate", "400", "--duration", "15s", "--defect", "racy"
    )
    assert code == 1, output[-3000:]
    quota = verdicts["quota-accuracy"]
    assert quota["status"] == "fail"
    assert "free-" in json.dumps(quota["evidence"]) or "pro-" in json.dumps(quota["evidence"])


def test_missing_retry_after_fails_header_compliance(tmp_path):
    code, verdicts, output = quotaquake_run(
        tmp_path,
        "--scenario",
        "scenarios/burst.py",
        "--rate",
        "300",
        "--duration",
        "10s",
        "--defect",
        "no-retry-after",
    )
    assert code == 1, output[-3000:]
    assert verdicts["headers"]["status"] == "fail"
    assert verdicts["quota-accuracy"]["status"] == "pass"


def test_redis_kill_under_load_degrades_as_declared(tmp_path):
    code, verdicts, output = quotaquake_run(
        tmp_path,
        *REDIS_KILL_UNDER_LOAD,
    )
    assert verdicts["degradation"]["status"] == "pass", output[-3000:]
    assert verdicts["degraded-over-admission"]["status"] == "pass"
    faults = json.loads((tmp_path / "run" / "faults.json").read_text())
    assert len(faults) == 1 and faults[0]["end"] > faults[0]["start"]
    assert (tmp_path / "run" / "chaos" / "journal.json").exists()
    assert code in (0, 3), output[-3000:]


def test_fail_closed_limiter_fails_the_degradation_check(tmp_path):
    code, verdicts, output = quotaquake_run(
        tmp_path,
        *REDIS_KILL_UNDER_LOAD,
        "--defect",
        "fail-closed",
    )
    assert code == 1, output[-3000:]
    assert verdicts["degradation"]["status"] == "fail"
    assert "503" in verdicts["degradation"]["summary"]


def test_slow_limiter_fails_the_rate_limit_check_slo(tmp_path):
    code, verdicts, output = quotaquake_run(
        tmp_path, "--scenario", "scenarios/tiered.py", "--rate", "300", "--duration", "10s", "--defect", "slow"
    )
    assert code == 1, output[-3000:]
    assert "limiter-latency" in failing(verdicts), verdicts
    assert verdicts["quota-accuracy"]["status"] == "pass"
