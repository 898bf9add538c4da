"""The ``quotaquake`` command: stack up/status/down/restore, run, verify, gate, baseline.

Every ``UsageError`` (bad input, a service that cannot start) becomes one line on stderr and exit code 2;
Ctrl-C stops what the command started and exits 130. Commands that change a stack (up, down, restore,
run) hold the state file's lock (``quotaquake.stack.lock``): a second one on the same state file is refused
with one line, and each first stops what a killed predecessor left running.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Annotated

import typer
import typer._click.exceptions as click_errors  # typer vendors click: its usage errors
from rich.console import Console
from rich.table import Table
from rich.text import Text

from quotaquake.errors import UsageError
from quotaquake.policy import DEFAULT_POLICY_PATH
from quotaquake.stack.lifecycle import Leftovers, clear_leftovers
from quotaquake.stack.lock import StackLock
from quotaquake.stack.processes import request_interrupt
from quotaquake.stack.state import StackState, checked_state_path, read_state
from quotaquake.stack.urls import masked

app = typer.Typer(help=__doc__, no_args_is_help=True, pretty_exceptions_enable=False)
stack_app = typer.Typer(help="Bring the system under test up and down.", no_args_is_help=True)
app.add_typer(stack_app, name="stack")
baseline_app = typer.Typer(help="The baseline store of run summaries (the gate's memory).", no_args_is_help=True)
app.add_typer(baseline_app, name="baseline")
console = Console()
err = Console(stderr=True)

StateOpt = Annotated[
    Path | None, typer.Option("--state", help="State file (default $QUOTAQUAKE_STATE or .quotaquake/stack.json).")
]
PolicyOpt = Annotated[Path, typer.Option("--policy", help="Quota policy file.")]
ReplicasOpt = Annotated[int, typer.Option("--replicas", help="Gateway replicas behind the load balancer.")]
DefectOpt = Annotated[
    str | None, typer.Option("--defect", help="Seed a limiter defect: racy, fail-closed, no-retry-after, slow.")
]
BaselineOpt = Annotated[
    Path | None,
    typer.Option("--baseline", help="Baseline store (a folder): append this run's summary to it after verifying."),
]
CommitOpt = Annotated[
    str | None, typer.Option("--commit", help="Commit under test (default $GITHUB_SHA, else git rev-parse HEAD).")
]


def check_store(store: Path | None) -> None:
    """A baseline store that could never be written is refused before anything runs."""
    if store is not None and store.exists() and not store.is_dir():
        raise UsageError(f"--baseline: {store} is not a folder")


def print_endpoints(state: StackState) -> None:
    endpoints = state.require_endpoints()
    table = Table(title=f"stack {state.stack_id} ({state.provider}, {state.replicas} replicas)", show_header=False)
    table.add_row("gateway (LB)", endpoints.gateway)
    for n, url in enumerate(endpoints.replicas, 1):
        table.add_row(f"replica {n}", url)
    for label, value in (
        ("redis", endpoints.redis),
        ("postgres", endpoints.postgres),
        ("prometheus", endpoints.prometheus),
        ("stub api", endpoints.stub_api),
    ):
        if value:
            table.add_row(label, masked(value))  # passwords stay in the 0600 state file
    table.add_row("consumers", f"{len(state.consumers)} ({', '.join(sorted({c.tier for c in state.consumers}))})")
    table.add_row("state file", state.state_file)
    console.print(table)
    if state.defect:
        err.print(f"[bold red]DEFECT SEEDED: {state.defect} — this stack is deliberately wrong[/]")


def report_leftovers(leftovers: Leftovers) -> None:
    if leftovers:
        names = ", ".join(leftovers.recorded) or "none recorded"
        err.print(f"stopped what a killed command left running: {names}; {leftovers.strays} more marked process(es)")


@stack_app.command("up")
def stack_up(
    replicas: ReplicasOpt = 3,
    defect: DefectOpt = None,
    policy: PolicyOpt = DEFAULT_POLICY_PATH,
    state: StateOpt = None,
    provider: Annotated[
        str, typer.Option(help="local (default), docker (Kong via Testcontainers), external.")
    ] = "local",
    target: Annotated[Path | None, typer.Option(help="External target file (provider external).")] = None,
    allow_host: Annotated[list[str] | None, typer.Option("--allow-host", help="Allow a non-loopback host.")] = None,
) -> None:
    """Start the stack detached, print its endpoints and write the state file."""
    from quotaquake.stack.provider import ProviderOptions
    from quotaquake.stack.registry import provider_named

    options = ProviderOptions(
        state_path=checked_state_path(state),
        policy_path=policy,
        replicas=replicas,
        defect=defect,
        target=target,
        allow_hosts=tuple(allow_host or ()),
    )
    chosen = provider_named(provider, options)
    with StackLock(options.state_path, "quotaquake stack up") as lock:
        report_leftovers(clear_leftovers(lock))
        with console.status(f"starting the {provider} stack ..."):
            started = chosen.up()
    print_endpoints(started)


@stack_app.command("status")
def stack_status(state: StateOpt = None) -> None:
    """Show each service's process state and readiness; exit 1 if any is not healthy."""
    from quotaquake.stack.registry import provider_for

    current = read_state(checked_state_path(state))
    rows = provider_for(current).status(current)
    table = Table(title=f"stack {current.stack_id} ({current.provider})")
    for column in ("service", "process", "ready", "url"):
        table.add_column(column)
    for row in rows:
        table.add_row(row.name, row.process, "yes" if row.ready else "[red]no[/]", masked(row.url))
    console.print(table)
    if current.defect:
        err.print(f"[bold red]DEFECT SEEDED: {current.defect}[/]")
    if not all(row.ready for row in rows):
        err.print("not every service is ready: `quotaquake stack restore` brings back what is stopped or dead")
        raise typer.Exit(1)


