"""Stopping a run keeps what it recorded: real Locust against a direct-response Envoy that counts what it answered.

"Lost" = requests Envoy answered - history rows. Goal: 0 on SIGTERM/SIGINT of ``quotaquake run`` or of a plain
``locust -f --headless`` (one process and ``--processes 2``), with Locust's own total, ``engine.json`` and its
HTML report written; at most one recorder flush interval of rows when Locust itself is SIGKILLed.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console

from quotaquake.context import RunContext, RunRequest
from quotaquake.load.recorder import FLUSH_INTERVAL_S
from quotaquake.load.runner import run_locust
from quotaquake.policy import load_policy
from quotaquake.runfolder import RunFolder
from quotaquake.runfolder.history import read_history
from quotaquake.stack.state import read_state
from tests.support.direct_envoy import DirectEnvoy
from tests.support.plain_locust import REPO, PlainLocust, distributed_args, free_port

RATE = 400.0
SPAWNED = "All users spawned"
RUNNING_S = 2.0  # load before the signal, after every user started


@pytest.fixture(scope="module")
def envoy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DirectEnvoy]:
    with DirectEnvoy(tmp_path_factory.mktemp("direct-envoy")) as running:
        yield running


def plain_args(envoy: DirectEnvoy, out: Path, processes: int, *extra: str) -> list[str]:
    return [
        "-f", str(REPO / "scenarios" / "tiered.py"), "--headless", "--run-time", "60s",
        "--qq-state", str(envoy.state_path), "--qq-out", str(out), "--qq-rate", f"{RATE:g}",
        "--html", str(out / "locust.html"), "--csv", str(out / "locust"),
        *distributed_args(processes), *extra,
    ]  # fmt: skip


def rows_of(out: Path) -> int:
    history = RunFolder(out).history_dir
    return len(read_history(history)) if history.is_dir() else 0


@pytest.mark.integration
@pytest.mark.parametrize("processes", [1, 2])
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signalled_plain_run_loses_nothing(
    envoy: DirectEnvoy, tmp_path: Path, processes: int, signum: signal.Signals
) -> None:
    out = tmp_path / "run"
    before = envoy.served()
    with PlainLocust(plain_args(envoy, out, processes), tmp_path / "locust.log") as locust:
        locust.wait_for_log(SPAWNED, timeout_s=30)
        time.sleep(RUNNING_S)
        os.kill(locust.pid, signum)
        code = locust.wait(timeout_s=60)
    served, rows = envoy.served() - before, rows_of(out)
    folder = RunFolder(out)
    engine = folder.read_engine()
    assert code == 0, (tmp_path / "locust.log").read_text()[-3000:]
    assert engine is not None and engine.generator is not None
    assert rows == served == engine.requests > RATE * RUNNING_S / 2  # nothing lost, Locust's total complete
    assert engine.stop_reason == f"signal {signum.name}"
    assert engine.generator.complete and engine.generator.sent == rows
    assert len(engine.generator.processes) == (1 if processes == 1 else 3)  # the master reports itself too
    assert (out / "locust.html").is_file() and folder.read_info().ended_at is not None


@pytest.mark.integration
def test_sigkill_of_a_single_process_loses_at_most_one_flush_interval(envoy: DirectEnvoy, tmp_path: Path) -> None:
    out = tmp_path / "run"
    before = envoy.served()
    with PlainLocust(plain_args(envoy, out, 1), tmp_path / "locust.log") as locust:
        locust.wait_for_log(SPAWNED, timeout_s=30)
        time.sleep(RUNNING_S + 0.5)
        os.kill(locust.pid, signal.SIGKILL)
        locust.wait(timeout_s=10)
    lost = envoy.served() - before - rows_of(out)
    # the recorder writes every FLUSH_INTERVAL_S; 0.1 s more covers the write itself and the requests in flight
    assert 0 <= lost <= RATE * (FLUSH_INTERVAL_S + 0.1)
    engine = RunFolder(out).read_engine()
    assert engine is not None and engine.requests is None  # killed: no final counts, verification says so


@pytest.mark.integration
def test_sigkill_of_the_master_stops_its_workers_gracefully(envoy: DirectEnvoy, tmp_path: Path) -> None:
    out = tmp_path / "run"
    before = envoy.served()
    with PlainLocust(plain_args(envoy, out, 2), tmp_path / "locust.log") as locust:
        locust.wait_for_log(SPAWNED, timeout_s=30)
        time.sleep(RUNNING_S)
        os.kill(locust.pid, signal.SIGKILL)
        started = time.monotonic()
        locust.wait(timeout_s=30)  # the workers notice their master is gone and stop, not after 60 s
        stopped_in = time.monotonic() - started
    assert stopped_in < 15
    assert envoy.served() - before == rows_of(out) > 0


@pytest.mark.integration
def test_sigterm_before_the_test_started_exits_at_once(envoy: DirectEnvoy, tmp_path: Path) -> None:
    """A headless master waiting for workers that never come: SIGTERM must not leave it waiting for ever."""
    out = tmp_path / "run"
    port = str(free_port())
    args = plain_args(envoy, out, 1, "--master", "--expect-workers", "1", "--master-bind-host", "127.0.0.1")
    args += ["--master-bind-port", port]
    with PlainLocust(args, tmp_path / "locust.log") as locust:
        locust.wait_for_log("no --stop-timeout given", timeout_s=30)  # logged by the scenario's init
        os.kill(locust.pid, signal.SIGTERM)
        assert locust.wait(timeout_s=10) == 128 + signal.SIGTERM
    assert not (out / "engine.json").exists()


@pytest.mark.integration
@pytest.mark.parametrize("processes", [1, 2])
def test_sigterm_of_quotaquake_run_stops_locust_gracefully(envoy: DirectEnvoy, tmp_path: Path, processes: int) -> None:
    folder = RunFolder(tmp_path / "run").create()
    request = RunRequest(scenario=REPO / "scenarios" / "tiered.py", rate=RATE, duration_s=60)
    context = RunContext(
        request=request,
        run_id="run",
        folder=folder,
        state=read_state(envoy.state_path),
        policy=load_policy(REPO / "stack" / "policy.yaml"),
        processes=processes,
        console=Console(quiet=True),
    )

    def terminate_when_running() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if folder.locust_log.is_file() and SPAWNED in folder.locust_log.read_text(errors="replace"):
                break
            time.sleep(0.05)  # poll interval while Locust starts
        time.sleep(RUNNING_S)
        os.kill(os.getpid(), signal.SIGTERM)  # as `kill <quotaquake run>` would

    before = envoy.served()
    threading.Thread(target=terminate_when_running, daemon=True).start()
    result = run_locust(context)
    served = envoy.served() - before
    engine = folder.read_engine()
    assert result.interrupted and result.exit_code == 0, folder.locust_log.read_text()[-3000:]
    assert engine is not None and engine.generator is not None
    assert len(read_history(folder.history_dir)) == served == result.request_count == engine.requests > 0
    assert engine.stop_reason == "signal SIGTERM" and engine.generator.complete
    assert folder.locust_html.is_file()
