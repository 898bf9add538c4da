"""Real ``chaos run`` of the shipped experiments against a separate 2-replica stack (fault held 2 s)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from quotaquake.chaos.health import stack_problems
from quotaquake.chaos.journal import fault_windows
from quotaquake.chaos.runner import ChaosRun
from quotaquake.policy import load_policy
from quotaquake.runfolder import RunFolder
from quotaquake.runfolder.models import FaultKind
from quotaquake.stack.processes import poll_until
from quotaquake.stack.readiness import is_ready
from quotaquake.stack.state import STATE_ENV_VAR, StackState, read_state, write_state

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
CHAOS = str(Path(sys.executable).parent / "chaos")
POLICY = load_policy(REPO / "stack" / "policy.yaml")


def chaos_run(experiment: Path, state_file: str, out: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, STATE_ENV_VAR: state_file, "QUOTAQUAKE_FAULT_HOLD_S": "2"}
    command = [CHAOS, "--no-version-check", "--log-file", str(out / "chaos.log"), "run",
               "--journal-path", str(out / "journal.json"), str(experiment)]  # fmt: skip
    return subprocess.run(command, env=env, cwd=out, capture_output=True, text=True, timeout=180, check=False)


def test_redis_kill_runs_standalone_and_yields_one_closed_window(
    stack_factory: Callable[..., StackState], tmp_path: Path
) -> None:
    state = stack_factory(replicas=2)
    done = chaos_run(REPO / "chaos" / "redis-kill.json", state.state_file, tmp_path)
    assert done.returncode == 0, done.stdout[-2000:]
    (window,) = fault_windows(tmp_path / "journal.json", POLICY)
    assert (window.kind, window.service) == (FaultKind.OUTAGE, "redis") and window.end is not None
    assert 2.0 <= window.end - window.start < 60.0  # the 2 s hold is inside the window
    assert stack_problems(read_state(Path(state.state_file))) == []


def test_runner_waits_out_the_warm_up_and_writes_faults(
    stack_factory: Callable[..., StackState], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = stack_factory(replicas=2)
    monkeypatch.setenv("QUOTAQUAKE_FAULT_HOLD_S", "1")
    folder = RunFolder(tmp_path)
    run = ChaosRun.start(REPO / "chaos" / "gateway-replica-kill.json", state_path=Path(state.state_file),
                         folder=folder, delay_s=0.5)  # fmt: skip
    assert run.wait(120) == 0
    (window,) = fault_windows(folder.journal_file, POLICY)
    assert (window.kind, window.service) == (FaultKind.REPLICA_LOSS, "gateway-2") and window.end is not None
    assert folder.read_faults() == []
    folder.write_faults([window])
    assert folder.read_faults() == [window]
    assert {r.probe for r in folder.read_probe_requests()} == {"gateway_healthy", "quota_enforced"}
    assert folder.chaos_log.exists()


def test_interrupted_run_still_restores_the_stack(stack_factory: Callable[..., StackState], tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    state = stack_factory(replicas=2)
    monkeypatch.setenv("QUOTAQUAKE_FAULT_HOLD_S", "60")
    folder = RunFolder(tmp_path)
    run = ChaosRun.start(REPO / "chaos" / "redis-kill.json", state_path=Path(state.state_file),
                         folder=folder, delay_s=0.0)  # fmt: skip
    redis_url = read_state(Path(state.state_file)).services["redis"].ready_url
    assert redis_url is not None

    def redis_down() -> bool:
        try:
            return not is_ready(redis_url)
        except Exception:
            return True

    assert poll_until(redis_down, 60), "the experiment never killed Redis"
    assert run.terminate() != 0
    assert is_ready(redis_url)
    assert stack_problems(read_state(Path(state.state_file))) == []
    (window,) = fault_windows(folder.journal_file, POLICY)
    assert window.end is not None and window.end - window.start < 30  # interrupted long before the 60 s hold


def test_fail_closed_limiter_deviates_under_redis_kill(
    stack_factory: Callable[..., StackState], tmp_path: Path
) -> None:
    state = stack_factory(defect="fail-closed", replicas=2)
    done = chaos_run(REPO / "chaos" / "redis-kill.json", state.state_file, tmp_path)
    assert done.returncode == 1
    journal = json.loads((tmp_path / "journal.json").read_text())
    assert journal["deviated"] is True
    assert stack_problems(read_state(Path(state.state_file))) == []  # rolled back all the same


def test_unknown_service_stops_chaos_run_with_one_clear_line(tmp_path: Path) -> None:
    experiment = json.loads((REPO / "chaos" / "redis-kill.json").read_text())
    experiment["method"][0]["provider"]["arguments"]["service"] = "redis-x"
    (tmp_path / "bad.json").write_text(json.dumps(experiment))
    # a stack nobody controls: the preflight must stop the run before any action touches a process
    fake = StackState(provider="external", stack_id="fake", work_dir=str(tmp_path),
                      state_file=str(tmp_path / "stack.json"))  # fmt: skip
    fake.services = {}
    write_state(fake, tmp_path / "stack.json")
    done = chaos_run(tmp_path / "bad.json", str(tmp_path / "stack.json"), tmp_path)
    assert done.returncode == 1  # chaos run knows only 0 and 1
    lines = [line for line in (done.stdout + done.stderr).splitlines() if "quotaquake preflight" in line]
    assert len(lines) == 1 and "service 'redis-x': not in stack fake" in lines[0]
    assert not json.loads((tmp_path / "journal.json").read_text()).get("run")
