"""Stopping a run the way Locust stops at the end of its run time, whatever stops it.

Why this exists (measured, ``docs/research/locust-2.47.md`` section 1): a headless Locust run with a
shape installs its SIGTERM handler only after the shape has finished, so until then SIGTERM kills the
master at once (no final counts, no reports; with ``--processes`` the workers keep loading the target for
60 s); SIGINT raises ``KeyboardInterrupt`` in whichever greenlet runs, possibly a user's, losing its
request; and ``MasterRunner.quit`` waits only 0.5 s for the workers' final statistics.

What quotaquake does instead:

* **signals on the master or local runner** (``install_controller_signals``, headless runs: SIGTERM and
  SIGINT; web UI runs: SIGINT): the handler runs in a greenlet of its own and takes the path of the run's
  own end (``stop_like_the_end``): users finish their in-flight requests, history and reports are written.
  Before the test started it exits with ``128 + signal`` (a headless master may be waiting for its
  workers). A second signal is logged and ignored; SIGKILL aborts. A signal the parent set to be ignored
  (``nohup``) stays ignored. SIGTERM of a web UI run keeps Locust's own handler, installed before the UI
  starts: it quits the runner, so the drain below still runs and every row and total is kept, but Locust
  then writes no HTML report (``engine.json`` says ``stop_reason: quit``).
* **drain** (``MasterDrain``, ``WorkerDrain``): when the master stops a swarm (``test_stopping``, fired by
  every stop: end of the shape, a signal, the web UI's stop button), it asks every live worker to stop its
  users (``qq_drain``) and waits, up to ``drain_timeout_s``, until each has answered ``qq_drained`` with
  its ``GeneratorProcess`` report, sent after Locust's final statistics over the same connection. So the
  master's totals are complete before it writes ``engine.json``. Meanwhile the master re-dispatches no
  users (a worker quitting during the drain would otherwise get its users moved onto the others). A
  worker drains itself too when it quits on its own (SIGTERM, SIGINT, its master gone).
* **workers** (``install_worker_stop``): SIGINT drains and quits the worker (Ctrl-C reaches the whole
  process group, the master included); a worker forked by ``--processes`` whose master process is gone
  (SIGKILL) stops within ``PARENT_POLL_S`` instead of loading the target until Locust's 60 s heartbeat
  timeout.
* **stop timeout**: a plain run without ``--stop-timeout`` (Locust's default is 0: users killed with
  their requests in flight) gets ``default_stop_timeout_s(--qq-timeout)``: every request in flight then
  ends with an answer or a timeout before its user is stopped, so it is recorded.

``note_stop_reason`` keeps why the swarm stopped, for ``engine.json``.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import time
import weakref
from collections.abc import Callable
from typing import Any

import gevent
from gevent.lock import Semaphore

from quotaquake.load.generator import GeneratorReports, process_report
from quotaquake.load.runtime import current_runtime
from quotaquake.runfolder.models import GeneratorProcess

log = logging.getLogger(__name__)

DRAIN = "qq_drain"
DRAINED = "qq_drained"
DRAIN_MARGIN_S = 5.0
"""Seconds the master waits for drained workers beyond twice the stop timeout (see ``drain_timeout_s``)."""
DRAIN_POLL_S = 0.05
PARENT_POLL_S = 0.5
STATE_MISSING = "missing"  # locust.runners: a worker whose heartbeats stopped
STOP_TIMEOUT_MARGIN_S = 1.0


def default_stop_timeout_s(request_timeout_s: float) -> float:
    """Stop timeout of a run that set none: the request timeout, rounded up, plus ``STOP_TIMEOUT_MARGIN_S``."""
    return math.ceil(request_timeout_s) + STOP_TIMEOUT_MARGIN_S


def drain_timeout_s(stop_timeout_s: float) -> float:
    """How long the master waits for its workers' drain: a user's own stop may take the stop timeout, its
    requests in flight another one (``OpenModelUser.on_stop``), plus ``DRAIN_MARGIN_S`` for messages."""
    return 2 * stop_timeout_s + DRAIN_MARGIN_S


def ensure_stop_timeout(environment: Any, request_timeout_s: float) -> bool:
    """Give a run without a stop timeout ``default_stop_timeout_s``; True when it did."""
    if environment.stop_timeout:
        return False
    value = default_stop_timeout_s(request_timeout_s)
    environment.stop_timeout = value
    environment.parsed_options.stop_timeout = value
    log.info("quotaquake: no --stop-timeout given: %g s, so requests in flight at the end are recorded", value)
    return True


_STOP_REASONS: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()


def note_stop_reason(environment: Any, reason: str) -> None:
    """Remember why the current swarm stops (the first reason given wins)."""
    _STOP_REASONS.setdefault(environment, reason)


def take_stop_reason(environment: Any) -> str:
    """Why the swarm stopped (``stopped`` when nothing said), forgotten for the next swarm."""
    return _STOP_REASONS.pop(environment, "stopped")


def install_controller_signals(environment: Any, started: Callable[[], bool]) -> None:
    """Master or local runner: stop on SIGTERM/SIGINT (headless) or SIGINT (web UI) like the run's end."""
    headless = bool(getattr(environment.parsed_options, "headless", False))
    signals = (signal.SIGTERM, signal.SIGINT) if headless else (signal.SIGINT,)
    signalled: list[str] = []

    def on_signal(signum: int) -> None:
        name = signal.Signals(signum).name
        if signalled:
            log.warning("quotaquake: %s again: already stopping (requests in flight may take the stop timeout)", name)
            return
        signalled.append(name)
        if headless and not started():
            log.warning("quotaquake: %s before the test started: exiting", name)
            raise SystemExit(128 + signum)  # gevent re-raises it in the main greenlet
        log.warning("quotaquake: %s: stopping like the end of the run (requests in flight are recorded)", name)
        note_stop_reason(environment, f"signal {name}")
        stop_like_the_end(environment)

    install_handlers(signals, on_signal)


