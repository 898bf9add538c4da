"""Fault windows from a Chaos Toolkit journal: when each fault began and when it was undone.

A fault starts when an activity of the method that injects one starts (the fault registry,
``quotaquake.faults``, knows which activities do). It ends when the first later activity that undoes it
*ends* (the registry again: the same service's resume/restart, a recovery probe that succeeded, or
``restore_all`` in the method or the rollbacks), so pauses after the fault action are inside the window.
A fault never undone has ``end = None``. A fault action that failed did not (knowingly) break anything
and yields no window; one interrupted mid-way (no status in the journal: Ctrl-C arrived while it ran)
may have, so it counts. Times are epoch seconds (the journal's ISO timestamps are UTC).

Each window carries the fault's kind, the role of the service it hit and what the run's policy
declares clients see meanwhile, so verification judges it without knowing any fault module.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

from quotaquake.errors import ConfigError
from quotaquake.faults import Activity, fault_injected_by, role_of
from quotaquake.kongspec import KongSpec
from quotaquake.policy import Policy
from quotaquake.runfolder.models import FaultWindow

Run = Mapping[str, object]


def _epoch(value: object) -> float:
    return datetime.fromisoformat(str(value)).timestamp()


def _mapping(value: object) -> Mapping[str, object]:
    return value if isinstance(value, Mapping) else {}


def _activity(run: Run) -> Activity:
    activity = _mapping(run.get("activity"))
    provider = _mapping(activity.get("provider"))
    status = run.get("status")
    return Activity(
        name=str(activity.get("name", "?")),
        module=str(provider.get("module", "")),
        func=str(provider.get("func", "")),
        arguments=_mapping(provider.get("arguments")),
        output=run.get("output"),
        status=str(status) if status is not None else None,
        start=_epoch(run["start"]),
        end=_epoch(run["end"]),
    )


def read_journal(journal_path: Path) -> dict[str, object]:
    """The journal as a mapping; a missing or corrupt file is a one-line ``ConfigError``."""
    try:
        data = json.loads(journal_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(journal_path, None, "no chaos journal (did the experiment run?)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(journal_path, None, f"cannot read: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(journal_path, None, f"not JSON: {exc.msg}") from None
    if not isinstance(data, dict):
        raise ConfigError(journal_path, None, "a chaos journal is a JSON object")
    return data


def _runs(journal: Mapping[str, object], key: str, source: Path | str) -> list[Activity]:
    runs = journal.get(key) or []
    if not isinstance(runs, list):
        return []
    try:
        return [_activity(run) for run in runs if isinstance(run, Mapping)]
    except (KeyError, ValueError) as exc:
        raise ConfigError(source, key, f"an activity has no valid start/end time ({exc})") from None


def windows_of(
    journal: Mapping[str, object], policy: Policy, source: Path | str = "journal", kong: KongSpec | None = None
) -> list[FaultWindow]:
    """Fault windows of a journal mapping, in order of fault start (see the module doc); ``source``
    names the journal in errors; ``kong``: the target's plugin, when the stack runs Kong."""
    method = sorted(_runs(journal, "run", source), key=lambda a: a.start)
    later = sorted(method + _runs(journal, "rollbacks", source), key=lambda a: a.end)
    windows = []
    for activity in method:
        fault = fault_injected_by(activity)
        if fault is None:
            continue
        undo = next((a for a in later if a is not activity and fault.undone(a, activity)), None)
        service = fault.services(activity)
        role = fault.declared_role(activity) or role_of(service)
        windows.append(
            FaultWindow(
                name=activity.name,
                kind=fault.kind,
                service=service,
                role=role,
                expect=fault.expect(activity, policy, role, kong),
                start=activity.start,
                end=undo.end if undo else None,
                details=fault.details(activity, undo),
            )
        )
    return windows


def fault_windows(journal_path: Path, policy: Policy, kong: KongSpec | None = None) -> list[FaultWindow]:
    """Fault windows of the journal at ``journal_path`` (``RunFolder.journal_file``)."""
    return windows_of(read_journal(journal_path), policy, journal_path, kong)
