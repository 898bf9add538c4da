"""Which stack an activity acts on: the experiment's ``quotaquake_state`` configuration entry.

Experiments carry no hosts: they declare the configuration entry ``quotaquake_state`` (an env indirection
to ``QUOTAQUAKE_STATE``), and every activity reads the stack state file it names. Which *services* of that
stack a fault may hit is checked by ``quotaquake.faults.targets``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from quotaquake.stack.state import StackState, read_state, state_path

STATE_CONFIG_KEY = "quotaquake_state"


def state_file(configuration: Mapping[str, object] | None) -> Path:
    """The state file named by the experiment's ``quotaquake_state`` entry, else ``$QUOTAQUAKE_STATE``,
    else ``.quotaquake/stack.json``."""
    value = (configuration or {}).get(STATE_CONFIG_KEY)
    return Path(str(value)) if value else state_path(None)


def load_stack(configuration: Mapping[str, object] | None) -> StackState:
    return read_state(state_file(configuration))
