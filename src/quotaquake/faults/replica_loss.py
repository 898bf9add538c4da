"""Replica loss: k of the N gateway replicas die behind the load balancer (SIGKILL; ``docker kill``).

The replicas chosen are the highest-numbered ones (deterministic, so runs are comparable); k = N (total
gateway outage) is allowed. Injected by ``quotaquake.chaos.actions.kill_gateway_replicas``; undone by
``restore_all``. The gateway as a whole is expected to keep serving through the remaining replicas.

What the action measures, for the window's ``details`` (``verify.checks.replica_failover``): ``killed_at``
(epoch s, just before the first SIGKILL), ``in_flight`` is left to the history; the load balancer's active
health check as configured (``health_check``: interval, timeout, unhealthy threshold, from its admin
``/config_dump``) and, per replica, when the load balancer marked it unhealthy (``ejected_after_s``: polled on
its admin ``/clusters`` every ``POLL_S``; ``None`` when it has no such admin, e.g. Kong's nginx, or did not
within ``EJECT_DEADLINE_S``). The undoing ``restore_all`` adds ``healthy_after_s`` (restart to healthy).
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import httpx

from quotaquake.faults.base import Activity, Details, Fault, action
from quotaquake.faults.handles import HandleFactory
from quotaquake.faults.targets import choose_replicas
from quotaquake.load.safety import check_target
from quotaquake.runfolder.models import Expectation, FaultKind
from quotaquake.stack.registry import handle_for
from quotaquake.stack.state import StackState

POLL_S = 0.02
EJECT_DEADLINE_S = 10.0
HTTP_TIMEOUT_S = 1.0


def killed_replicas(activity: Activity) -> str | None:
    """The replicas the action reports it killed (its output: a list, or a mapping's ``replicas``)."""
    output = activity.output
    if isinstance(output, Mapping):
        output = output.get("replicas")
    if isinstance(output, list):
        return ",".join(str(name) for name in output)
    return None


def window_details(fault: Activity, undo: Activity | None) -> Details | None:
    """The kill's measurements plus the restore's ``healthy_after_s``."""
    if not isinstance(fault.output, Mapping):
        return None
    details: Details = {str(k): v for k, v in fault.output.items()}
    if undo is not None and isinstance(undo.output, Mapping) and "healthy_after_s" in undo.output:
        details["healthy_after_s"] = undo.output["healthy_after_s"]
        details["restored_at"] = round(undo.end, 6)
    return details


FAULT = Fault(
    kind=FaultKind.REPLICA_LOSS,
    injected_by=frozenset({action("kill_gateway_replicas")}),
    services=killed_replicas,
    expectation=lambda policy, role, kong: Expectation.AVAILABLE,
    details=window_details,
)


def inject(state: StackState, count: int, handles: HandleFactory = handle_for) -> dict[str, object]:
    """SIGKILL ``count`` of the N gateway replicas, then time the load balancer's ejection of each."""
    victims = choose_replicas(state, count)
    killed_at = time.time()
    for name in victims:
        handles(state, name).kill()
    ejected = ejection_times(state, victims, killed_at)
    return {
        "replicas": victims,
        "killed_at": round(killed_at, 6),
        "replicas_before": len(state.require_endpoints().replicas),
        "health_check": health_check(state),
        "ejected_after_s": ejected,
    }


def _lb_admin(state: StackState) -> str | None:
    admin = state.require_endpoints().lb_admin
    if admin:
        check_target(admin, state.allow_hosts, what="lb admin")
    return admin


def _replica_hosts(state: StackState, names: list[str]) -> dict[str, str]:
    """Replica name -> ``host:port`` as the LB's ``/clusters`` names it."""
    urls = state.require_endpoints().replicas
    hosts = {}
    for name in names:
        index = int(name.rsplit("-", 1)[1]) - 1
        if 0 <= index < len(urls):
            hosts[name] = urls[index].split("://", 1)[-1].rstrip("/")
    return hosts


def ejection_times(state: StackState, names: list[str], since: float) -> dict[str, float | None]:
    """Seconds from ``since`` until the LB's active health check marked each replica unhealthy."""
    admin = _lb_admin(state)
    hosts = _replica_hosts(state, names)
    found: dict[str, float | None] = dict.fromkeys(names)
    if admin is None or not hosts:
        return found
    deadline = time.monotonic() + EJECT_DEADLINE_S
    with httpx.Client(timeout=HTTP_TIMEOUT_S) as client:
        while time.monotonic() < deadline and any(found[n] is None for n in hosts):
            try:
                text = client.get(f"{admin}/clusters").text
            except httpx.HTTPError:
                return found
            now = time.time()
            for name, host in hosts.items():
                flag = f"replicas::{host}::health_flags::"
                line = next((x for x in text.splitlines() if x.startswith(flag)), None)
                if found[name] is None and line is not None and "failed_active_hc" in line:
                    found[name] = round(now - since, 3)
            time.sleep(POLL_S)
    return found


def health_check(state: StackState) -> dict[str, float] | None:
    """The LB's active health check on the replicas (seconds, count), from its admin ``/config_dump``."""
    admin = _lb_admin(state)
    if admin is None:
        return None
    try:
        with httpx.Client(timeout=HTTP_TIMEOUT_S) as client:
            dump = client.get(f"{admin}/config_dump", params={"resource": "static_clusters"}).json()
    except (httpx.HTTPError, ValueError):
        return None
    for entry in dump.get("configs", []):
        cluster = entry.get("cluster", {})
        if cluster.get("name") == "replicas" and cluster.get("health_checks"):
            check = cluster["health_checks"][0]
            return {
                "interval_s": _seconds(check.get("interval")),
                "timeout_s": _seconds(check.get("timeout")),
                "unhealthy_threshold": float(check.get("unhealthy_threshold", 1)),
            }
    return None


def _seconds(duration: object) -> float:
    """Envoy's JSON duration (``"0.500s"``) in seconds."""
    return float(str(duration).rstrip("s")) if duration else 0.0
