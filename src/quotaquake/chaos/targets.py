"""Which stack an activity acts on, and which of its services: the checks every action and probe shares.

Experiments carry no hosts: they declare the configuration entry ``quotaquake_state`` (an env indirection
to ``QUOTAQUAKE_STATE``), and every activity reads the stack state file it names. A service name that
the stack does not have, or more gateway replicas than it runs, is a ``ChaosTargetError``: one line that
names the experiment field, which Chaos Toolkit shows as the activity's failure and ``quotaquake run``
maps to exit code 2.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from quotaquake.errors import UsageError
from quotaquake.stack.state import StackState, read_state, state_path

STATE_CONFIG_KEY = "quotaquake_state"
GATEWAY_PREFIX = "gateway-"
_REPLICA_NAME = re.compile(r"^gateway-(\d+)$")


class ChaosTargetError(UsageError):
    """An experiment names a service the stack does not have, or asks for more replicas than exist."""


def state_file(configuration: Mapping[str, object] | None) -> Path:
    """The state file named by the experiment's ``quotaquake_state`` entry, else ``$QUOTAQUAKE_STATE``,
    else ``.quotaquake/stack.json``."""
    value = (configuration or {}).get(STATE_CONFIG_KEY)
    return Path(str(value)) if value else state_path(None)


def load_stack(configuration: Mapping[str, object] | None) -> StackState:
    return read_state(state_file(configuration))


def require_service(state: StackState, service: str) -> str:
    """``service`` if the stack has it; otherwise a one-line error listing the names it has."""
    if service not in state.services:
        known = ", ".join(sorted(state.services)) or "none (is the stack up?)"
        raise ChaosTargetError(f"service '{service}': not in stack {state.stack_id}; known services: {known}")
    return service


def gateway_replicas(state: StackState) -> list[str]:
    """Gateway replica service names in replica order (``gateway-1``, ``gateway-2``, ...)."""
    numbered = [(int(m.group(1)), name) for name in state.services if (m := _REPLICA_NAME.match(name))]
    return [name for _, name in sorted(numbered)]


def choose_replicas(state: StackState, count: int) -> list[str]:
    """The ``count`` highest-numbered gateway replicas (deterministic, so runs are comparable).

    ``count`` must be between 1 and the number of replicas N; k = N (total gateway outage) is allowed.
    """
    replicas = gateway_replicas(state)
    if not 1 <= count <= len(replicas):
        raise ChaosTargetError(
            f"count={count}: the stack {state.stack_id} runs {len(replicas)} gateway replicas; "
            f"kill between 1 and {len(replicas)}"
        )
    return replicas[len(replicas) - count :]
