"""`quotaquake run` / `verify` bad input: one line naming the option or file, exit 2, nothing left running."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def quotaquake(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "QUOTAQUAKE_STATE": str(tmp_path / "stack.json")}
    return subprocess.run([sys.executable, "-m", "quotaquake", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=120)  # fmt: skip


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--scenario", "scenarios/nope.py", "--rate", "10", "--duration", "5s"], "--scenario"),
        (["--scenario", "scenarios/tiered.py", "--rate", "10", "--duration", "5x"], "--duration"),
        (["--scenario", "scenarios/tiered.py", "--rate", "-3", "--duration", "5s"], "rate"),
        (["--scenario", "scenarios/tiered.py", "--rate", "10", "--duration", "5s", "--chaos", "x.json"], "--chaos"),
        (["--scenario", "scenarios/tiered.py", "--rate", "10", "--duration", "5s", "--replicas", "0"], "--replicas"),
        (["--scenario", "scenarios/tiered.py", "--rate", "10", "--duration", "5s", "--defect", "bogus"], "bogus"),
        (["--scenario", "scenarios/tiered.py", "--rate", "10", "--duration", "5s", "--provider", "nope"], "--provider"),
        (
            ["--scenario", "scenarios/tiered.py", "--rate", "10", "--duration", "5s", "--provider", "external"],
            "--target",
        ),
        (["--scenario", "scenarios/tiered.py", "--rate", "10", "--duration", "5s", "--provider", "docker"], "Docker"),
        (
            ["--scenario", "scenarios/tiered.py", "--rate", "10", "--duration", "5s", "--chaos-delay", "soon"],
            "--chaos-delay",
        ),
        (
            ["--scenario", "scenarios/tiered.py", "--rate", "10", "--duration", "5s", "--out", "README.md/run"],
            "is not a folder",
        ),
    ],
)
def test_bad_run_options(tmp_path, args, message):
    if "--out" not in args:
        args = [*args, "--out", str(tmp_path / "run")]
    result = quotaquake(tmp_path, "run", *args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "stack.json").exists()
    assert not list(tmp_path.glob("stack-*")), "no stack may be started for a run with bad input"
    assert not (tmp_path / "run").exists(), "no run folder for a run that never started"


def test_bad_thresholds_file_names_file_and_field(tmp_path):
    run_dir = tmp_path / "run"
    from quotaquake.policy import load_policy
    from tests.support.synthetic import SyntheticRun, mixed_consumers, write_run

    policy = load_policy(REPO / "stack" / "policy.yaml")
    write_run(run_dir, SyntheticRun(policy=policy, consumers=mixed_consumers(policy, 1), duration_s=5, seed=1))
    thresholds = tmp_path / "thresholds.yaml"
    thresholds.write_text("slo: {proxy_p95_ms: -1}\n")
    result = quotaquake(tmp_path, "verify", str(run_dir), "--thresholds", str(thresholds))
    assert result.returncode == 2
    assert f"{thresholds}: slo.proxy_p95_ms" in result.stderr
    assert "Traceback" not in result.stderr


def test_verify_of_a_folder_without_run_json(tmp_path):
    result = quotaquake(tmp_path, "verify", str(tmp_path))
    assert result.returncode == 2 and "run.json" in result.stderr and "Traceback" not in result.stderr
