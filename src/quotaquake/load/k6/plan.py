"""The k6 run plan: who calls what (the scenario's traffic mix), on which schedule, with how many VUs,
and the k6 script that carries it.

**The mix** is the Locust engine's own (``quotaquake.load.traffic.build_mix``: callers from the state file,
keyless clients with ``X-Forwarded-For``, invalid keys, endpoint weights and costs from the policy). It is
drawn in Python, ``PICK_CYCLE`` times with ``TrafficMix.pick`` seeded by ``--qq-seed``, and the script
sends pick ``iterationInTest mod PICK_CYCLE``: the same choices, the same weights, nothing re-implemented
in JavaScript, and the history knows each request's caller and endpoint from its iteration number.

**VUs.** An arrival-rate executor needs a free VU at each tick; by Little's law ``rate x latency`` VUs
are busy on average. ``preAllocatedVUs`` covers the peak rate at ``PREALLOCATED_LATENCY_S`` (5 x the
seed's 50 ms proxy p95 target) plus ``VU_MARGIN``: k6 adds VUs during the run only one at a time, so a
latency spike or a CPU stall of the generator (the ticks it missed fire at once when it runs again) must
find VUs ready. An idle VU costs memory only (~0.12 MB measured with 1000 VUs), no CPU. ``maxVUs`` covers
the peak at ``LATENCY_CAP_S``, the mean latency the run declares it can absorb, at most ``MAX_VUS`` unless
``--qq-max-vus`` says otherwise. Slower than that, k6 drops ticks and ``dropped_iterations`` says how
many (the run is then incomplete: ``quotaquake.verify.checks.completeness``).

**Graceful stop.** ``gracefulStop`` is the request timeout plus ``STOP_SLACK_S``: a request in flight when
the duration ends completes (or times out) and is recorded. k6 discards the samples of an iteration it
interrupts, so a shorter stop would lose requests the target counted.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass
from importlib import resources
from typing import Any

from quotaquake.load.k6.schedule import ArrivalSchedule, schedule_for
from quotaquake.load.options import ScenarioOptions
from quotaquake.load.recorder import HEADER_COLUMNS
from quotaquake.load.traffic import EXPECTED_STATUS_CODES, Caller, Endpoint, build_mix
from quotaquake.policy import Policy
from quotaquake.stack.state import StackState

PICK_CYCLE = 10_000
"""Draws of the traffic mix the script cycles through (a consumer's share of them is its share of the load)."""

PREALLOCATED_LATENCY_S = 0.25
LATENCY_CAP_S = 1.0
VU_MARGIN = 5
MAX_VUS = 2000
"""Most VUs sized by rate (~0.25 GB of k6 memory): beyond, pass ``--qq-max-vus``."""

STOP_SLACK_S = 1.0
RECORD_METRIC = "qq_response"
SYSTEM_TAGS = ("status", "method", "name", "error", "error_code", "scenario", "expected_response")
"""The built-in tags k6 writes per sample: ``url``, ``proto``, ``tls_version``, ``group``... add bytes, no facts."""


@dataclass(frozen=True)
class K6Plan:
    """Everything the k6 script needs, and what converting its output back needs."""

    options: ScenarioOptions
    schedule: ArrivalSchedule
    gateway: str
    callers: list[Caller]
    endpoints: list[Endpoint]
    picks: list[int]  # caller index * len(endpoints) + endpoint index, PICK_CYCLE of them
    pre_allocated_vus: int
    max_vus: int

    def caller_and_endpoint(self, iteration: int) -> tuple[Caller, Endpoint]:
        pick = self.picks[iteration % len(self.picks)]
        return self.callers[pick // len(self.endpoints)], self.endpoints[pick % len(self.endpoints)]

    @property
    def graceful_stop_s(self) -> float:
        return self.options.timeout_s + STOP_SLACK_S


def vus_for(peak_rate: float, max_vus: int | None = None) -> tuple[int, int]:
    """(preAllocatedVUs, maxVUs) for ``peak_rate`` req/s (see the module docstring)."""
    pre = math.ceil(peak_rate * PREALLOCATED_LATENCY_S) + VU_MARGIN
    most = max_vus if max_vus is not None else min(MAX_VUS, math.ceil(peak_rate * LATENCY_CAP_S))
    return min(pre, most), max(most, 1)


def build_plan(
    options: ScenarioOptions, state: StackState, policy: Policy, duration_s: float, max_vus: int | None = None
) -> tuple[K6Plan, list[str]]:
    """The plan of a run, and warnings about weighted tiers without consumers (as ``build_mix`` gives)."""
    mix, warnings = build_mix(state, policy, options)
    callers = [caller for tier in mix.tiers.items for caller in mix.callers[tier]]
    endpoints = list(mix.endpoints.items)
    caller_index = {id(caller): n for n, caller in enumerate(callers)}
    endpoint_index = {id(endpoint): n for n, endpoint in enumerate(endpoints)}
    rng = random.Random(options.seed)
    picks = []
    for _ in range(PICK_CYCLE):
        caller, endpoint = mix.pick(rng)
        picks.append(caller_index[id(caller)] * len(endpoints) + endpoint_index[id(endpoint)])
    schedule = schedule_for(options.shape, options.rate, duration_s)
    pre, most = vus_for(schedule.peak_rate, max_vus)
    gateway = state.require_endpoints().gateway.rstrip("/")
    return K6Plan(options, schedule, gateway, callers, endpoints, picks, pre, most), warnings


def canonical(name: str) -> str:
    """A header name as Go's ``net/http`` (and so k6's ``res.headers``) spells it: ``X-Ratelimit-Remaining``."""
    return "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))


def record_headers() -> list[list[str]]:
    """The response headers each record carries, per history column (``recorder.HEADER_COLUMNS`` order)."""
    return [[canonical(name) for name in names] for names in HEADER_COLUMNS.values()]


def expected_statuses() -> list[Any]:
    """``EXPECTED_STATUS_CODES`` as ``http.expectedStatuses`` arguments: ``{min, max}`` runs and single codes."""
    codes = sorted(EXPECTED_STATUS_CODES)
    runs: list[Any] = []
    start = previous = codes[0]
    for code in [*codes[1:], None]:
        if code is not None and code == previous + 1:
            previous = code
            continue
        runs.append({"min": start, "max": previous} if previous > start else start)
        if code is not None:
            start = previous = code
    return runs


def k6_options(plan: K6Plan) -> dict[str, object]:
    """The script's ``options``: one scenario ``load``, response bodies discarded, trimmed system tags."""
    scenario = {
        **plan.schedule.scenario(),
        "preAllocatedVUs": plan.pre_allocated_vus,
        "maxVUs": plan.max_vus,
        "gracefulStop": f"{round(plan.graceful_stop_s * 1000)}ms",
    }
    return {
        "scenarios": {"load": scenario},
        "discardResponseBodies": True,
        "systemTags": list(SYSTEM_TAGS),
        "summaryTrendStats": ["avg", "min", "med", "p(95)", "p(99)", "max", "count"],
    }


def render_script(plan: K6Plan) -> str:
    """The whole k6 script: the plan as a constant, then the fixed body (``script.js``)."""
    constant = {
        "options": k6_options(plan),
        "base": plan.gateway,
        "timeout": f"{round(plan.options.timeout_s * 1000)}ms",
        "callers": [{"headers": c.headers, "json_headers": c.json_headers} for c in plan.callers],
        "endpoints": [
            {"method": e.method, "path": e.path, "body": None if e.body is None else e.body.decode()}
            for e in plan.endpoints
        ],
        "headers": record_headers(),
        "expected": expected_statuses(),
    }
    body = resources.files("quotaquake.load.k6").joinpath("script.js").read_text(encoding="utf-8")
    return (
        f"// generated by quotaquake for {plan.options.out.name}: scenario, schedule and traffic mix below\n"
        f"const QQ = {json.dumps(constant, indent=1)};\n\n"
        f"function qqPicks() {{\n  return {json.dumps(plan.picks)};\n}}\n\n{body}"
    )
