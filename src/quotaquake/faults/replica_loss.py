"""Replica loss: k of the N gateway replicas die behind the load balancer (SIGKILL; ``docker kill``).

The replicas chosen are the highest-numbered ones (deterministic, so runs are comparable); k = N (total
gateway outage) is allowed. Injected by ``quotaquake.chaos.actions.kill_gateway_replicas``; undone by
``restore_all``. The gateway as a whole is expected to keep serving through the remaining replicas.
"""

from __future__ import annotations

from quotaquake.faults.base import Activity, Fault, action
from quotaquake.faults.handles import HandleFactory
from quotaquake.faults.targets import choose_replicas
from quotaquake.runfolder.models import Expectation, FaultKind
from quotaquake.stack.registry import handle_for
from quotaquake.stack.state import StackState


def killed_replicas(activity: Activity) -> str | None:
    """The replicas the action reports it killed (its output), comma-separated."""
    if isinstance(activity.output, list):
        return ",".join(str(name) for name in activity.output)
    return None


FAULT = Fault(kind=FaultKind.REPLICA_LOSS, injected_by=frozenset({action("kill_gateway_replicas")}),
              services=killed_replicas, expectation=lambda policy, role, kong: Expectation.AVAILABLE)  # fmt: skip


def inject(state: StackState, count: int, handles: HandleFactory = handle_for) -> list[str]:
    """SIGKILL ``count`` of the N gateway replicas; returns their names."""
    victims = choose_replicas(state, count)
    for name in victims:
        handles(state, name).kill()
    return victims
