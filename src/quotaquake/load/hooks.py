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
  swarm, at each swarm's start resets the consumers' quota state before seeding (``--qq-initial-state
  reset``, the default; ``quotaquake.load.initial_state``) and records it in ``run.json``, and samples the
  host into the swarm's ``host.jsonl`` (``quotaquake.load.host``, a greenlet from ``test_start`` to
  ``test_stop``). Under ``quotaquake run`` (``--qq-orchestrated``) that command does all of it itself;
* worker or local runner (``install_recorder``): the history recorder listens to ``request`` and writes parts
  (flushed at each ``test_stop``, so a swarm's rows stay in its folder);
* worker (``install_worker_stop``): the drain, SIGINT, and a watch on a ``--processes`` master;
* master and workers (``quotaquake.load.distributed``): every worker's rows reach the master's run folder.

Bad input exits with status 2 and one line on stderr (no traceback).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import gevent
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from quotaquake.errors import UsageError
from quotaquake.load.distributed import install_distribution
from quotaquake.load.generator import GeneratorReports, Role, process_report
from quotaquake.load.host import HostSampler, StackProcesses
from quotaquake.load.initial_state import kept_initial_state, reset_initial_state
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


@dataclass
class Swarm:
    """The current swarm of a master or local runner: its number, folder, engine record, host sampler."""

    number: int
    folder: RunFolder
    record: EngineRecord
    host: HostSampler | None = None


class Controller:
    """Master/local side (see the module docstring): init-time checks in the constructor, then one
    listener per swarm event."""

    def __init__(self, environment: Environment, before_start: BeforeStart | None, parser: Any | None) -> None:
        self.environment = environment
        self.before_start = before_start
        self.parser = parser
        self.parsed: Any = environment.parsed_options
        runtime = build_runtime(self.parsed)
        self.orchestrated = runtime.options.orchestrated
        self.headless = bool(getattr(self.parsed, "headless", False))
        if not self.orchestrated:
            self.check_plain_run(runtime)
        if not environment.host:
            environment.host = runtime.state.require_endpoints().gateway
        self.ours = {"stop_timeout"} if ensure_stop_timeout(environment, runtime.options.timeout_s) else set()
        warn_ignored_user_count(self.parsed, runtime.options)
        self.initial = dict(vars(self.parsed))  # to tell what the web form changed
        self.reports = GeneratorReports()
        is_master = isinstance(environment.runner, MasterRunner)
        self.drain = MasterDrain(environment, self.reports) if is_master else None
        self.role: Role = "master" if is_master else "local"
        self.swarm: Swarm | None = None
        install_controller_signals(environment, started=lambda: self.swarm is not None)

    def check_plain_run(self, runtime: ScenarioRuntime) -> None:
        """A plain run's options and target now, its web form at every swarm; a headless run's folder is new."""
        check_plain_options(self.parsed, self.environment.host)
        if self.headless:
            refuse_used_folder(RunFolder(runtime.options.out))
        install_form_check(
            self.environment, qq_actions(self.parser), lambda ns: check_plain_options(ns, getattr(ns, "host", None))
        )

    def on_test_start(self, **_: Any) -> None:
        runtime = runtime_for(self.environment)  # the swarm's options (the shape's first tick may have built it)
        per_swarm_folders = not (self.orchestrated or self.headless)
        number, folder = begin_swarm(self.parsed, runtime.options, per_swarm_folders=per_swarm_folders)
        folder.create()
        if not self.headless:  # the web form always sends a user count (a headless run only its -u, at init)
            warn_ignored_user_count(self.parsed, runtime.options)
        if not self.orchestrated:
            folder.write_info(plain_run_info(runtime, self.parsed, None if self.headless else number))
            record_initial_state(runtime, folder)  # before the seeds and the first request
        record = EngineRecord(started_at=datetime.now(UTC), swarm=None if self.headless else number)
        self.swarm = swarm = Swarm(number, folder, record)
        self.record_settings(record)
        self.reports.start(number)
        if self.drain is not None:
            self.drain.expect_workers()
        if not self.orchestrated:  # a plain run samples its host (else ``quotaquake run`` does)
            swarm.host = start_host_sampler(folder, runtime.options.state)
        if self.before_start is not None:
            record.monthly_seeds = [*record.monthly_seeds, *self.before_start(runtime)]
        folder.write_engine(record)

    def record_settings(self, record: EngineRecord) -> None:
        """Every option value of the swarm and its source (``quotaquake.load.settings``)."""
        if self.parser is None:
            return
        values = vars(self.parsed)
        form = set() if self.headless else changed_values(self.initial, values)  # headless: Locust's defaults
        record.settings = applied_settings(self.parser, values, changed_by_form=form, set_by_quotaquake=self.ours)
        record.config_files = config_files(self.parser.get_source_to_settings_dict())

    def on_test_stop(self, **_: Any) -> None:
        swarm = self.swarm
        if swarm is None or swarm.record.ended_at is not None:
            return  # no swarm, or a second stop() of the same swarm (Locust's runners may race)
        if swarm.host is not None:
            swarm.host.stop()
        record, total = swarm.record, self.environment.stats.total
        record.ended_at = datetime.now(UTC)
        record.requests, record.failures = int(total.num_requests), int(total.num_failures)
        record.stop_reason = take_stop_reason(self.environment)
        own = process_report(retire_runtime(self.environment), self.role)
        record.generator = self.reports.record(ScenarioOptions.from_namespace(self.parsed), own)
        swarm.folder.write_engine(record)
        if not self.orchestrated and swarm.folder.is_run():
            swarm.folder.write_info(swarm.folder.read_info().model_copy(update={"ended_at": record.ended_at}))

    def on_quitting(self, **_: Any) -> None:
        note_stop_reason(self.environment, "quit")  # Locust shut down (e.g. its own SIGTERM handler in the web UI)

    def on_quit(self, **_: Any) -> None:
        """Locust's final counts again: a worker's report may have come after the swarm's ``test_stop``."""
        swarm = self.swarm
        if swarm is None or swarm.record.requests is None:
            return
        total, record = self.environment.stats.total, swarm.record
        if (record.requests, record.failures) != (int(total.num_requests), int(total.num_failures)):
            record.requests, record.failures = int(total.num_requests), int(total.num_failures)
            swarm.folder.write_engine(record)


def prepare_controller(environment: Environment, before_start: BeforeStart | None, parser: Any | None) -> Controller:
    """Master/local side: checks now, then a ``Controller`` listening to every swarm (module docstring)."""
    controller = Controller(environment, before_start, parser)
    events: Any = environment.events
    events.test_start.add_listener(controller.on_test_start)
    events.test_stop.add_listener(controller.on_test_stop)
    events.quitting.add_listener(controller.on_quitting)
    events.quit.add_listener(controller.on_quit)  # ``quit`` fires after the runner stopped every user
    return controller


def start_host_sampler(folder: RunFolder, state_path: Path) -> HostSampler | None:
    """Sample the host into ``folder`` in a greenlet until ``stop`` (``None`` if it would not start)."""
    host = HostSampler(folder, StackProcesses(state_path))
    if not host.start_probe():
        return None
    gevent.spawn(host.run, gevent.sleep)
    return host


def qq_actions(parser: Any | None) -> dict[str, argparse.Action]:
    """The ``--qq-*`` options of ``parser`` by dest (empty without a parser)."""
    if parser is None:
        return {}
    return {a.dest: a for a in parser._actions if a.dest.startswith("qq_")}


def record_initial_state(runtime: ScenarioRuntime, folder: RunFolder) -> None:
    """A plain run's master: reset the consumers' quota state (or keep it) and record it in ``run.json``."""
    keep = runtime.options.initial_state == "keep"
    established = kept_initial_state() if keep else reset_initial_state(runtime.state)
    folder.write_info(established.apply(folder.read_info()))


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
            recorder = install_recorder(environment) if not isinstance(runner, MasterRunner) else None
            if isinstance(runner, WorkerRunner):
                install_worker_stop(environment)
            install_distribution(environment, recorder)  # master/worker: every worker's rows reach the master
        except UsageError as exc:
            exit_with_usage_error(exc)
        events_of_run: Any = environment.events
        events_of_run.test_stop.add_listener(lambda **_: retire_runtime(environment))  # after the others

    events.init_command_line_parser.add_listener(on_parser)
    events.init.add_listener(on_init)
