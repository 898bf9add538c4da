"""The fault registry: one module per kind of fault, each describing how it is injected and undone,
how the chaos journal shows it, and what the declared policy expects of the gateway while it lasts.

==============  ===============================================  ===========================================
module          injected by                                       undone by
==============  ===============================================  ===========================================
``outage``      ``quotaquake.chaos.actions.kill_service``         ``restart_service``, ``restore_all``
``pause``       ``quotaquake.chaos.actions.stop_service``         ``resume_service``, ``restart_service``, ...
``replica_loss````quotaquake.chaos.actions.kill_gateway_replicas````restore_all``
``pod_loss``    ``quotaquake.chaos.k8s.terminate_pods``/``evict``   a succeeded ``pods_ready`` probe
``failover``    ``kill_redis_primary``, ``pause_redis_primary``    ``await_replicated_set``, ``restore_all``
``latency``     ``delay_redis``                                   ``clear_redis_delay``, ``delay_redis``, ...
==============  ===============================================  ===========================================

Adding a kind of fault is one module here (a ``FAULT`` and its ``inject``/``undo``), an entry in
``FAULTS``, a ``FaultKind`` value, and an experiment file under ``chaos/`` that uses it.
"""

from __future__ import annotations

import re

from quotaquake.faults import failover, latency, outage, pause, pod_loss, replica_loss
from quotaquake.faults.base import Activity, Fault
from quotaquake.runfolder.models import ServiceRole

FAULTS: tuple[Fault, ...] = (
    outage.FAULT,
    pause.FAULT,
    replica_loss.FAULT,
    pod_loss.FAULT,
    failover.FAULT,
    latency.FAULT,
)

# Service names as every provider names them (local processes, docker containers); Kubernetes label
# selectors are matched on the value of their name label.
_ROLES: dict[str, ServiceRole] = {
    "redis": ServiceRole.RATE_LIMIT_STORE,
    "redis-proxy": ServiceRole.RATE_LIMIT_STORE,
    "postgres": ServiceRole.REGISTRY,
    "lb": ServiceRole.LOAD_BALANCER,
    "stub-api": ServiceRole.UPSTREAM,
    "prometheus": ServiceRole.MONITORING,
    "kong": ServiceRole.GATEWAY,
    # Kubernetes charts' name labels: bitnami redis / redis-cluster (the seed's redis-cluster.caching) and
    # postgresql (Kong's database)
    "redis-cluster": ServiceRole.RATE_LIMIT_STORE,
    "postgresql": ServiceRole.REGISTRY,
    "kong-postgres": ServiceRole.REGISTRY,
}
_NUMBERED = re.compile(r"^(gateway|limiter|redis|sentinel)-\d+$")
_NUMBERED_ROLES = {
    "gateway": ServiceRole.GATEWAY,
    "limiter": ServiceRole.LIMITER,
    "redis": ServiceRole.RATE_LIMIT_STORE,  # data nodes of a replicated set
    "sentinel": ServiceRole.RATE_LIMIT_STORE,
}
_SELECTOR_VALUE = re.compile(r"(?:^|,)\s*[\w./-]*name\s*=\s*([\w.-]+)|(?:^|,)\s*app\s*=\s*([\w.-]+)")


def fault_injected_by(activity: Activity) -> Fault | None:
    """The fault an activity injects, or ``None`` for any other activity (probes, restores, pauses)."""
    return next((fault for fault in FAULTS if fault.injected(activity)), None)


def role_of(service: str | None) -> ServiceRole:
    """The role of a service name (``gateway-2``, ``redis``) or a Kubernetes label selector."""
    if not service:
        return ServiceRole.OTHER
    first = service.split(",", 1)[0].strip()
    if (numbered := _NUMBERED.match(first)) is not None:
        return _NUMBERED_ROLES[numbered.group(1)]
    if first in _ROLES:
        return _ROLES[first]
    selected = _SELECTOR_VALUE.search(service)
    value = next((group for group in selected.groups() if group), "") if selected else ""
    return _ROLES.get(value, ServiceRole.OTHER)


__all__ = ["FAULTS", "Activity", "Fault", "fault_injected_by", "role_of"]
