"""Wiring a scenario into Locust's events: options, safety checks, history recorder, the engine record.

A scenario file calls ``install_scenario(events, ScenarioDefaults(...))`` once at import, as Locust's
event model expects. What happens in each process:

* every process: ``--qq-*`` options on Locust's parser;
* master or local runner: the stack state read, Locust's host set to the gateway (unless ``--host`` was
  given), ``engine.json`` written at test start (with the monthly usage ``before_start`` seeded) and at
  quit (end time and Locust's final counts). For a plain ``locust -f`` run the master also orchestrates:
  it validates the options, checks the target with the safety guard, and writes ``run.json``. Under
  ``quotaquake run`` (``--qq-orchestrated``) that command did both already, and samples the host
  (``host.jsonl``), which a plain run's master does itself in a greenlet;
* worker or local runner: the history recorder listens to ``request`` and writes parts.

Bad input exits with status 2 and one line on stderr (no traceback).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import gevent
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from quotaquake.errors import UsageError
from quotaquake.load.distributed import install_distribution
from quotaquake.load.host import HostSampler, StackProcesses
from quotaquake.load.options import ScenarioDefaults, ScenarioOptions, add_options
from quotaquake.load.recorder import HistoryRecorder
from quotaquake.load.runtime import ScenarioRuntime, build_runtime
from quotaquake.load.safety import capped_run_time, check_rate, check_target
from quotaquake.runfolder import RunFolder
from quotaquake.runfolder.models import EngineRecord, MonthlySeed, RunInfo

log = logging.getLogger(__name__)

BeforeStart = Callable[[ScenarioRuntime], list[MonthlySeed]]


def exit_with_usage_error(exc: UsageError) -> None:
    sys.stderr.write(f"quotaquake: {exc}\n")
    sys.exit(exc.exit_code)


def install_recorder(environment: Environment) -> HistoryRecorder:
    """Attach a history recorder to ``environment``: listens to requests, flushes every second and at quit."""

    parsed: Any = environment.parsed_options
    events: Any = environment.events

    def run_folder() -> RunFolder:
        return RunFolder(ScenarioOptions.from_namespace(parsed).out)

    recorder = HistoryRecorder(folder=run_folder)
    events.request.add_listener(recorder.on_request)
    events.quit.add_listener(lambda **_: recorder.close())  # after runner.quit(): users have stopped
    recorder.start()
    return recorder


def check_safety(runtime: ScenarioRuntime, environment: Environment) -> None:
    """Rate, duration and target guards (``quotaquake.load.safety``)."""
    options = runtime.options
    check_rate(options.rate)
    parsed: Any = environment.parsed_options
    run_time = getattr(parsed, "run_time", None)
    parsed.run_time = int(capped_run_time(float(run_time) if run_time else None))  # no -t: the 2 h cap
    target = environment.host or runtime.state.require_endpoints().gateway
    check_target(target, options.allow_hosts)


def plain_run_info(runtime: ScenarioRuntime, parsed: Any) -> RunInfo:
    """``run.json`` of a Locust run that ``quotaquake run`` did not start (the master orchestrates)."""
    options, state = runtime.options, runtime.state
    return RunInfo(
        run_id=options.out.name,
        scenario=str(getattr(parsed, "locustfile", "") or ""),
        target_rate=options.rate,
        duration_s=float(parsed.run_time) if getattr(parsed, "run_time", None) else None,
        started_at=datetime.now(UTC),
        provider=state.provider,
        stack_id=state.stack_id,
        prometheus_url=state.require_endpoints().prometheus,
        replicas=state.replicas,
        defect=state.defect,
        model=state.model,
        policy=runtime.policy,
        command=list(sys.argv),
        locust_processes=max(1, int(getattr(parsed, "processes", None) or 1)),
        notes=["run.json written by the scenario (plain locust run)"],
    )


def prepare_controller(environment: Environment, before_start: BeforeStart | None) -> None:
    """Master/local side: point Locust at the gateway, record the engine's start and end, and for a
    plain run validate the options and write ``run.json``."""
    runtime = build_runtime(environment.parsed_options)
    parsed: Any = environment.parsed_options
    events: Any = environment.events
    folder = RunFolder(runtime.options.out)
    if not runtime.options.orchestrated:
        check_safety(runtime, environment)
        folder.create()
        if not folder.is_run():
            folder.write_info(plain_run_info(runtime, parsed))
    if not environment.host:
        environment.host = runtime.state.require_endpoints().gateway
    record = EngineRecord()
    host = None if runtime.options.orchestrated else HostSampler(folder, StackProcesses(runtime.options.state))

    def on_test_start(**_: Any) -> None:
        record.started_at = datetime.now(UTC)
        if host is not None and host.start_probe():  # a plain run samples its host (else ``quotaquake run``)
            gevent.spawn(host.run, gevent.sleep)
        if before_start is not None:
            record.monthly_seeds = [*record.monthly_seeds, *before_start(runtime)]
        folder.write_engine(record)

    def on_quit(**_: Any) -> None:
        if host is not None:
            host.stop()
        total = environment.stats.total
        record.ended_at = datetime.now(UTC)
        record.requests, record.failures = int(total.num_requests), int(total.num_failures)
        folder.write_engine(record)
        if not runtime.options.orchestrated and folder.is_run():
            info = folder.read_info()
            folder.write_info(info.model_copy(update={"ended_at": record.ended_at}))

    events.test_start.add_listener(on_test_start)
    events.quit.add_listener(on_quit)  # ``quit`` fires after the runner stopped every user: final counts


def install_scenario(events: Any, defaults: ScenarioDefaults, before_start: BeforeStart | None = None) -> None:
    """Register the quotaquake listeners on Locust's ``events`` (call once from the scenario file)."""

    def on_parser(parser: Any, **_: Any) -> None:
        add_options(parser, defaults)

    def on_init(environment: Environment, **_: Any) -> None:
        runner = environment.runner
        try:
            if not isinstance(runner, WorkerRunner):
                prepare_controller(environment, before_start)
            recorder = install_recorder(environment) if not isinstance(runner, MasterRunner) else None
            install_distribution(environment, recorder)  # master/worker: every worker's rows reach the master
        except UsageError as exc:
            exit_with_usage_error(exc)

    events.init_command_line_parser.add_listener(on_parser)
    events.init.add_listener(on_init)
