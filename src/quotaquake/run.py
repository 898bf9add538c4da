"""``quotaquake run``: record a run (stack, load, optional chaos), then check it and render the report.

The orchestration only records: it writes the run folder (``quotaquake.runfolder``) and hands it to
verification, which decides. Whatever this command starts (stack, Locust, an experiment) is stopped
again, on success, on failure and on Ctrl-C.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from quotaquake.context import RunContext, RunRequest
from quotaquake.errors import UsageError
from quotaquake.policy import Policy, load_policy
from quotaquake.runfolder import RunFolder
from quotaquake.runfolder.models import PrometheusSnapshot, RunInfo
from quotaquake.stack import processes
from quotaquake.stack.provider import ProviderOptions
from quotaquake.stack.registry import provider_named
from quotaquake.stack.state import RedisTopology, StackState, read_state
from quotaquake.verify.thresholds import load_thresholds
from quotaquake.verify.verdict import Outcome

if TYPE_CHECKING:
    from quotaquake.chaos.runner import ChaosRun
    from quotaquake.load.k6 import K6Result
    from quotaquake.load.runner import LocustResult

DEFAULT_REPLICAS = 3
SCRAPE_SETTLE_S = 2.5  # Prometheus scrapes every 1 s; wait for the last counters before the snapshot
CHAOS_GRACE_S = 120.0  # how long an experiment may outlive the load before it is interrupted


def new_run_id(scenario: Path) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{scenario.stem}-{secrets.token_hex(2)}"


def running_stack(request: RunRequest) -> StackState | None:
    """The stack the state file names when every process of it is alive, else ``None``.

    A stack that differs from what the request asks for (defect, replicas) is refused: the run would not
    test what the user asked.
    """
    if not request.state_path.exists():
        return None
    state = read_state(request.state_path)
    if not state.ready or not all(processes.is_alive(s) for s in state.services.values() if s.pid is not None):
        return None
    wrong_replicas = request.replicas is not None and request.replicas != state.replicas
    wrong_redis = request.redis is not None and request.redis != state.redis
    if request.defect != state.defect or (state.provider == "local" and (wrong_replicas or wrong_redis)):
        raise UsageError(
            f"a stack is already up with defect={state.defect} replicas={state.replicas} redis={state.redis}; "
            "stop it (`quotaquake stack down`) or run without --defect/--replicas/--redis"
        )
    return state


@contextmanager
def acquired_stack(request: RunRequest, console: Console, folder: RunFolder) -> Iterator[StackState]:
    """The running stack, or one started for this run through the provider registry and stopped after
    (its service logs kept in the run folder first: its own folders go with it)."""
    state = running_stack(request)
    if state is not None:
        console.print(f"using the running stack {state.stack_id} ({state.provider})")
        yield state
        return
    options = ProviderOptions(
        state_path=request.state_path,
        policy_path=request.policy_path,
        replicas=DEFAULT_REPLICAS if request.replicas is None else request.replicas,
        defect=request.defect,
        redis=redis_for(request),
        target=request.target,
        allow_hosts=request.allow_hosts,
    )
    provider = provider_named(request.provider, options)
    with console.status(f"starting the {request.provider} stack ..."):
        state = provider.up()
    console.print(f"started stack {state.stack_id} ({state.provider}, {state.replicas} replicas)")
    try:
        yield state
    finally:
        with console.status("stopping the stack ..."):
            keep_service_logs(state, folder)
            provider.down(state)


def keep_service_logs(state: StackState, folder: RunFolder) -> None:
    """Copy every service log of ``state`` (as the state file names them now: a restart may have moved one)
    into ``stack-logs/`` of a created run folder; a log that cannot be read is left out."""
    if not folder.path.is_dir():
        return
    try:
        current = read_state(Path(state.state_file))
    except UsageError:  # gone or damaged (a ConfigError too): the logs as the run started them
        current = state
    for name, record in current.services.items():
        if record.log and Path(record.log).is_file():
            folder.stack_logs_dir.mkdir(exist_ok=True)
            with contextlib.suppress(OSError):
                shutil.copyfile(record.log, folder.stack_logs_dir / f"{name}.log")


def redis_for(request: RunRequest) -> RedisTopology:
    """``--redis``, else the simplest Redis the experiment needs (a failover: sentinel), else single."""
    if request.redis is not None:
        return request.redis
    if request.chaos is not None:
        from quotaquake.chaos.preflight import needed_redis
        from quotaquake.chaos.runner import validate_experiment_file

        fitting = needed_redis(validate_experiment_file(request.chaos))
        if fitting:
            return fitting[0]
    return "single"


def stack_policy(state: StackState, request: RunRequest) -> Policy:
    return load_policy(Path(state.policy_file) if state.policy_file else request.policy_path)


def record_run(request: RunRequest, console: Console) -> RunFolder:
    """Validate, run the load (and chaos) against a stack and write the run folder; returns it."""
    from quotaquake.gate.abort import aborting
    from quotaquake.load.host import sampling_host
    from quotaquake.load.runner import choose_processes
    from quotaquake.load.safety import check_target
    from quotaquake.preflight import check_run_request

    check_run_request(request)  # every input (thresholds, scenario, experiment, Locust's options) first
    run_id = new_run_id(request.scenario)
    folder = RunFolder((request.out or Path("reports") / run_id).resolve())
    folder.check_creatable()
    with acquired_stack(request, console, folder) as state:
        folder.create()
        if state.defect:
            console.print(f"[bold red]DEFECT SEEDED: {state.defect}[/]")
        check_target(state.require_endpoints().gateway, (*request.allow_hosts, *state.allow_hosts))
        context = RunContext(
            request=request,
            run_id=run_id,
            folder=folder,
            state=state,
            policy=stack_policy(state, request),
            processes=1 if request.engine == "k6" else request.processes or choose_processes(request.rate),
            console=console,
        )
        info = run_info(context)
        folder.write_info(info)
        info = established_initial_state(context, info)
        # host.jsonl: the machine while the load runs; abortOnFail thresholds judged meanwhile (gate.abort)
        with sampling_host(folder, context.state_path), aborting(context) as aborter:
            exit_code = drive_load(context)
        aborted = None if aborter is None else aborter.record
        engine = folder.read_engine()
        info = info.model_copy(
            update={
                "ended_at": datetime.now(UTC),
                "load_exit_code": exit_code,
                "aborted": aborted,
                "engine_config_files": engine.config_files if engine is not None else [],
            }
        )
        folder.write_info(info)
        snapshot_server_side(context, info)
    return folder


def run_info(context: RunContext) -> RunInfo:
    request, state = context.request, context.state
    return RunInfo(
        **state.target_facts(),
        run_id=context.run_id,
        scenario=str(request.scenario),
        target_rate=request.rate,
        duration_s=request.duration_s,
        started_at=datetime.now(UTC),
        policy=context.policy,
        command=["quotaquake", *sys.argv[1:]],
        locust_processes=context.processes,
        config_file=str(request.config_file) if request.config_file else None,
        settings=list(request.settings),
    )


def established_initial_state(context: RunContext, info: RunInfo) -> RunInfo:
    """Reset the run's consumers' quota state where the provider can, and record it in ``run.json``."""
    from quotaquake.load.initial_state import reset_initial_state

    established = reset_initial_state(context.state)
    context.console.print(established.notes[0])
    info = established.apply(info)
    context.folder.write_info(info)
    return info


def drive_load(context: RunContext) -> int:
    """Run the load (and the experiment beside it); returns the load engine's exit code."""
    from quotaquake.chaos.runner import ChaosRun

    request = context.request
    chaos = None
    if request.chaos is not None:
        chaos = ChaosRun.start(
            request.chaos, state_path=context.state_path, folder=context.folder, delay_s=request.chaos_delay_s
        )
        context.console.print(f"chaos: {request.chaos.name} starts after {request.chaos_delay_s:.0f} s of load")
    try:
        result = run_engine(context)
        context.console.print(f"{request.engine}: {result.request_count} requests, exit code {result.exit_code}")
        if result.interrupted:  # Ctrl-C: stop (the finally blocks stop chaos and the stack), keep the folder
            raise KeyboardInterrupt
        if chaos is not None:
            finish_chaos(chaos, context)
            chaos = None
        return result.exit_code
    finally:
        if chaos is not None:
            chaos.terminate()


