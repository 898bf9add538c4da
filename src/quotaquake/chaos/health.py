"""Is the stack healthy again? Checked, not assumed: every service answers its readiness check, and the
front load balancer sees every gateway replica healthy and answers through itself.

Readiness per service is the provider's own check (``ServiceRecord.ready_url``: Redis PING, Postgres
``SELECT 1``, HTTP 200 on /ready, /health or /-/ready). Each check has a short timeout; ``wait_until_healthy``
polls them all until they pass or its deadline expires.
"""

from __future__ import annotations

import time

import httpx

from quotaquake.errors import StackError
from quotaquake.load.safety import check_target
from quotaquake.stack.readiness import is_ready
from quotaquake.stack.state import StackState

HEALTH_TIMEOUT_S = 1.0  # per HTTP/Redis/Postgres check
POLL_INTERVAL_S = 0.2
LB_HEALTH_PATH = "/gateway-health"


def service_problems(state: StackState) -> list[str]:
    """One line per service whose readiness check fails (an exception counts as a failure)."""
    problems = []
    for name, record in sorted(state.services.items()):
        if not record.ready_url:
            continue
        try:
            ready = is_ready(record.ready_url, state.allow_hosts)
        except Exception as exc:  # any failure of a readiness check: "not ready"
            problems.append(f"{name}: {type(exc).__name__}")
            continue
        if not ready:
            problems.append(f"{name}: not ready")
    return problems


def unhealthy_replicas(lb_admin: str, replicas: int, client: httpx.Client) -> list[str]:
    """Upstream hosts the LB's active health check does not mark healthy (from its admin ``/clusters``).

    Returns one line per unhealthy host, or a line saying how many hosts it sees if not ``replicas``.
    """
    text = client.get(f"{lb_admin}/clusters").text
    flags = [line for line in text.splitlines() if "::health_flags::" in line and line.startswith("replicas::")]
    bad = [line for line in flags if not line.endswith("::healthy")]
    if len(flags) != replicas:
        bad.append(f"lb sees {len(flags)} gateway replicas, expected {replicas}")
    return bad


def gateway_problems(state: StackState, client: httpx.Client) -> list[str]:
    """Problems seen through the front: LB health flags and ``GET /gateway-health`` through the LB."""
    endpoints = state.require_endpoints()
    problems: list[str] = []
    for url in (endpoints.gateway, endpoints.lb_admin):
        if url:
            check_target(url, state.allow_hosts, what="health check")
    try:
        if endpoints.lb_admin:
            problems += unhealthy_replicas(endpoints.lb_admin, len(endpoints.replicas), client)
        status = client.get(endpoints.gateway + LB_HEALTH_PATH).status_code
        if status != 200:
            problems.append(f"lb: {LB_HEALTH_PATH} answered {status}")
    except httpx.HTTPError as exc:
        problems.append(f"lb: {type(exc).__name__}")
    return problems


def stack_problems(state: StackState) -> list[str]:
    """Everything unhealthy right now; empty when the stack is healthy (a replicated Redis: one primary the
    Sentinels agree on, every other node replicating from it)."""
    from quotaquake.stack.local.sentinel import set_problems

    with httpx.Client(timeout=HEALTH_TIMEOUT_S) as client:
        problems = service_problems(state) + gateway_problems(state, client)
    return problems + (set_problems(state) if state.redis == "sentinel" and not problems else [])


def wait_until_healthy(state: StackState, timeout_s: float) -> float:
    """Poll ``stack_problems`` until none remain; returns the seconds it took.

    Raises ``StackError`` naming what is still unhealthy when ``timeout_s`` passes.
    """
    started = time.monotonic()
    deadline = started + timeout_s
    while True:
        problems = stack_problems(state)
        if not problems:
            return time.monotonic() - started
        if time.monotonic() >= deadline:
            raise StackError("stack", f"not healthy {timeout_s:.0f} s after restore: {'; '.join(problems)}")
        time.sleep(POLL_INTERVAL_S)