def stop_like_the_end(environment: Any) -> None:
    """Take the path Locust takes when a run ends by itself, so the runner is stopped exactly once.

    Headless with a running shape: end the shape greenlet; Locust's main greenlet, waiting for it, then
    quits the runner (a second ``stop()`` from here would race it and fire ``test_stop`` twice). Web UI:
    stop the swarm, then the web UI, whose end makes Locust write its reports and shut down.
    """
    runner = environment.runner
    if environment.web_ui is not None:
        runner.stop()
        environment.web_ui.stop()
    elif runner.shape_greenlet is not None and not runner.shape_greenlet.dead:
        runner.shape_greenlet.kill(block=False)
    else:
        runner.quit()


def install_handlers(signals: tuple[signal.Signals, ...], handler: Callable[[int], None]) -> None:
    """Run ``handler(signum)`` in a new greenlet for each of ``signals`` not ignored by the parent."""
    for signum in signals:
        if signal.getsignal(signum) is signal.SIG_IGN:
            continue  # e.g. nohup, or a background job of a non-interactive shell: keep ignoring it
        gevent.signal_handler(signum, handler, int(signum))


class MasterDrain:
    """The master's side of the drain: ask live workers to stop and report, wait for their reports."""

    def __init__(self, environment: Any, reports: GeneratorReports) -> None:
        self.environment = environment
        self.reports = reports
        runner = environment.runner
        runner.register_message(DRAINED, self.on_drained)
        environment.events.test_stopping.add_listener(self.on_test_stopping)
        environment.events.worker_connect.add_listener(self.on_worker_connect)

    def on_drained(self, environment: Any, msg: Any, **_: Any) -> None:
        data = msg.data or {}
        self.reports.add(msg.node_id, int(data.get("swarm", -1)), GeneratorProcess.model_validate(data["report"]))

    def on_worker_connect(self, client_id: str, **_: Any) -> None:
        if self.environment.runner.state not in ("ready", "stopped"):  # joined a running swarm: it owes a report
            self.reports.expected.add(client_id)

    def expect_workers(self) -> None:
        """At the swarm's start: every connected worker owes a report."""
        clients = self.environment.runner.clients.values()
        self.reports.expected |= {client.id for client in clients if client.state != STATE_MISSING}

    def on_test_stopping(self, **_: Any) -> None:
        """Before the master stops a swarm: drain the live workers (see the module docstring)."""
        runner = self.environment.runner
        runner._users_dispatcher = None  # as stop() does next: no users re-dispatched onto stopping workers
        live = {client.id for client in runner.clients.values() if client.state != STATE_MISSING}
        if not live:
            return
        runner.send_message(DRAIN, {"swarm": self.reports.swarm})
        deadline = time.monotonic() + drain_timeout_s(float(self.environment.stop_timeout or 0))
        while self.reports.pending & live and time.monotonic() < deadline:
            gevent.sleep(DRAIN_POLL_S)
        if self.reports.pending:
            log.warning("quotaquake: no report from worker(s) %s: engine.json totals are partial", self.reports.pending)


