"""The ``quotaquake`` command: stack up/status/down/restore, run, verify.

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
console = Console()
err = Console(stderr=True)

StateOpt = Annotated[
    Path | None, typer.Option("--state", help="State file (default $QUOTAQUAKE_STATE or .quotaquake/stack.json).")
]
PolicyOpt = Annotated[Path, typer.Option("--policy", help="Quota policy file.")]
ReplicasOpt = Annotated[int, typer.Option("--replicas", help="Gateway replicas behind the load balancer.")]
DefectOpt = Annotated[
    str | None,
    typer.Option("--defect", help="Seed a limiter defect: racy, fail-closed, no-retry-after, slow, no-failover."),
]
REDIS_HELP = (
    "Redis of the local stack: single, proxied (behind an Envoy redis_proxy: latency faults), sentinel (a primary,"
    " a replica and 3 Sentinels, proxied: failover faults)."
)


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
    redis: Annotated[str, typer.Option("--redis", help=REDIS_HELP)] = "single",
) -> None:
    """Start the stack detached, print its endpoints and write the state file."""
    from quotaquake.stack.provider import ProviderOptions
    from quotaquake.stack.registry import provider_named
    from quotaquake.stack.state import redis_topology

    options = ProviderOptions(
        state_path=checked_state_path(state),
        policy_path=policy,
        replicas=replicas,
        defect=defect,
        redis=redis_topology(redis),
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
    redis: Annotated[
        str | None, typer.Option("--redis", help=REDIS_HELP + " Default: what the experiment needs, else single.")
    ] = None,
) -> None:
    """Bring the stack up (or use the running one), drive load (and chaos), tear down, verify, report.

    Extra arguments after the options go to Locust (e.g. --qq-tiers free=1,pro=1); with --engine k6 only
    the --qq-* scenario options apply (and --qq-max-vus). Exit code: 0 pass, 1 fail, 3 unknown, 2 usage error.
    """
    from quotaquake.context import RunRequest, parse_duration
    from quotaquake.run import record_run, verify_and_report
    from quotaquake.stack.lifecycle import readable_state
    from quotaquake.stack.state import redis_topology

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
        redis=None if redis is None else redis_topology(redis),
    )
    with StackLock(request.state_path, "quotaquake run") as lock:
        leftovers = clear_leftovers(lock)
        report_leftovers(leftovers)
        previous = readable_state(request.state_path)
        if leftovers.experiment_stopped and previous is not None and previous.ready:
            restore_healthy(request.state_path, previous, 60.0)  # a fault it left in place: undo it first
        folder = record_run(request, console)
    console.print(f"run folder: {folder.path}")
    raise typer.Exit(verify_and_report(folder.path, thresholds, console))


@app.command("verify")
def verify(
    run_dir: Annotated[Path, typer.Argument(help="A run folder (reports/<run-id>).")],
    thresholds: Annotated[Path | None, typer.Option(help="SLO thresholds file.")] = None,
    journal: Annotated[
        Path | None,
        typer.Option(help="Chaos Toolkit journal of an experiment run beside the load (default: the folder's)."),
    ] = None,
    state: StateOpt = None,
) -> None:
    """Check a recorded run against the quota model and the SLOs; write verdicts, report and JUnit.

    For a run recorded by hand, the experiment's journal becomes fault windows, and the Prometheus of the
    stack in the state file is snapshotted over the run's window when the folder has no snapshot.
    Exit code 0 pass, 1 fail, 3 unknown without fail, 2 usage or configuration error.
    """
    from quotaquake.preflight import check_thresholds_file
    from quotaquake.run import verify_and_report

    if thresholds is not None:
        check_thresholds_file(thresholds)
    code = verify_and_report(run_dir, thresholds, console, journal=journal, state_path=checked_state_path(state))
    raise typer.Exit(code)


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
