"""deploy/k8s: every manifest is a valid Kubernetes object (strict schemas, offline), the base and the
example overlay hold together (names, namespaces, worker counts), and what the Jobs run is what
quotaquake accepts (the CLI's options, the external target file, the scenario)."""

from __future__ import annotations

import copy
import csv
import io
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from typer.testing import CliRunner

import quotaquake.run
from quotaquake.cli import app
from quotaquake.context import RunRequest
from quotaquake.policy import load_policy
from quotaquake.stack.external import TargetConfig

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
KUBERNETES_VERSION = "1.30.0"
"""Schemas from the ``kubernetes-validate`` package (bundled, no network); 1.30 is the oldest release we
claim to run on (``batch/v1`` Job fields such as ``ttlSecondsAfterFinished`` are GA since 1.23)."""

Doc = dict[str, Any]


def load(path: Path) -> list[Doc]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def kustomization(folder: Path) -> Doc:
    docs = load(folder / "kustomization.yaml")
    assert len(docs) == 1
    return docs[0]


def merge(base: Any, patch: Any) -> Any:
    """Strategic merge for maps and scalars (all these patches use): maps merge, the rest is replaced."""
    if isinstance(base, dict) and isinstance(patch, dict):
        merged = dict(base)
        for key, value in patch.items():
            merged[key] = merge(base.get(key), value) if key in base else value
        return merged
    return copy.deepcopy(patch)


def build(folder: Path) -> list[Doc]:
    """What ``kubectl apply -k folder`` would create, for what these kustomizations use: resources (files
    or a base folder), namespace, namePrefix, labels, image names, and patches by kind and name."""
    spec = kustomization(folder)
    docs: list[Doc] = []
    for resource in spec["resources"]:
        path = (folder / resource).resolve()
        docs += build(path) if path.is_dir() else load(path)
    for patch_file in spec.get("patches", []):
        patch = load(folder / patch_file["path"])[0]
        targets = [d for d in docs if (d["kind"], d["metadata"]["name"]) == (patch["kind"], patch["metadata"]["name"])]
        assert len(targets) == 1, f"{patch_file}: patches {patch['kind']}/{patch['metadata']['name']}, not found"
        docs[docs.index(targets[0])] = merge(targets[0], patch)
    return [_transformed(doc, spec) for doc in docs]


def _transformed(doc: Doc, spec: Doc) -> Doc:
    doc = copy.deepcopy(doc)
    prefix = spec.get("namePrefix", "")
    kind = doc["kind"]
    if kind != "Namespace":
        doc["metadata"]["name"] = prefix + doc["metadata"]["name"]
    if "namespace" in spec:
        if kind == "Namespace":
            doc["metadata"]["name"] = spec["namespace"]
        else:
            doc["metadata"]["namespace"] = spec["namespace"]
    for entry in spec.get("labels", []):
        doc["metadata"].setdefault("labels", {}).update(entry["pairs"])
    for pod in _pod_specs(doc):
        for volume in pod.get("volumes", []):  # kustomize renames the references to renamed objects
            for key, field in (("configMap", "name"), ("secret", "secretName"), ("persistentVolumeClaim", "claimName")):
                if key in volume:
                    volume[key][field] = prefix + volume[key][field]
        for container in pod["containers"]:
            for source in container.get("envFrom", []):
                source["configMapRef"]["name"] = prefix + source["configMapRef"]["name"]
            for image in spec.get("images", []):
                if container["image"] == image["name"]:
                    container["image"] = f"{image.get('newName', image['name'])}:{image.get('newTag', 'latest')}"
    return doc


def _pod_specs(doc: Doc) -> list[Doc]:
    return [doc["spec"]["template"]["spec"]] if doc["kind"] == "Job" else []


def named(docs: list[Doc], kind: str, suffix: str) -> Doc:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"].endswith(suffix)]
    assert len(found) == 1, (kind, suffix)
    return found[0]


FOLDERS = [K8S, K8S / "example-overlay"]


@pytest.mark.parametrize("folder", FOLDERS, ids=["base", "example-overlay"])
def test_every_object_is_valid_kubernetes(folder: Path) -> None:
    docs = build(folder)
    assert {d["kind"] for d in docs} == {"Namespace", "ConfigMap", "Secret", "PersistentVolumeClaim", "Service", "Job"}
    for doc in docs:
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{folder.name}: {doc['kind']}/{doc['metadata']['name']}: {exc.message} at {list(exc.path)}")


