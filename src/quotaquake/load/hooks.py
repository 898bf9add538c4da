"""Wiring a scenario into Locust's events: options, safety checks, stopping, history recorder, the engine record.

A scenario file calls ``install_scenario(events, ScenarioDefaults(...))`` once at import, as Locust's
event model expects. What happens in each process:

* every process: ``--qq-*`` options on Locust's parser (also fields of the web UI form; under ``quotaquake
  run`` Locust's default config files are dropped, ``quotaquake.load.settings``); at each swarm's
  ``test_stop`` the swarm's runtime is retired (``quotaquake.load.runtime``);
* master or local runner (``prepare_controller``): the stack state read, Locust's host set to the gateway
  (unless ``--host`` was given), a stop timeout when none was given, signals that stop the run like its
  end (``quotaquake.load.stopping``). Per swarm (``quotaquake.load.swarm``): at ``test_start`` the swarm's
  folder chosen and ``engine.json`` written (start, the settings and their sources, the monthly usage
  ``before_start`` seeded); at ``test_stop`` (after the workers' drain) ``engine.json`` again with the end,
  Locust's final counts, why it stopped and the generator's own account (``quotaquake.load.generator``).
  For a plain ``locust -f`` run the master also orchestrates: it validates the options (and every web UI
  form, ``quotaquake.load.webui``), checks the target with the safety guard, writes ``run.json`` per
  swarm and samples the host into the swarm's ``host.jsonl`` (``quotaquake.load.host``, a greenlet from
  ``test_start`` to ``test_stop``). Under ``quotaquake run`` (``--qq-orchestrated``) that command does all
  three itself;
* worker or local runner (``install_recorder``): the history recorder listens to ``request`` and writes parts
  (flushed at each ``test_stop``, so a swarm's rows stay in its folder);
* worker (``install_worker_stop``): the drain, SIGINT, and a watch on a ``--processes`` master.

Bad input exits with status 2 and one line on stderr (no traceback).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import gevent
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from quotaquake.errors import UsageError
from quotaquake.load.generator import GeneratorReports, Role, process_report
from quotaquake.load.host import HostSampler, StackProcesses
from quotaquake.load.options import ScenarioDefaults, ScenarioOptions, add_options
from quotaquake.load.recorder import HistoryRecorder
from quotaquake.load.runtime import ScenarioRuntime, build_runtime, retire_runtime, runtime_for
from quotaquake.load.safety import check_duration, check_rate, check_target
from quotaquake.load.settings import applied_settings, changed_values, config_files, drop_default_config_files
from quotaquake.load.stopping import (
    MasterDrain,
    ensure_stop_timeout,
    install_controller_signals,
    install_worker_stop,
    note_stop_reason,
    take_stop_reason,
)
from quotaquake.load.swarm import begin_swarm, plain_run_info, refuse_used_folder, swarm_folder
from quotaquake.load.webui import install_form_check
from quotaquake.runfolder import RunFolder
from quotaquake.runfolder.models import EngineRecord, MonthlySeed

log = logging.getLogger(__name__)

BeforeStart = Callable[[ScenarioRuntime], list[MonthlySeed]]


def exit_with_usage_error(exc: UsageError) -> None:
    sys.stderr.write(f"quotaquake: {exc}\n")
    sys.exit(exc.exit_code)


def install_recorder(environment: Environment) -> HistoryRecorder:
    """Attach a history recorder to ``environment``: listens to requests, flushes every second, at each
    swarm's end (so its rows land in its folder) and at quit."""

    parsed: Any = environment.parsed_options
    events: Any = environment.events
    recorder = HistoryRecorder(folder=lambda: swarm_folder(parsed))
    events.request.add_listener(recorder.on_request)
    events.test_stop.add_listener(lambda **_: recorder.flush())  # users have stopped: the swarm's last rows
    events.quit.add_listener(lambda **_: recorder.close())  # after runner.quit(): users have stopped
    recorder.start()
    return recorder


def check_plain_options(parsed: argparse.Namespace, host: str | None) -> ScenarioRuntime:
    """A plain run's options: valid, rate and duration within the caps, a loopback (or allowed) target."""
    runtime = build_runtime(parsed)
    check_rate(runtime.options.rate)
    run_time = getattr(parsed, "run_time", None)
    if run_time:
        check_duration(float(run_time))
    check_target(host or runtime.state.require_endpoints().gateway, runtime.options.allow_hosts)
    return runtime


def warn_ignored_user_count(parsed: Any, options: ScenarioOptions) -> None:
    """Locust's user count does nothing here (the shape sets it from the rate): say so when one was given."""
    users = options.plan.users
    given = getattr(parsed, "num_users", None)
    if given and given != users:
        log.warning(
            "quotaquake: the user count (%s) is ignored: the shape runs up to %d users at %.4g req/s each "
            "for --qq-rate %g",
            given,
            users,
            options.plan.user_rate,
            options.rate,
        )


