"""Which services of a stack a fault can hit: the checks every fault and the experiment preflight share.

A service name the stack does not have, or more gateway replicas than it runs, is a ``ChaosTargetError``:
one line naming the field, which Chaos Toolkit shows as the activity's failure and ``quotaquake run``
maps to exit code 2.
"""

from __future__ import annotations

import re

from quotaquake.errors import UsageError
from quotaquake.stack.state import StackState

_REPLICA_NAME = re.compile(r"^gateway-(\d+)$")


class ChaosTargetError(UsageError):
    """An experiment names a service the stack does not have, or asks for more replicas than exist."""


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
