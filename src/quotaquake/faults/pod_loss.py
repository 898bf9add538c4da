"""Pod loss: Kubernetes pods terminated through Chaos Toolkit's Kubernetes extension (``chaosk8s``).

Injected by ``chaosk8s.pod.actions.terminate_pods`` or ``delete_pods``; the service is the activity's
label selector. Kubernetes replaces the pods by itself, so the fault is undone when a probe that waits
for the pods (``chaosk8s.pod.probes.pods_in_phase``) *succeeded*, or by ``restore_all``.
"""

from __future__ import annotations

from quotaquake.faults.base import Activity, Fault
from quotaquake.runfolder.models import FaultKind


def label_selector(activity: Activity) -> str | None:
    selector = activity.arguments.get("label_selector")
    return str(selector) if selector else None


FAULT = Fault(
    kind=FaultKind.POD_LOSS,
    injected_by=frozenset({"chaosk8s.pod.actions:terminate_pods", "chaosk8s.pod.actions:delete_pods"}),
    undone_by=frozenset({"chaosk8s.pod.probes:pods_in_phase"}),
    services=label_selector,
    undo_needs_success=True,
)
