"""Fault windows from a Chaos Toolkit journal: when each fault began and when it was undone.

A fault starts when a fault action of the method (kill, stop, kill replicas; chaosk8s pod termination)
starts. It ends when the first later restoring activity that covers it *ends*: ``resume_service`` or
``restart_service`` of the same service, or ``restore_all`` (method or rollbacks). Pauses after the
fault action are therefore inside the window. A fault never undone has ``end = None``. A fault action
that failed did not (knowingly) break anything and yields no window; one interrupted mid-way (no status
in the journal: Ctrl-C arrived while it ran) may have, so it counts. Times are epoch seconds (the
journal's ISO timestamps are UTC).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from quotaquake.errors import ConfigError
from quotaquake.record import FAULTS_FILE, FaultWindow

ACTIONS_MODULE = "quotaquake.chaos.actions"
FAULT_FUNCS = {"kill_service", "stop_service", "kill_gateway_replicas"}
SERVICE_RESTORERS = {"resume_service", "restart_service"}
RESTORE_ALL = "restore_all"
K8S_FAULTS = {("chaosk8s.pod.actions", "terminate_pods"), ("chaosk8s.pod.actions", "delete_pods")}

Run = Mapping[str, object]


@dataclass(frozen=True)
class _Activity:
    name: str
    module: str
    func: str
    arguments: Mapping[str, object]
    output: object
    failed: bool
    start: float
    end: float

    @property
    def service(self) -> str | None:
        if self.func == "kill_gateway_replicas" and isinstance(self.output, list):
            return ",".join(str(s) for s in self.output)
        if self.module != ACTIONS_MODULE:
            selector = self.arguments.get("label_selector")
            return str(selector) if selector else None
        service = self.arguments.get("service")
        return str(service) if service is not None else None

    def is_fault(self) -> bool:
        return not self.failed and (
            (self.module == ACTIONS_MODULE and self.func in FAULT_FUNCS) or (self.module, self.func) in K8S_FAULTS
        )

    def restores(self, fault: _Activity) -> bool:
        if self.module != ACTIONS_MODULE or self.start < fault.start:
            return False
        if self.func == RESTORE_ALL:
            return True
        return (
            self.func in SERVICE_RESTORERS
            and fault.func != "kill_gateway_replicas"
            and (self.arguments.get("service") == fault.service)
        )


def _epoch(value: object) -> float:
    return datetime.fromisoformat(str(value)).timestamp()


def _activity(run: Run) -> _Activity:
    activity = run.get("activity")
    activity = activity if isinstance(activity, Mapping) else {}
    provider = activity.get("provider")
    provider = provider if isinstance(provider, Mapping) else {}
    arguments = provider.get("arguments")
    return _Activity(
        name=str(activity.get("name", "?")),
        module=str(provider.get("module", "")),
        func=str(provider.get("func", "")),
        arguments=arguments if isinstance(arguments, Mapping) else {},
        output=run.get("output"),
        failed=run.get("status") == "failed",
        start=_epoch(run["start"]),
        end=_epoch(run["end"]),
    )


def read_journal(journal_path: Path) -> dict[str, object]:
    """The journal as a mapping; a missing or corrupt file is a one-line ``ConfigError``."""
    try:
        data = json.loads(journal_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(journal_path, None, "no chaos journal (did the experiment run?)") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(journal_path, None, f"not JSON: {exc.msg}") from None
    if not isinstance(data, dict):
        raise ConfigError(journal_path, None, "a chaos journal is a JSON object")
    return data


def _runs(journal: Mapping[str, object], key: str) -> list[_Activity]:
    runs = journal.get(key) or []
    return [_activity(run) for run in runs if isinstance(run, Mapping)] if isinstance(runs, list) else []


def windows_of(journal: Mapping[str, object]) -> list[FaultWindow]:
    """Fault windows of a journal mapping, in order of fault start (see the module doc)."""
    method = sorted(_runs(journal, "run"), key=lambda a: a.start)
    later = sorted(method + _runs(journal, "rollbacks"), key=lambda a: a.end)
    windows = []
    for fault in (a for a in method if a.is_fault()):
        undo = next((a for a in later if a.restores(fault)), None)
        windows.append(
            FaultWindow(name=fault.name, service=fault.service, start=fault.start, end=undo.end if undo else None)
        )
    return windows


def fault_windows(journal_path: Path) -> list[FaultWindow]:
    """Fault windows of the journal at ``journal_path`` (``<run_dir>/chaos/journal.json``)."""
    return windows_of(read_journal(journal_path))


def write_faults(run_dir: Path, windows: list[FaultWindow]) -> Path:
    """Write ``<run_dir>/faults.json`` (a JSON list of FaultWindow) and return its path."""
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / FAULTS_FILE
    path.write_text(json.dumps([w.model_dump() for w in windows], indent=2), encoding="utf-8")
    return path


def read_faults(run_dir: Path) -> list[FaultWindow]:
    """The fault windows written by ``write_faults``; none when the run had no experiment."""
    path = run_dir / FAULTS_FILE
    if not path.exists():
        return []
    return [FaultWindow.model_validate(item) for item in json.loads(path.read_text(encoding="utf-8"))]
