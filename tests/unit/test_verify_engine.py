"""The engine end to end on simulated run folders: the correct limiter passes, each seeded defect
fails the matching check; composition, exit codes, crash handling and verdicts.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from quotaquake.errors import ConfigError
from quotaquake.policy import load_policy
from quotaquake.runfolder import RunFolder
from quotaquake.verify.data.rundata import load_run
from quotaquake.verify.engine import CHECKERS, FAULT_CHECKS, run_checks, verify_run
from quotaquake.verify.thresholds import Thresholds
from quotaquake.verify.verdict import Verdict, compose
from tests.support.synthetic import SyntheticRun, mixed_consumers, write_run

REPO = Path(__file__).resolve().parents[2]
POLICY = load_policy(REPO / "stack" / "policy.yaml")
FAULT = (40.0, 55.0)


def simulated(tmp_path: Path, defect: str | None = None, fault: tuple[float, float] | None = FAULT) -> Path:
    spec = SyntheticRun(
        policy=POLICY,
        consumers=mixed_consumers(POLICY, 2, overload=5.0),
        duration_s=90,
        defect=defect,
        redis_fault=fault,
        seed=7,
    )
    run_dir = tmp_path / (defect or "correct")
    write_run(run_dir, spec, parts=2)
    return run_dir


def statuses(run_dir: Path) -> dict[str, str]:
    outcome = verify_run(run_dir)
    return {v.check: v.status for v in outcome.verdicts}


def test_correct_limiter_passes_everything(tmp_path: Path):
    run_dir = simulated(tmp_path)
    outcome = verify_run(run_dir)
    applicable = {  # policy-expressiveness: Kong targets only; a fault kind's own check: runs with that fault
        name: "pass" for name, _ in CHECKERS if name != "policy-expressiveness" and name not in FAULT_CHECKS
    }
    assert {v.check: v.status for v in outcome.verdicts} == applicable
    assert outcome.exit_code == 0
    written = json.loads(RunFolder(run_dir).verdicts_file.read_text())
    assert written["exit_code"] == 0 and len(written["verdicts"]) == len(applicable)


def test_racy_defect_fails_quota_naming_consumers(tmp_path: Path):
    outcome = verify_run(simulated(tmp_path, "racy"))
    quota = outcome.verdict("quota-accuracy")
    assert quota.status == "fail"
    assert outcome.exit_code == 1
    assert quota.evidence["offenders"]
    assert any(name in quota.summary for name in quota.evidence["offenders"])


def test_no_retry_after_defect_fails_headers(tmp_path: Path):
    result = statuses(simulated(tmp_path, "no-retry-after"))
    assert result["headers"] == "fail"
    assert result["quota-accuracy"] == "pass"


def test_slow_defect_fails_limiter_latency(tmp_path: Path):
    assert statuses(simulated(tmp_path, "slow"))["limiter-latency"] == "fail"


def test_fail_closed_defect_fails_degradation(tmp_path: Path):
    result = statuses(simulated(tmp_path, "fail-closed"))
    assert result["degradation"] == "fail"
    assert result["quota-accuracy"] == "pass"


def test_run_without_an_experiment_has_no_degradation_verdict(tmp_path: Path):
    run_dir = simulated(tmp_path, fault=None)
    assert not (run_dir / "faults.json").exists()
    outcome = verify_run(run_dir)
    checks = {v.check for v in outcome.verdicts}
    assert "degradation" not in checks and "degraded-over-admission" not in checks
    assert outcome.exit_code == 0


def test_experiment_without_fault_windows_is_unknown_not_pass(tmp_path: Path):
    run_dir = simulated(tmp_path, fault=None)
    (run_dir / "faults.json").write_text("[]")
    outcome = verify_run(run_dir)
    assert outcome.verdict("degradation").status == "unknown"
    assert outcome.exit_code == 3


def test_crashing_checker_is_unknown(tmp_path: Path):
    def broken(run, thresholds):
        raise RuntimeError("boom")

    run = load_run(simulated(tmp_path))
    (verdict,) = run_checks(run, Thresholds(), (("broken", broken),))
    assert verdict == Verdict("broken", "unknown", "checker crashed: RuntimeError: boom", verdict.evidence)


def test_empty_history_is_never_pass(tmp_path: Path):
    run_dir = simulated(tmp_path)
    for part in (run_dir / "history").glob("*.parquet"):
        part.unlink()
    outcome = verify_run(run_dir)
    # the limiter's decision time comes from Prometheus, not from the history
    assert "pass" not in {v.status for v in outcome.verdicts if v.check != "limiter-latency"}
    assert outcome.exit_code in (1, 3)


def test_compose_order():
    assert compose(["pass", "unknown", "fail"]) == "fail"
    assert compose(["pass", "unknown"]) == "unknown"
    assert compose(["pass"]) == "pass"
    assert compose([]) == "unknown"


def test_bad_thresholds_file_names_file_and_field(tmp_path: Path):
    bad = tmp_path / "thresholds.yaml"
    bad.write_text("slo:\n  proxy_p95_ms: -1\n")
    with pytest.raises(ConfigError, match=r"thresholds.yaml: slo.proxy_p95_ms: Input should be greater than 0"):
        verify_run(simulated(tmp_path), bad)
    bad.write_text("quota:\n  allowed_false_rejection: 1\n")
    with pytest.raises(ConfigError, match=r"quota.allowed_false_rejection"):
        verify_run(simulated(tmp_path), bad)


def test_missing_run_folder_is_a_config_error(tmp_path: Path):
    with pytest.raises(ConfigError, match=r"run\.json: file not found"):
        verify_run(tmp_path)


def test_not_applicable_takes_no_part_in_the_outcome():
    assert compose(["pass", "not-applicable"]) == "pass"
    assert compose(["not-applicable"]) == "unknown"
    assert compose(["fail", "not-applicable"]) == "fail"
