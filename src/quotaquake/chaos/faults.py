"""Fault operations on a stack through provider-neutral service handles (no Chaos Toolkit here).

``Faults`` is what the Chaos Toolkit actions call; it takes the handle factory as an argument so tests can
hand it fake handles and the docker provider can hand it container handles.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from quotaquake.chaos.targets import choose_replicas, require_service
from quotaquake.stack.provider import ServiceHandle
from quotaquake.stack.state import StackState

HandleFactory = Callable[[StackState, str], ServiceHandle]

# Restore dependencies before their dependants: storage, then upstream, then limiters, replicas, LB.
_RESTORE_ORDER = {"redis": 0, "postgres": 0, "stub-api": 1, "prometheus": 1, "limiter": 2, "gateway": 3, "lb": 4}


def restore_rank(state: StackState, service: str) -> tuple[int, str]:
    """Sort key: services of kinds other services depend on come first; unknown kinds last."""
    return (_RESTORE_ORDER.get(state.services[service].kind, 5), service)


@dataclass(frozen=True)
class Faults:
    state: StackState
    handles: HandleFactory

    def _handle(self, service: str) -> ServiceHandle:
        return self.handles(self.state, require_service(self.state, service))

    def kill(self, service: str) -> None:
        """SIGKILL the service (docker kill)."""
        self._handle(service).kill()

    def stop(self, service: str) -> None:
        """SIGSTOP the service (docker pause): it hangs with its sockets open."""
        self._handle(service).stop()

    def resume(self, service: str) -> None:
        """SIGCONT the service (docker unpause)."""
        self._handle(service).resume()

    def restart(self, service: str) -> None:
        """Start the service again as recorded and wait for its readiness (the handle's deadline)."""
        self._handle(service).restart()

    def kill_replicas(self, count: int) -> list[str]:
        """SIGKILL ``count`` of the N gateway replicas (the highest-numbered); returns their names."""
        victims = choose_replicas(self.state, count)
        for name in victims:
            self.handles(self.state, name).kill()
        return victims

    def restore(self) -> list[str]:
        """Resume every stopped service and restart every dead one, dependencies first.

        Returns what it did, e.g. ``["resumed redis", "restarted gateway-3"]``. A service that is neither
        running after SIGCONT nor after a restart makes the handle raise (``StackError``).
        """
        done: list[str] = []
        for name in sorted(self.state.services, key=lambda s: restore_rank(self.state, s)):
            handle = self.handles(self.state, name)
            if handle.is_running():
                continue
            handle.resume()
            if handle.is_running():
                done.append(f"resumed {name}")
                continue
            handle.restart()
            done.append(f"restarted {name}")
        return done
