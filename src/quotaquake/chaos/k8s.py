"""Kubernetes faults and the probe that waits for recovery, for the experiments under ``chaos/k8s/``.

Chaos Toolkit activities (``{"type": "python", "module": "quotaquake.chaos.k8s", "func": ...}``):

* ``terminate_pods``: delete ``qty`` pods matching a label selector (grace period 0 by default). The API
  server deletes them whatever a PodDisruptionBudget says, like ``chaosk8s.pod.actions.terminate_pods``.
* ``evict_pods``: the Eviction API instead: the API server refuses (HTTP 429) an eviction the PDB forbids;
  it is retried until ``timeout_s``, then the activity fails (nothing was broken, so no fault window).
* ``pods_are_ready``: the same test once, as a boolean (steady-state hypotheses);
* ``pods_ready``: the recovery probe, retried every ``interval_s`` until ``timeout_s``: succeeds when every
  matching pod that is neither finished (``Succeeded``/``Failed``: e.g. a Completed migrations Job pod) nor
  being deleted is Ready, each owning ReplicaSet or StatefulSet has as many Ready pods as it wants, and at
  least ``min_ready`` are Ready. ``chaosk8s.pod.probes.pods_in_phase`` raises at once if any matching pod
  is not Running (a Completed Job pod, a Pending replacement) and never retries. ``whole_sets=False`` drops
  the owners' count, for a selector that picks part of a set on purpose (the pod labelled primary of a Redis
  StatefulSet: one of three matches, and its StatefulSet wants three).

Experiments pass selectors and namespaces through Chaos Toolkit configuration (``type: env`` with the Helm
charts' labels as defaults). The journal keeps activity arguments *before* that substitution, so every
activity returns what it acted on: ``{"label_selector", "namespace", "role", ...}``; the fault registry
(``quotaquake.faults.pod_loss``) reads the service and its role from there. ``role`` is the experiment's
statement of what the pods are for (``rate-limit-store``, ``registry``, ``gateway``...), which decides what
the policy expects while they are gone.

Credentials: ``chaosk8s.create_k8s_api_client`` (kubeconfig, in-cluster, or ``KUBERNETES_*`` variables).
The functions taking API objects (``select_pods``, ``delete_pods``, ``evict``, ``wait_pods_ready``) are the
testable core: unit tests hand them fakes at the Kubernetes client boundary.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast

from chaoslib.exceptions import ActivityFailed

from quotaquake.errors import UsageError
from quotaquake.runfolder.models import ServiceRole

__all__ = ["evict_pods", "pods_are_ready", "pods_ready", "terminate_pods"]

logger = logging.getLogger("chaostoolkit")
Secrets = Mapping[str, Any] | None
FINISHED_PHASES = frozenset({"Succeeded", "Failed"})
SCALED_OWNERS = frozenset({"ReplicaSet", "StatefulSet"})
TOO_MANY_REQUESTS = 429  # the API server's answer to an eviction a PodDisruptionBudget forbids


class CoreApi(Protocol):
    def list_namespaced_pod(self, namespace: str, **kwargs: Any) -> Any: ...
    def delete_namespaced_pod(self, name: str, namespace: str, **kwargs: Any) -> Any: ...
    def create_namespaced_pod_eviction(self, name: str, namespace: str, body: Any, **kwargs: Any) -> Any: ...


class AppsApi(Protocol):
    def read_namespaced_replica_set(self, name: str, namespace: str, **kwargs: Any) -> Any: ...
    def read_namespaced_stateful_set(self, name: str, namespace: str, **kwargs: Any) -> Any: ...


# ------------------------------------------------------------------------------------------ activities


def terminate_pods(
    label_selector: str, ns: str, role: str, qty: int = 1, grace_period_s: int = 0, secrets: Secrets = None
) -> dict[str, object]:
    """Delete ``qty`` running pods matching ``label_selector`` in ``ns`` (PDB not consulted)."""
    service_role(role)
    core, _ = _clients(secrets)
    victims = select_pods(core, label_selector, ns, qty)
    delete_pods(core, victims, ns, grace_period_s)
    return _output(label_selector, ns, role, pods=victims)


def evict_pods(
    label_selector: str,
    ns: str,
    role: str,
    qty: int = 1,
    timeout_s: float = 60.0,
    interval_s: float = 2.0,
    secrets: Secrets = None,
) -> dict[str, object]:
    """Evict ``qty`` running pods matching ``label_selector`` through the Eviction API, which honours
    PodDisruptionBudgets; a refused eviction is retried until ``timeout_s`` (seconds), then fails."""
    service_role(role)
    core, _ = _clients(secrets)
    victims = select_pods(core, label_selector, ns, qty)
    evicted = [evict(core, name, ns, timeout_s, interval_s) for name in victims]
    return _output(label_selector, ns, role, pods=evicted)


def pods_ready(
    label_selector: str,
    ns: str,
    min_ready: int = 1,
    timeout_s: float = 180.0,
    interval_s: float = 2.0,
    whole_sets: bool = True,
    secrets: Secrets = None,
) -> dict[str, object]:
    """Wait until the pods matching ``label_selector`` in ``ns`` are Ready again (module docstring);
    fails after ``timeout_s`` seconds naming what is still not ready."""
    core, apps = _clients(secrets)
    ready = wait_pods_ready(core, apps, label_selector, ns, min_ready, timeout_s, interval_s, whole_sets=whole_sets)
    return _output(label_selector, ns, None, ready=ready)


def pods_are_ready(
    label_selector: str, ns: str, min_ready: int = 1, whole_sets: bool = True, secrets: Secrets = None
) -> bool:
    """One look, no retry (steady-state hypotheses): True when ``pods_ready`` would succeed right now."""
    core, apps = _clients(secrets)
    look = readiness(core, apps, label_selector, ns, min_ready, whole_sets=whole_sets)
    for problem in look.problems:
        logger.info(f"pods_are_ready: {problem}")
    return not look.problems


# ------------------------------------------------------------------------------------------------ core


def select_pods(core: CoreApi, label_selector: str, ns: str, qty: int) -> list[str]:
    """Names of ``qty`` Running pods that are not being deleted (alphabetical: runs are comparable)."""
    if qty < 1:
        raise UsageError(f"qty={qty}: must be at least 1")
    pods = core.list_namespaced_pod(ns, label_selector=label_selector).items
    running = sorted(p.metadata.name for p in pods if _phase(p) == "Running" and not _terminating(p))
    if len(running) < qty:
        raise ActivityFailed(f"{len(running)} running pod(s) match '{label_selector}' in {ns}; {qty} asked for")
    return running[:qty]


def delete_pods(core: CoreApi, names: Sequence[str], ns: str, grace_period_s: int) -> None:
    from kubernetes.client import V1DeleteOptions

    for name in names:
        core.delete_namespaced_pod(name, ns, body=V1DeleteOptions(grace_period_seconds=grace_period_s))
        logger.info(f"terminate_pods: deleted pod {ns}/{name}")


def evict(
    core: CoreApi,
    name: str,
    ns: str,
    timeout_s: float,
    interval_s: float,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> str:
    """Evict one pod, retrying while a PodDisruptionBudget forbids it (HTTP 429)."""
    from kubernetes.client import V1Eviction, V1ObjectMeta
    from kubernetes.client.exceptions import ApiException

    body = V1Eviction(metadata=V1ObjectMeta(name=name, namespace=ns))
    deadline = clock() + timeout_s
    while True:
        try:
            core.create_namespaced_pod_eviction(name, ns, body)
        except ApiException as exc:
            if exc.status != TOO_MANY_REQUESTS:
                raise ActivityFailed(f"eviction of {ns}/{name} failed: HTTP {exc.status} {exc.reason}") from None
            if clock() >= deadline:
                raise ActivityFailed(
                    f"eviction of {ns}/{name} refused for {timeout_s:g} s: its PodDisruptionBudget allows no "
                    "disruption now"
                ) from None
            sleep(interval_s)
            continue
        logger.info(f"evict_pods: evicted pod {ns}/{name}")
        return name


@dataclass(frozen=True)
class Readiness:
    """One look at the pods: the Ready ones, and why the set is not yet recovered (empty when it is)."""

    ready: list[str]
    problems: list[str]


def readiness(
    core: CoreApi, apps: AppsApi, label_selector: str, ns: str, min_ready: int, *, whole_sets: bool = True
) -> Readiness:
    """The pods matching ``label_selector`` now: finished pods ignored, terminating ones not counted; with
    ``whole_sets`` every owning ReplicaSet/StatefulSet must have as many Ready matching pods as it wants."""
    pods = core.list_namespaced_pod(ns, label_selector=label_selector).items
    live = [p for p in pods if _phase(p) not in FINISHED_PHASES and not _terminating(p)]
    ready = sorted(p.metadata.name for p in live if _is_ready(p))
    problems = [f"pod {p.metadata.name} not ready ({_phase(p)})" for p in live if not _is_ready(p)]
    for (kind, owner), count in (_ready_by_owner(live) if whole_sets else {}).items():
        wanted = _desired_replicas(apps, kind, owner, ns)
        if wanted is not None and count < wanted:
            problems.append(f"{kind} {owner}: {count} of {wanted} pods ready")
    if len(ready) < min_ready:
        problems.append(f"{len(ready)} ready pod(s) match '{label_selector}', at least {min_ready} wanted")
    return Readiness(ready, problems)


def wait_pods_ready(
    core: CoreApi,
    apps: AppsApi,
    label_selector: str,
    ns: str,
    min_ready: int,
    timeout_s: float,
    interval_s: float,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    *,
    whole_sets: bool = True,
) -> list[str]:
    """Poll ``readiness`` until it has no problem (returns the Ready pods) or ``timeout_s`` passes."""
    deadline = clock() + timeout_s
    while True:
        look = readiness(core, apps, label_selector, ns, min_ready, whole_sets=whole_sets)
        if not look.problems:
            return look.ready
        if clock() >= deadline:
            raise ActivityFailed(
                f"'{label_selector}' in {ns} not ready after {timeout_s:g} s: {'; '.join(look.problems)}"
            )
        sleep(interval_s)


# ------------------------------------------------------------------------------------------- helpers


def _clients(secrets: Secrets) -> tuple[CoreApi, AppsApi]:
    from chaosk8s import create_k8s_api_client
    from kubernetes import client

    api = create_k8s_api_client(dict(secrets) if secrets else None)
    return cast(CoreApi, client.CoreV1Api(api)), cast(AppsApi, client.AppsV1Api(api))


def service_role(role: str) -> ServiceRole:
    """``role`` as a ``ServiceRole``; a one-line ``UsageError`` naming the allowed values otherwise."""
    try:
        return ServiceRole(role)
    except ValueError:
        raise UsageError(f"role={role!r}: one of {', '.join(r.value for r in ServiceRole)}") from None


def _output(label_selector: str, ns: str, role: str | None, **acted_on: list[str]) -> dict[str, object]:
    output: dict[str, object] = {"label_selector": label_selector, "namespace": ns, **acted_on}
    if role is not None:
        output["role"] = role
    return output


def _phase(pod: Any) -> str:
    return str(pod.status.phase) if pod.status is not None and pod.status.phase else "Unknown"


def _terminating(pod: Any) -> bool:
    return pod.metadata.deletion_timestamp is not None


def _is_ready(pod: Any) -> bool:
    conditions = (pod.status.conditions if pod.status is not None else None) or []
    return _phase(pod) == "Running" and any(c.type == "Ready" and c.status == "True" for c in conditions)


def _ready_by_owner(pods: Sequence[Any]) -> dict[tuple[str, str], int]:
    """Ready pods per owning ReplicaSet/StatefulSet (owners with none ready are listed with 0)."""
    counts: dict[tuple[str, str], int] = {}
    for pod in pods:
        for owner in pod.metadata.owner_references or []:
            if owner.kind in SCALED_OWNERS:
                key = (str(owner.kind), str(owner.name))
                counts[key] = counts.get(key, 0) + int(_is_ready(pod))
    return counts


def _desired_replicas(apps: AppsApi, kind: str, name: str, ns: str) -> int | None:
    read = apps.read_namespaced_replica_set if kind == "ReplicaSet" else apps.read_namespaced_stateful_set
    spec = read(name, ns).spec
    return None if spec is None or spec.replicas is None else int(spec.replicas)