def test_the_schema_check_catches_a_typo() -> None:
    job = named(build(K8S), "Job", "quotaquake-master")
    job["spec"]["template"]["spec"]["containers"][0]["volumeMount"] = []  # for volumeMounts
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(job, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("folder", FOLDERS, ids=["base", "example-overlay"])
def test_master_workers_service_and_settings_agree(folder: Path) -> None:
    docs = build(folder)
    settings = named(docs, "ConfigMap", "quotaquake-settings")["data"]
    service = named(docs, "Service", "quotaquake-master")
    master = named(docs, "Job", "quotaquake-master")["spec"]["template"]
    workers = named(docs, "Job", "quotaquake-workers")["spec"]
    namespaces = {d["metadata"].get("namespace") for d in docs if d["kind"] != "Namespace"}
    assert namespaces == {named(docs, "Namespace", "")["metadata"]["name"]}
    assert settings["QUOTAQUAKE_MASTER_HOST"] == service["metadata"]["name"]
    assert service["spec"]["selector"].items() <= master["metadata"]["labels"].items()
    assert workers["parallelism"] == workers["completions"] == int(settings["QUOTAQUAKE_WORKERS"])
    port = master["spec"]["containers"][0]["ports"][0]
    assert port["name"] == service["spec"]["ports"][0]["targetPort"]
    assert port["containerPort"] == service["spec"]["ports"][0]["port"] == int(settings["QUOTAQUAKE_MASTER_PORT"])
    for job in (master, workers["template"]):
        for name in re.findall(r"\$\((\w+)\)", yaml.safe_dump(job)):
            env = {e["name"] for e in job["spec"]["containers"][0].get("env", [])}
            assert name in settings or name in env, f"$({name}) is set by nobody"


def test_the_master_runs_a_command_quotaquake_accepts(monkeypatch: pytest.MonkeyPatch) -> None:
    docs = build(K8S)
    settings = {**named(docs, "ConfigMap", "quotaquake-settings")["data"], "POD_NAME": "quotaquake-master-x1"}
    args = [
        re.sub(r"\$\((\w+)\)", lambda m: settings[m.group(1)], arg)
        for arg in named(docs, "Job", "quotaquake-master")["spec"]["template"]["spec"]["containers"][0]["args"]
    ]
    seen: list[RunRequest] = []

    def record(request: RunRequest, console: object) -> object:
        seen.append(request)
        raise SystemExit(0)

    monkeypatch.setattr(quotaquake.run, "record_run", record)
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0 and seen, result.output
    request = seen[0]
    assert (request.provider, request.rate, request.duration_s) == ("external", 300.0, 300.0)
    assert request.allow_hosts == ("kong-proxy.api-gateway.svc.cluster.local",)
    assert request.out == Path("/runs/quotaquake-master-x1") and request.processes == 1
    assert request.locust_args == ("--master", "--master-bind-host=0.0.0.0", "--master-bind-port=5557",
                                   "--expect-workers=4")  # fmt: skip


def test_the_target_consumers_and_scenario_are_quotaquakes_own() -> None:
    docs = build(K8S)
    files = named(docs, "ConfigMap", "quotaquake-scenario")["data"]
    assert files["scenario.py"] == (REPO / "scenarios" / "tiered.py").read_text()
    target = TargetConfig.model_validate(yaml.safe_load(files["target.yaml"]))
    assert target.consumers == Path("/consumers/consumers.csv") and target.quota_model == "kong"
    assert target.kong is not None and target.kong.policy == "redis" and target.kong.replicas == 3
    assert target.gateway == ["http://kong-proxy.api-gateway.svc.cluster.local:8000"]
    consumers = named(docs, "Secret", "quotaquake-consumers")["stringData"]["consumers.csv"]
    rows = list(csv.DictReader(io.StringIO(consumers)))
    assert rows and {r["tier"] for r in rows} <= set(load_policy(REPO / "stack" / "policy.yaml").tiers)
    mounts = named(docs, "Job", "quotaquake-master")["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
    assert {"/config", "/consumers", "/runs"} <= {m["mountPath"] for m in mounts}
