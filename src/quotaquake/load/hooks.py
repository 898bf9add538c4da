"""Wiring a scenario into Locust's events: options, safety checks, history recorder, ``run.json``.

A scenario file calls ``install_scenario(events, ScenarioDefaults(...))`` once at import, as Locust's
event model expects. What happens in each process:

* every process: ``--qq-*`` options on Locust's parser;
* master or local runner: options validated, state read, target checked by the safety guard, Locust's
  host set to the gateway (unless ``--host`` was given), ``<out>/run.json`` written if absent and
  completed at quit, ``<out>/locust_totals.json`` written at quit; ``before_start`` (e.g. seeding
  monthly counters) runs at test start;
* worker or local runner: the history recorder listens to ``request`` and writes parts.

Bad input exits with status 2 and one line on stderr (no traceback).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from quotaquake.errors import UsageError
from quotaquake.load.options import ScenarioDefaults, ScenarioOptions, add_options
from quotaquake.load.recorder import HistoryRecorder
from quotaquake.load.runinfo import (
    LocustTotals,
    add_monthly_seeds,
    complete_run_info,
    ensure_run_info,
    new_run_info,
    write_totals,
)
from quotaquake.load.runtime import ScenarioRuntime, build_runtime
from quotaquake.load.safety import check_duration, check_rate, check_target
from quotaquake.record import MonthlySeed

log = logging.getLogger(__name__)

BeforeStart = Callable[[ScenarioRuntime], list[MonthlySeed]]


def exit_with_usage_error(exc: UsageError) -> None:
    sys.stderr.write(f"quotaquake: {exc}\n")
    sys.exit(exc.exit_code)


def install_recorder(environment: Environment) -> HistoryRecorder:
    """Attach a history recorder to ``environment``: listens to requests, flushes every second and at quit."""

    parsed: Any = environment.parsed_options
    events: Any = environment.events

    def out_dir() -> Path:
        return ScenarioOptions.from_namespace(parsed).out

    recorder = HistoryRecorder(out_dir=out_dir)
    events.request.add_listener(recorder.on_request)
    events.quit.add_listener(lambda **_: recorder.close())  # after runner.quit(): users have stopped
    recorder.start()
    return recorder


def check_safety(runtime: ScenarioRuntime, environment: Environment) -> None:
    """Rate, duration and target guards (``quotaquake.load.safety``)."""
    options = runtime.options
    check_rate(options.rate)
    run_time = getattr(environment.parsed_options, "run_time", None)
    if run_time:
        check_duration(float(run_time))
    target = environment.host or runtime.state.require_endpoints().gateway
    check_target(target, options.allow_hosts)


def prepare_controller(environment: Environment, before_start: BeforeStart | None) -> None:
    """Master/local side: validate, point Locust at the gateway, write and later complete ``run.json``."""
    runtime = build_runtime(environment.parsed_options)
    check_safety(runtime, environment)
    if not environment.host:
        environment.host = runtime.state.require_endpoints().gateway
    parsed: Any = environment.parsed_options
    events: Any = environment.events
    run_dir = runtime.options.out
    ensure_run_info(
        run_dir,
        new_run_info(
            options=runtime.options,
            state=runtime.state,
            policy=runtime.policy,
            scenario=str(getattr(parsed, "locustfile", "") or ""),
            duration_s=float(parsed.run_time) if getattr(parsed, "run_time", None) else None,
            processes=int(getattr(parsed, "processes", None) or 1),
        ),
    )

    def on_quit(**_: Any) -> None:
        total = environment.stats.total
        write_totals(run_dir, LocustTotals(requests=total.num_requests, failures=total.num_failures))
        complete_run_info(run_dir, request_count=int(total.num_requests))

    events.quit.add_listener(on_quit)  # ``quit`` fires after the runner stopped every user: final counts
    if before_start is not None:

        def on_test_start(**_: Any) -> None:
            seeds = before_start(runtime)
            if seeds:
                add_monthly_seeds(run_dir, seeds)

        events.test_start.add_listener(on_test_start)


def install_scenario(events: Any, defaults: ScenarioDefaults, before_start: BeforeStart | None = None) -> None:
    """Register the quotaquake listeners on Locust's ``events`` (call once from the scenario file)."""

    def on_parser(parser: Any, **_: Any) -> None:
        add_options(parser, defaults)

    def on_init(environment: Environment, **_: Any) -> None:
        runner = environment.runner
        try:
            if not isinstance(runner, WorkerRunner):
                prepare_controller(environment, before_start)
            if not isinstance(runner, MasterRunner):
                install_recorder(environment)
        except UsageError as exc:
            exit_with_usage_error(exc)

    events.init_command_line_parser.add_listener(on_parser)
    events.init.add_listener(on_init)
