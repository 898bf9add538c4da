"""Health of a running stack, service by service: process state and readiness probe."""

from __future__ import annotations

from dataclasses import dataclass

from quotaquake.stack import processes
from quotaquake.stack.readiness import is_ready
from quotaquake.stack.state import ServiceRecord, StackState


@dataclass(frozen=True)
class ServiceHealth:
    name: str
    process: str  # running | stopped | dead | remote
    ready: bool
    url: str | None


def process_state(record: ServiceRecord) -> str:
    if record.pid is None:
        return "container" if record.container_id else "remote"
    if not processes.is_alive(record):
        return "dead"
    return "stopped" if processes.proc_state(record.pid) == "T" else "running"


def probe(url: str | None) -> bool:
    if url is None:
        return False
    try:
        return is_ready(url)
    except Exception:
        return False


def stack_health(state: StackState) -> list[ServiceHealth]:
    """One row per service; a stopped (SIGSTOP) process is not probed (it would only time out)."""
    rows = []
    for record in state.services.values():
        process = process_state(record)
        ready = process in ("running", "remote", "container") and probe(record.ready_url)
        rows.append(ServiceHealth(record.name, process, ready, record.url))
    return rows