def prepare_controller(environment: Environment, before_start: BeforeStart | None, parser: Any | None) -> None:
    """Master/local side (see the module docstring)."""
    parsed: Any = environment.parsed_options
    events: Any = environment.events
    runtime = build_runtime(parsed)
    orchestrated = runtime.options.orchestrated
    headless = bool(getattr(parsed, "headless", False))
    if not orchestrated:
        check_plain_options(parsed, environment.host)
        if headless:
            refuse_used_folder(RunFolder(runtime.options.out))
        install_form_check(
            environment, qq_actions(parser), lambda ns: check_plain_options(ns, getattr(ns, "host", None))
        )
    if not environment.host:
        environment.host = runtime.state.require_endpoints().gateway
    ours = {"stop_timeout"} if ensure_stop_timeout(environment, runtime.options.timeout_s) else set()
    warn_ignored_user_count(parsed, runtime.options)
    initial = dict(vars(parsed))
    reports = GeneratorReports()
    drain = MasterDrain(environment, reports) if isinstance(environment.runner, MasterRunner) else None
    role: Role = "master" if drain is not None else "local"
    swarm: dict[str, Any] = {}  # the current swarm: "number", "folder", "record"
    install_controller_signals(environment, started=lambda: bool(swarm))

    def on_test_start(**_: Any) -> None:
        swarm_runtime = runtime_for(environment)  # the swarm's options (the shape's first tick may have built it)
        number, folder = begin_swarm(parsed, swarm_runtime.options, per_swarm_folders=not (orchestrated or headless))
        folder.create()
        if not headless:  # the web form always sends a user count (a headless run only its -u, warned at init)
            warn_ignored_user_count(parsed, swarm_runtime.options)
        if not orchestrated:
            folder.write_info(plain_run_info(swarm_runtime, parsed, None if headless else number))
        record = EngineRecord(started_at=datetime.now(UTC), swarm=None if headless else number)
        if parser is not None:
            form = set() if headless else changed_values(initial, vars(parsed))  # headless: Locust's own defaults
            record.settings = applied_settings(parser, vars(parsed), changed_by_form=form, set_by_quotaquake=ours)
            record.config_files = config_files(parser.get_source_to_settings_dict())
        swarm.update(number=number, folder=folder, record=record)
        reports.start(number)
        if drain is not None:
            drain.expect_workers()
        if not orchestrated:  # a plain run samples its host (else ``quotaquake run`` does)
            start_host_sampler(swarm, folder, swarm_runtime.options.state)
        if before_start is not None:
            record.monthly_seeds = [*record.monthly_seeds, *before_start(swarm_runtime)]
        folder.write_engine(record)

    def on_test_stop(**_: Any) -> None:
        if not swarm or swarm["record"].ended_at is not None:
            return  # no swarm, or a second stop() of the same swarm (Locust's runners may race)
        folder, record = swarm["folder"], swarm["record"]
        if swarm.get("host") is not None:
            swarm["host"].stop()
        total = environment.stats.total
        record.ended_at = datetime.now(UTC)
        record.requests, record.failures = int(total.num_requests), int(total.num_failures)
        record.stop_reason = take_stop_reason(environment)
        own = process_report(retire_runtime(environment), role)
        record.generator = reports.record(ScenarioOptions.from_namespace(parsed), own)
        folder.write_engine(record)
        if not orchestrated and folder.is_run():
            folder.write_info(folder.read_info().model_copy(update={"ended_at": record.ended_at}))

    def on_quitting(**_: Any) -> None:
        note_stop_reason(environment, "quit")  # Locust shut down (e.g. its own SIGTERM handler in the web UI)

    def on_quit(**_: Any) -> None:
        if not swarm or swarm["record"].requests is None:
            return
        total, record = environment.stats.total, swarm["record"]
        if (record.requests, record.failures) != (int(total.num_requests), int(total.num_failures)):
            record.requests, record.failures = int(total.num_requests), int(total.num_failures)  # late reports
            swarm["folder"].write_engine(record)

    events.test_start.add_listener(on_test_start)
    events.test_stop.add_listener(on_test_stop)
    events.quitting.add_listener(on_quitting)
    events.quit.add_listener(on_quit)  # ``quit`` fires after the runner stopped every user: final counts


def start_host_sampler(swarm: dict[str, Any], folder: RunFolder, state_path: Path) -> None:
    """Sample the host into the swarm's folder in a greenlet until the swarm stops (``swarm["host"]``)."""
    host = HostSampler(folder, StackProcesses(state_path))
    if host.start_probe():
        gevent.spawn(host.run, gevent.sleep)
        swarm["host"] = host


def qq_actions(parser: Any | None) -> dict[str, argparse.Action]:
    """The ``--qq-*`` options of ``parser`` by dest (empty without a parser)."""
    if parser is None:
        return {}
    return {a.dest: a for a in parser._actions if a.dest.startswith("qq_")}


def install_scenario(events: Any, defaults: ScenarioDefaults, before_start: BeforeStart | None = None) -> None:
    """Register the quotaquake listeners on Locust's ``events`` (call once from the scenario file)."""
    parsers: list[Any] = []  # the first parser is the one Locust parsed the run's options with

    def on_parser(parser: Any, **_: Any) -> None:
        add_options(parser, defaults)
        drop_default_config_files(parser, sys.argv)
        if not parsers:
            parsers.append(parser)

    def on_init(environment: Environment, **_: Any) -> None:
        runner = environment.runner
        try:
            if not isinstance(runner, WorkerRunner):
                prepare_controller(environment, before_start, parsers[0] if parsers else None)
            if not isinstance(runner, MasterRunner):
                install_recorder(environment)
            if isinstance(runner, WorkerRunner):
                install_worker_stop(environment)
        except UsageError as exc:
            exit_with_usage_error(exc)
        events_of_run: Any = environment.events
        events_of_run.test_stop.add_listener(lambda **_: retire_runtime(environment))  # after the others

    events.init_command_line_parser.add_listener(on_parser)
    events.init.add_listener(on_init)
