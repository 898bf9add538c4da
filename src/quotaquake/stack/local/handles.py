"""Fault-injection handles for the local provider's processes: SIGKILL, SIGSTOP, SIGCONT, restart.

Signals go to the whole process group (Postgres backends, uvicorn workers). ``restart`` spawns the
recorded argv again, writes the new pid into the state file, and waits until the service is ready.
"""

from __future__ import annotations

import signal
from pathlib import Path

from quotaquake.errors import StackError, UsageError
from quotaquake.stack import processes
from quotaquake.stack.readiness import is_ready
from quotaquake.stack.state import ServiceRecord, read_state, write_state

RESTART_TIMEOUT_S = 30.0
KILL_TIMEOUT_S = 5.0
SIGNAL_TIMEOUT_S = 5.0  # how long stop/resume wait for every process of the group to show the new state


class LocalHandle:
    """Handle of one service of a local stack, found through the state file at every call (the pid
    changes on restart)."""

    def __init__(self, state_file: Path, name: str) -> None:
        self.state_file = state_file
        self.name = name
        state = read_state(state_file)
        if name not in state.services:
            known = ", ".join(sorted(state.services))
            raise UsageError(f"unknown service '{name}' (this stack has: {known})")

    def __repr__(self) -> str:
        return f"LocalHandle({self.name!r})"

    def record(self) -> ServiceRecord:
        return read_state(self.state_file).services[self.name]

    def kill(self) -> None:
        record = self.record()
        members = processes.group_members(record.pid) if processes.is_alive(record) and record.pid else []
        processes.signal_group(record, signal.SIGKILL)
        if not processes.poll_until(
            lambda: all(processes.proc_state(p) in (None, "Z") for p in members), KILL_TIMEOUT_S
        ):
            raise StackError(self.name, f"still running {KILL_TIMEOUT_S:.0f} s after SIGKILL")

    def _members(self, record: ServiceRecord) -> list[int]:
        return processes.group_members(record.pid) if processes.is_alive(record) and record.pid else []

    def stop(self) -> None:
        """SIGSTOP the group and wait until every member is stopped (state T), as promised."""
        record = self.record()
        members = self._members(record)
        if not processes.signal_group(record, signal.SIGSTOP):
            raise StackError(self.name, "not running, cannot stop (SIGSTOP) it")
        if not processes.poll_until(
            lambda: all(processes.proc_state(p) in (None, "Z", "T", "t") for p in members), SIGNAL_TIMEOUT_S
        ):
            raise StackError(self.name, f"not stopped {SIGNAL_TIMEOUT_S:.0f} s after SIGSTOP")

    def resume(self) -> None:
        """SIGCONT the group and wait until no member is stopped any more."""
        record = self.record()
        members = self._members(record)
        if not processes.signal_group(record, signal.SIGCONT):
            return
        if not processes.poll_until(lambda: all(processes.proc_state(p) != "T" for p in members), SIGNAL_TIMEOUT_S):
            raise StackError(self.name, f"still stopped {SIGNAL_TIMEOUT_S:.0f} s after SIGCONT")

    def is_running(self) -> bool:
        record = self.record()
        return processes.is_alive(record) and record.pid is not None and processes.proc_state(record.pid) != "T"

    def restart(self) -> None:
        """Kill if still there, start again exactly as recorded, wait until ready."""
        state = read_state(self.state_file)
        record = state.services[self.name]
        if processes.is_alive(record):
            processes.signal_group(record, signal.SIGCONT)
            self.kill()
        fresh = processes.spawn(record, state.stack_id, user=record.run_as, state_file=state.state_file)
        state = read_state(self.state_file)  # re-read: another handle may have written meanwhile
        state.services[self.name] = fresh
        write_state(state, self.state_file)
        if fresh.ready_url:
            url = fresh.ready_url
            processes.wait_ready(fresh, lambda: is_ready(url), RESTART_TIMEOUT_S)


class ReplicatedNodeHandle(LocalHandle):
    """A data node of a replicated set (topology ``sentinel``). It keeps no data on disk, so a restart
    brings it back empty: it must come back as a replica of the primary the Sentinels name now (what
    Bitnami's chart does on start), never as a second, empty primary. Restarting the node the Sentinels
    still name primary (no failover happened) starts it as it was."""

    def restart(self) -> None:
        from quotaquake.stack.local.sentinel import master_address, node_at, rejoin_config

        state = read_state(self.state_file)
        host, port = master_address(state)
        if node_at(state, host, port) != self.name:
            rejoin_config(Path(self.record().argv[-1]), host, port)
        super().restart()
