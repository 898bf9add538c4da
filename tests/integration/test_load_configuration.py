"""What a run ran with, recorded with its source; ``quotaquake run`` isolated from Locust's own config files and
``LOCUST_*`` variables; the duration cap of a plain run started without ``--run-time``.

Real Locust against a direct-response Envoy.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console

from quotaquake.context import RunContext, RunRequest
from quotaquake.load.runner import run_locust
from quotaquake.policy import load_policy
from quotaquake.runfolder import RunFolder
from quotaquake.runfolder.history import read_history
from quotaquake.runfolder.models import EngineRecord
from quotaquake.stack.state import read_state
from tests.support.direct_envoy import DirectEnvoy
from tests.support.plain_locust import REPO, PlainLocust

SCENARIO = REPO / "scenarios" / "tiered.py"


@pytest.fixture(scope="module")
def envoy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DirectEnvoy]:
    with DirectEnvoy(tmp_path_factory.mktemp("direct-envoy")) as running:
        yield running


@pytest.fixture
def locust_files(tmp_path: Path) -> tuple[Path, Path]:
    """A project folder with ``locust.conf`` and ``pyproject.toml`` ``[tool.locust]``, and a home with
    ``~/.locust.conf``: every file Locust reads by itself."""
    project, home = tmp_path / "project", tmp_path / "home"
    project.mkdir()
    home.mkdir()
    (project / "locust.conf").write_text("qq-rate = 150\nstop-timeout = 2\n")
    (project / "pyproject.toml").write_text('[tool.locust]\nqq-user-rate = "25"\n')
    (home / ".locust.conf").write_text("qq-seed = 7\n")
    return project, home


def sources(engine: EngineRecord) -> dict[str, tuple[object, str]]:
    return {s.option: (s.value, s.source) for s in engine.settings}


@pytest.mark.integration
def test_a_plain_run_records_every_value_and_where_it_came_from(
    envoy: DirectEnvoy, tmp_path: Path, locust_files: tuple[Path, Path]
) -> None:
    project, home = locust_files
    out = tmp_path / "run"
    env = {**os.environ, "HOME": str(home), "LOCUST_RUN_TIME": "3"}
    args = ["-f", str(SCENARIO), "--headless", "--qq-state", str(envoy.state_path), "--qq-out", str(out)]
    with PlainLocust(args, tmp_path / "locust.log", cwd=project, env=env) as locust:
        assert locust.wait(timeout_s=60) == 0, (tmp_path / "locust.log").read_text()[-3000:]
    folder = RunFolder(out)
    engine = folder.read_engine()
    assert engine is not None
    found = sources(engine)
    assert found["--qq-rate"] == (150.0, f"config file {project / 'locust.conf'}")
    assert found["--stop-timeout"] == (2.0, f"config file {project / 'locust.conf'}")
    assert found["--qq-user-rate"] == (25.0, f"config file {project / 'pyproject.toml'}")
    assert found["--qq-seed"] == (7, f"config file {home / '.locust.conf'}")
    assert found["--run-time"] == (3, "environment variable LOCUST_RUN_TIME")
    assert found["--qq-out"] == (str(out), "command line")
    assert found["--qq-timeout"] == (10.0, "default")
    assert set(engine.config_files) == {str(project / "locust.conf"), str(project / "pyproject.toml"),
                                        str(home / ".locust.conf")}  # fmt: skip
    info = folder.read_info()
    assert info.target_rate == 150.0 and info.duration_s == 3.0  # run.json says what really ran


@pytest.mark.integration
def test_quotaquake_run_is_isolated_from_locust_files_and_variables(
    envoy: DirectEnvoy, tmp_path: Path, locust_files: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    project, home = locust_files
    monkeypatch.chdir(project)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("LOCUST_STOP_TIMEOUT", "1")
    folder = RunFolder(tmp_path / "run").create()
    console = Console(record=True, width=200)
    context = RunContext(
        request=RunRequest(scenario=SCENARIO, rate=80, duration_s=3),
        run_id="run",
        folder=folder,
        state=read_state(envoy.state_path),
        policy=load_policy(REPO / "stack" / "policy.yaml"),
        processes=1,
        console=console,
    )
    result = run_locust(context)
    engine = folder.read_engine()
    assert result.exit_code == 0 and engine is not None, folder.locust_log.read_text()[-3000:]
    found = sources(engine)
    assert found["--qq-rate"] == (80.0, "command line")  # not locust.conf's 150
    assert found["--qq-user-rate"] == (20.0, "default") and found["--qq-seed"] == (0, "default")
    assert found["--stop-timeout"] == (11.0, "quotaquake")  # neither locust.conf's 2 nor $LOCUST_STOP_TIMEOUT
    assert found["--qq-orchestrated"] == (True, "command line")
    assert engine.config_files == []
    said = console.export_text()
    assert "not passed to Locust: $LOCUST_STOP_TIMEOUT" in said
    assert f"not read by Locust: {project / 'locust.conf'}" in said and str(home / ".locust.conf") in said
    assert len(read_history(folder.history_dir)) == engine.requests > 0


CAPPED_SCENARIO = """
from locust import events

import quotaquake.load.shapes as shapes
from quotaquake.load.hooks import install_scenario
from quotaquake.load.options import ScenarioDefaults
from quotaquake.load.users import OpenModelUser

install_scenario(events, ScenarioDefaults(rate=40.0))


class CappedShape(shapes.SelectedShape):
    duration_cap_s = 3.0  # the 2 h cap (quotaquake.load.safety.MAX_DURATION_S), lowered to test it


class User(OpenModelUser):
    pass
"""


@pytest.mark.integration
def test_a_headless_run_without_run_time_stops_at_the_duration_cap(envoy: DirectEnvoy, tmp_path: Path) -> None:
    scenario = tmp_path / "capped.py"
    scenario.write_text(CAPPED_SCENARIO)
    out = tmp_path / "run"
    args = ["-f", str(scenario), "--headless", "--qq-state", str(envoy.state_path), "--qq-out", str(out)]
    with PlainLocust(args, tmp_path / "locust.log") as locust:
        assert locust.wait(timeout_s=60) == 0
    log = (tmp_path / "locust.log").read_text()
    assert "no run time was given: stopping at the duration cap of 3 s" in log
    folder = RunFolder(out)
    engine = folder.read_engine()
    assert engine is not None and engine.stop_reason == "duration cap"
    assert engine.started_at is not None and engine.ended_at is not None
    assert 3.0 <= (engine.ended_at - engine.started_at).total_seconds() < 10
    assert len(read_history(folder.history_dir)) == engine.requests > 0


@pytest.mark.integration
def test_a_run_time_above_the_cap_is_refused(envoy: DirectEnvoy, tmp_path: Path) -> None:
    args = ["-f", str(SCENARIO), "--headless", "-t", "3h", "--qq-state", str(envoy.state_path)]
    args += ["--qq-out", str(tmp_path / "run")]
    with PlainLocust(args, tmp_path / "locust.log") as locust:
        assert locust.wait(timeout_s=60) == 2
    assert "quotaquake: duration 10800 s: above the cap" in (tmp_path / "locust.log").read_text()
