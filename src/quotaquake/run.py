"""``quotaquake run``: record a run (stack, load, optional chaos), then check it and render the report.

The orchestration only records: it writes the run folder (``quotaquake.record``) and hands it to
verification, which decides. Whatever this command starts (stack, Locust, an experiment) is stopped
again, on success, on failure and on Ctrl-C.
"""

from __future__ import annotations

import re
import secrets
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

from quotaquake.chaos.runner import ChaosRun
from quotaquake.errors import UsageError
from quotaquake.policy import load_policy
from quotaquake.record import RunInfo, read_run_info, write_run_info
from quotaquake.stack import processes
from quotaquake.stack.local import LocalProvider
from quotaquake.stack.state import StackState, read_state

DEFAULT_REPLICAS = 3
SCRAPE_SETTLE_S = 2.5  # Prometheus scrapes every 1 s; wait for the last counters before the snapshot
CHAOS_GRACE_S = 120.0  # how long an experiment may outlive the load before it is interrupted


@dataclass(frozen=True)
class RunRequest:
    scenario: Path
    rate: float
    duration_s: float
    replicas: int | None = None  # None: whatever is up, else 3
    defect: str | None = None
    out: Path | None = None
    chaos: Path | None = None
    chaos_delay_s: float = 5.0
    state_path: Path = Path(".quotaquake/stack.json")
    policy_path: Path = Path("stack/policy.yaml")
    thresholds: Path | None = None
    processes: int | None = None
    allow_hosts: tuple[str, ...] = ()
    locust_args: tuple[str, ...] = ()


_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s?)?$")


def parse_duration(text: str) -> float:
    """``90``, ``90s``, ``2m``, ``1h30m`` -> seconds; UsageError naming --duration otherwise."""
    match = _DURATION.match(text.strip())
    if not text.strip() or match is None or not any(match.groups()):
        raise UsageError(f"--duration: '{text}' is not a duration (examples: 30s, 2m, 1h30m)")
    hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds


def new_run_id(scenario: Path) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{scenario.stem}-{secrets.token_hex(2)}"


def validate(request: RunRequest) -> None:
    from quotaquake.load.safety import check_duration, check_rate

    if not request.scenario.is_file():
        raise UsageError(f"--scenario: {request.scenario} does not exist")
    if request.chaos is not None and not request.chaos.is_file():
        raise UsageError(f"--chaos: {request.chaos} does not exist")
    check_rate(request.rate)
    check_duration(request.duration_s)
    load_policy(request.policy_path)


def acquire_stack(request: RunRequest, console: Console) -> tuple[StackState, LocalProvider | None]:
    """Use the running stack named by the state file, or start one (returned provider: stop it after)."""
    if request.state_path.exists():
        state = read_state(request.state_path)
        if state.ready and all(processes.is_alive(s) for s in state.services.values() if s.pid is not None):
            wrong_replicas = request.replicas is not None and request.replicas != state.replicas
            if request.defect != state.defect or (state.provider == "local" and wrong_replicas):
                raise UsageError(
                    f"a stack is already up with defect={state.defect} replicas={state.replicas}; "
                    "stop it (`quotaquake stack down`) or run without --defect/--replicas"
                )
            console.print(f"using the running stack {state.stack_id} ({state.provider})")
            return state, None
    provider = LocalProvider(
        state_path=request.state_path,
        work_root=request.state_path.parent,
        policy_path=request.policy_path,
        replicas=DEFAULT_REPLICAS if request.replicas is None else request.replicas,
        defect=request.defect,
    )
    with console.status("starting the local stack ..."):
        state = provider.up()
    console.print(f"started stack {state.stack_id} ({state.replicas} replicas)")
    return state, provider


def record_run(request: RunRequest, console: Console) -> Path:
    """Run the load (and chaos) against a stack and write the run folder; returns its path."""
    from quotaquake.load.runner import choose_processes
    from quotaquake.load.safety import check_target

    validate(request)
    run_id = new_run_id(request.scenario)
    run_dir = (request.out or Path("reports") / run_id).resolve()
    state, started = acquire_stack(request, console)
    if state.defect:
        console.print(f"[bold red]DEFECT SEEDED: {state.defect}[/]")
    try:
        check_target(state.require_endpoints().gateway, request.allow_hosts)
        n_processes = request.processes or choose_processes(request.rate)
        info = RunInfo(
            run_id=run_id,
            scenario=str(request.scenario),
            target_rate=request.rate,
            duration_s=request.duration_s,
            started_at=datetime.now(UTC),
            provider=state.provider,
            replicas=state.replicas,
            defect=state.defect,
            model=state.model,
            policy=load_policy(Path(state.policy_file or request.policy_path)),
            command=["quotaquake", *sys.argv[1:]],
            locust_processes=n_processes,
        )
        write_run_info(run_dir, info)
        drive_load(request, state, run_dir, n_processes, console)
        snapshot_server_side(state, run_dir, info)
    finally:
        if started is not None:
            with console.status("stopping the stack ..."):
                started.down(state)
    return run_dir


