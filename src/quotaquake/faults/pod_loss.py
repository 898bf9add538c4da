"""Pod loss: Kubernetes pods terminated or evicted, through Chaos Toolkit (``chaos/k8s/*.json``).

Injected by ``quotaquake.chaos.k8s.terminate_pods`` / ``evict_pods`` (or Chaos Toolkit's Kubernetes
extension, ``chaosk8s.pod.actions.terminate_pods`` / ``delete_pods``). Kubernetes replaces the pods by itself,
so the fault is undone when a probe that waits for them *succeeded*: ``quotaquake.chaos.k8s.pods_ready``
(retries until every matching pod is Ready again) or ``chaosk8s.pod.probes.pods_in_phase``, or by
``restore_all``.

The service is ``<label selector>@<namespace>``. Chaos Toolkit's journal keeps arguments before
configuration substitution (``${kong_selector}``), so quotaquake's activities return the selector, namespace
and the role the experiment declares, and the service and role are read from that output; for chaosk8s
activities the service is their (literal) ``label_selector`` argument and the role follows from its name.
"""

from __future__ import annotations

from collections.abc import Mapping

from quotaquake.faults.base import Activity, Fault
from quotaquake.runfolder.models import FaultKind, ServiceRole

K8S = "quotaquake.chaos.k8s"


def label_selector(activity: Activity) -> str | None:
    """``<selector>@<namespace>`` from a quotaquake activity's output, else the ``label_selector`` argument."""
    output = activity.output
    if isinstance(output, Mapping) and output.get("label_selector"):
        return f"{output['label_selector']}@{output.get('namespace', '')}"
    selector = activity.arguments.get("label_selector")
    return str(selector) if selector else None


def declared_role(activity: Activity) -> ServiceRole | None:
    """The role a quotaquake activity reports (the experiment's ``role`` argument), if a valid one."""
    output = activity.output
    role = output.get("role") if isinstance(output, Mapping) else activity.arguments.get("role")
    try:
        return ServiceRole(str(role)) if role is not None else None
    except ValueError:
        return None


FAULT = Fault(
    kind=FaultKind.POD_LOSS,
    injected_by=frozenset(
        {
            f"{K8S}:terminate_pods",
            f"{K8S}:evict_pods",
            "chaosk8s.pod.actions:terminate_pods",
            "chaosk8s.pod.actions:delete_pods",
        }
    ),
    undone_by=frozenset({f"{K8S}:pods_ready", "chaosk8s.pod.probes:pods_in_phase"}),
    services=label_selector,
    declared_role=declared_role,
    undo_needs_success=True,
)
