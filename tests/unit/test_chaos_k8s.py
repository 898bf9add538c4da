"""The Kubernetes activities offline: the Kubernetes client faked at its API boundary (CoreV1Api, AppsV1Api
methods returning the client's own model objects), and the journal they leave turned into fault windows."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from chaoslib.exceptions import ActivityFailed
from kubernetes.client import (
    V1Eviction,
    V1LabelSelector,
    V1ObjectMeta,
    V1OwnerReference,
    V1Pod,
    V1PodCondition,
    V1PodList,
    V1PodStatus,
    V1PodTemplateSpec,
    V1ReplicaSet,
    V1ReplicaSetSpec,
    V1StatefulSet,
    V1StatefulSetSpec,
)
from kubernetes.client.exceptions import ApiException

from quotaquake.chaos import k8s
from quotaquake.chaos.journal import windows_of
from quotaquake.errors import UsageError
from quotaquake.kongspec import KongSpec
from quotaquake.policy import load_policy
from quotaquake.runfolder.models import Expectation, FaultKind, ServiceRole

REPO = Path(__file__).resolve().parents[2]
KONG = "app.kubernetes.io/name=kong,app.kubernetes.io/component=app"
PRIMARY = "app.kubernetes.io/name=redis,app.kubernetes.io/component=node,isMaster=true"
SELECTOR = V1LabelSelector(match_labels={"app.kubernetes.io/name": "kong"})


RS = ("ReplicaSet", "kong-7d")


def pod(name: str, phase: str = "Running", ready: bool = True, owner: tuple[str, str] | None = RS,
        deleting: bool = False) -> V1Pod:  # fmt: skip
    owners = [V1OwnerReference(api_version="apps/v1", kind=owner[0], name=owner[1], uid="u")] if owner else None
    meta = V1ObjectMeta(name=name, owner_references=owners, deletion_timestamp=datetime.now(UTC) if deleting else None)
    conditions = [V1PodCondition(type="Ready", status="True" if ready else "False")]
    return V1Pod(metadata=meta, status=V1PodStatus(phase=phase, conditions=conditions))


class FakeCore:
    """CoreV1Api: each ``list_namespaced_pod`` answers the next pod list (the last one repeats)."""

    def __init__(self, *snapshots: list[V1Pod], evictions: list[int] | None = None) -> None:
        self.snapshots: Iterator[list[V1Pod]] = iter(snapshots)
        self.last: list[V1Pod] = []
        self.calls: list[tuple[str, object]] = []
        self.eviction_answers = list(evictions or [])

    def list_namespaced_pod(self, namespace: str, **kwargs: Any) -> V1PodList:
        self.calls.append(("list", (namespace, kwargs["label_selector"])))
        self.last = next(self.snapshots, self.last)
        return V1PodList(items=self.last)

    def delete_namespaced_pod(self, name: str, namespace: str, **kwargs: Any) -> None:
        self.calls.append(("delete", (name, namespace, kwargs["body"].grace_period_seconds)))

    def create_namespaced_pod_eviction(self, name: str, namespace: str, body: V1Eviction, **kwargs: Any) -> None:
        self.calls.append(("evict", (name, namespace, body.metadata.name)))
        status = self.eviction_answers.pop(0) if self.eviction_answers else 201
        if status >= 400:
            raise ApiException(status=status, reason="Too Many Requests" if status == 429 else "Error")


class FakeApps:
    def __init__(self, replica_sets: dict[str, int] | None = None, stateful_sets: dict[str, int] | None = None) -> None:
        self.replica_sets = replica_sets or {"kong-7d": 3}
        self.stateful_sets = stateful_sets or {}

    def read_namespaced_replica_set(self, name: str, namespace: str, **kwargs: Any) -> V1ReplicaSet:
        return V1ReplicaSet(spec=V1ReplicaSetSpec(replicas=self.replica_sets[name], selector=SELECTOR))

    def read_namespaced_stateful_set(self, name: str, namespace: str, **kwargs: Any) -> V1StatefulSet:
        spec = V1StatefulSetSpec(
            replicas=self.stateful_sets[name], selector=SELECTOR, service_name=name, template=V1PodTemplateSpec()
        )
        return V1StatefulSet(spec=spec)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def wait(core: FakeCore, apps: FakeApps, timeout_s: float = 30.0, min_ready: int = 1) -> list[str]:
    clock = Clock()
    return k8s.wait_pods_ready(core, apps, KONG, "api-gateway", min_ready, timeout_s, 2.0, clock.sleep, clock)


THREE = [pod("kong-a"), pod("kong-b"), pod("kong-c")]


def test_ready_waits_for_the_replacement_and_ignores_finished_job_pods() -> None:
    job = pod("kong-init-migrations-x", phase="Succeeded", ready=False, owner=("Job", "kong-init-migrations"))
    core = FakeCore(
        [pod("kong-a"), pod("kong-b"), pod("kong-c", deleting=True), job],  # the killed pod is terminating
        [pod("kong-a"), pod("kong-b"), job],  # gone; its ReplicaSet has not created the replacement yet
        [pod("kong-a"), pod("kong-b"), pod("kong-d", phase="Pending", ready=False), job],
        [pod("kong-a"), pod("kong-b"), pod("kong-d", ready=False), job],  # Running, not Ready yet
        [pod("kong-a"), pod("kong-b"), pod("kong-d"), job],
    )
    assert wait(core, FakeApps()) == ["kong-a", "kong-b", "kong-d"]
    assert sum(1 for kind, _ in core.calls if kind == "list") == 5  # retried; chaosk8s' pods_in_phase raises at once


def test_ready_times_out_naming_what_is_missing() -> None:
    core = FakeCore([pod("kong-a"), pod("kong-b")])
    with pytest.raises(ActivityFailed, match=r"ReplicaSet kong-7d: 2 of 3 pods ready"):
        wait(core, FakeApps(), timeout_s=10.0)


def test_ready_counts_stateful_set_members_and_minimum() -> None:
    members = [pod(f"redis-cluster-{i}", owner=("StatefulSet", "redis-cluster")) for i in range(5)]
    apps = FakeApps(stateful_sets={"redis-cluster": 6})
    with pytest.raises(ActivityFailed, match="StatefulSet redis-cluster: 5 of 6"):
        wait(FakeCore(members), apps, timeout_s=4.0)
    assert len(wait(FakeCore([*members, pod("redis-cluster-5", owner=("StatefulSet", "redis-cluster"))]), apps)) == 6
    with pytest.raises(ActivityFailed, match="at least 2 wanted"):
        wait(FakeCore([pod("bare", owner=None)]), apps, timeout_s=1.0, min_ready=2)


def test_a_selector_that_picks_the_primary_of_a_stateful_set_waits_for_it_alone() -> None:
    # isMaster=true matches one of the StatefulSet's three pods: its owner count would never be met
    node = ("StatefulSet", "redis-node")
    primary = [pod("redis-node-1", owner=node)]
    apps = FakeApps(stateful_sets={"redis-node": 3})
    with pytest.raises(ActivityFailed, match="StatefulSet redis-node: 1 of 3"):
        wait(FakeCore(primary), apps, timeout_s=4.0)
    clock = Clock()
    core = FakeCore([], [pod("redis-node-0", phase="Pending", ready=False, owner=node)], primary)
    ready = k8s.wait_pods_ready(core, apps, PRIMARY, "caching", 1, 30.0, 2.0, clock.sleep, clock, whole_sets=False)
    assert ready == ["redis-node-1"] and clock.now == 4.0  # none labelled primary, then not ready, then ready
    look = k8s.readiness(FakeCore([]), apps, PRIMARY, "caching", 1, whole_sets=False)
    assert look.problems == [f"0 ready pod(s) match '{PRIMARY}', at least 1 wanted"]


def test_terminate_selects_running_pods_and_deletes_without_grace() -> None:
    core = FakeCore([pod("kong-c"), pod("kong-a", deleting=True), pod("kong-b"), pod("kong-x", phase="Pending")])
    victims = k8s.select_pods(core, KONG, "api-gateway", 1)
    k8s.delete_pods(core, victims, "api-gateway", 0)
    assert victims == ["kong-b"]
    assert ("delete", ("kong-b", "api-gateway", 0)) in core.calls
    with pytest.raises(ActivityFailed, match="2 running pod"):
        k8s.select_pods(FakeCore([pod("a"), pod("b")]), KONG, "api-gateway", 3)


def test_eviction_respects_the_disruption_budget() -> None:
    # the API server answers 429 while the PodDisruptionBudget allows no disruption: retried, then given up
    clock = Clock()
    core = FakeCore(evictions=[429, 429, 201])
    assert k8s.evict(core, "kong-a", "api-gateway", 30.0, 2.0, clock.sleep, clock) == "kong-a"
    assert [kind for kind, _ in core.calls] == ["evict"] * 3 and clock.now == 4.0
    refusing, later = FakeCore(evictions=[429] * 100), Clock()
    with pytest.raises(ActivityFailed, match="PodDisruptionBudget"):
        k8s.evict(refusing, "kong-a", "api-gateway", 5.0, 2.0, later.sleep, later)
    with pytest.raises(ActivityFailed, match="HTTP 403"):
        k8s.evict(FakeCore(evictions=[403]), "kong-a", "api-gateway", 5.0, 2.0)


def test_a_bad_role_is_refused_before_anything_is_deleted() -> None:
    with pytest.raises(UsageError, match="role='cache'"):
        k8s.terminate_pods(KONG, "api-gateway", role="cache")


# ---------------------------------------------------------------------------------------------- journal

T0 = datetime(2026, 1, 12, 10, 0, tzinfo=UTC).timestamp()


def iso(t: float) -> str:
    return datetime.fromtimestamp(T0 + t, tz=UTC).isoformat()


def entry(name: str, func: str, start: float, end: float, output: object, status: str = "succeeded",
          **arguments: object) -> dict[str, object]:  # fmt: skip
    activity = {"name": name, "provider": {"module": "quotaquake.chaos.k8s", "func": func, "arguments": arguments}}
    return {"activity": activity, "output": output, "status": status, "start": iso(start), "end": iso(end)}


def test_the_journal_window_closes_when_pods_are_ready_and_the_role_is_the_declared_one() -> None:
    # the journal keeps arguments before configuration substitution, so service and role come from outputs
    templated = {"label_selector": "${redis_selector}", "ns": "${redis_namespace}"}
    hit = {"label_selector": "app.kubernetes.io/name=my-redis", "namespace": "caching", "role": "rate-limit-store",
           "pods": ["my-redis-0"]}  # fmt: skip
    ready = {"label_selector": "app.kubernetes.io/name=my-redis", "namespace": "caching", "ready": ["my-redis-0"]}
    journal = {
        "run": [
            entry("terminate-1-redis-pod", "terminate_pods", 1.0, 1.3, hit, role="rate-limit-store", **templated),
            entry("redis-pods-ready-again", "pods_ready", 31.3, 48.0, None, status="failed", **templated),
        ],
        "rollbacks": [entry("redis-pods-ready-after-rollback", "pods_ready", 48.5, 61.0, ready, **templated)],
    }
    policy = load_policy()
    (window,) = windows_of(journal, policy, kong=KongSpec.from_policy(policy))
    assert (window.kind, window.role) == (FaultKind.POD_LOSS, ServiceRole.RATE_LIMIT_STORE)
    assert window.service == "app.kubernetes.io/name=my-redis@caching"
    assert window.end == pytest.approx(T0 + 61.0)  # the first probe timed out; the rollback's succeeded
    # a Kong target declares its own degradation: fault_tolerant -> admitted without any limit
    assert window.expect is Expectation.FAIL_OPEN_UNLIMITED
    strict = KongSpec.from_policy(policy, fault_tolerant=False)
    assert windows_of(journal, policy, kong=strict)[0].expect is Expectation.ERROR_500
    assert windows_of(journal, policy)[0].expect is Expectation.FAIL_OPEN_LOCAL  # the embedded limiter


def test_a_failed_eviction_leaves_no_fault_window() -> None:
    templated = {"label_selector": "${kong_selector}", "ns": "${kong_namespace}"}
    journal = {"run": [entry("evict-1-kong-pod", "evict_pods", 1.0, 61.0, None, status="failed", role="gateway",
                             **templated)]}  # fmt: skip
    assert windows_of(journal, load_policy()) == []


def test_the_sentinel_primary_kill_is_a_pod_loss_of_the_store_until_a_primary_is_ready() -> None:
    # chaos/k8s/redis-failover.json's own activities, as the journal keeps them (before substitution)
    experiment = json.loads((REPO / "chaos" / "k8s" / "redis-failover.json").read_text())
    kill, primary_ready, nodes_ready = experiment["method"]

    def step(activity: dict[str, Any], start: float, end: float, output: object) -> dict[str, object]:
        return {"activity": activity, "output": output, "status": "succeeded", "start": iso(start), "end": iso(end)}

    hit = {"label_selector": PRIMARY, "namespace": "caching", "role": "rate-limit-store", "pods": ["redis-node-0"]}
    journal = {
        "run": [
            step(kill, 1.0, 1.2, hit),
            step(primary_ready, 31.2, 33.0, {"label_selector": PRIMARY, "namespace": "caching",
                                             "ready": ["redis-node-2"]}),
            step(nodes_ready, 33.0, 52.0, {"label_selector": PRIMARY.removesuffix(",isMaster=true"),
                                           "namespace": "caching", "ready": ["redis-node-0", "redis-node-1",
                                                                             "redis-node-2"]}),
        ],
    }  # fmt: skip
    policy = load_policy()
    (window,) = windows_of(journal, policy, kong=KongSpec.from_policy(policy))
    assert (window.kind, window.role) == (FaultKind.POD_LOSS, ServiceRole.RATE_LIMIT_STORE)  # not failover: see README
    assert window.service == f"{PRIMARY}@caching"
    assert window.end == pytest.approx(T0 + 33.0)  # the Service has a primary again; the StatefulSet whole later
    assert window.expect is Expectation.FAIL_OPEN_UNLIMITED