def drive_load(request: RunRequest, state: StackState, run_dir: Path, n_processes: int, console: Console) -> None:
    from quotaquake.load.runner import run_locust

    chaos = None
    if request.chaos is not None:
        chaos = ChaosRun.start(
            request.chaos, state_path=Path(state.state_file), run_dir=run_dir, delay_s=request.chaos_delay_s
        )
        console.print(f"chaos: {request.chaos.name} starts after {request.chaos_delay_s:.0f} s of load")
    try:
        result = run_locust(
            scenario=request.scenario,
            state_path=Path(state.state_file),
            run_dir=run_dir,
            rate=request.rate,
            duration_s=request.duration_s,
            processes=n_processes,
            extra_args=request.locust_args,
            allow_hosts=request.allow_hosts,
        )
        console.print(f"locust: {result.request_count} requests, exit code {result.exit_code}")
        if result.interrupted:  # Ctrl-C: stop (the finally blocks stop chaos and the stack), keep the folder
            raise KeyboardInterrupt
        if chaos is not None:
            finish_chaos(chaos, run_dir, console)
            chaos = None
    finally:
        if chaos is not None:
            chaos.terminate()


def finish_chaos(chaos: ChaosRun, run_dir: Path, console: Console) -> None:
    """Wait for the experiment (its rollbacks restore the stack), then turn its journal into faults.json."""
    from quotaquake.chaos.journal import fault_windows, write_faults

    code = chaos.wait(CHAOS_GRACE_S)
    windows = fault_windows(chaos.journal_path) if chaos.started() and chaos.journal_path.exists() else []
    write_faults(run_dir, windows)
    verdict = {0: "steady state held", 1: "deviated or failed"}.get(code, "did not run")
    console.print(f"chaos: experiment {verdict} (exit {code}); {len(windows)} fault window(s)")


def snapshot_server_side(state: StackState, run_dir: Path, info: RunInfo) -> None:
    """Let Prometheus scrape the last counters, then store what it saw over the run window."""
    from quotaquake.record import PROMETHEUS_FILE
    from quotaquake.verify.prometheus import snapshot_prometheus

    prometheus = state.require_endpoints().prometheus
    if prometheus is None:
        return
    time.sleep(SCRAPE_SETTLE_S)
    updated = read_run_info(run_dir)
    end = time.time()
    snapshot = snapshot_prometheus(prometheus, info.started_at.timestamp(), end)
    (run_dir / PROMETHEUS_FILE).write_text(snapshot.model_dump_json(indent=2))
    if updated.ended_at is None:
        updated.ended_at = datetime.now(UTC)
        write_run_info(run_dir, updated)


def verify_and_report(run_dir: Path, thresholds: Path | None, console: Console) -> int:
    """Check a run folder, render index.html + junit.xml, print the verdicts; return the exit code."""
    from quotaquake.report import render_report
    from quotaquake.verify.engine import verify_run

    if not (run_dir / "run.json").is_file():
        raise UsageError(f"{run_dir}: not a run folder (no run.json)")
    outcome = verify_run(run_dir, thresholds)
    report = render_report(run_dir, outcome)
    print_verdicts(outcome, console)
    console.print(f"report: {report}")
    return int(outcome.exit_code)


STATUS_STYLE = {"pass": "green", "fail": "bold red", "unknown": "yellow"}


def print_verdicts(outcome: object, console: Console) -> None:
    table = Table(title="verdicts")
    table.add_column("check")
    table.add_column("status")
    table.add_column("summary", overflow="fold")
    for verdict in outcome.verdicts:  # type: ignore[attr-defined]
        style = STATUS_STYLE.get(str(verdict.status), "")
        table.add_row(verdict.check, f"[{style}]{verdict.status}[/]", verdict.summary)
    console.print(table)
