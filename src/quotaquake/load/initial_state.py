"""A run's initial quota state: reset the consumers a scenario may use, through the stack's provider.

``quotaquake run`` (after the stack is acquired, before Locust starts) and the Locust master of a plain
``locust -f`` run (at test start, before monthly usage is seeded; ``--qq-initial-state reset``, the
default) ask the provider to forget the rate limiter's state of every consumer in the state file and of
every keyless client address the scenarios use (``anon:198.51.100.1`` .. ``.254``), then record
``initial_state=reset`` and the time in ``run.json``: verification may then take every bucket as full and
every month counter as 0 (or its seed). A provider that cannot (``external``), a reset that failed, and
``--qq-initial-state keep`` leave it ``unknown``: verification then assumes nothing about it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime

from quotaquake.errors import UsageError
from quotaquake.load.traffic import anonymous_callers
from quotaquake.runfolder.models import InitialState, RunInfo
from quotaquake.stack.registry import provider_for
from quotaquake.stack.state import Consumer, StackState

log = logging.getLogger(__name__)

KEYLESS_ADDRESSES = 254  # the most --qq-anon-ips allows: every simulated client IP


@dataclass(frozen=True)
class InitialStateRecord:
    """What a run established about its consumers' quota state (``run.json``'s ``initial_state``)."""

    state: InitialState
    at: datetime | None = None  # when the reset completed
    notes: list[str] = field(default_factory=list)

    def apply(self, info: RunInfo) -> RunInfo:
        """``info`` with this state, its time and the notes recorded."""
        return info.model_copy(
            update={"initial_state": self.state, "initial_state_at": self.at, "notes": [*info.notes, *self.notes]}
        )


def run_consumers(state: StackState) -> list[Consumer]:
    """The consumers a scenario may use: the state file's, and the keyless clients as tier ``anonymous``."""
    keyless = [Consumer(id=c.consumer, tier=c.tier, key="") for c in anonymous_callers(KEYLESS_ADDRESSES)]
    return [*state.consumers, *keyless]


def reset_initial_state(state: StackState) -> InitialStateRecord:
    """Reset the run's consumers through the stack's provider; ``unknown`` (with the reason) if it cannot."""
    consumers = run_consumers(state)
    try:
        provider_for(state).reset_consumers(state, consumers)
    except UsageError as exc:
        note = f"initial state unknown: {exc}"
        log.warning(note)
        return InitialStateRecord(InitialState.UNKNOWN, None, [note])
    note = (
        f"initial state reset: {len(state.consumers)} consumer(s) of stack {state.stack_id} and "
        f"{KEYLESS_ADDRESSES} keyless client addresses"
    )
    log.info(note)
    return InitialStateRecord(InitialState.RESET, datetime.now(UTC), [note])


def kept_initial_state() -> InitialStateRecord:
    """``--qq-initial-state keep``: the limiter's state is left as it is, so it is unknown."""
    return InitialStateRecord(InitialState.UNKNOWN, None, ["initial state kept (--qq-initial-state keep): unknown"])