class WorkerDrain:
    """A worker's side: stop its users, then send Locust's final statistics and its ``GeneratorProcess``
    report; once per swarm (later requests resend the same report)."""

    def __init__(self, environment: Any) -> None:
        self.environment = environment
        self.lock = Semaphore()
        self.report: GeneratorProcess | None = None
        self.report_swarm: int | None = None
        environment.runner.register_message(DRAIN, self.on_drain, concurrent=True)
        environment.events.quitting.add_listener(self.on_quitting)

    def on_drain(self, environment: Any, msg: Any, **_: Any) -> None:
        self.drain()

    def on_quitting(self, **_: Any) -> None:
        self.drain()  # quitting on its own (SIGTERM, master gone): report before Locust tells the master

    def drain(self) -> None:
        swarm = getattr(self.environment.parsed_options, "qq_swarm", None)
        if swarm is None:
            return  # no swarm ran here yet
        runner = self.environment.runner
        with self.lock:
            if self.report is None or self.report_swarm != swarm:
                runtime = current_runtime(self.environment)  # before stop(): test_stop retires it
                runner.stop()  # users finish their requests in flight (stop timeout); fires test_stop
                self.report, self.report_swarm = process_report(runtime, "worker"), swarm
                # Locust's worker sleeps the stop timeout after the master's "stop" before it is ready for
                # the next swarm; its users have stopped already (the next spawn message sets it again)
                self.environment.stop_timeout = 0
            runner._send_stats()  # Locust's final statistics, ahead of the report on the same connection
            runner.send_message(DRAINED, {"swarm": swarm, "report": self.report.model_dump(mode="json")})

    def drain_and_quit(self) -> None:
        """Drain, then make Locust shut this worker down (its main greenlet is the runner's group)."""
        self.drain()
        self.environment.runner.greenlet.kill(block=False)


def install_worker_stop(environment: Any) -> WorkerDrain:
    """Worker: drain on request, on SIGINT (then quit), and when a ``--processes`` master is gone."""
    worker = WorkerDrain(environment)

    def on_sigint(signum: int) -> None:
        log.warning("quotaquake: SIGINT: stopping this worker (requests in flight are recorded)")
        worker.drain_and_quit()

    install_handlers((signal.SIGINT,), on_sigint)
    if getattr(environment.parsed_options, "processes", None):
        gevent.spawn(watch_parent, os.getppid(), worker.drain_and_quit)
    return worker


def watch_parent(parent: int, on_gone: Callable[[], None]) -> None:
    """Call ``on_gone`` once the process that forked this one has exited (checked every ``PARENT_POLL_S``)."""
    while os.getppid() == parent:
        gevent.sleep(PARENT_POLL_S)
    log.warning("quotaquake: the Locust process that started this worker (pid %d) is gone: stopping", parent)
    on_gone()
