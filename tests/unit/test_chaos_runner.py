"""The runner's checks and its warm-up, without starting Chaos Toolkit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from quotaquake.chaos.runner import ChaosRun, chaos_command
from quotaquake.errors import ConfigError
from quotaquake.runfolder import RunFolder
from quotaquake.stack.state import write_state
from tests.unit.test_chaos_faults import make_state

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def state_path(tmp_path: Path) -> Path:
    state = make_state(tmp_path)
    write_state(state, Path(state.state_file))
    return Path(state.state_file)


def test_unknown_service_is_refused_before_anything_runs(tmp_path: Path, state_path: Path) -> None:
    experiment = json.loads((REPO / "chaos" / "redis-kill.json").read_text())
    experiment["method"][0]["provider"]["arguments"]["service"] = "redis-x"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(experiment))
    with pytest.raises(ConfigError, match=r"bad.json: activity 'kill-redis': service 'redis-x': not in stack s1"):
        ChaosRun.start(bad, state_path=state_path, folder=RunFolder(tmp_path / "run"), delay_s=0)
    assert not (tmp_path / "run").exists()


def test_too_many_replicas_and_invalid_experiments_are_config_errors(tmp_path: Path, state_path: Path) -> None:
    experiment = json.loads((REPO / "chaos" / "gateway-replica-kill.json").read_text())
    experiment["method"][0]["provider"]["arguments"]["count"] = 4
    (tmp_path / "k.json").write_text(json.dumps(experiment))
    with pytest.raises(ConfigError, match="count=4: the stack s1 runs 3 gateway replicas"):
        ChaosRun.start(tmp_path / "k.json", state_path=state_path, folder=RunFolder(tmp_path), delay_s=0)
    (tmp_path / "empty.json").write_text("{}")
    with pytest.raises(ConfigError, match=r"empty\.json"):
        ChaosRun.start(tmp_path / "empty.json", state_path=state_path, folder=RunFolder(tmp_path), delay_s=0)
    with pytest.raises(ConfigError, match="no such experiment file"):
        ChaosRun.start(tmp_path / "nope.json", state_path=state_path, folder=RunFolder(tmp_path), delay_s=0)


def test_terminate_during_warm_up_never_starts_chaos(tmp_path: Path, state_path: Path) -> None:
    run = ChaosRun.start(
        REPO / "chaos" / "redis-kill.json", state_path=state_path, folder=RunFolder(tmp_path), delay_s=60
    )
    assert run.terminate() == -1
    assert run.wait(5) == -1
    assert not run.started() and not RunFolder(tmp_path).journal_file.exists()


def test_command_forces_rollbacks_and_keeps_everything_in_the_run_folder(tmp_path: Path) -> None:
    command = chaos_command(Path("/x/redis-kill.json"), RunFolder(tmp_path))
    assert command[1:] == ["--no-version-check", "--log-file", str(tmp_path / "chaos" / "chaostoolkit.log"), "run",
                           "--rollback-strategy", "always", "--journal-path", str(tmp_path / "chaos" / "journal.json"),
                           "/x/redis-kill.json"]  # fmt: skip
