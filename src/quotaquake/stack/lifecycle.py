"""What the commands do around a state file, under its lock: clear what a dead command left, take a stack
down by its state file (readable or not).

``stack down`` never trusts a state file with deletions: a copy (its recorded ``state_file`` is another
path) is refused; folders are removed only when their ownership marker names the stack
(``quotaquake.stack.ownership``); a state file that cannot be read is left in place.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from quotaquake.errors import UsageError
from quotaquake.stack import processes, reaper
from quotaquake.stack.lock import StackLock
from quotaquake.stack.state import StackState, read_state

UNRECORDED_GRACE_S = 3.0


@dataclass(frozen=True)
class Leftovers:
    """What a command found and stopped before doing its own work."""

    recorded: list[str] = field(default_factory=list)  # processes a dead command had recorded (by name)
    strays: int = 0  # further processes carrying the stack's markers (Locust workers, an experiment's children)

    @property
    def experiment_stopped(self) -> bool:
        return any(name.startswith("chaos") for name in self.recorded)

    def __bool__(self) -> bool:
        return bool(self.recorded or self.strays)


def readable_state(path: Path) -> StackState | None:
    """The state at ``path``, or ``None`` when there is none or it cannot be read."""
    if not path.exists():
        return None
    try:
        return read_state(path)
    except UsageError:
        return None


def clear_leftovers(lock: StackLock) -> Leftovers:
    """Stop what a dead command on this state file left running: the processes it recorded in the lock
    (experiment first), then any other process with the stack's markers that is not a stack service."""
    recorded = reaper.stop_recorded(lock.orphans)
    lock.forget_orphans()
    state = readable_state(lock.state_file)
    strays = reaper.stop_run_processes(state) if state is not None else 0
    return Leftovers(recorded, strays)


def refuse_copy(path: Path, state: StackState) -> None:
    """A state file names its own path; one that names another is a copy and must not steer a teardown."""
    if Path(state.state_file).resolve() != path.resolve():
        raise UsageError(
            f"{path}: a copy of {state.state_file} (stack {state.stack_id}); "
            f"run the command with --state {state.state_file}, or remove this copy"
        )


def down_unrecorded(path: Path) -> list[str]:
    """Stop every stack whose processes carry ``path`` as their state file (the file is gone or unreadable);
    returns their ids."""
    live = processes.stacks_of_state_file(path)
    for stack_id, pids in live.items():
        pg_data = Path(tempfile.gettempdir()) / f"quotaquake-pg-{stack_id}"
        reaper.reap_unrecorded_stack(stack_id, pids, [pg_data], UNRECORDED_GRACE_S)
    return sorted(live)
