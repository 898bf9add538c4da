"""What a scenario needs in each Locust process for one swarm: validated options, the stack state, policy,
traffic mix, and the counters of its users' sends.

A *swarm* is one test of a Locust process: a headless run has one; the web UI starts one per press of
"Start" (Locust's ``test_start`` ... ``test_stop``). The runtime is built on first use in a swarm
(``runtime_for``) from the options as they are then, and retired when the swarm stops (``retire_runtime``,
from a ``test_stop`` listener): the next swarm builds a fresh one, so a rate typed into the web form is the
rate its users send at. Remote workers receive the ``--qq-*`` values with each spawn message, before they
build it, so nothing here is read at import or init time.
"""

from __future__ import annotations

import logging
import os
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from quotaquake.load.options import ScenarioOptions
from quotaquake.load.schedule import EpochClock, SendCounters
from quotaquake.load.traffic import TrafficMix, build_mix
from quotaquake.policy import DEFAULT_POLICY_PATH, Policy, load_policy
from quotaquake.stack.state import StackState, read_state

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScenarioRuntime:
    """One swarm's view of the scenario in one process; ``counters`` are mutated by its users."""

    options: ScenarioOptions
    state: StackState
    policy: Policy
    mix: TrafficMix
    clock: EpochClock
    counters: SendCounters = field(default_factory=SendCounters)
    started_monotonic: float = field(default_factory=time.monotonic)  # s, when this runtime was built
    started_cpu_s: float = field(default_factory=lambda: process_cpu_s())  # this process's CPU s by then


def process_cpu_s() -> float:
    """User + system CPU seconds this process has used so far (``os.times``; children excluded)."""
    times = os.times()
    return times.user + times.system


def policy_of(state: StackState) -> Policy:
    """The policy file the stack was started with (``stack/policy.yaml`` when the state names none)."""
    return load_policy(Path(state.policy_file) if state.policy_file else DEFAULT_POLICY_PATH)


def build_runtime(parsed_options: Any) -> ScenarioRuntime:
    """Validate options, read state and policy, build the traffic mix; bad input raises ``UsageError``."""
    options = ScenarioOptions.from_namespace(parsed_options)
    state = read_state(options.state)
    policy = policy_of(state)
    mix, warnings = build_mix(state, policy, options)
    for warning in warnings:
        log.warning(warning)
    return ScenarioRuntime(options, state, policy, mix, EpochClock())


_RUNTIMES: weakref.WeakKeyDictionary[Any, ScenarioRuntime] = weakref.WeakKeyDictionary()


def runtime_for(environment: Any) -> ScenarioRuntime:
    """The runtime of the environment's current swarm, built on first call in the swarm."""
    runtime = _RUNTIMES.get(environment)
    if runtime is None:
        runtime = build_runtime(environment.parsed_options)
        _RUNTIMES[environment] = runtime
    return runtime


def current_runtime(environment: Any) -> ScenarioRuntime | None:
    """The current swarm's runtime if one was built (``None``: no user or shape of this process needed it)."""
    return _RUNTIMES.get(environment)


def retire_runtime(environment: Any) -> ScenarioRuntime | None:
    """End the current swarm's runtime (the next ``runtime_for`` builds a new one); returns it."""
    return _RUNTIMES.pop(environment, None)
