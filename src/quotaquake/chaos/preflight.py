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
ONLY_LOCAL = {
    REPLICATED: "the failover is injected into the embedded stack's replicated Redis (--redis sentinel), which it "
    "does not have, and Kong 3.9's OSS rate-limiting plugin has no Sentinel setting to follow a promotion with "
    "(one Redis host:port)",
    PROXIED: "the Redis latency fault is switched in the embedded stack's Envoy redis_proxy, which it does not "
    "have (Kong talks to its Redis directly)",
}
"""Why the experiments that need a local Redis topology do not apply to a Kong target (docs/kong-3.9.md §14)."""

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


def not_applicable(func: str, provider: str) -> str | None:
    """Why the action ``func`` does not apply to a ``provider`` target (one line), ``None`` when it may."""
    needs = NEEDS_REDIS.get(func)
    if needs is None or provider == "local":
        return None
    return f"not applicable to a --provider {provider} target: {ONLY_LOCAL[needs]} (docs/kong-3.9.md §14)"


def not_applicable_experiment(experiment: Mapping[str, object], provider: str) -> str | None:
    """Why ``experiment`` does not apply to a ``provider`` target: its first action that does not."""
    for activity in activities(experiment):
        provider_spec = activity.get("provider")
        if isinstance(provider_spec, Mapping) and provider_spec.get("module") in OUR_MODULES:
            why = not_applicable(str(provider_spec.get("func")), provider)
            if why is not None:
                return f"activity '{activity.get('name', '?')}': {why}"
    return None


def check_redis_topology(func: str, arguments: Mapping[str, object], state: StackState) -> None:
    """The stack runs a Redis topology the action needs (one line naming the ``stack up`` option otherwise;
    a Kong target has none: not applicable, saying why), and a delay is one of the proxy's levels."""
    from quotaquake.faults import failover, latency

    if (why := not_applicable(func, state.provider)) is not None:
        raise ChaosTargetError(why)
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