def run_engine(context: RunContext) -> LocustResult | K6Result:
    """The load, by the engine the request names (Locust by default)."""
    if context.request.engine == "k6":
        from quotaquake.load.k6 import run_k6

        return run_k6(context)
    from quotaquake.load.runner import run_locust

    return run_locust(context)


def finish_chaos(chaos: ChaosRun, context: RunContext) -> None:
    """Wait for the experiment (its rollbacks restore the stack), then turn its journal into faults.json."""
    from quotaquake.chaos.journal import fault_windows

    code = chaos.wait(CHAOS_GRACE_S)
    journal = context.folder.journal_file
    windows = fault_windows(journal, context.policy, context.state.kong) if chaos.started() and journal.exists() else []
    context.folder.write_faults(windows)
    verdict = {0: "steady state held", 1: "deviated or failed"}.get(code, "did not run")
    context.console.print(f"chaos: experiment {verdict} (exit {code}); {len(windows)} fault window(s)")


def snapshot_server_side(context: RunContext, info: RunInfo) -> None:
    """Let Prometheus scrape the last counters, then store what it saw over the run window."""
    prometheus = context.state.require_endpoints().prometheus
    if prometheus is None:
        return
    time.sleep(SCRAPE_SETTLE_S)
    allowed = (*context.request.allow_hosts, *context.state.allow_hosts)
    snapshot = server_snapshot(info.model, prometheus, info.started_at.timestamp(), time.time(), allowed)
    context.folder.write_prometheus(snapshot)


