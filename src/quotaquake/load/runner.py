"""Run a scenario with Locust headless as a subprocess, with progress on the terminal (for ``quotaquake run``).

``run_locust`` starts ``locust -f <scenario> --headless ...`` for a validated ``RunContext`` in its own
session (so Ctrl-C or an error stops Locust and all its worker processes), shows elapsed time, requests,
current rate, 429s (over quota), 401s (unknown key) and errors (Locust's failures: 5xx, other 4xx, no
response) from Locust's live CSV while it runs, and returns the final counts. The scenario reports 401
and 429 answers under names of their own (``/identify [429 over quota]``, ``quotaquake.load.users``):
the progress sums the rows named ``<path> [<status> ...]``.

Locust writes into the run folder: its output to ``RunFolder.locust_log``, its stats to the
``locust_*.csv`` files and ``locust.html``, the history to ``history/`` and its own record to
``engine.json``. ``--qq-orchestrated`` tells the scenario that ``quotaquake run`` owns ``run.json``.

Stopping (``_stop_group``): Ctrl-C or SIGTERM of ``quotaquake run`` (or an error) sends SIGTERM to the
Locust master only; the scenario stops like the end of the run (``quotaquake.load.stopping``: users finish
their requests, workers report, reports are written). Signalling the whole group would make workers quit
without their final report. Worker processes still alive ``QUIT_GRACE_S`` after that get SIGTERM, then
SIGKILL. A second Ctrl-C or SIGTERM while stopping kills the group at once.

Reproducible configuration: Locust also reads ``LOCUST_*`` environment variables and, by itself,
``~/.locust.conf``, ``./locust.conf`` and ``./pyproject.toml`` ``[tool.locust]``; any of them could change
the run without appearing in its command line (``run.json`` ``command``). ``quotaquake run`` therefore
*isolates* Locust from them: the child gets no ``LOCUST_*`` variable (``locust_env``) and the scenario
drops Locust's default config files for an orchestrated run (``quotaquake.load.hooks``). Isolation rather
than refusal, because a user's Locust files for other projects have no business failing a run; rather than
mere recording, because ``run.json``'s command line must be the whole story. Everything Locust ran with is
still recorded with its source in ``engine.json`` (``settings``); a ``--config FILE`` passed explicitly
after the options is honoured and recorded.
"""

from __future__ import annotations

import contextlib
import csv
import math
import os
import re
import signal
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from quotaquake.context import RunContext
from quotaquake.runfolder import RunFolder
from quotaquake.stack.lock import record_process
from quotaquake.stack.processes import free_port, marker_env
from quotaquake.stack.state import STATE_ENV_VAR

PER_PROCESS_RATE = 4000.0
"""Req/s one Locust process is given at most: ~80 % of the ~5K req/s one process reached on this machine."""

QUIT_GRACE_S = 60.0
"""After SIGTERM, how long Locust may take to stop and write its reports before its group is signalled: the
drain may take twice the stop timeout (``quotaquake.load.stopping``, 11 s by default) plus a margin."""

WORKER_GRACE_S = 5.0
"""After the master exited, how long its worker processes may take to finish before they get SIGTERM."""

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
    """What Locust's live statistics say so far (all counts since the start)."""

    requests: int
    failures: int  # Locust's failures: 5xx, other 4xx, no response (401 and 429 are not failures)
    rate: float  # req/s as Locust reports it (recent window)
    over_quota: int = 0  # 429 answers
    unknown_key: int = 0  # 401 answers

    def line(self) -> str:
        """The progress line: ``1,234 req  50 req/s  429: 10  401: 2  errors: 0``."""
        return (
            f"{self.requests:,} req  {self.rate:,.0f} req/s  429: {self.over_quota:,}  "
            f"401: {self.unknown_key:,}  errors: {self.failures:,}"
        )


NAMED_STATUS = re.compile(r" \[(\d{3})\b[^\]]*\]$")
"""A statistics row of answers named by status (``/identify [429 over quota]``): the status."""


def choose_processes(rate: float, cpus: int | None = None) -> int:
    """Locust processes for ``rate`` req/s: ``ceil(rate / PER_PROCESS_RATE)``, between 1 and the CPU count."""
    available = cpus if cpus is not None else (os.cpu_count() or 1)
    return max(1, min(available, math.ceil(rate / PER_PROCESS_RATE)))


def locust_command(context: RunContext) -> list[str]:
    """The Locust command line; one process runs without ``--processes`` (no master/worker overhead).

    No ``--stop-timeout``: the scenario sets one from the request timeout (``--qq-timeout``), so requests in
    flight at the end are recorded; one given in the extra arguments wins."""
    request, folder = context.request, context.folder
    command = [
        sys.executable, "-m", "locust", "-f", str(request.scenario), "--headless",
        "--run-time", f"{max(1, round(request.duration_s))}s",
        "--csv", str(folder.locust_csv_prefix), "--html", str(folder.locust_html),
        "--qq-state", str(context.state_path), "--qq-out", str(folder.path), "--qq-rate", f"{request.rate:g}",
        "--qq-orchestrated",
    ]  # fmt: skip
    if request.allow_hosts:
        command += ["--qq-allow-host", ",".join(request.allow_hosts)]
    if context.processes > 1:  # master and forked workers talk over a loopback port of their own
        port = str(free_port())
        command += ["--processes", str(context.processes), "--master-bind-host", "127.0.0.1",
                    "--master-bind-port", port, "--master-port", port]  # fmt: skip
    return [*command, *request.locust_args]


