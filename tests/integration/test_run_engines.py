"""`quotaquake run` with either load engine on the embedded stack: the same correct stack passes and the
racy limiter fails quota accuracy, whether Locust or k6 sent the load. Same checks, same history schema."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from quotaquake.runfolder import RunFolder
from quotaquake.runfolder.history import read_history
from tests.integration.test_run_end_to_end import failing, quotaquake_run

pytestmark = [pytest.mark.integration, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]
BURST = ("--scenario", "scenarios/burst.py", "--rate", "400", "--duration", "15s")
RECORDED_CHECKS = ("quota-accuracy", "headers", "prometheus-crosscheck")
"""Checks of what the engine recorded that 15 s decide: each must pass for the correct stack, whichever
engine sent the load (the statistical ones, latency and error budget, may stay unknown after 15 s)."""


def assert_engine_recorded(run: Path, engine: str) -> None:
    folder = RunFolder(run)
    record = folder.read_engine()
    assert record is not None and record.engine == engine
    assert record.requests == len(read_history(folder.history_dir)) > 0
    if engine == "k6":
        assert folder.k6_script.is_file() and folder.k6_samples.is_file() and folder.k6_summary.is_file()
        assert record.dropped_iterations is not None  # counted (a busy machine may make k6 drop some)


@pytest.mark.parametrize("engine", ["locust", "k6"])
def test_correct_stack_passes_under_either_engine(tmp_path: Path, engine: str) -> None:
    code, verdicts, output = quotaquake_run(tmp_path, *BURST, "--engine", engine)
    assert failing(verdicts) == set(), output[-4000:]
    for check in RECORDED_CHECKS:
        assert verdicts[check]["status"] == "pass", (check, verdicts[check])
    assert verdicts["completeness"]["status"] in ("pass", "unknown"), verdicts["completeness"]  # unknown: drops
    assert code in (0, 3), output[-2000:]
    assert_engine_recorded(tmp_path / "run", engine)


@pytest.mark.parametrize("engine", ["locust", "k6"])
def test_racy_limiter_fails_quota_accuracy_under_either_engine(tmp_path: Path, engine: str) -> None:
    code, verdicts, output = quotaquake_run(tmp_path, *BURST, "--defect", "racy", "--engine", engine)
    assert code == 1, output[-3000:]
    quota = verdicts["quota-accuracy"]
    assert quota["status"] == "fail"
    assert "free-" in json.dumps(quota["evidence"]) or "pro-" in json.dumps(quota["evidence"])


def test_ctrl_c_stops_k6_and_keeps_what_it_recorded(tmp_path: Path) -> None:
    out = tmp_path / "run"
    env = {**os.environ, "QUOTAQUAKE_STATE": str(tmp_path / "stack.json")}
    command = [sys.executable, "-m", "quotaquake", "run", "--out", str(out), "--engine", "k6",
               "--scenario", "scenarios/tiered.py", "--rate", "100", "--duration", "60s"]  # fmt: skip
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    folder = RunFolder(out)
    deadline = time.monotonic() + 60
    while not folder.k6_log.exists() and time.monotonic() < deadline:
        time.sleep(0.1)  # poll until k6 started
    time.sleep(3)  # a few seconds of load
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 130, output[-3000:]
    record = folder.read_engine()
    assert record is not None and record.requests is not None and record.requests > 0
    assert len(read_history(folder.history_dir)) == record.requests  # k6 stopped cleanly: nothing lost
    assert not (tmp_path / "stack.json").exists(), "the run must stop the stack it started"
    assert not [p.pid for p in psutil.process_iter(["name", "cwd"]) if p.info["cwd"] == str(out)], "k6 left running"
