"""Pause: the service hangs with its connections open (SIGSTOP; ``docker pause``) until resumed.

Unlike an outage, clients get no refusal: they wait for their own timeouts (the limiter's Redis timeout
decides how fast it degrades). Injected by ``quotaquake.chaos.actions.stop_service``; undone by
``resume_service`` or ``restart_service`` of the same service, or by ``restore_all``.
"""

from __future__ import annotations

from quotaquake.faults.base import Fault, action
from quotaquake.faults.handles import HandleFactory, handle_of
from quotaquake.runfolder.models import FaultKind
from quotaquake.stack.registry import handle_for
from quotaquake.stack.state import StackState

FAULT = Fault(kind=FaultKind.PAUSE, injected_by=frozenset({action("stop_service")}),
              undone_by=frozenset({action("resume_service"), action("restart_service")}))  # fmt: skip


def inject(state: StackState, service: str, handles: HandleFactory = handle_for) -> None:
    """SIGSTOP ``service`` (docker pause)."""
    handle_of(state, service, handles).stop()


def undo(state: StackState, service: str, handles: HandleFactory = handle_for) -> None:
    """SIGCONT ``service`` (docker unpause)."""
    handle_of(state, service, handles).resume()
