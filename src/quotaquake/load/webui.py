"""Locust's web UI form for quotaquake scenarios: values checked before a swarm starts.

Locust's ``/swarm`` writes the form's values into the parsed options and starts the shape without asking
anyone; a bad value there would surface as a crash of the shape greenlet, or as a run that is not what the
form says (an "edit" of a running shape test is even written while the running swarm ignores it).
``install_form_check`` adds a Flask ``before_request`` hook for ``POST /swarm`` that answers the form with
``{"success": false, "message": ...}`` (shown by the form) when:

* a swarm is running: its options hold until it stops (stop it first);
* a ``--qq-*`` value does not parse or fails validation (``check``, which raises ``UsageError``: the
  scenario's own checks and the safety guard, which also sees the form's Host field), or the run time
  exceeds the duration cap.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from typing import Any

from quotaquake.context import parse_duration
from quotaquake.errors import UsageError
from quotaquake.load.safety import check_duration

RUNNING_STATES = frozenset({"spawning", "running"})
SWARM_PATH = "/swarm"


def form_namespace(
    parsed: argparse.Namespace, form: Mapping[str, str], actions: Mapping[str, argparse.Action]
) -> argparse.Namespace:
    """A copy of ``parsed`` with the form's values of ``actions`` (dest -> action), its run time and its host
    applied, converted as the command line would; a value that does not convert is a ``UsageError`` naming it."""
    values = dict(vars(parsed))
    for dest, text in form.items():
        action = actions.get(dest)
        if action is None:
            continue
        values[dest] = converted(action, text)
    run_time = form.get("run_time", "")
    if run_time:
        values["run_time"] = parse_duration(run_time, "run time")
    if "host" in form:  # Locust's Host field: empty means the stack's gateway
        values["host"] = form["host"].replace("<", "").replace(">", "")
    return argparse.Namespace(**values)


def converted(action: argparse.Action, text: str) -> Any:
    """``text`` converted by the action's type (or a bool for flags)."""
    option = action.option_strings[0] if action.option_strings else action.dest
    if action.nargs == 0:  # store_true / store_false
        return text == "true"
    convert = action.type if callable(action.type) else str
    try:
        value = convert(text)
    except (TypeError, ValueError):
        raise UsageError(f"{option}: {text!r} is not a valid value") from None
    if action.choices is not None and value not in action.choices:
        raise UsageError(f"{option}: {text!r} is not one of {', '.join(map(str, action.choices))}")
    return value


def check_form(
    state: str, parsed: argparse.Namespace, form: Mapping[str, str], actions: Mapping[str, argparse.Action],
    check: Callable[[argparse.Namespace], object],
) -> str | None:  # fmt: skip
    """Why the form must not start a swarm (one line), or ``None`` when it may."""
    if state in RUNNING_STATES:
        return "a swarm is running: its options hold until it stops; stop it, then start a new one"
    try:
        candidate = form_namespace(parsed, form, actions)
        run_time = getattr(candidate, "run_time", None)
        if run_time:
            check_duration(float(run_time))
        check(candidate)
    except UsageError as exc:
        return str(exc)
    return None


def install_form_check(
    environment: Any, actions: Mapping[str, argparse.Action], check: Callable[[argparse.Namespace], object]
) -> None:
    """Refuse a ``POST /swarm`` of Locust's web UI that ``check_form`` objects to (no-op without a web UI)."""
    web_ui = environment.web_ui
    if web_ui is None:
        return
    from flask import jsonify, request

    def refuse_bad_swarm() -> Any:
        if request.path != SWARM_PATH or request.method != "POST":
            return None
        problem = check_form(environment.runner.state, environment.parsed_options, request.form, actions, check)
        if problem is None:
            return None
        return jsonify({"success": False, "message": f"quotaquake: {problem}", "host": environment.host})

    web_ui.app.before_request(refuse_bad_swarm)
