"""How faults reach a service: through the provider's ``ServiceHandle`` (a process, a container).

``HandleFactory`` is injectable so tests hand faults fake handles; the default is the provider
registry's ``handle_for``.
"""

from __future__ import annotations

from collections.abc import Callable

from quotaquake.faults.targets import require_service
from quotaquake.stack.provider import ServiceHandle
from quotaquake.stack.state import StackState

HandleFactory = Callable[[StackState, str], ServiceHandle]


def handle_of(state: StackState, service: str, handles: HandleFactory) -> ServiceHandle:
    """The handle of ``service``, after checking the stack has it (``ChaosTargetError`` otherwise)."""
    return handles(state, require_service(state, service))