@stack_app.command("down")
def stack_down(state: StateOpt = None) -> None:
    """Stop every service of the stack and every process of the runs against it (also after the harness
    was killed), and remove the folders the stack created."""
    from quotaquake.stack.lifecycle import down_unrecorded, readable_state, refuse_copy
    from quotaquake.stack.registry import provider_for

    path = checked_state_path(state)
    with StackLock(path, "quotaquake stack down") as lock:
        report_leftovers(clear_leftovers(lock))
        current = readable_state(path)
        if current is None:
            stopped = down_unrecorded(path)
            if path.exists() and not stopped:
                read_state(path)  # raises the one-line reason it cannot be read
            if stopped:
                kept = f"; the unreadable {path} was left in place" if path.exists() else ""
                console.print(f"stack {', '.join(stopped)} is down (found by its processes){kept}")
            else:
                console.print(f"no stack (no state file at {path})")
            return
        refuse_copy(path, current)
        provider_for(current).down(current)
        if path.exists() and (readable_state(path) or current).stack_id == current.stack_id:
            path.unlink()
    console.print(f"stack {current.stack_id} is down")


@stack_app.command("restore")
def stack_restore(
    state: StateOpt = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait until the stack is healthy.")] = 60.0,
) -> None:
    """Bring a stack back after an interrupted experiment: stop the experiment if it still runs, resume
    what is stopped, restart what is dead (dependencies first), and wait until the stack is healthy."""
    path = checked_state_path(state)
    with StackLock(path, "quotaquake stack restore") as lock:
        report_leftovers(clear_leftovers(lock))
        current = read_state(path)
        done = restore_healthy(path, current, timeout)
    console.print(
        f"stack {current.stack_id} is healthy" + (f" ({', '.join(done)})" if done else " (nothing to restore)")
    )


def restore_healthy(path: Path, current: StackState, timeout_s: float) -> list[str]:
    """Resume/restart what is down through the fault registry's restore and wait until healthy."""
    from quotaquake.chaos.health import wait_until_healthy
    from quotaquake.faults.restore import restore_stack
    from quotaquake.stack.lifecycle import refuse_copy

    refuse_copy(path, current)
    if not current.ready:
        raise UsageError(f"stack {current.stack_id} never finished starting; `quotaquake stack down` and start again")
    if current.provider == "external":
        raise UsageError(f"stack {current.stack_id} is external: quotaquake runs none of its services")
    with console.status("restoring the stack ..."):
        done = restore_stack(current)
        wait_until_healthy(read_state(Path(current.state_file)), timeout_s)
    return done


