"""Latency: every command the limiters send to Redis is delayed by a fixed time (a slow Redis, not a dead one).
Needs a proxied Redis (``quotaquake stack up --redis proxied`` or ``sentinel``: ``REQUIRES``).

The kernel here has no netem, so the delay comes from user space: the stack's Envoy ``redis_proxy`` (one
listener per data node) carries one DELAY fault per level (``redis_set.DELAYS_MS``), each off until its
runtime key is set to 100 % through the admin API's ``/runtime_modify``. Envoy answers PING, ECHO and TIME
itself (never delayed) and its delay comes with up to ~5 ms of jitter (docs/research/failover-and-k6.md
section 3). Sentinels and the harness talk to the nodes directly.

Injected by ``quotaquake.chaos.actions.delay_redis`` (``delay_ms`` one of the levels; any other level is
switched off, so a second ``delay_redis`` ends the first window and starts its own); undone by
``clear_redis_delay``, a later ``delay_redis`` or ``restore_all``. Declared meanwhile: a delay at or above the
policy's ``redis_timeout_ms`` makes every Redis call time out, so the policy's degradation applies
(``base.storage_expectation``); a shorter delay is no fault of the store's: clients are served with shared
decisions, only slower (``available``).

Each action reads every limiter's decision-time histogram (``/metrics``: exact counters, no scrape delay)
when it switches: a window's ``details`` hold the delay, the policy's timeout and the decisions per bucket
edge made inside it (``limiter_buckets``: cumulative, ``le`` in seconds, summed over the limiters; ``None``
when a limiter did not answer or restarted inside the window). ``proxy_restarted``: the rollback found the
proxy dead and restarted it (Envoy 1.40's ``redis_proxy`` was seen to crash right after a delay at the
limiters' timeout was switched on): the window was then an outage, not a delay.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import httpx
from prometheus_client.parser import text_string_to_metric_families

from quotaquake.errors import StackError
from quotaquake.faults.base import Activity, Details, Fault, action, storage_expectation
from quotaquake.faults.targets import ChaosTargetError
from quotaquake.kongspec import KongSpec
from quotaquake.load.safety import check_target
from quotaquake.policy import Policy
from quotaquake.runfolder.models import Expectation, FaultKind, ServiceRole
from quotaquake.stack.state import StackState

REQUIRES = ("proxied", "sentinel")
PROXY = "redis-proxy"
HTTP_TIMEOUT_S = 2.0
DECISION_BUCKET = "quotaquake_limiter_decision_seconds"
COUNTERS = ("quotaquake_limiter_degraded_decisions", "quotaquake_limiter_redis_errors")


def delay_of(activity: Activity) -> int | None:
    """The delay (ms) a ``delay_redis`` activity set: its output, else its argument."""
    output = activity.output
    value = output.get("delay_ms") if isinstance(output, Mapping) else activity.arguments.get("delay_ms")
    try:
        return int(str(value)) if value is not None else None
    except ValueError:
        return None


def expectation(activity: Activity, policy: Policy, role: ServiceRole, kong: KongSpec | None) -> Expectation:
    """A delay at or above the Redis timeout is a store outage for the limiter; a shorter one is not."""
    delay = delay_of(activity)
    if delay is not None and delay >= policy.degradation.redis_timeout_ms:
        return storage_expectation(policy, ServiceRole.RATE_LIMIT_STORE, kong)
    return Expectation.AVAILABLE


def window_details(fault: Activity, undo: Activity | None) -> Details | None:
    """The delay, the timeout it was judged against, and the limiters' decisions inside the window."""
    start = fault.output if isinstance(fault.output, Mapping) else {}
    end = undo.output if undo is not None and isinstance(undo.output, Mapping) else {}
    restored = end.get("actions")
    if isinstance(end.get("redis_delay"), Mapping):  # restore_all switched the delay off
        end = end["redis_delay"]
    details: Details = {
        "proxy_restarted": isinstance(restored, list) and f"restarted {PROXY}" in restored,
        "delay_ms": delay_of(fault),
        "switched_at": start.get("at"),
        "cleared_at": end.get("at"),
        "limiter_buckets": _difference(start.get("limiter_buckets"), end.get("limiter_buckets")),
        "limiter_counters": _difference(start.get("limiter_counters"), end.get("limiter_counters")),
        "runtime_key": start.get("runtime_key"),
    }
    return details


def _difference(before: object, after: object) -> Details | None:
    """``after - before`` per key (counters read at the window's two ends); ``None`` when either is missing
    or a counter went down (a limiter restarted inside the window)."""
    if not isinstance(before, Mapping) or not isinstance(after, Mapping) or not after:
        return None
    diff = {str(k): float(after[k]) - float(before.get(k, 0.0)) for k in after}
    if any(v < 0 for v in diff.values()):
        return None
    return dict(diff)


FAULT = Fault(
    kind=FaultKind.LATENCY,
    injected_by=frozenset({action("delay_redis")}),
    undone_by=frozenset({action("delay_redis"), action("clear_redis_delay")}),
    services=lambda activity: PROXY,
    declared_role=lambda activity: ServiceRole.RATE_LIMIT_STORE,
    expectation_of=expectation,
    details=window_details,
)


