"""``OpenModelUser``: a FastHttpUser that sends on a fixed-rate schedule and tags requests for the history.

Each user sends at ``RatePlan.user_rate`` req/s (see ``quotaquake.load.schedule``). Locust's ``wait_time``
is the time until the next intended send, so the user is in Locust's *waiting* state between sends.

Requests in flight: a slow answer never delays the next send. A user sends from its own greenlet while
answers come back before the next send is due (the common case, as cheap as one request at a time); a
timer at the next due time notices an answer that is late and starts ``keep_schedule``, which sends each
request as it falls due in a greenlet of its own until that answer is back (a user that is behind, or has
spawned requests in flight, spawns too). A user may have ``ScenarioOptions.in_flight_per_user`` requests
in flight (its share of ``--qq-max-in-flight``, with as many HTTP connections); when all are in flight,
its next send waits for a response (a *slot wait*: counted in ``SendCounters`` and visible as lag in the
history). When the user is stopped (end of the run, a ramp-down, a signal) its spawned requests get
``--stop-timeout`` seconds to finish and be recorded; the rest are killed (never recorded, never counted by
Locust either).

Outcome for Locust's statistics: 2xx, 401 (unknown key) and 429 (over quota) are expected answers and
count as successes; status 0 (timeout, connection error), 5xx and other 4xx are failures. This is done
by widening the HTTP client's ``valid_response_codes``. So that 401 and 429 still stand out in Locust's
tables, they are reported under their own names (``/identify [429 over quota]``, ``NamedAnswers``); the
history keeps the endpoint path and the status.
"""

from __future__ import annotations

import itertools
import logging
import os
import random
import time
from typing import Any

import gevent
from gevent.lock import BoundedSemaphore
from greenlet import getcurrent
from locust import task
from locust.contrib.fasthttp import FastHttpUser

from quotaquake.load.recorder import CONTEXT_KEY, RequestContext
from quotaquake.load.runtime import ScenarioRuntime, runtime_for
from quotaquake.load.schedule import ArrivalSchedule
from quotaquake.load.traffic import EXPECTED_STATUS_CODES

log = logging.getLogger(__name__)

_user_numbers = itertools.count()
LOCUST_STATE_STOPPING = "stopping"  # locust.user.users: the state a running user gets when asked to stop

NAMED_STATUSES = {401: "401 unknown key", 429: "429 over quota"}
"""Expected answers reported to Locust's statistics under a name of their own: ``<path> [<label>]``."""


def stats_name(path: str, status: int) -> str | None:
    """The Locust statistics name of an answer with ``status`` (``None``: keep the path)."""
    label = NAMED_STATUSES.get(status)
    return None if label is None else f"{path} [{label}]"


class NamedAnswers:
    """Stands in for the HTTP client's ``request`` event: renames 401 and 429 (``stats_name``) before firing
    Locust's event. Cheaper than ``catch_response``, which copies every response."""

    def __init__(self, event: Any) -> None:
        self.event = event

    def fire(self, **meta: Any) -> None:
        response = meta.get("response")
        status = getattr(response, "status_code", 0) if response is not None else 0
        if status in NAMED_STATUSES:
            meta["name"] = stats_name(meta["name"], status)
        self.event.fire(**meta)


