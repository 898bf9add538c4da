"""Every experiment in chaos/ passes Chaos Toolkit's validation, and every activity's arguments bind to
its function's signature exactly as chaoslib binds them at run time."""

from __future__ import annotations

import importlib
import inspect
import json
from pathlib import Path
from typing import Any

import pytest
from chaoslib.exceptions import InvalidActivity
from chaoslib.experiment import ensure_experiment_is_valid
from chaoslib.loader import load_experiment

REPO = Path(__file__).resolve().parents[2]
EXPERIMENTS = sorted((REPO / "chaos").glob("*.json"))
K8S_EXPERIMENTS = sorted((REPO / "chaos" / "k8s").glob("*.json"))
ALL = EXPERIMENTS + K8S_EXPERIMENTS
EXPECTED = {
    "redis-kill", "redis-pause", "gateway-replica-kill", "postgres-kill", "combined",
    "redis-failover", "redis-failover-stale", "redis-latency",
}  # fmt: skip


def _activities(experiment: dict[str, Any]) -> list[dict[str, Any]]:
    hypothesis = experiment.get("steady-state-hypothesis", {})
    return [*hypothesis.get("probes", []), *experiment.get("method", []), *experiment.get("rollbacks", [])]


def test_the_expected_experiments_exist() -> None:
    assert {p.stem for p in EXPERIMENTS} == EXPECTED
    assert {p.stem for p in K8S_EXPERIMENTS} == {
        "redis-kill", "redis-failover", "gateway-replica-kill", "gateway-replica-evict", "postgres-kill"
    }  # fmt: skip


@pytest.mark.parametrize("path", ALL, ids=lambda p: str(p.relative_to(REPO)))
def test_chaoslib_validates(path: Path) -> None:
    ensure_experiment_is_valid(load_experiment(str(path)))


def bind(activity: dict[str, Any]) -> None:
    """Bind an activity's arguments like chaoslib's python provider (configuration/secrets injected)."""
    provider = activity["provider"]
    func = getattr(importlib.import_module(provider["module"]), provider["func"])
    signature = inspect.signature(func)
    arguments = dict(provider.get("arguments", {}))
    for injected in ("configuration", "secrets"):
        if injected in signature.parameters:
            arguments[injected] = None
    signature.bind(**arguments)


@pytest.mark.parametrize("path", ALL, ids=lambda p: str(p.relative_to(REPO)))
def test_arguments_bind_to_signatures(path: Path) -> None:
    for activity in _activities(json.loads(path.read_text())):
        bind(activity)


def test_a_misspelt_argument_does_not_bind_nor_validate() -> None:
    experiment = json.loads((REPO / "chaos" / "redis-kill.json").read_text())
    experiment["method"][0]["provider"]["arguments"] = {"servce": "redis"}
    with pytest.raises(TypeError):
        bind(experiment["method"][0])
    with pytest.raises(InvalidActivity, match="service"):
        ensure_experiment_is_valid(experiment)


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.stem)
def test_experiment_shape(path: Path) -> None:
    experiment = json.loads(path.read_text())
    assert experiment["configuration"]["quotaquake_state"] == {
        "type": "env", "key": "QUOTAQUAKE_STATE", "default": ".quotaquake/stack.json",
    }  # fmt: skip
    assert experiment["runtime"]["rollbacks"]["strategy"] == "always"
    assert [c["provider"]["module"] for c in experiment["controls"]] == ["quotaquake.chaos.control"]
    probes = experiment["steady-state-hypothesis"]["probes"]
    assert probes and all("tolerance" in p for p in probes)
    faults = [a for a in experiment["method"] if a["type"] == "action"]
    assert faults and faults[-1]["pauses"]["after"] == "${fault_hold_s}"
    assert experiment["rollbacks"][-1]["provider"]["func"] == "restore_all"


K8S_DEFAULTS = {  # (configuration prefix, namespace, selector, role): the Helm charts' labels and the seed's names
    "gateway-replica-kill": ("kong", "api-gateway", "app.kubernetes.io/name=kong,app.kubernetes.io/component=app",
                             "gateway"),
    "gateway-replica-evict": ("kong", "api-gateway", "app.kubernetes.io/name=kong,app.kubernetes.io/component=app",
                              "gateway"),
    "redis-kill": ("redis", "caching", "app.kubernetes.io/name=redis-cluster", "rate-limit-store"),
    "redis-failover": ("redis", "caching", "app.kubernetes.io/name=redis,app.kubernetes.io/component=node",
                       "rate-limit-store"),
    "postgres-kill": ("postgres", "api-gateway", "app.kubernetes.io/name=postgresql", "registry"),
}  # fmt: skip
K8S_FAULT_SELECTORS = {"redis-failover": "${redis_selector},${redis_primary_label}"}  # the pod labelled primary