def server_snapshot(
    model: str, url: str, start: float, end: float, allow_hosts: Sequence[str] = ()
) -> PrometheusSnapshot:
    """The target's own series: Kong's prometheus plugin for a Kong target, else the embedded stack's.
    The loopback guard refuses a Prometheus on another host unless it is in ``allow_hosts``."""
    from quotaquake.load.safety import check_target
    from quotaquake.prometheus import snapshot_prometheus
    from quotaquake.prometheus_kong import snapshot_kong

    check_target(url, allow_hosts, what="prometheus")
    if model == "kong":
        return snapshot_kong(url, start, end)
    return snapshot_prometheus(url, start, end, allow_hosts=allow_hosts)


def complete_manual_run(folder: RunFolder, journal: Path | None, state_path: Path | None, console: Console) -> None:
    """For a run recorded by hand (``locust -f`` with ``chaos run`` beside it): bring the experiment's journal
    (and the probe ledger beside it) into the folder as fault windows, and take the Prometheus snapshot
    over the run's window from the stack it ran against, if the folder has none. ``quotaquake verify`` is
    then the orchestrating process of that folder."""
    if journal is not None or (not folder.had_experiment() and folder.journal_file.is_file()):
        link_journal(folder, journal or folder.journal_file, console)
    if folder.read_prometheus() is None and state_path is not None and state_path.is_file():
        snapshot_after_the_fact(folder, read_state(state_path), console)


def link_journal(folder: RunFolder, journal: Path, console: Console) -> None:
    from quotaquake.chaos.journal import fault_windows

    info = folder.read_info()
    windows = fault_windows(journal, info.policy, info.kong)
    if journal.resolve() != folder.journal_file.resolve():
        folder.chaos_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(journal, folder.journal_file)
        ledger = journal.parent / folder.probe_ledger.name
        if ledger.is_file() and not folder.probe_ledger.is_file():
            shutil.copyfile(ledger, folder.probe_ledger)
    folder.write_faults(windows)
    console.print(f"journal {journal}: {len(windows)} fault window(s)")


def snapshot_after_the_fact(folder: RunFolder, state: StackState, console: Console) -> None:
    """The Prometheus snapshot over the run's window, when the state file names the stack the run used."""
    info = folder.read_info()
    url = state.endpoints.prometheus if state.endpoints else None
    if url is None or info.stack_id != state.stack_id:
        return  # another stack (or none with a Prometheus): its counters say nothing of this run
    # the counters of the run's last second reach Prometheus with the next scrape (1 s)
    end = min(time.time(), info.ended_at.timestamp() + SCRAPE_SETTLE_S) if info.ended_at else time.time()
    folder.write_prometheus(server_snapshot(info.model, url, info.started_at.timestamp(), end, state.allow_hosts))
    console.print(f"prometheus: snapshot of {url} over the run's window")


def verify_and_report(
    run_dir: Path,
    thresholds: Path | None,
    console: Console,
    *,
    journal: Path | None = None,
    state_path: Path | None = None,
    baseline: Path | None = None,
    commit: str | None = None,
) -> int:
    """Check a run folder, render index.html + junit.xml, print the summary and the verdicts; return the
    exit code. With ``baseline``, append the run's summary (and identity: ``commit``, machine, stack) to
    that store."""
    from quotaquake.report import render_report
    from quotaquake.report.console import print_summary
    from quotaquake.verify.engine import verify_run

    folder = RunFolder(run_dir)
    if not folder.is_run():
        raise UsageError(f"{run_dir}: not a run folder (no run.json)")
    if journal is not None and not journal.is_file():
        raise UsageError(f"--journal: {journal} does not exist")
    load_thresholds(thresholds)
    complete_manual_run(folder, journal, state_path, console)
    outcome = verify_run(run_dir, thresholds)
    report = render_report(folder, outcome)
    print_summary(folder, console)
    print_verdicts(outcome, console)
    console.print(f"report: {report}", markup=False, highlight=False, soft_wrap=True)  # a path to copy whole
    if baseline is not None:
        from quotaquake.gate.identity import append_run

        statuses = {v.check: str(v.status) for v in outcome.verdicts}
        stored = append_run(folder, baseline, statuses, str(outcome.status), commit)
        console.print(f"baseline: {stored}")
    return int(outcome.exit_code)


STATUS_STYLE = {"pass": "green", "fail": "bold red", "unknown": "yellow", "not-applicable": "dim"}


def print_verdicts(outcome: Outcome, console: Console) -> None:
    table = Table(title="verdicts")
    table.add_column("check")
    table.add_column("status")
    table.add_column("summary", overflow="fold")
    for verdict in outcome.verdicts:
        style = STATUS_STYLE.get(str(verdict.status), "")
        table.add_row(verdict.check, f"[{style}]{verdict.status}[/]", verdict.summary)
    console.print(table)