class OpenModelUser(FastHttpUser):
    """Sends one request per intended time of its ``ArrivalSchedule``; scenarios subclass it."""

    abstract = True
    runtime: ScenarioRuntime
    schedule: ArrivalSchedule
    rng: random.Random

    def __init__(self, environment: Any) -> None:
        self.runtime = runtime_for(environment)
        options = self.runtime.options
        self.network_timeout = self.connection_timeout = options.timeout_s
        self.concurrency = options.in_flight_per_user  # HTTP connections: one per request in flight
        if not self.host:  # e.g. an empty host field in the web UI: the stack's gateway
            self.host = self.runtime.state.require_endpoints().gateway
        super().__init__(environment)
        self.client.client.valid_response_codes = EXPECTED_STATUS_CODES  # type: ignore[misc]
        self.client.request_event = NamedAnswers(self.client.request_event)
        self.rng = random.Random(hash((options.seed, os.getpid(), next(_user_numbers))))
        self.slots = BoundedSemaphore(options.in_flight_per_user)
        self.in_flight: set[Any] = set()  # greenlets of the spawned sends not finished yet
        self.in_flight_peak = 0
        self.sending_inline = False  # the user's own greenlet waits for a response
        self.keeper: Any = None  # the greenlet of ``keep_schedule`` while one runs
        self.stopped = False
        self.loop = gevent.get_hub().loop

    def on_start(self) -> None:
        plan = self.runtime.options.plan
        self.schedule = ArrivalSchedule(
            start_ns=self.runtime.clock.now_ns(), interval_ns=plan.interval_ns, phase=self.rng.random()
        )

    def wait_time(self) -> float:
        return self.schedule.seconds_until_due(self.runtime.clock.now_ns())

    @task
    def send_due_requests(self) -> None:
        """Send what is due: in this greenlet when nothing else is in flight and nothing more is due (the
        common case: no greenlet to spawn), otherwise each request in a greenlet of its own."""
        clock = self.runtime.clock
        while self.schedule.is_due(clock.now_ns()):
            intended = self.take_due()
            if intended is None:
                return
            if self.in_flight or self.schedule.is_due(clock.now_ns()):
                self.spawn_send(intended)
            else:
                self.send_inline(intended)

    def stopping(self) -> bool:
        """True once Locust asked this user to stop (it then sends nothing more)."""
        return self.stopped or self._state == LOCUST_STATE_STOPPING

    def take_due(self) -> int | None:
        """A free in-flight slot and the next intended time, if it is still due once a slot is free (another
        sender of this user may have taken it meanwhile); ``None`` otherwise, or when stopping."""
        if not self.take_slot():
            return None
        now = self.runtime.clock.now_ns()
        if not self.schedule.is_due(now):
            self.slots.release()
            return None
        return self.schedule.take(now)

    def take_slot(self) -> bool:
        """Take a free in-flight slot, waiting for a response while every slot is taken (counted); False
        when the user was asked to stop meanwhile (the slot is given back)."""
        if not self.slots.acquire(blocking=False):
            started = time.monotonic_ns()
            self.slots.acquire()
            self.runtime.counters.waited(time.monotonic_ns() - started)
        if self.stopping():
            self.slots.release()
            return False
        return True

    def spawn_send(self, intended_ns: int) -> None:
        self.in_flight.add(gevent.spawn_raw(self.send, intended_ns))
        self.in_flight_peak = max(self.in_flight_peak, len(self.in_flight) + self.sending_inline)

    def send_inline(self, intended_ns: int) -> None:
        """Send from the user's own greenlet. Should the response not be back when the next send is due, a
        timer then starts ``keep_schedule``, so a slow answer never delays the next send."""
        timer = self.loop.timer(self.schedule.seconds_until_due(self.runtime.clock.now_ns()))
        timer.start(self.start_keeping_schedule)
        self.sending_inline = True
        self.in_flight_peak = max(self.in_flight_peak, 1)
        try:
            self.send(intended_ns)
        finally:
            self.sending_inline = False
            timer.close()

    def start_keeping_schedule(self) -> None:
        """Timer callback (runs in gevent's hub: must not block)."""
        if self.sending_inline and self.keeper is None and not self.stopping():
            self.keeper = gevent.spawn_raw(self.keep_schedule)

    def keep_schedule(self) -> None:
        """While the user's own greenlet waits for its response, send each request as it falls due, each in a
        greenlet of its own; ends once that response is back."""
        clock = self.runtime.clock
        try:
            while self.sending_inline and not self.stopping():
                if not self.schedule.is_due(clock.now_ns()):
                    gevent.sleep(self.schedule.seconds_until_due(clock.now_ns()))
                    continue
                intended = self.take_due()
                if intended is not None:
                    self.spawn_send(intended)
        finally:
            self.keeper = None

    def send(self, intended_ns: int) -> None:
        """One request (in its own greenlet): pick caller and endpoint, send, report under its name."""
        try:
            self.request(intended_ns)
        except Exception as exc:  # a bug here, not a failed request (the client reports those itself)
            log.exception("quotaquake: sending a request failed")
            self.environment.events.user_error.fire(user_instance=self, exception=exc, tb=exc.__traceback__)
        finally:
            self.in_flight.discard(getcurrent())
            self.slots.release()

    def request(self, intended_ns: int) -> None:
        caller, endpoint = self.runtime.mix.pick(self.rng)
        headers = caller.json_headers if endpoint.body is not None else caller.headers  # Locust copies them
        sent = self.runtime.clock.now_ns()
        context = {
            CONTEXT_KEY: RequestContext(intended_ns, sent, caller.consumer, caller.tier, endpoint.path, endpoint.cost)
        }
        self.client.request(
            endpoint.method,
            endpoint.path,
            data=endpoint.body,  # type: ignore[arg-type]  # bytes are sent as they are
            headers=headers,
            context=context,
        )

    def on_stop(self) -> None:
        """Count this user's schedule, then let its in-flight requests finish for up to ``--stop-timeout``
        seconds (Locust waits only for the user's own greenlet) and kill the rest."""
        self.stopped = True
        if self.keeper is not None:
            gevent.kill(self.keeper)
        schedule = getattr(self, "schedule", None)
        if schedule is not None:
            self.runtime.counters.user_stopped(schedule, self.runtime.clock.now_ns(), self.in_flight_peak)
        deadline = time.monotonic() + float(self.environment.stop_timeout or 0)
        try:
            for _ in range(self.runtime.options.in_flight_per_user):  # every slot free again: nothing in flight
                remaining = deadline - time.monotonic()
                if not self.in_flight or remaining <= 0 or not self.slots.acquire(timeout=remaining):
                    break
        finally:  # also when Locust kills this greenlet while it waits (its own stop timeout)
            for greenlet in list(self.in_flight):
                gevent.kill(greenlet)
