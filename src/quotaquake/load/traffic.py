"""Who calls what: callers (consumers, keyless clients, invalid keys) and endpoints, mixed by weight.

Callers per tier come from the stack state file: every provisioned consumer of that tier (or the first
``--qq-consumers`` of them). Two pseudo-tiers need no provisioning:

* ``anonymous``: keyless clients, each sending ``X-Forwarded-For: 198.51.100.<n>`` from a small pool
  (TEST-NET-2 addresses), so each simulated IP has its own anonymous quota; consumer ``anon:<ip>``.
* ``invalid``: a trickle of unknown API keys (expected answer 401); consumer ``invalid``.

Each request picks a tier by weight, then a caller of that tier uniformly, then an endpoint by weight.
"""

from __future__ import annotations

import bisect
import itertools
import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from quotaquake.errors import UsageError
from quotaquake.load.options import ScenarioOptions
from quotaquake.policy import ANONYMOUS_TIER, Policy
from quotaquake.stack.state import Consumer, StackState

T = TypeVar("T")

INVALID_TIER = "invalid"
ANON_NETWORK = "198.51.100."
INVALID_KEYS = 4
GET_PATHS = frozenset({"/health", "/calibrate"})
EXPECTED_STATUS_CODES = frozenset(range(200, 300)) | {401, 429}
"""Answers that are not Locust failures: success, unknown key (401) and over quota (429). Everything else
(5xx, other 4xx, no response) is a failure; the history records every answer either way."""

_FINGERPRINT_A = {
    "user_agent": "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    "language": "en-US",
    "timezone": "Europe/Berlin",
    "screen": {"width": 1920, "height": 1080, "color_depth": 24},
    "canvas_hash": "9f2b5c1e7a44d0b3",
    "webgl_vendor": "Mesa Intel(R) UHD Graphics 620",
    "fonts": ["DejaVu Sans", "Liberation Serif", "Noto Color Emoji"],
    "plugins": [],
}
_FINGERPRINT_B = {**_FINGERPRINT_A, "timezone": "America/New_York", "canvas_hash": "1c0de5a7b2f94e61"}

BODIES: dict[str, object] = {
    "/identify": _FINGERPRINT_A,
    "/compare": {"left": _FINGERPRINT_A, "right": _FINGERPRINT_B},
    "/batch": {"fingerprints": [_FINGERPRINT_A, _FINGERPRINT_B]},
}
JSON_HEADERS = {"content-type": "application/json"}


@dataclass(frozen=True, slots=True)
class Caller:
    """One client identity: consumer id, tier, and the request headers that identify it."""

    consumer: str
    tier: str
    headers: dict[str, str]
    json_headers: dict[str, str] = field(init=False, repr=False, compare=False)  # headers + JSON type

    def __post_init__(self) -> None:
        object.__setattr__(self, "json_headers", {**self.headers, **JSON_HEADERS})


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One route: path, method, the policy's cost, and the body sent (``None`` for GET)."""

    path: str
    method: str
    cost: float
    body: bytes | None


def anonymous_callers(count: int) -> list[Caller]:
    """Keyless clients ``198.51.100.1`` .. ``198.51.100.<count>``."""
    ips = [f"{ANON_NETWORK}{n}" for n in range(1, count + 1)]
    return [Caller(f"anon:{ip}", ANONYMOUS_TIER, {"x-forwarded-for": ip}) for ip in ips]


def invalid_callers(key_header: str) -> list[Caller]:
    """Clients with API keys that no registry knows."""
    return [Caller(INVALID_TIER, INVALID_TIER, {key_header: f"qq-invalid-key-{n}"}) for n in range(INVALID_KEYS)]


def callers_of(tier: str, state: StackState, options: ScenarioOptions) -> list[Caller]:
    """The callers of one tier (see the module docstring); empty when the state has none."""
    if tier == ANONYMOUS_TIER:
        return anonymous_callers(options.anon_ips)
    if tier == INVALID_TIER:
        return invalid_callers(options.key_header)
    return [Caller(c.id, c.tier, {options.key_header: c.key}) for c in chosen_consumers(tier, state, options)]


def chosen_consumers(tier: str, state: StackState, options: ScenarioOptions) -> list[Consumer]:
    """The provisioned consumers of ``tier`` a scenario uses: all, or the first ``--qq-consumers``."""
    consumers = state.consumers_of(tier)
    return consumers[: options.consumers_per_tier] if options.consumers_per_tier else consumers


def endpoint_for(path: str, policy: Policy) -> Endpoint:
    """The endpoint at ``path``: GET for /health and /calibrate, POST with a fingerprint JSON otherwise."""
    if path in GET_PATHS:
        return Endpoint(path, "GET", policy.cost_of(path), None)
    body = BODIES.get(path, BODIES["/identify"])
    return Endpoint(path, "POST", policy.cost_of(path), json.dumps(body).encode())


class Weighted(Generic[T]):
    """Weighted random choice with precomputed cumulative weights (one ``random()`` and a bisect)."""

    def __init__(self, items: Sequence[T], weights: Sequence[float]) -> None:
        if not items or len(items) != len(weights):
            raise ValueError("items and weights must be non-empty and of equal length")
        self.items = list(items)
        self._cumulative = list(itertools.accumulate(weights))
        self._total = self._cumulative[-1]

    def pick(self, rng: random.Random) -> T:
        index = bisect.bisect_right(self._cumulative, rng.random() * self._total)
        return self.items[min(index, len(self.items) - 1)]


class TrafficMix:
    """Chooses (caller, endpoint) for each request from tier and endpoint weights."""

    def __init__(
        self,
        callers: Mapping[str, Sequence[Caller]],
        tier_weights: Mapping[str, float],
        endpoints: Sequence[Endpoint],
        endpoint_weights: Sequence[float],
    ) -> None:
        tiers = [t for t in tier_weights if callers.get(t)]
        if not tiers:
            raise UsageError(
                "no callers for any weighted tier: the stack state has no consumers of "
                f"{', '.join(tier_weights)}; provision some or change --qq-tiers"
            )
        self.tiers = Weighted(tiers, [tier_weights[t] for t in tiers])
        self.callers = {t: list(callers[t]) for t in tiers}
        self.endpoints = Weighted(endpoints, endpoint_weights)

    def pick(self, rng: random.Random) -> tuple[Caller, Endpoint]:
        pool = self.callers[self.tiers.pick(rng)]
        caller = pool[int(rng.random() * len(pool))]
        return caller, self.endpoints.pick(rng)


def build_mix(state: StackState, policy: Policy, options: ScenarioOptions) -> tuple[TrafficMix, list[str]]:
    """The traffic mix for a scenario, and warnings about weighted tiers without any consumer."""
    callers = {tier: callers_of(tier, state, options) for tier in options.tiers}
    missing = [tier for tier, pool in callers.items() if not pool]
    warnings = [f"--qq-tiers: tier {tier!r} has no consumers in {options.state}; skipped" for tier in missing]
    if options.target == "calibrate":
        path = state.require_endpoints().calibration_path
        endpoints, weights = [endpoint_for(path, policy)], [1.0]
    else:
        endpoints = [endpoint_for(path, policy) for path in options.endpoints]
        weights = list(options.endpoints.values())
    return TrafficMix(callers, options.tiers, endpoints, weights), warnings
