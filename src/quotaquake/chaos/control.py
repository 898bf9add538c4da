"""Chaos Toolkit control ``quotaquake-preflight``: refuse to start an experiment that targets services
the stack does not have, before any fault is injected.

Declare it in an experiment::

    "controls": [{"name": "quotaquake-preflight",
                  "provider": {"type": "python", "module": "quotaquake.chaos.control"}}]

A bad target interrupts the run with one line in the log (``chaos run`` exits 1; it knows no other
failure code) and the rollbacks still run when the experiment's rollback strategy is ``always``.
"""

from __future__ import annotations

from collections.abc import Mapping

from chaoslib.exceptions import InterruptExecution

from quotaquake.chaos.preflight import check_experiment
from quotaquake.chaos.targets import load_stack
from quotaquake.errors import UsageError


def before_experiment_control(
    context: Mapping[str, object], configuration: Mapping[str, object] | None = None, **kwargs: object
) -> None:
    """Check the experiment (``context``) against the stack named by its configuration."""
    try:
        check_experiment(context, load_stack(configuration))
    except UsageError as exc:
        raise InterruptExecution(f"quotaquake preflight: {exc}") from None
