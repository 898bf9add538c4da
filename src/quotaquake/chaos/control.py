"""Chaos Toolkit control ``quotaquake-preflight``: refuse to start an experiment that targets services
the stack does not have, before any fault is injected.

Declare it in an experiment::

    "controls": [{"name": "quotaquake-preflight",
                  "provider": {"type": "python", "module": "quotaquake.chaos.control"}}]

A bad target interrupts the run with one line in the log (``chaos run`` exits 1; it knows no other
failure code) and the rollbacks still run when the experiment's rollback strategy is ``always``.

A ``chaos run`` started by hand (not by ``quotaquake run``, which holds it already) takes the state file's
lock (``quotaquake.stack.lock``) for the experiment's duration: ``stack down`` or a ``quotaquake run`` on
the same stack is refused meanwhile, so no teardown races the experiment's rollbacks.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from chaoslib.exceptions import InterruptExecution

from quotaquake.chaos.preflight import check_experiment
from quotaquake.chaos.targets import load_stack, state_file
from quotaquake.errors import UsageError
from quotaquake.stack.lock import StackLock
from quotaquake.stack.processes import STACK_ID_ENV

_held: list[StackLock] = []


def before_experiment_control(
    context: Mapping[str, object], configuration: Mapping[str, object] | None = None, **kwargs: object
) -> None:
    """Check the experiment (``context``) against the stack named by its configuration; by hand, hold the
    stack's lock."""
    try:
        path = state_file(configuration)
        held_here = any(lock.state_file.resolve() == path.resolve() for lock in _held)
        if STACK_ID_ENV not in os.environ and not held_here:  # `quotaquake run` holds it for its children
            lock = StackLock(path, f"chaos run {context.get('title', '')}".strip())
            lock.acquire()
            _held.append(lock)
        check_experiment(context, load_stack(configuration))
    except UsageError as exc:
        raise InterruptExecution(f"quotaquake preflight: {exc}") from None


def after_experiment_control(context: Mapping[str, object], **kwargs: object) -> None:
    """Release the lock taken by ``before_experiment_control`` (after the rollbacks)."""
    while _held:
        _held.pop().release()