def require_proxy(state: StackState) -> str:
    """The proxy's admin URL; ``ChaosTargetError`` naming the ``stack up`` option without one."""
    admin = state.endpoints.redis_proxy_admin if state.endpoints else None
    if state.redis not in REQUIRES or not admin:
        raise ChaosTargetError(
            f"a Redis latency fault needs the Redis proxy: the stack {state.stack_id} runs --redis {state.redis}; "
            "start it with `quotaquake stack up --redis proxied` (or sentinel)"
        )
    check_target(admin, state.allow_hosts, what="redis proxy admin")
    return admin


def require_level(delay_ms: int) -> int:
    from quotaquake.stack.local.redis_set import DELAYS_MS

    if delay_ms not in DELAYS_MS:
        levels = ", ".join(str(d) for d in DELAYS_MS)
        raise ChaosTargetError(f"delay_ms {delay_ms}: the Redis proxy has delay levels {levels} ms")
    return delay_ms


def set_delay(state: StackState, delay_ms: int | None) -> dict[str, object]:
    """Switch the proxy to ``delay_ms`` (``None``: no delay) and read the limiters' histograms at that moment.

    Returns ``{"delay_ms", "at", "runtime_key", "limiter_buckets", "limiter_counters"}`` (``at``: epoch s)."""
    from quotaquake.stack.local.redis_set import DELAYS_MS, runtime_key

    admin = require_proxy(state)
    if delay_ms is not None:
        require_level(delay_ms)
    values = {runtime_key(d): 100 if d == delay_ms else 0 for d in DELAYS_MS}
    buckets, counters = limiter_histograms(state)
    with httpx.Client(timeout=HTTP_TIMEOUT_S) as client:
        answer = client.post(f"{admin}/runtime_modify", params=values)
    at = time.time()
    if answer.status_code != 200:
        raise StackError(PROXY, f"runtime_modify answered {answer.status_code}: {answer.text.strip()[:200]}")
    return {
        "delay_ms": delay_ms or 0,
        "at": round(at, 6),
        "runtime_key": runtime_key(delay_ms) if delay_ms else None,
        "limiter_buckets": buckets,
        "limiter_counters": counters,
    }


def inject(state: StackState, delay_ms: int) -> dict[str, object]:
    """Delay every command by ``delay_ms`` (one of the proxy's levels)."""
    return set_delay(state, delay_ms)


def undo(state: StackState) -> dict[str, object]:
    """No delay any more."""
    return set_delay(state, None)


def active_delays(state: StackState) -> list[str]:
    """The proxy's delay runtime keys switched on now (``GET /runtime``)."""
    from quotaquake.stack.local.redis_set import RUNTIME_PREFIX

    admin = require_proxy(state)
    with httpx.Client(timeout=HTTP_TIMEOUT_S) as client:
        entries = client.get(f"{admin}/runtime").json().get("entries", {})
    return [
        key
        for key, entry in entries.items()
        if key.startswith(RUNTIME_PREFIX) and entry.get("final_value") not in ("0", "", None)
    ]


def clear_recorded(state: StackState) -> dict[str, object] | None:
    """Switch a delay still on off, with the record ``undo`` returns; ``None`` when none is on (or the stack
    has no proxy)."""
    if state.redis not in REQUIRES or not (state.endpoints and state.endpoints.redis_proxy_admin):
        return None
    return undo(state) if active_delays(state) else None


def clear_if_proxied(state: StackState) -> bool:
    """Switch every delay off when the stack has the proxy and one is on (``restore_all``); True when it did."""
    if state.redis not in REQUIRES or not (state.endpoints and state.endpoints.redis_proxy_admin):
        return False
    if not active_delays(state):
        return False
    undo(state)
    return True


def limiter_histograms(state: StackState) -> tuple[dict[str, float] | None, dict[str, float] | None]:
    """Decision-time buckets (``le`` in seconds -> decisions at most that long) and the degraded/Redis-error
    counters, summed over every limiter; ``(None, None)`` when one did not answer."""
    buckets: dict[str, float] = {}
    counters: dict[str, float] = {}
    endpoints = state.require_endpoints()
    try:
        with httpx.Client(timeout=HTTP_TIMEOUT_S) as client:
            for url in endpoints.limiters:
                check_target(url, state.allow_hosts, what="limiter metrics")
                _add_metrics(client.get(f"{url}/metrics").text, buckets, counters)
    except httpx.HTTPError:
        return None, None
    return buckets, counters


def _add_metrics(text: str, buckets: dict[str, float], counters: dict[str, float]) -> None:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == f"{DECISION_BUCKET}_bucket":
                le = sample.labels["le"]
                buckets[le] = buckets.get(le, 0.0) + sample.value
            elif family.name in COUNTERS and sample.name.endswith("_total"):
                counters[family.name] = counters.get(family.name, 0.0) + sample.value
