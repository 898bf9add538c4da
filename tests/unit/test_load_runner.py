"""Runner helpers (no Locust started): process count, command line, live stats, input checks."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from quotaquake.context import RunContext, RunRequest, validate_request
from quotaquake.errors import UsageError
from quotaquake.load.runner import (
    choose_processes,
    ignored_config_files,
    locust_command,
    locust_env,
    read_live_stats,
)
from quotaquake.policy import load_policy
from quotaquake.runfolder import RunFolder
from quotaquake.stack.state import StackState

REPO = Path(__file__).resolve().parents[2]


def test_choose_processes_scales_with_rate_and_caps_at_cpus() -> None:
    assert choose_processes(100, cpus=2) == 1
    assert choose_processes(4000, cpus=2) == 1
    assert choose_processes(4001, cpus=2) == 2
    assert choose_processes(40_000, cpus=2) == 2
    assert choose_processes(40_000, cpus=16) == 10


def context(tmp_path: Path, processes: int, **request: object) -> RunContext:
    state = StackState(provider="local", stack_id="x", work_dir=str(tmp_path), state_file=str(tmp_path / "s.json"))
    fields: dict[str, object] = {"scenario": Path("scenarios/tiered.py"), "rate": 1000, "duration_s": 20, **request}
    return RunContext(
        request=RunRequest(**fields),  # type: ignore[arg-type]
        run_id="r",
        folder=RunFolder(tmp_path / "run"),
        state=state,
        policy=load_policy(REPO / "stack" / "policy.yaml"),
        processes=processes,
        console=Console(),
    )


def test_locust_command(tmp_path: Path) -> None:
    command = locust_command(context(tmp_path, 2, locust_args=("--qq-shape", "ramp")))
    joined = " ".join(command)
    assert "-m locust -f scenarios/tiered.py --headless --run-time 20s" in joined
    assert "--stop-timeout" not in command  # the scenario derives it from the request timeout
    assert f"--csv {tmp_path}/run/locust --html {tmp_path}/run/locust.html" in joined
    assert f"--qq-state {tmp_path}/s.json --qq-out {tmp_path}/run --qq-rate 1000 --qq-orchestrated" in joined
    assert command[-2:] == ["--qq-shape", "ramp"]
    at = command.index("--processes")
    assert command[at : at + 4] == ["--processes", "2", "--master-bind-host", "127.0.0.1"]
    assert command[at + 5] == command[at + 7] and command[at + 4 : at + 8 : 2] == [
        "--master-bind-port",
        "--master-port",
    ]
    one = locust_command(context(tmp_path, 1, allow_hosts=("kong.example",)))
    assert "--processes" not in one
    assert one[-2:] == ["--qq-allow-host", "kong.example"]


def test_read_live_stats(tmp_path: Path) -> None:
    csv_path = tmp_path / "locust_stats.csv"
    assert read_live_stats(csv_path) is None
    csv_path.write_text(
        "Type,Name,Request Count,Failure Count,Requests/s\nPOST,/identify,90,1,45.5\n,Aggregated,100,2,50.25\n"
    )
    stats = read_live_stats(csv_path)
    assert stats is not None and (stats.requests, stats.failures, stats.rate) == (100, 2, 50.25)
    csv_path.write_text("Type,Name,Request Count\n,Aggregated,")  # half written
    assert read_live_stats(csv_path) is None


def test_live_stats_count_the_429_and_401_rows_locust_names_by_status(tmp_path: Path) -> None:
    csv_path = tmp_path / "locust_stats.csv"
    csv_path.write_text(
        "Type,Name,Request Count,Failure Count,Requests/s\n"
        "POST,/identify,60,3,30\n"
        "POST,/identify [429 over quota],25,0,12.5\n"
        "POST,/compare [429 over quota],5,0,2.5\n"
        "GET,/health [401 unknown key],4,0,2\n"
        "POST,/odd [name] path,6,0,3\n"
        ",Aggregated,100,3,50\n"
    )
    stats = read_live_stats(csv_path)
    assert stats is not None
    assert (stats.requests, stats.over_quota, stats.unknown_key, stats.failures) == (100, 30, 4, 3)
    assert stats.line() == "100 req  50 req/s  429: 30  401: 4  errors: 3"


def test_validate_request_checks_inputs_before_anything_starts(tmp_path: Path) -> None:
    scenario = tmp_path / "s.py"
    scenario.write_text("")
    base = {"scenario": scenario, "rate": 10.0, "duration_s": 10.0, "policy_path": REPO / "stack" / "policy.yaml"}
    validate_request(RunRequest(**base))  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="rate"):
        validate_request(RunRequest(**{**base, "rate": 1e9}))  # type: ignore[arg-type]
    with pytest.raises(UsageError, match=r"--scenario: .*missing\.py does not exist"):
        validate_request(RunRequest(**{**base, "scenario": tmp_path / "missing.py"}))  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="--processes: -1"):
        validate_request(RunRequest(**{**base, "processes": -1}))  # type: ignore[arg-type]


def test_locust_gets_no_locust_variables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOCUST_RUN_TIME", "99")
    monkeypatch.setenv("LOCUST_PROCESSES", "4")
    monkeypatch.setenv("KEEP_ME", "1")
    env, dropped = locust_env(context(tmp_path, 1))
    assert dropped == ["LOCUST_PROCESSES", "LOCUST_RUN_TIME"]
    assert not any(name.startswith("LOCUST_") for name in env)
    assert env["KEEP_ME"] == "1" and env["QUOTAQUAKE_STATE"] == str(tmp_path / "s.json")


def test_ignored_config_files_are_the_ones_locust_would_read(tmp_path: Path) -> None:
    cwd, home = tmp_path / "cwd", tmp_path / "home"
    cwd.mkdir()
    home.mkdir()
    assert ignored_config_files(cwd, home) == []
    (cwd / "pyproject.toml").write_text("[tool.ruff]\nline-length = 1\n")  # no [tool.locust]: Locust ignores it
    (home / ".locust.conf").write_text("users = 3\n")
    assert ignored_config_files(cwd, home) == [home / ".locust.conf"]
    (cwd / "pyproject.toml").write_text("[tool.locust]\nusers = 3\n")
    (cwd / "locust.conf").write_text("users = 3\n")
    assert ignored_config_files(cwd, home) == [home / ".locust.conf", cwd / "locust.conf", cwd / "pyproject.toml"]
