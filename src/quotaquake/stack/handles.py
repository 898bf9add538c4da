"""``handle_for(state, service)``: the fault-injection handle of a service, whatever provider runs it."""

from __future__ import annotations

from pathlib import Path

from quotaquake.errors import UsageError
from quotaquake.stack.provider import ServiceHandle
from quotaquake.stack.state import StackState


def handle_for(state: StackState, service: str) -> ServiceHandle:
    """Handle of ``service`` in ``state``: local processes or docker containers; external stacks have none."""
    if state.provider == "local":
        from quotaquake.stack.local_handles import LocalHandle

        return LocalHandle(Path(state.state_file), service)
    if state.provider == "docker":
        from quotaquake.stack.docker_handles import container_handle

        handle: ServiceHandle = container_handle(state, service)
        return handle
    raise UsageError(
        f"provider '{state.provider}' does not control its services; chaos needs the local or docker provider"
    )
