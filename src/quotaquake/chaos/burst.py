"""The "quota still enforced" burst: send requests as one fresh identity until the limiter answers 429.

A fresh identity has a full bucket, so the burst must see 429s after at most the bucket's capacity per
deciding replica. With Redis up one bucket is shared; while Redis is down (fail-open-local) each of the R
replicas keeps its own, so the admitted count is bounded by ``R x (capacity + refill x elapsed)``.
The burst stops at ``min_limited`` 429s, at that bound plus ``margin`` admitted requests (over-admission:
not enforced), at ``max_other`` answers that are neither (401, 5xx such as a fail-closed limiter's 503, no
answer), or at ``timeout_s``. So it never sends more than bound + margin + min_limited + max_other.
"""

from __future__ import annotations

import ipaddress
import secrets
import time
from dataclasses import dataclass, field

import httpx

from quotaquake.errors import StackError
from quotaquake.policy import ANONYMOUS_TIER, Limits, Policy, refill_per_second
from quotaquake.runfolder.models import ProbeRequest
from quotaquake.stack.registry import provider_for
from quotaquake.stack.state import StackState

# Fresh client IPs for keyless bursts come from the benchmarking range (RFC 2544), never a real client.
_BENCHMARK_NET = ipaddress.ip_network("198.18.0.0/15")


@dataclass(frozen=True)
class BurstPlan:
    """Whom the burst impersonates and what the policy allows it (in requests of ``path``)."""

    identity: str  # e.g. "free consumer free-1a2b3c4d" or "anonymous 198.18.3.7"
    headers: dict[str, str]
    path: str
    capacity: float  # bucket capacity, requests
    refill_per_s: float  # requests per second
    deciders: int  # replicas that may each decide with their own bucket

    def admitted_bound(self, elapsed_s: float) -> float:
        """Most requests the policy admits within ``elapsed_s`` of a fresh identity (requests)."""
        return self.deciders * (self.capacity + self.refill_per_s * elapsed_s)


@dataclass
class BurstResult:
    plan: BurstPlan
    min_limited: int
    margin: int
    max_other: int
    sent: int = 0
    admitted: int = 0  # 2xx-4xx other than 429 and 401: the limiter let it through
    limited: int = 0  # 429
    other: int = 0  # 401, 5xx, no response
    elapsed_s: float = 0.0
    requests: list[ProbeRequest] = field(default_factory=list)

    def over_admitted(self) -> bool:
        return self.admitted > self.plan.admitted_bound(self.elapsed_s) + self.margin

    def done(self, timeout_s: float) -> bool:
        return (
            self.limited >= self.min_limited
            or self.over_admitted()
            or self.other >= self.max_other
            or self.elapsed_s >= timeout_s
        )

    @property
    def enforced(self) -> bool:
        """Enough 429s, and no more admitted than the policy allows (plus ``margin``)."""
        return self.limited >= self.min_limited and not self.over_admitted()

    def summary(self) -> str:
        return (
            f"{self.plan.identity}: {self.sent} sent, {self.admitted} admitted, {self.limited} x 429, "
            f"{self.other} other in {self.elapsed_s:.2f} s (bound {self.plan.admitted_bound(self.elapsed_s):.0f})"
        )


def fresh_client_ip() -> str:
    offset = secrets.randbelow(_BENCHMARK_NET.num_addresses - 2) + 1
    return str(_BENCHMARK_NET.network_address + offset)


def _requests_per(policy: Policy, limits: Limits, path: str) -> tuple[float, float]:
    cost = policy.cost_of(path)
    capacity, refill = policy.capacity(limits), refill_per_second(limits)
    if cost <= 0 or capacity is None or refill is None:
        raise StackError(
            "quota_enforced", f"path '{path}' or its tier is not rate limited; use a limited tier and path"
        )
    return capacity / cost, refill / cost


def plan_burst(state: StackState, policy: Policy, tier: str, path: str) -> BurstPlan:
    """A fresh consumer of ``tier``; when Postgres is down (no consumer can be added), a fresh anonymous
    client IP instead, limited by the policy's ``anonymous`` section and needing no registry."""
    deciders = max(1, len(state.require_endpoints().replicas))
    try:
        consumer = provider_for(state).add_consumer(state, tier)
    except StackError:
        ip = fresh_client_ip()
        capacity, refill = _requests_per(policy, policy.limits_for(ANONYMOUS_TIER), path)
        return BurstPlan(f"anonymous {ip}", {"x-forwarded-for": ip}, path, capacity, refill, deciders)
    capacity, refill = _requests_per(policy, policy.limits_for(tier), path)
    return BurstPlan(f"{tier} consumer {consumer.id}", {"x-api-key": consumer.key}, path, capacity, refill, deciders)


def _send(client: httpx.Client, url: str, plan: BurstPlan) -> int | None:
    try:
        return client.post(url, headers=plan.headers, json={}).status_code
    except httpx.HTTPError:
        return None


def _count(result: BurstResult, status: int | None) -> None:
    result.sent += 1
    if status == 429:
        result.limited += 1
    elif status is None or status == 401 or status >= 500:
        result.other += 1
    else:
        result.admitted += 1


def run_burst(
    client: httpx.Client,
    gateway: str,
    plan: BurstPlan,
    *,
    min_limited: int,
    margin: int,
    timeout_s: float,
    max_other: int = 20,
) -> BurstResult:
    """POST ``plan.path`` through ``gateway`` one request at a time until a stop condition (module doc)."""
    result = BurstResult(plan, min_limited, margin, max_other)
    started = time.monotonic()
    while not result.done(timeout_s):
        status = _send(client, gateway + plan.path, plan)
        _count(result, status)
        result.elapsed_s = time.monotonic() - started
        result.requests.append(
            ProbeRequest(t=time.time(), probe="quota_enforced", method="POST", path=plan.path, status=status)
        )
    return result
