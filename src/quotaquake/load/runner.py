"""Run a scenario with Locust headless as a subprocess, with progress on the terminal (for ``quotaquake run``).

``run_locust`` checks the safety guard, starts ``locust -f <scenario> --headless ...`` in its own session
(so Ctrl-C or an error stops Locust and all its worker processes), shows elapsed time, requests, current
rate and failures from Locust's live CSV while it runs, and returns the final counts.

Locust's output goes to ``<run_dir>/locust.log``; its stats to ``<run_dir>/locust_*.csv`` and
``locust.html``; the history to ``<run_dir>/history/``.
"""

from __future__ import annotations

import contextlib
import csv
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from quotaquake.errors import UsageError
from quotaquake.load.runinfo import read_totals
from quotaquake.load.safety import check_duration, check_rate, check_target
from quotaquake.stack.state import STATE_ENV_VAR, read_state

PER_PROCESS_RATE = 4000.0
"""Req/s one Locust process is given at most: ~80 % of the ~5K req/s one process reached on this machine."""

STOP_TIMEOUT_S = 5
"""Locust ``--stop-timeout``: in-flight requests get this long to finish (and be recorded) at the end."""

QUIT_GRACE_S = 30.0
"""After SIGTERM, how long Locust may take to write its reports before it is killed."""

POLL_S = 0.5


@dataclass(frozen=True)
class LocustResult:
    """Outcome of one Locust run: its exit code and the counts of its final ``Aggregated`` stats row."""

    exit_code: int
    request_count: int
    failure_count: int
    interrupted: bool
    log_path: Path


@dataclass(frozen=True)
class LiveStats:
    requests: int
    failures: int
    rate: float  # req/s as Locust reports it (recent window)


def choose_processes(rate: float, cpus: int | None = None) -> int:
    """Locust processes for ``rate`` req/s: ``ceil(rate / PER_PROCESS_RATE)``, between 1 and the CPU count."""
    available = cpus if cpus is not None else (os.cpu_count() or 1)
    return max(1, min(available, math.ceil(rate / PER_PROCESS_RATE)))


def locust_command(
    *,
    scenario: Path,
    state_path: Path,
    run_dir: Path,
    rate: float,
    duration_s: float,
    processes: int,
    extra_args: Sequence[str] = (),
) -> list[str]:
    """The Locust command line; one process runs without ``--processes`` (no master/worker overhead)."""
    command = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(scenario),
        "--headless",
        "--run-time",
        f"{max(1, round(duration_s))}s",
        "--stop-timeout",
        str(STOP_TIMEOUT_S),
        "--csv",
        str(run_dir / "locust"),
        "--html",
        str(run_dir / "locust.html"),
        "--qq-state",
        str(state_path),
        "--qq-out",
        str(run_dir),
        "--qq-rate",
        f"{rate:g}",
    ]
    if processes > 1:
        command += ["--processes", str(processes)]
    return [*command, *extra_args]


def read_live_stats(stats_csv: Path) -> LiveStats | None:
    """The ``Aggregated`` row of Locust's ``<prefix>_stats.csv`` (``None`` while absent or half written)."""
    try:
        with stats_csv.open(newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                if row.get("Name") == "Aggregated":
                    return LiveStats(int(row["Request Count"]), int(row["Failure Count"]), float(row["Requests/s"]))
    except (OSError, KeyError, ValueError):
        return None
    return None


def check_run(*, scenario: Path, state_path: Path, rate: float, duration_s: float, allow_hosts: Sequence[str]) -> None:
    """Safety guard and input checks before anything starts (``UsageError`` on failure)."""
    check_rate(rate)
    check_duration(duration_s)
    if not scenario.is_file():
        raise UsageError(f"{scenario}: scenario file not found")
    check_target(read_state(state_path).require_endpoints().gateway, allow_hosts)


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM Locust if still running (it writes its reports and stops its workers), let its worker
    processes finish their last history flush, then SIGKILL whatever is left after ``QUIT_GRACE_S``."""
    deadline = time.monotonic() + QUIT_GRACE_S
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=QUIT_GRACE_S)
    while group_alive(process.pid) and time.monotonic() < deadline:
        time.sleep(0.05)  # poll interval while worker processes exit
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _await_exit(process: subprocess.Popen[bytes], stats_csv: Path, duration_s: float, console: Console) -> None:
    columns = (TextColumn("[bold]locust"), BarColumn(), TimeElapsedColumn(), TextColumn("{task.description}"))
    with Progress(*columns, console=console, transient=False) as progress:
        bar = progress.add_task("starting", total=duration_s)
        started = time.monotonic()
        while process.poll() is None:
            live = read_live_stats(stats_csv)
            text = f"{live.requests:,} req  {live.rate:,.0f} req/s  {live.failures:,} failed" if live else "starting"
            progress.update(bar, completed=min(duration_s, time.monotonic() - started), description=text)
            try:
                process.wait(timeout=POLL_S)
            except subprocess.TimeoutExpired:
                continue
        progress.update(bar, completed=duration_s)


def run_locust(
    *,
    scenario: Path,
    state_path: Path,
    run_dir: Path,
    rate: float,
    duration_s: float,
    processes: int,
    extra_args: Sequence[str] = (),
    allow_hosts: Sequence[str] = (),
    console: Console | None = None,
) -> LocustResult:
    """Run ``scenario`` headless at ``rate`` req/s for ``duration_s`` seconds and return its counts.

    Stops Locust (and its workers) on Ctrl-C or any error; ``interrupted`` is then True and the
    ``KeyboardInterrupt`` is not re-raised, so the caller can still tear down and verify.
    """
    check_run(scenario=scenario, state_path=state_path, rate=rate, duration_s=duration_s, allow_hosts=allow_hosts)
    if allow_hosts:
        extra_args = [*extra_args, "--qq-allow-host", ",".join(allow_hosts)]
    run_dir.mkdir(parents=True, exist_ok=True)
    command = locust_command(
        scenario=scenario,
        state_path=state_path,
        run_dir=run_dir,
        rate=rate,
        duration_s=duration_s,
        processes=processes,
        extra_args=extra_args,
    )
    log_path = run_dir / "locust.log"
    env = {**os.environ, STATE_ENV_VAR: str(state_path)}
    interrupted = False
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            _await_exit(process, run_dir / "locust_stats.csv", duration_s, console or Console(stderr=True))
        except KeyboardInterrupt:
            interrupted = True
        finally:
            _stop_group(process)
    return LocustResult(process.returncode, *final_counts(run_dir), interrupted, log_path)


def final_counts(run_dir: Path) -> tuple[int, int]:
    """(requests, failures) from ``locust_totals.json``; Locust's CSV (possibly a second stale) if absent."""
    totals = read_totals(run_dir)
    if totals is not None:
        return totals.requests, totals.failures
    live = read_live_stats(run_dir / "locust_stats.csv") or LiveStats(0, 0, 0.0)
    return live.requests, live.failures
