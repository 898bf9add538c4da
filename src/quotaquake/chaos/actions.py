"""Chaos Toolkit actions against the stack named by the experiment's ``quotaquake_state`` configuration.

Use them in an experiment as ``{"type": "python", "module": "quotaquake.chaos.actions", "func": ...}``.
Service names are those of the state file (``redis``, ``postgres``, ``stub-api``, ``limiter-N``,
``gateway-N``, ``lb``, ``prometheus``). They work with every provider that hands out service handles
(local processes, docker containers). Each action is a thin face of one fault module of
``quotaquake.faults``, which also tells the journal reader what the action did.
"""

from __future__ import annotations

from collections.abc import Mapping

import httpx

from quotaquake.chaos.health import wait_until_healthy
from quotaquake.chaos.targets import load_stack
from quotaquake.faults import failover, latency, outage, pause, replica_loss
from quotaquake.faults.restore import restore_stack

__all__ = [
    "await_replicated_set",
    "clear_redis_delay",
    "delay_redis",
    "kill_gateway_replicas",
    "kill_redis_primary",
    "kill_service",
    "pause_redis_primary",
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


def kill_gateway_replicas(count: int, configuration: Configuration = None) -> dict[str, object]:
    """SIGKILL ``count`` of the N gateway replicas (the highest-numbered ones) and time the load balancer's
    ejection of each; returns ``{"replicas": [names], "killed_at", "health_check", "ejected_after_s"}``
    (``quotaquake.faults.replica_loss``).

    ``count`` outside 1..N fails the activity with one line naming the field.
    """
    return replica_loss.inject(load_stack(configuration), count)


def kill_redis_primary(configuration: Configuration = None) -> dict[str, object]:
    """SIGKILL the primary of the replicated Redis (``stack up --redis sentinel``), wait for the Sentinels to
    promote its replica, and return what was measured: the promotion time and the replication offsets
    around the fault (``quotaquake.faults.failover``). The old node stays dead until the rollback."""
    return failover.kill_primary(load_stack(configuration))


def pause_redis_primary(hold_s: float = 5.0, configuration: Configuration = None) -> dict[str, object]:
    """SIGSTOP the Redis primary for ``hold_s`` seconds (past the Sentinels' down-after, so they promote its
    replica), then SIGCONT it: it returns as a stale primary until the Sentinels demote it. Returns the
    measurements of ``kill_redis_primary`` plus ``resumed_at``."""
    return failover.pause_primary(load_stack(configuration), hold_s)


def await_replicated_set(
    timeout_s: float = DEFAULT_RESTORE_TIMEOUT_S, configuration: Configuration = None
) -> dict[str, object]:
    """Wait until the replicated Redis is healthy again: one primary the Sentinels agree on, every other node
    replicating from it (a stale primary demoted). Fails the activity after ``timeout_s``; returns when it
    became healthy and when a stale primary was demoted."""
    return failover.await_set(load_stack(configuration), timeout_s)


def delay_redis(delay_ms: int, configuration: Configuration = None) -> dict[str, object]:
    """Delay every Redis command the limiters send by ``delay_ms`` (a level of the stack's Redis proxy:
    ``stack up --redis proxied`` or ``sentinel``); any other delay is switched off. Returns the delay, when it
    was switched and the limiters' decision histograms at that moment (``quotaquake.faults.latency``)."""
    return latency.inject(load_stack(configuration), delay_ms)


def clear_redis_delay(configuration: Configuration = None) -> dict[str, object]:
    """Switch every Redis delay off (the same record as ``delay_redis``, with delay 0)."""
    return latency.undo(load_stack(configuration))


def restore_all(timeout_s: float = DEFAULT_RESTORE_TIMEOUT_S, configuration: Configuration = None) -> dict[str, object]:
    """Rollback: resume stopped services, restart dead ones, then wait until the stack is healthy.

    Healthy means every service answers its readiness check and the LB sees every replica healthy
    (``quotaquake.chaos.health``). Fails the activity if that does not happen within ``timeout_s``.
    Returns ``{"actions": [...], "healthy_after_s": seconds}`` (and ``redis_delay``: the record of switching
    off a Redis delay still on, as ``clear_redis_delay`` returns it); safe to run on a healthy stack.
    """
    state = load_stack(configuration)
    try:
        cleared = latency.clear_recorded(state)  # a Redis delay still on: its window's record ends here
    except httpx.HTTPError:  # the proxy itself is down: restarted below, with no delay (the record stays open)
        cleared = None
    actions = restore_stack(state)
    healthy_after_s = wait_until_healthy(state, timeout_s)
    output: dict[str, object] = {"actions": actions, "healthy_after_s": round(healthy_after_s, 3)}
    if cleared is not None:
        output["redis_delay"] = cleared
    return output
