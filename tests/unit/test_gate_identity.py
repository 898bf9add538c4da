"""A verified run's summary joins the baseline store with its identity: commit (given, CI variable, git),
machine and CPU count, stack, what the load was asked for, and every verdict."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from rich.console import Console

from quotaquake.errors import ConfigError, UsageError
from quotaquake.gate.baseline import load
from quotaquake.gate.identity import append_run, git_commit
from quotaquake.policy import DEFAULT_POLICY_PATH, load_policy
from quotaquake.run import verify_and_report
from quotaquake.runfolder import RunFolder
from tests.support.synthetic import SyntheticRun, mixed_consumers, write_run

POLICY = load_policy(DEFAULT_POLICY_PATH)


def test_the_commit_comes_from_ci_then_git(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GITHUB_SHA", "abc123")
    assert git_commit() == "abc123"
    monkeypatch.delenv("GITHUB_SHA")
    monkeypatch.delenv("CI_COMMIT_SHA", raising=False)
    assert git_commit(tmp_path) == "unknown"  # not a git checkout
    assert len(git_commit(Path(__file__).parent)) == 40


def test_verify_with_a_baseline_appends_the_run_and_its_identity(tmp_path: Path) -> None:
    run = tmp_path / "20260101T000000Z-synthetic-0001"
    write_run(run, SyntheticRun(POLICY, mixed_consumers(POLICY), duration_s=10.0, defect="slow"))
    store = tmp_path / "store"
    code = verify_and_report(run, None, Console(quiet=True), baseline=store, commit="c0ffee")
    frame = load(store)
    identity = frame.drop_duplicates("run_id").iloc[0]
    assert identity["run_id"] == run.name and identity["commit"] == "c0ffee"
    assert identity["cpus"] == (os.cpu_count() or 0) and identity["stack"] == "synthetic/3-replicas/token-bucket"
    assert identity["defect"] == "slow" and identity["duration_s"] == 10.0
    verdicts = json.loads(identity["verdicts"])
    assert verdicts["limiter-latency"] == "fail" and identity["status"] == "fail" and code == 1
    with pytest.raises(UsageError, match="already in the baseline store"):
        append_run(RunFolder(run), store, verdicts, "fail", "c0ffee")


def test_a_run_without_a_summary_is_refused(tmp_path: Path) -> None:
    run = tmp_path / "run"
    write_run(run, SyntheticRun(POLICY, mixed_consumers(POLICY), duration_s=5.0))
    with pytest.raises(ConfigError, match="verify the run first"):
        append_run(RunFolder(run), tmp_path / "store", {}, "pass")
