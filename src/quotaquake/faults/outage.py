"""Outage: the service dies (SIGKILL; ``docker kill``) and stays dead until it is restarted.

Injected by ``quotaquake.chaos.actions.kill_service``; undone by ``restart_service`` of the same service
or by ``restore_all``. A dead rate-limit store calls for the policy's declared degradation; other
services' clients are expected to be served (``base.storage_expectation``).
"""

from __future__ import annotations

from quotaquake.faults.base import Fault, action
from quotaquake.faults.handles import HandleFactory, handle_of
from quotaquake.runfolder.models import FaultKind
from quotaquake.stack.registry import handle_for
from quotaquake.stack.state import StackState

FAULT = Fault(kind=FaultKind.OUTAGE, injected_by=frozenset({action("kill_service")}),
              undone_by=frozenset({action("restart_service")}))  # fmt: skip


def inject(state: StackState, service: str, handles: HandleFactory = handle_for) -> None:
    """SIGKILL ``service`` (docker kill): it dies without cleanup."""
    handle_of(state, service, handles).kill()


def undo(state: StackState, service: str, handles: HandleFactory = handle_for) -> None:
    """Start ``service`` again as it was started and wait until it answers its readiness check."""
    handle_of(state, service, handles).restart()
