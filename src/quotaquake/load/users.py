"""``OpenModelUser``: a FastHttpUser that sends on a fixed-rate schedule and tags requests for the history.

Each user sends at ``RatePlan.user_rate`` req/s (see ``quotaquake.load.schedule``). Locust's ``wait_time``
is the time until the next intended send, so the user is in Locust's *waiting* state between sends and
a graceful stop (``--stop-timeout``) lets in-flight requests finish and be recorded.

Outcome for Locust's statistics: 2xx, 401 (unknown key) and 429 (over quota) are expected answers and
count as successes; status 0 (timeout, connection error), 5xx and other 4xx are failures. This is done
by widening the HTTP client's ``valid_response_codes`` rather than with ``catch_response``, which would
cost a response copy per request.
"""

from __future__ import annotations

import itertools
import os
import random
from typing import Any

from locust import task
from locust.contrib.fasthttp import FastHttpUser

from quotaquake.load.recorder import CONTEXT_KEY, RequestContext
from quotaquake.load.runtime import ScenarioRuntime, runtime_for
from quotaquake.load.schedule import ArrivalSchedule
from quotaquake.load.traffic import EXPECTED_STATUS_CODES

_user_numbers = itertools.count()


class OpenModelUser(FastHttpUser):
    """Sends one request per intended time of its ``ArrivalSchedule``; scenarios subclass it."""

    abstract = True
    runtime: ScenarioRuntime
    schedule: ArrivalSchedule
    rng: random.Random
    concurrency = 1  # one request in flight per user: one connection is enough

    def __init__(self, environment: Any) -> None:
        self.runtime = runtime_for(environment)
        self.network_timeout = self.connection_timeout = self.runtime.options.timeout_s
        if not self.host:  # e.g. an empty host field in the web UI: the stack's gateway
            self.host = self.runtime.state.require_endpoints().gateway
        super().__init__(environment)
        self.client.client.valid_response_codes = EXPECTED_STATUS_CODES  # type: ignore[misc]
        self.rng = random.Random(hash((self.runtime.options.seed, os.getpid(), next(_user_numbers))))

    def on_start(self) -> None:
        plan = self.runtime.options.plan
        self.schedule = ArrivalSchedule(
            start_ns=self.runtime.clock.now_ns(), interval_ns=plan.interval_ns, phase=self.rng.random()
        )

    def wait_time(self) -> float:
        return self.schedule.seconds_until_due(self.runtime.clock.now_ns())

    @task
    def send_due_request(self) -> None:
        now = self.runtime.clock.now_ns()
        if not self.schedule.is_due(now):
            return  # woke early: wait_time() sleeps the rest
        intended = self.schedule.take(now)
        caller, endpoint = self.runtime.mix.pick(self.rng)
        headers = caller.json_headers if endpoint.body is not None else caller.headers  # Locust copies them
        sent = self.runtime.clock.now_ns()
        context = {
            CONTEXT_KEY: RequestContext(intended, sent, caller.consumer, caller.tier, endpoint.path, endpoint.cost)
        }
        self.client.request(
            endpoint.method,
            endpoint.path,
            data=endpoint.body,  # type: ignore[arg-type]  # bytes are sent as they are
            headers=headers,
            context=context,
        )
