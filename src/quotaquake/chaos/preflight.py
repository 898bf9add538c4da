"""Check an experiment's quotaquake activities against the stack before anything is broken.

Chaos Toolkit's own validation binds arguments to signatures but cannot know the stack; this checks
what only the stack knows: service names, the replica count of ``kill_gateway_replicas``, tiers with
provisioned consumers. ``quotaquake run --chaos`` calls it before starting the experiment (exit code 2),
and the experiments' ``quotaquake-preflight`` control calls it when ``chaos run`` starts one.
"""

from __future__ import annotations

from collections.abc import Mapping

from quotaquake.faults.targets import ChaosTargetError, choose_replicas, require_service
from quotaquake.stack.state import REDIS_TOPOLOGIES, RedisTopology, StackState

OUR_MODULES = ("quotaquake.chaos.actions", "quotaquake.chaos.probes")
CONSUMER_PROBES = {"known_consumer_works"}
REPLICATED: tuple[RedisTopology, ...] = ("sentinel",)
PROXIED: tuple[RedisTopology, ...] = ("proxied", "sentinel")
NEEDS_REDIS: dict[str, tuple[RedisTopology, ...]] = {
    "kill_redis_primary": REPLICATED,
    "pause_redis_primary": REPLICATED,
    "await_replicated_set": REPLICATED,
    "delay_redis": PROXIED,
    "clear_redis_delay": PROXIED,
}
"""Our actions that need a Redis topology of the local stack (``stack up --redis``): those that fit."""

Activity = Mapping[str, object]


def activities(experiment: Mapping[str, object]) -> list[Activity]:
    hypothesis = experiment.get("steady-state-hypothesis")
    probes = hypothesis.get("probes", []) if isinstance(hypothesis, Mapping) else []
    found: list[Activity] = []
    for group in (probes, experiment.get("method", []), experiment.get("rollbacks", [])):
        if isinstance(group, list):
            found += [a for a in group if isinstance(a, Mapping)]
    return found


def check_activity(activity: Activity, state: StackState) -> None:
    """Raise ``ChaosTargetError`` (naming the activity) if it targets something ``state`` lacks."""
    provider = activity.get("provider")
    if not isinstance(provider, Mapping) or provider.get("module") not in OUR_MODULES:
        return
    arguments = provider.get("arguments")
    arguments = arguments if isinstance(arguments, Mapping) else {}
    try:
        if "service" in arguments:
            require_service(state, str(arguments["service"]))
        if provider.get("func") == "kill_gateway_replicas" and "count" in arguments:
            count = arguments["count"]
            if not isinstance(count, int) or isinstance(count, bool):
                raise ChaosTargetError(f"count {count!r}: must be a whole number of replicas")
            choose_replicas(state, count)
        check_redis_topology(str(provider.get("func")), arguments, state)
        if provider.get("func") in CONSUMER_PROBES:
            tier = str(arguments.get("tier", "pro"))
            if not state.consumers_of(tier):
                raise ChaosTargetError(f"tier '{tier}': no provisioned consumer of it")
    except ChaosTargetError as exc:
        raise ChaosTargetError(f"activity '{activity.get('name', '?')}': {exc}") from None


def check_redis_topology(func: str, arguments: Mapping[str, object], state: StackState) -> None:
    """The stack runs a Redis topology the action needs (one line naming the ``stack up`` option otherwise),
    and a delay is one of the proxy's levels."""
    from quotaquake.faults import failover, latency

    if NEEDS_REDIS.get(func) == REPLICATED:
        failover.require_replicated(state)
    elif NEEDS_REDIS.get(func) == PROXIED:
        latency.require_proxy(state)
    if func == "delay_redis" and "delay_ms" in arguments:
        delay = arguments["delay_ms"]
        if not isinstance(delay, int) or isinstance(delay, bool):
            raise ChaosTargetError(f"delay_ms {delay!r}: must be a whole number of milliseconds")
        latency.require_level(delay)


def needed_redis(experiment: Mapping[str, object]) -> tuple[RedisTopology, ...] | None:
    """The Redis topologies that serve every activity of ``experiment`` (``None``: it needs none; the
    simplest first). ``quotaquake run`` starts its stack with the first when ``--redis`` is not given."""
    fitting = set(REDIS_TOPOLOGIES)
    needs = False
    for activity in activities(experiment):
        provider = activity.get("provider")
        if isinstance(provider, Mapping) and provider.get("module") in OUR_MODULES:
            wanted = NEEDS_REDIS.get(str(provider.get("func")))
            if wanted is not None:
                needs = True
                fitting &= set(wanted)
    return tuple(t for t in REDIS_TOPOLOGIES if t in fitting) if needs else None


def check_experiment(experiment: Mapping[str, object], state: StackState) -> None:
    """Check every activity of ``experiment`` (hypothesis, method, rollbacks) against ``state``."""
    for activity in activities(experiment):
        check_activity(activity, state)
