"""Many Locust generators, one history, against a direct-response Envoy: real Locust master and workers.

* two "machines": a master and two ``--worker`` processes, each in its own working directory with a
  relative ``--qq-out``, so no worker sees the master's run folder; they talk over loopback. Every row
  must reach the master's run folder (shipped), and the run must be complete.
* a worker SIGKILLed mid-run (``--processes 2``): the run must be incomplete, never pass.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from quotaquake.runfolder import RunFolder
from quotaquake.runfolder.history import read_history
from quotaquake.runfolder.models import Delivery
from quotaquake.verify.checks.completeness import check_completeness
from quotaquake.verify.data.rundata import load_run
from quotaquake.verify.thresholds import Thresholds
from tests.support.direct_envoy import DirectEnvoy, free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
SCENARIO = REPO / "scenarios" / "tiered.py"
RATE = 300.0
EXIT_TIMEOUT_S = 60.0


@pytest.fixture(scope="module")
def envoy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DirectEnvoy]:
    with DirectEnvoy(tmp_path_factory.mktemp("direct-envoy")) as running:
        yield running


def locust(args: list[str], cwd: Path) -> subprocess.Popen[bytes]:
    """A Locust process in its own session, its output in ``<cwd>/locust.log``."""
    cwd.mkdir(parents=True, exist_ok=True)
    with (cwd / "locust.log").open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "locust", "-f", str(SCENARIO), *args],
            cwd=cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def master_args(envoy: DirectEnvoy, out: str, run_s: int) -> list[str]:
    return [
        "--headless", "--run-time", f"{run_s}s", "--stop-timeout", "3", "--only-summary",
        "--qq-state", str(envoy.state_path), "--qq-out", out, "--qq-target", "calibrate", "--qq-rate", f"{RATE:g}",
    ]  # fmt: skip


def finish(*processes: subprocess.Popen[bytes]) -> None:
    """Wait for every process to exit; kill the sessions of those that do not within the deadline."""
    deadline = time.monotonic() + EXIT_TIMEOUT_S
    for process in processes:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
    for process in processes:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def completeness(run_dir: Path) -> tuple[str, str]:
    verdict = check_completeness(load_run(run_dir), Thresholds())
    return verdict.status, verdict.summary


def test_workers_without_the_run_folder_ship_every_row_to_the_master(envoy: DirectEnvoy, tmp_path: Path) -> None:
    port = str(free_port())
    master = locust(
        [*master_args(envoy, "run", 6), "--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", port,
         "--expect-workers", "2"],
        tmp_path / "master",
    )  # fmt: skip
    workers = [
        locust(["--worker", "--master-host", "127.0.0.1", "--master-port", port], tmp_path / f"gen-{name}")
        for name in ("a", "b")
    ]
    try:
        finish(master, *workers)
    finally:
        finish(master, *workers)
    log = (tmp_path / "master" / "locust.log").read_text()
    assert master.returncode == 0, log[-3000:]
    folder = RunFolder(tmp_path / "master" / "run")
    engine = folder.read_engine()
    assert engine is not None and engine.distributed and len(engine.workers) == 2, log[-3000:]
    history = read_history(folder.history_dir)
    assert engine.requests is not None and engine.requests > 0
    assert len(history) == engine.requests == sum(w.rows for w in engine.workers)
    for worker in engine.workers:
        assert worker.delivery is Delivery.SHIPPED and worker.final_report and not worker.missing
        assert worker.rows == worker.requests and worker.rows > 0 and worker.rows_elsewhere == 0
        assert worker.clock_uncertainty_ms is not None and worker.clock_uncertainty_ms < 50
    assert set(history["worker"]) == {w.worker for w in engine.workers}
    for name in ("a", "b"):  # nothing of the history stayed on the "generator machines"
        assert not list((tmp_path / f"gen-{name}").rglob("*.parquet"))
    assert completeness(folder.path) == (
        "pass",
        f"complete: {len(history)} requests recorded, as many as the load engine counted",
    )


def test_a_worker_killed_mid_run_makes_the_run_incomplete(envoy: DirectEnvoy, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    port = str(free_port())
    processes = [
        "--processes",
        "2",
        "--master-bind-host",
        "127.0.0.1",
        "--master-bind-port",
        port,
        "--master-port",
        port,
    ]
    master = locust([*master_args(envoy, str(run_dir), 12), *processes], tmp_path)
    try:
        deadline = time.monotonic() + 30
        while not list((run_dir / "history").glob("part-*.parquet")):  # the load is on
            assert time.monotonic() < deadline and master.poll() is None, (tmp_path / "locust.log").read_text()
            time.sleep(0.1)  # poll interval
        children = psutil.Process(master.pid).children()
        assert len(children) == 2
        children[0].send_signal(signal.SIGKILL)
        finish(master)
    finally:
        finish(master)
    engine = RunFolder(run_dir).read_engine()
    assert engine is not None and len(engine.workers) == 2
    killed = [w for w in engine.workers if w.pid == children[0].pid]
    assert len(killed) == 1 and not killed[0].final_report
    status, summary = completeness(run_dir)
    assert status == "unknown", summary
    # Locust marks it missing ~4 s after its last heartbeat; if the run ended first it simply never reported
    gap = "went missing" if killed[0].missing else "sent no final report"
    assert f"worker {killed[0].worker} on" in summary and gap in summary
