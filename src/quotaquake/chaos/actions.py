"""Chaos Toolkit actions against the stack named by the experiment's ``quotaquake_state`` configuration.

Use them in an experiment as ``{"type": "python", "module": "quotaquake.chaos.actions", "func": ...}``.
Service names are those of the state file (``redis``, ``postgres``, ``stub-api``, ``limiter-N``,
``gateway-N``, ``lb``, ``prometheus``). They work with every provider that hands out service handles
(local processes, docker containers). Each action is a thin face of one fault module of
``quotaquake.faults``, which also tells the journal reader what the action did.
"""

from __future__ import annotations

from collections.abc import Mapping

from quotaquake.chaos.health import wait_until_healthy
from quotaquake.chaos.targets import load_stack
from quotaquake.faults import outage, pause, replica_loss
from quotaquake.faults.restore import restore_stack

__all__ = [
    "kill_gateway_replicas",
    "kill_service",
    "restart_service",
    "restore_all",
    "resume_service",
    "stop_service",
]

Configuration = Mapping[str, object] | None
DEFAULT_RESTORE_TIMEOUT_S = 60.0


def kill_service(service: str, configuration: Configuration = None) -> str:
    """SIGKILL ``service`` (docker kill): it dies without cleanup. Returns the service name."""
    outage.inject(load_stack(configuration), service)
    return service


def stop_service(service: str, configuration: Configuration = None) -> str:
    """SIGSTOP ``service`` (docker pause): it hangs; its clients wait for their own timeouts."""
    pause.inject(load_stack(configuration), service)
    return service


def resume_service(service: str, configuration: Configuration = None) -> str:
    """SIGCONT ``service`` (docker unpause)."""
    pause.undo(load_stack(configuration), service)
    return service


def restart_service(service: str, configuration: Configuration = None) -> str:
    """Start ``service`` again as it was started and wait until it answers its readiness check."""
    outage.undo(load_stack(configuration), service)
    return service


def kill_gateway_replicas(count: int, configuration: Configuration = None) -> list[str]:
    """SIGKILL ``count`` of the N gateway replicas (the highest-numbered ones); returns their names.

    ``count`` outside 1..N fails the activity with one line naming the field.
    """
    return replica_loss.inject(load_stack(configuration), count)


def restore_all(timeout_s: float = DEFAULT_RESTORE_TIMEOUT_S, configuration: Configuration = None) -> dict[str, object]:
    """Rollback: resume stopped services, restart dead ones, then wait until the stack is healthy.

    Healthy means every service answers its readiness check and the LB sees every replica healthy
    (``quotaquake.chaos.health``). Fails the activity if that does not happen within ``timeout_s``.
    Returns ``{"actions": [...], "healthy_after_s": seconds}``; safe to run on a healthy stack.
    """
    state = load_stack(configuration)
    actions = restore_stack(state)
    healthy_after_s = wait_until_healthy(state, timeout_s)
    return {"actions": actions, "healthy_after_s": round(healthy_after_s, 3)}