@app.command("run", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def run(
    ctx: typer.Context,
    scenario: Annotated[Path, typer.Option(help="Locust file, e.g. scenarios/tiered.py.")],
    rate: Annotated[float, typer.Option(help="Target arrival rate, requests per second (open model).")],
    duration: Annotated[str, typer.Option(help="Run time: 30s, 2m, 1h.")],
    replicas: Annotated[
        int | None, typer.Option("--replicas", help="Gateway replicas of a stack started for this run (default 3).")
    ] = None,
    provider: Annotated[
        str, typer.Option(help="Provider of a stack started for this run: local (default), docker, external.")
    ] = "local",
    target: Annotated[Path | None, typer.Option(help="External target file (provider external).")] = None,
    defect: DefectOpt = None,
    out: Annotated[Path | None, typer.Option(help="Run folder (default reports/<run-id>).")] = None,
    chaos: Annotated[Path | None, typer.Option(help="Chaos Toolkit experiment to run while load flows.")] = None,
    chaos_delay: Annotated[str, typer.Option(help="Warm-up before the experiment starts.")] = "5s",
    processes: Annotated[int | None, typer.Option(help="Locust processes (default: by rate).")] = None,
    engine: Annotated[str, typer.Option(help="Load engine: locust (default) or k6.")] = "locust",
    thresholds: Annotated[Path | None, typer.Option(help="SLO thresholds file.")] = None,
    policy: PolicyOpt = DEFAULT_POLICY_PATH,
    state: StateOpt = None,
    allow_host: Annotated[list[str] | None, typer.Option("--allow-host", help="Allow a non-loopback host.")] = None,
    baseline: BaselineOpt = None,
    commit: CommitOpt = None,
) -> None:
    """Bring the stack up (or use the running one), drive load (and chaos), tear down, verify, report.

    Extra arguments after the options go to Locust (e.g. --qq-tiers free=1,pro=1); with --engine k6 only
    the --qq-* scenario options apply (and --qq-max-vus). Exit code: 0 pass, 1 fail, 3 unknown, 2 usage error.
    """
    from quotaquake.context import RunRequest, parse_duration
    from quotaquake.run import record_run, verify_and_report
    from quotaquake.stack.lifecycle import readable_state

    request = RunRequest(
        scenario=scenario,
        rate=rate,
        duration_s=parse_duration(duration),
        provider=provider,
        target=target,
        replicas=replicas,
        defect=defect,
        out=out,
        chaos=chaos,
        chaos_delay_s=parse_duration(chaos_delay, "--chaos-delay"),
        state_path=checked_state_path(state),
        policy_path=policy,
        thresholds=thresholds,
        processes=processes,
        allow_hosts=tuple(allow_host or ()),
        locust_args=tuple(ctx.args),
        engine=engine,
    )
    with StackLock(request.state_path, "quotaquake run") as lock:
        leftovers = clear_leftovers(lock)
        report_leftovers(leftovers)
        previous = readable_state(request.state_path)
        if leftovers.experiment_stopped and previous is not None and previous.ready:
            restore_healthy(request.state_path, previous, 60.0)  # a fault it left in place: undo it first
        check_store(baseline)
        folder = record_run(request, console)
    console.print(f"run folder: {folder.path}")
    raise typer.Exit(verify_and_report(folder.path, thresholds, console, baseline=baseline, commit=commit))


@app.command("verify")
def verify(
    run_dir: Annotated[Path, typer.Argument(help="A run folder (reports/<run-id>).")],
    thresholds: Annotated[Path | None, typer.Option(help="SLO thresholds file.")] = None,
    journal: Annotated[
        Path | None,
        typer.Option(help="Chaos Toolkit journal of an experiment run beside the load (default: the folder's)."),
    ] = None,
    state: StateOpt = None,
    baseline: BaselineOpt = None,
    commit: CommitOpt = None,
) -> None:
    """Check a recorded run against the quota model and the SLOs; write verdicts, summary, report and JUnit.

    For a run recorded by hand, the experiment's journal becomes fault windows, and the Prometheus of the
    stack in the state file is snapshotted over the run's window when the folder has no snapshot.
    Exit code 0 pass, 1 fail, 3 unknown without fail, 2 usage or configuration error.
    """
    from quotaquake.preflight import check_thresholds_file
    from quotaquake.run import verify_and_report

    if thresholds is not None:
        check_thresholds_file(thresholds)
    check_store(baseline)
    code = verify_and_report(
        run_dir,
        thresholds,
        console,
        journal=journal,
        state_path=checked_state_path(state),
        baseline=baseline,
        commit=commit,
    )
    raise typer.Exit(code)


@app.command("gate")
def gate(
    baseline: Annotated[Path, typer.Option("--baseline", help="Baseline store (a folder of run summaries).")],
    thresholds: Annotated[
        Path | None, typer.Option(help="Thresholds file: its gate: section (floors, gated keys, counts).")
    ] = None,
    last: Annotated[
        int | None, typer.Option("--last", help="Judge the newest K comparable runs together (gate.current_runs).")
    ] = None,
    window: Annotated[
        int | None, typer.Option("--window", help="At most N baseline runs before them (gate.baseline_runs).")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Output folder (default reports/gate/<newest run id>).")] = None,
    step_summary: Annotated[
        Path | None,
        typer.Option("--step-summary", envvar="GITHUB_STEP_SUMMARY", help="Append the Markdown summary to this file."),
    ] = None,
) -> None:
    """The newest run(s) of the store against the comparable runs before them: per key regressed, improved,
    unchanged or unknown with the ratio and its bounds; only significant regressions beyond the floor fail,
    and the runs' own verdicts still apply. Writes junit.xml, summary.md, trend.html and gate.json.
    Exit code 0 pass, 1 fail, 3 unknown (too few runs says how many are needed), 2 usage error.
    """
    from quotaquake.gate.command import GateRequest, run_gate

    request = GateRequest(baseline, thresholds, out, step_summary, last, window)
    raise typer.Exit(run_gate(request, console).exit_code)


@baseline_app.command("add")
def baseline_add(
    run_dir: Annotated[Path, typer.Argument(help="A verified run folder (it has summary.parquet).")],
    baseline: Annotated[Path, typer.Option("--baseline", help="Baseline store (a folder; created if missing).")],
    commit: CommitOpt = None,
) -> None:
    """Append a verified run's summary and identity to a baseline store (what `verify --baseline` does)."""
    import json

    from quotaquake.gate.identity import append_run
    from quotaquake.runfolder import RunFolder

    check_store(baseline)
    folder = RunFolder(run_dir)
    if not folder.verdicts_file.is_file():
        raise UsageError(f"{run_dir}: no verdicts.json (verify the run first: `quotaquake verify {run_dir}`)")
    try:
        outcome = json.loads(folder.verdicts_file.read_text(encoding="utf-8"))
        statuses = {str(v["check"]): str(v["status"]) for v in outcome["verdicts"]}
        status = str(outcome["status"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"{folder.verdicts_file}: not a verdicts file ({exc})") from None
    console.print(f"baseline: {append_run(folder, baseline, statuses, status, commit)}")


@baseline_app.command("merge")
def baseline_merge(
    first: Annotated[Path, typer.Argument(help="A baseline store (merged into, unless --into).")],
    second: Annotated[Path, typer.Argument(help="Another baseline store.")],
    into: Annotated[Path | None, typer.Option(help="Write the union here instead.")] = None,
) -> None:
    """The union of two baseline stores (e.g. a CI cache and a downloaded artifact); a run in both is kept once."""
    from quotaquake.gate.command import merge_stores

    merge_stores(first, second, into, console)


@baseline_app.command("list")
def baseline_list(store: Annotated[Path, typer.Argument(help="A baseline store.")]) -> None:
    """The runs of a baseline store, oldest first, with their identity and outcome."""
    from quotaquake.gate.baseline import load

    frame = load(store).drop_duplicates("run_id")
    table = Table(title=f"{store}: {len(frame)} run(s)")
    for column in ("run id", "time (UTC)", "commit", "machine", "stack", "scenario", "rate", "s", "defect", "status"):
        table.add_column(column, overflow="fold")
    for row in frame.itertuples():
        table.add_row(
            str(row.run_id), f"{row.time:%Y-%m-%d %H:%M}", str(row.commit)[:12], f"{row.machine} ({row.cpus} cpus)",
            str(row.stack), str(row.scenario), f"{row.rate:g}", f"{row.duration_s:g}", str(row.defect) or "-",
            str(row.status) + (" (aborted)" if row.aborted else ""),
        )  # fmt: skip
    console.print(table)


def _interrupt(signum: int, frame: object) -> None:
    request_interrupt()  # remembered: the exception alone can be swallowed by a finalizer
    raise KeyboardInterrupt


def print_error(message: str) -> None:
    """One line on stderr: ``error: <message>`` (newlines folded, no markup interpreted)."""
    err.print(Text.assemble(("error: ", "red"), " ".join(message.split())), soft_wrap=True, highlight=False)


def main() -> None:
    """Entry point: one line and exit 2 for usage errors (ours and the option parser's); exit 130 after a
    clean stop on Ctrl-C.

    SIGINT and SIGTERM both interrupt (and so clean up), even when the shell started us with SIGINT
    ignored (a background job).
    """
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        code = app(standalone_mode=False)  # errors come back here instead of as typer's boxed panels
    except click_errors.NoArgsIsHelpError as exc:
        console.print(exc.ctx.get_help() if exc.ctx is not None else "", markup=False, highlight=False)
        sys.exit(0)
    except click_errors.UsageError as exc:  # a missing option, a value of the wrong type, ...
        command = exc.ctx.command_path if exc.ctx is not None else "quotaquake"
        print_error(f"{exc.format_message()} (see `{command} --help`)")
        sys.exit(2)
    except click_errors.ClickException as exc:
        print_error(exc.format_message())
        sys.exit(exc.exit_code)
    except UsageError as exc:
        print_error(str(exc))
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        code = 130
    if code == 130:
        err.print("interrupted; everything this command started was stopped")
    sys.exit(code if isinstance(code, int) else 0)
