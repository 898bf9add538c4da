"""What every stack provider (local processes, Kong via Testcontainers, an existing deployment) offers.

A provider brings the system under test up and down and hands out one ``ServiceHandle`` per service so
that chaos actions can break it the same way whatever runs it.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from quotaquake.stack.state import StackState


@runtime_checkable
class ServiceHandle(Protocol):
    """Fault-injection handle of one service (process or container)."""

    name: str

    def kill(self) -> None:
        """SIGKILL (or docker kill): the service dies without cleanup."""

    def stop(self) -> None:
        """SIGSTOP (or docker pause): the service hangs; connections stay open but nothing answers."""

    def resume(self) -> None:
        """SIGCONT (or docker unpause)."""

    def restart(self) -> None:
        """Start the service again as it was started (after a kill), and wait until it is ready."""

    def is_running(self) -> bool:
        """True when the process/container exists and is not stopped."""


class Provider(Protocol):
    name: str

    def up(self) -> StackState:
        """Start everything, wait for readiness, write and return the state."""

    def down(self, state: StackState) -> None:
        """Stop everything named in ``state``; safe to call on a half-started or stale stack."""

    def handle(self, state: StackState, service: str) -> ServiceHandle:
        """The fault-injection handle of ``service`` (a key of ``state.services``)."""
