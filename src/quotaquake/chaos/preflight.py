"""Check an experiment's quotaquake activities against the stack before anything is broken.

Chaos Toolkit's own validation binds arguments to signatures but cannot know the stack; this checks
what only the stack knows: service names, the replica count of ``kill_gateway_replicas``, tiers with
provisioned consumers. ``quotaquake run --chaos`` calls it before starting the experiment (exit code 2),
and the experiments' ``quotaquake-preflight`` control calls it when ``chaos run`` starts one.
"""

from __future__ import annotations

from collections.abc import Mapping

from quotaquake.faults.targets import ChaosTargetError, choose_replicas, require_service
from quotaquake.stack.state import StackState

OUR_MODULES = ("quotaquake.chaos.actions", "quotaquake.chaos.probes")
CONSUMER_PROBES = {"known_consumer_works"}

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
        if provider.get("func") in CONSUMER_PROBES:
            tier = str(arguments.get("tier", "pro"))
            if not state.consumers_of(tier):
                raise ChaosTargetError(f"tier '{tier}': no provisioned consumer of it")
    except ChaosTargetError as exc:
        raise ChaosTargetError(f"activity '{activity.get('name', '?')}': {exc}") from None


def check_experiment(experiment: Mapping[str, object], state: StackState) -> None:
    """Check every activity of ``experiment`` (hypothesis, method, rollbacks) against ``state``."""
    for activity in activities(experiment):
        check_activity(activity, state)
