"""Runner helpers (no Locust started): process count, command line, live stats, input checks."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from quotaquake.errors import UsageError
from quotaquake.load.runner import check_run, choose_processes, locust_command, read_live_stats
from quotaquake.stack.state import Endpoints, StackState, write_state


def test_choose_processes_scales_with_rate_and_caps_at_cpus() -> None:
    assert choose_processes(100, cpus=2) == 1
    assert choose_processes(4000, cpus=2) == 1
    assert choose_processes(4001, cpus=2) == 2
    assert choose_processes(40_000, cpus=2) == 2
    assert choose_processes(40_000, cpus=16) == 10


def test_locust_command(tmp_path: Path) -> None:
    command = locust_command(
        scenario=Path("scenarios/tiered.py"),
        state_path=tmp_path / "s.json",
        run_dir=tmp_path / "run",
        rate=1000,
        duration_s=20,
        processes=2,
        extra_args=["--qq-shape", "ramp"],
    )
    joined = " ".join(command)
    assert "-m locust -f scenarios/tiered.py --headless --run-time 20s" in joined
    assert f"--csv {tmp_path}/run/locust --html {tmp_path}/run/locust.html" in joined
    assert f"--qq-out {tmp_path}/run --qq-rate 1000" in joined
    assert command[-4:] == ["--processes", "2", "--qq-shape", "ramp"]
    one = locust_command(
        scenario=Path("s.py"), state_path=Path("s"), run_dir=Path("r"), rate=5, duration_s=1, processes=1
    )
    assert "--processes" not in one


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


def test_check_run_guards(tmp_path: Path) -> None:
    scenario = tmp_path / "s.py"
    scenario.write_text("")
    state_file = tmp_path / "stack.json"
    write_state(
        StackState(
            provider="external",
            stack_id="x",
            work_dir=str(tmp_path),
            state_file=str(state_file),
            endpoints=Endpoints(gateway="http://10.1.2.3:8000"),
        ),
        state_file,
    )
    args = {"scenario": scenario, "state_path": state_file, "duration_s": 10}
    with pytest.raises(UsageError, match=re.escape("--allow-host 10.1.2.3")):
        check_run(rate=10, allow_hosts=(), **args)  # type: ignore[arg-type]
    check_run(rate=10, allow_hosts=("10.1.2.3",), **args)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="rate"):
        check_run(rate=1e9, allow_hosts=("10.1.2.3",), **args)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="not found"):
        check_run(scenario=tmp_path / "missing.py", state_path=state_file, rate=1, duration_s=1, allow_hosts=())
