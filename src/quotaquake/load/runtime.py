"""What a scenario needs in each Locust process: validated options, the stack state, policy, traffic mix.

Built once per process and Locust ``Environment`` on first use (``runtime_for``): in remote workers the
``--qq-*`` values arrive with the first spawn message, so nothing here is read at import or init time.
"""

from __future__ import annotations

import logging
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from quotaquake.load.options import ScenarioOptions
from quotaquake.load.schedule import EpochClock
from quotaquake.load.traffic import TrafficMix, build_mix
from quotaquake.policy import DEFAULT_POLICY_PATH, Policy, load_policy
from quotaquake.stack.state import StackState, read_state

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScenarioRuntime:
    options: ScenarioOptions
    state: StackState
    policy: Policy
    mix: TrafficMix
    clock: EpochClock


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
    """The runtime of a Locust environment, built on first call (memoised per environment)."""
    runtime = _RUNTIMES.get(environment)
    if runtime is None:
        runtime = build_runtime(environment.parsed_options)
        _RUNTIMES[environment] = runtime
    return runtime
