"""Undo every fault of a stack: resume what is stopped, restart what is dead, dependencies first."""

from __future__ import annotations

from quotaquake.faults.handles import HandleFactory
from quotaquake.stack.registry import handle_for
from quotaquake.stack.state import StackState

# Restore dependencies before their dependants: storage, then upstream, then limiters, replicas, LB.
_RESTORE_ORDER = {
    "redis": 0, "postgres": 0, "sentinel": 1, "redis-proxy": 1, "stub-api": 1, "prometheus": 1,
    "limiter": 2, "gateway": 3, "lb": 4,
}  # fmt: skip


def restore_rank(state: StackState, service: str) -> tuple[int, str]:
    """Sort key: services of kinds other services depend on come first; unknown kinds last."""
    return (_RESTORE_ORDER.get(state.services[service].kind, 5), service)


def restore_stack(state: StackState, handles: HandleFactory = handle_for) -> list[str]:
    """Resume every stopped service and restart every dead one, dependencies first.

    Returns what it did, e.g. ``["resumed redis", "restarted gateway-3"]``. A service that is neither
    running after SIGCONT nor after a restart makes the handle raise (``StackError``). A data node of a
    replicated set restarts as a replica of the current primary (its handle); a Redis proxy with a latency
    fault on gets every delay switched off.
    """
    from quotaquake.faults.latency import clear_if_proxied

    done: list[str] = []
    for name in sorted(state.services, key=lambda s: restore_rank(state, s)):
        handle = handles(state, name)
        if handle.is_running():
            continue
        handle.resume()
        if handle.is_running():
            done.append(f"resumed {name}")
            continue
        handle.restart()
        done.append(f"restarted {name}")
    if clear_if_proxied(state):
        done.append("cleared redis delays")
    return done