def read_live_stats(stats_csv: Path) -> LiveStats | None:
    """The ``Aggregated`` row of Locust's ``<prefix>_stats.csv`` with the 429 and 401 rows summed (``None``
    while absent or half written)."""
    by_status: dict[int, int] = {}
    try:
        with stats_csv.open(newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                name = row.get("Name") or ""
                if name == "Aggregated":
                    total = LiveStats(int(row["Request Count"]), int(row["Failure Count"]), float(row["Requests/s"]))
                    return LiveStats(total.requests, total.failures, total.rate, by_status.get(429, 0),
                                     by_status.get(401, 0))  # fmt: skip
                named = NAMED_STATUS.search(name)
                if named is not None:
                    status = int(named.group(1))
                    by_status[status] = by_status.get(status, 0) + int(row["Request Count"])
    except (OSError, KeyError, ValueError):
        return None
    return None


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    """Stop Locust (module docstring): SIGTERM to the master, wait for it and then for its worker
    processes, SIGTERM and then SIGKILL whatever is left. A KeyboardInterrupt meanwhile kills at once."""
    try:
        _stop_master(process)
        _await_group(process.pid, WORKER_GRACE_S)
        _signal_group(process.pid, signal.SIGTERM)  # workers left (master killed?): Locust's own stop
        _await_group(process.pid, WORKER_GRACE_S)
    finally:
        _signal_group(process.pid, signal.SIGKILL)
        process.wait()


def _stop_master(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=QUIT_GRACE_S)


def _await_group(pgid: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.05)  # poll interval while worker processes exit


def _signal_group(pgid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signum)


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """While Locust runs, SIGTERM of this process acts as Ctrl-C does (``KeyboardInterrupt``): Locust is
    stopped gracefully and the caller still tears down. Only in the main thread, where Python runs handlers."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def locust_env(context: RunContext) -> tuple[dict[str, str], list[str]]:
    """The environment of the Locust process: this one without ``LOCUST_*`` variables (module docstring),
    with the state file's path; returns it and the names it dropped."""
    dropped = sorted(name for name in os.environ if name.startswith("LOCUST_"))
    env = {name: value for name, value in os.environ.items() if not name.startswith("LOCUST_")}
    env[STATE_ENV_VAR] = str(context.state_path)
    return env, dropped


def ignored_config_files(cwd: Path, home: Path) -> list[Path]:
    """Locust's default config files that exist here: ``quotaquake run`` ignores them (module docstring)."""
    candidates = [home / ".locust.conf", cwd / "locust.conf"]
    pyproject = cwd / "pyproject.toml"
    with contextlib.suppress(OSError, tomllib.TOMLDecodeError):
        if "locust" in tomllib.loads(pyproject.read_text(encoding="utf-8")).get("tool", {}):
            candidates.append(pyproject)
    return [path for path in candidates if path.is_file()]


def _await_exit(process: subprocess.Popen[bytes], stats_csv: Path, duration_s: float, console: Console) -> None:
    columns = (TextColumn("[bold]locust"), BarColumn(), TimeElapsedColumn(), TextColumn("{task.description}"))
    with Progress(*columns, console=console, transient=False) as progress:
        bar = progress.add_task("starting", total=duration_s)
        started = time.monotonic()
        while process.poll() is None:
            live = read_live_stats(stats_csv)
            text = live.line() if live else "starting"
            progress.update(bar, completed=min(duration_s, time.monotonic() - started), description=text)
            try:
                process.wait(timeout=POLL_S)
            except subprocess.TimeoutExpired:
                continue
        progress.update(bar, completed=duration_s)


def run_locust(context: RunContext) -> LocustResult:
    """Run the context's scenario headless at its rate for its duration and return its counts.

    Stops Locust (and its workers) on Ctrl-C, SIGTERM or any error; ``interrupted`` is then True and the
    ``KeyboardInterrupt`` is not re-raised, so the caller can still tear down and verify.
    """
    folder = context.folder
    command = locust_command(context)
    env, dropped = locust_env(context)
    for name in dropped:
        context.console.print(f"[yellow]not passed to Locust: ${name} (the run's command line is the whole story)")
    for path in ignored_config_files(Path.cwd(), Path.home()):
        context.console.print(f"[yellow]not read by Locust: {path} (the run's command line is the whole story)")
    env.update(marker_env(context.state.stack_id, context.state_path))  # `stack down` finds Locust by them
    interrupted = False
    with sigterm_interrupts(), folder.locust_log.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        record_process(context.state_path, "locust", "locust", process.pid)
        try:
            _await_exit(process, folder.locust_stats_csv, context.request.duration_s, context.console)
        except KeyboardInterrupt:
            interrupted = True
        finally:
            _stop_group(process)
    return LocustResult(process.returncode, *final_counts(folder), interrupted, folder.locust_log)


def final_counts(folder: RunFolder) -> tuple[int, int]:
    """(requests, failures) from ``engine.json``; Locust's CSV (possibly a second stale) if absent."""
    engine = folder.read_engine()
    if engine is not None and engine.requests is not None:
        return engine.requests, engine.failures or 0
    live = read_live_stats(folder.locust_stats_csv) or LiveStats(0, 0, 0.0)
    return live.requests, live.failures
