"""Chaos Toolkit probes against the stack named by the experiment's ``quotaquake_state`` configuration.

Every network call has a timeout. HTTP probes go through the front load balancer (what clients use) and
record each request in the probe ledger (``quotaquake.chaos.ledger``) so verification can tell probe
traffic from load. Probes that cannot measure (Prometheus down, no such metric) fail the activity rather
than report a healthy number.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx

from quotaquake.chaos import ledger, promql
from quotaquake.chaos.burst import plan_burst, run_burst
from quotaquake.chaos.targets import load_stack
from quotaquake.faults.targets import ChaosTargetError, require_service
from quotaquake.policy import DEFAULT_POLICY_PATH, load_policy
from quotaquake.runfolder.models import ProbeRequest
from quotaquake.stack.readiness import is_ready
from quotaquake.stack.state import Consumer, StackState

__all__ = [
    "gateway_healthy",
    "known_consumer_works",
    "quota_enforced",
    "recent_429_rate",
    "recent_error_rate",
    "service_reachable",
]

Configuration = Mapping[str, object] | None
logger = logging.getLogger("chaostoolkit")  # lands in the chaos log file next to the journal
HTTP_TIMEOUT_S = 2.0
PROMETHEUS_TIMEOUT_S = 5.0
GATEWAY_HEALTH_PATH = "/gateway-health"


def _record(
    configuration: Configuration, probe: str, path: str, statuses: Sequence[int | None], consumer: str | None = None
) -> None:
    """Append GET requests a probe just sent to the probe ledger (no-op without a ledger); ``consumer``:
    whose key they carried (a Kong target counts them in that consumer's windows)."""
    now = time.time()
    requests = [
        ProbeRequest(t=now, probe=probe, method="GET", path=path, status=s, consumer=consumer) for s in statuses
    ]
    ledger.record(configuration, requests)


def _get(client: httpx.Client, url: str, headers: Mapping[str, str] | None = None) -> int | None:
    try:
        return client.get(url, headers=headers).status_code
    except httpx.HTTPError:
        return None


def gateway_healthy(requests: int = 3, configuration: Configuration = None) -> bool:
    """True when ``requests`` consecutive ``GET /gateway-health`` through the LB all answer 200.

    The LB round-robins, so 3 requests reach every replica it considers healthy; a dead replica the LB
    has not yet ejected shows up as a failure here.
    """
    gateway = load_stack(configuration).require_endpoints().gateway
    with httpx.Client(timeout=HTTP_TIMEOUT_S) as client:
        statuses = [_get(client, gateway + GATEWAY_HEALTH_PATH) for _ in range(requests)]
    _record(configuration, "gateway_healthy", GATEWAY_HEALTH_PATH, statuses)
    return bool(statuses) and all(status == 200 for status in statuses)


def service_reachable(service: str, configuration: Configuration = None) -> bool:
    """True when ``service`` answers its readiness check within its timeout (Redis PING, Postgres
    ``SELECT 1``, HTTP 200). A dead or hung (SIGSTOPped) service answers False."""
    state = load_stack(configuration)
    record = state.services[require_service(state, service)]
    if not record.ready_url:
        raise ChaosTargetError(f"service '{service}': has no readiness check to probe")
    try:
        return is_ready(record.ready_url)
    except Exception:  # every failure to answer: "not reachable"
        return False


def _prometheus_query(state: StackState) -> promql.QueryFn:
    from prometheus_api_client import PrometheusConnect
    from urllib3.util.retry import Retry

    url = state.require_endpoints().prometheus
    if not url:
        raise ChaosTargetError(f"stack {state.stack_id} has no Prometheus to query")
    connection = PrometheusConnect(url=url, disable_ssl=True, retry=Retry(total=1), timeout=PROMETHEUS_TIMEOUT_S)

    def query(text: str) -> Sequence[object]:
        answer: Sequence[object] = connection.custom_query(query=text)
        return answer

    return query


def recent_error_rate(window_s: float = 30.0, configuration: Configuration = None) -> float:
    """Share (0..1) of client requests the LB (a Kong target: its replicas) answered with 5xx over the last
    ``window_s`` seconds."""
    state = load_stack(configuration)
    return promql.error_rate(_prometheus_query(state), window_s, kong=state.model == "kong")


def recent_429_rate(window_s: float = 30.0, configuration: Configuration = None) -> float:
    """Share (0..1) of limiter decisions that were 429 over the last ``window_s`` seconds."""
    return promql.limited_rate(_prometheus_query(load_stack(configuration)), window_s)


def quota_enforced(
    tier: str = "free",
    path: str = "/identify",
    min_limited: int = 3,
    margin: int = 10,
    timeout_s: float = 20.0,
    configuration: Configuration = None,
) -> bool:
    """A burst as a FRESH identity gets ``min_limited`` 429s without over-admission (``burst`` module).

    The identity is a new consumer of ``tier`` added to the registry now. While Postgres is down no
    consumer can be added (and the limiter could not look one up), so the burst runs keyless from a fresh
    client IP instead, limited by the policy's ``anonymous`` section: quota enforcement is still tested,
    by the per-IP bucket, without the registry.
    """
    state = load_stack(configuration)
    policy = load_policy(Path(state.policy_file) if state.policy_file else DEFAULT_POLICY_PATH)
    plan = plan_burst(state, policy, tier, path)
    with httpx.Client(timeout=HTTP_TIMEOUT_S) as client:
        result = run_burst(
            client, state.require_endpoints().gateway, plan, min_limited=min_limited, margin=margin, timeout_s=timeout_s
        )
    ledger.record(configuration, result.requests)
    logger.info(f"quota_enforced: {'yes' if result.enforced else 'NO'}: {result.summary()}")
    return result.enforced


def _known_consumer(state: StackState, tier: str) -> Consumer:
    consumers = state.consumers_of(tier)
    if not consumers:
        raise ChaosTargetError(f"tier '{tier}': stack {state.stack_id} has no provisioned consumer of it")
    return consumers[-1]


def known_consumer_works(tier: str = "pro", path: str = "/health", configuration: Configuration = None) -> bool:
    """True when a consumer provisioned at ``stack up`` gets 200 on ``GET path`` through the LB.

    ``/health`` costs nothing (the quota is untouched) but is still authenticated, so this shows that
    the limiter recognises the key, e.g. from its registry cache while Postgres is down.
    """
    state = load_stack(configuration)
    consumer = _known_consumer(state, tier)
    with httpx.Client(timeout=HTTP_TIMEOUT_S) as client:
        status = _get(client, state.require_endpoints().gateway + path, {"x-api-key": consumer.key})
    _record(configuration, "known_consumer_works", path, [status], consumer=consumer.id)
    return status == 200
