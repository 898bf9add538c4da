"""Stop what a run left behind: Locust, the chaos runner, anything carrying a stack's markers.

A run's own processes (Locust master and workers, ``chaos run`` and whatever its rollbacks spawn) carry
the stack's environment markers (``processes.marker_env``) and are recorded in the state file's lock
(``quotaquake.stack.lock``). When the run dies without stopping them, ``stack down`` (and the next command
on the same state file) stops them *before* the stack: first every one is frozen (SIGSTOP), so an
experiment cannot restart a service behind our back, then killed. SIGKILL, not a polite stop: nobody
waits for their results any more, and a rollback racing the teardown is exactly what must not happen.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterable
from pathlib import Path

from quotaquake.stack import processes
from quotaquake.stack.state import ServiceRecord, StackState

KILL_WAIT_S = 5.0
SWEEP_ROUNDS = 5


def _groups_of(pids: Iterable[int]) -> set[int]:
    groups = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            groups.add(os.getpgid(pid))
    return groups


def kill_now(pids: Iterable[int]) -> None:
    """Freeze then SIGKILL ``pids`` and their process groups; wait (bounded) until they are gone."""
    targets = set(pids)
    groups = _groups_of(targets) - {os.getpgrp()}
    for sig in (signal.SIGSTOP, signal.SIGKILL):
        for group in groups:
            with contextlib.suppress(OSError):
                os.killpg(group, sig)
        for pid in targets:
            with contextlib.suppress(OSError):
                os.kill(pid, sig)
    members = targets | {m for g in groups for m in processes.group_members(g)}
    processes.poll_until(lambda: all(processes.proc_state(p) in (None, "Z") for p in members), KILL_WAIT_S)


def stop_recorded(records: Iterable[ServiceRecord]) -> list[str]:
    """Kill the recorded processes still alive (same pid *and* start time: never a reused pid), chaos
    runners first; returns their names."""
    alive = [r for r in records if processes.is_alive(r) and r.pid is not None]
    alive.sort(key=lambda r: r.kind != "chaos")
    for record in alive:
        assert record.pid is not None
        kill_now([record.pid])
    return [r.name for r in alive]


def service_pids(state: StackState) -> set[int]:
    """The live processes of the stack's recorded services (group members and descendants included)."""
    pids: set[int] = set()
    for record in state.services.values():
        if processes.is_alive(record) and record.pid is not None:
            pids.update(processes.group_members(record.pid))
    return processes.descendants(pids)


def stop_run_processes(state: StackState) -> int:
    """Kill every process carrying ``state``'s markers that is not one of its recorded services (Locust,
    an experiment and whatever it just started). Repeats the scan until none is left; returns how many."""
    stopped = 0
    for _ in range(SWEEP_ROUNDS):
        marked = set(processes.pids_with_stack_id(state.stack_id))
        strays = marked - service_pids(state)
        if not strays:
            break
        kill_now(strays)
        stopped += len(strays)
    return stopped


def sweep(stack_id: str, folders: list[Path], grace_s: float) -> int:
    """Terminate whatever still carries ``stack_id`` or runs in one of ``folders`` (SIGTERM, then SIGKILL
    after ``grace_s``); repeated until nothing is found. Returns how many processes it stopped."""
    stopped = 0
    existing = [f for f in folders if f.is_dir()]
    for _ in range(SWEEP_ROUNDS):
        found = set(processes.pids_with_stack_id(stack_id)) | set(processes.pids_working_in(existing))
        found = {p for p in found if processes.proc_state(p) not in (None, "Z")}
        if not found:
            break
        processes.terminate_pids(sorted(found), grace_s)
        stopped += len(found)
    return stopped


def _working_folder(pid: int) -> Path | None:
    try:
        return Path(os.readlink(f"/proc/{pid}/cwd"))
    except OSError:
        return None


def reap_unrecorded_stack(stack_id: str, pids: list[int], data_folders: list[Path], grace_s: float) -> list[Path]:
    """Stop a stack known only by its processes' markers (its state file is gone or unreadable): stop
    them, sweep its folders (the working folders of its processes, and ``data_folders``) for the rest,
    and remove those of the folders that carry this stack's ownership marker. Returns the removed folders."""
    from quotaquake.stack import ownership

    folders = {f for f in (_working_folder(pid) for pid in pids) if f is not None}
    folders.update(data_folders)
    candidates = [f for f in folders if ownership.is_owned(f, stack_id)]
    processes.terminate_pids(sorted(pids), grace_s)
    sweep(stack_id, candidates, grace_s)
    return [f for f in candidates if ownership.remove_owned(f, stack_id)]