@pytest.mark.parametrize("path", K8S_EXPERIMENTS, ids=lambda p: p.stem)
def test_k8s_experiments_take_selectors_from_configuration(path: Path) -> None:
    prefix, namespace, selector, role = K8S_DEFAULTS[path.stem]
    experiment = json.loads(path.read_text())
    configuration = experiment["configuration"]
    assert configuration[f"{prefix}_namespace"]["type"] == configuration[f"{prefix}_selector"]["type"] == "env"
    assert (configuration[f"{prefix}_namespace"]["default"], configuration[f"{prefix}_selector"]["default"]) == (
        namespace,
        selector,
    )
    own = f"${{{prefix}_selector}}"
    hit = K8S_FAULT_SELECTORS.get(path.stem, own)
    for activity in _activities(experiment):  # nothing hard-coded: every activity reads the configuration
        arguments = activity["provider"]["arguments"]
        assert arguments["label_selector"] in (own, hit) and arguments["ns"] == f"${{{prefix}_namespace}}"
    fault, *recovery = experiment["method"]
    assert fault["provider"]["func"] in ("terminate_pods", "evict_pods")
    assert fault["provider"]["arguments"]["label_selector"] == hit
    assert fault["provider"]["arguments"]["role"] == role  # a literal: the journal keeps it
    assert recovery and {r["provider"]["func"] for r in recovery} == {"pods_ready"}  # closes the window (pod_loss)
    assert experiment["rollbacks"][-1]["provider"]["func"] == "pods_ready"
    assert "scale_deployment" not in path.read_text()  # a no-op after a kill, 404 for another name


def test_k8s_configuration_defaults_resolve_and_env_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    from chaoslib.configuration import load_configuration

    experiment = json.loads((REPO / "chaos" / "k8s" / "redis-kill.json").read_text())
    defaults = load_configuration(experiment["configuration"])
    assert defaults["redis_namespace"] == "caching" and defaults["redis_min_ready"] == 1
    monkeypatch.setenv("QUOTAQUAKE_K8S_REDIS_SELECTOR", "app=my-redis")
    monkeypatch.setenv("QUOTAQUAKE_K8S_REDIS_MIN_READY", "3")
    overridden = load_configuration(experiment["configuration"])
    assert overridden["redis_selector"] == "app=my-redis" and overridden["redis_min_ready"] == 3


def test_the_sentinel_experiment_kills_the_pod_the_chart_labels_primary(monkeypatch: pytest.MonkeyPatch) -> None:
    from chaoslib import substitute
    from chaoslib.configuration import load_configuration

    experiment = json.loads((REPO / "chaos" / "k8s" / "redis-failover.json").read_text())
    defaults = load_configuration(experiment["configuration"])
    kill, primary_ready, nodes_ready = experiment["method"]
    arguments = substitute(kill["provider"]["arguments"], defaults, None)
    # the Bitnami redis chart: node pods app.kubernetes.io/component=node, the current primary isMaster="true"
    assert arguments["label_selector"] == "app.kubernetes.io/name=redis,app.kubernetes.io/component=node,isMaster=true"
    assert (arguments["ns"], arguments["grace_period_s"]) == ("caching", 0)  # a crash: no preStop failover
    # the window closes once a pod labelled primary is Ready (whole_sets off: it is 1 of the StatefulSet's
    # pods); the StatefulSet is awaited whole after that
    assert primary_ready["provider"]["arguments"]["label_selector"] == kill["provider"]["arguments"]["label_selector"]
    assert primary_ready["provider"]["arguments"]["whole_sets"] is False
    assert nodes_ready["provider"]["arguments"].get("whole_sets", True) is True
    counted = [p for p in experiment["steady-state-hypothesis"]["probes"] if p["provider"]["func"] == "count_pods"]
    assert [p["tolerance"] for p in counted] == [1]  # before and after: exactly one pod labelled primary
    monkeypatch.setenv("QUOTAQUAKE_K8S_REDIS_SENTINEL_SELECTOR", "app=cache,role=node")
    monkeypatch.setenv("QUOTAQUAKE_K8S_REDIS_PRIMARY_LABEL", "redis-role=master")
    monkeypatch.setenv("QUOTAQUAKE_K8S_REDIS_GRACE_S", "30")
    overridden = substitute(kill["provider"]["arguments"], load_configuration(experiment["configuration"]), None)
    assert overridden["label_selector"] == "app=cache,role=node,redis-role=master"
    assert overridden["grace_period_s"] == 30
