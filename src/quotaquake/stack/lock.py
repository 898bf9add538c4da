"""One command at a time per state file: an exclusive ``fcntl.flock`` on ``<state file>.lock``.

``stack up``, ``stack down``, ``stack restore`` and ``quotaquake run`` hold it from start to end; a second
command on the same state file is refused with one line naming the holder. The lock lives in a file of
its own because the state file is replaced atomically (rename), which would leave a lock on the old inode.
The kernel drops a flock when its holder dies, even by SIGKILL, so a lock never outlives its command;
children never inherit it (``subprocess`` closes inherited descriptors).

The lock file also records the processes a run starts (Locust, the chaos runner): ``record_process``
writes them there while the lock is held. If the holder dies without cleaning up, the next holder finds
them in ``StackLock.orphans`` and stops them (``quotaquake.stack.reaper``).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from pydantic import BaseModel, Field, ValidationError

from quotaquake.errors import UsageError
from quotaquake.stack.processes import is_alive, proc_start_time
from quotaquake.stack.state import STATE_FILE_MODE, ServiceRecord

_HELD: dict[Path, StackLock] = {}
_HELD_GUARD = threading.Lock()


class LockRecord(BaseModel):
    """What the lock file says: who holds it, and which processes it started."""

    holder: ServiceRecord
    purpose: str
    processes: list[ServiceRecord] = Field(default_factory=list)


def lock_path(state_file: Path) -> Path:
    return state_file.with_name(state_file.name + ".lock")


def _describe(record: LockRecord | None) -> str:
    if record is None:
        return "another quotaquake command"
    return f"`{record.purpose}` (pid {record.holder.pid})"


@dataclass
class StackLock:
    """``with StackLock(state_file, "quotaquake run"):`` holds the state file's lock, or raises ``UsageError``."""

    state_file: Path
    purpose: str
    orphans: list[ServiceRecord] = field(default_factory=list)
    _fd: int | None = None
    _record: LockRecord | None = None
    _created: list[Path] = field(default_factory=list)  # folders made for the lock file, removed if left empty

    @property
    def path(self) -> Path:
        return lock_path(self.state_file)

    def __enter__(self) -> StackLock:
        self.acquire()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.release()

    def acquire(self) -> None:
        """Take the lock without waiting; ``UsageError`` naming the holder if another command has it."""
        for _ in range(5):  # the holder may unlink the file between our open and our flock: retry
            fd = self._open()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                raise UsageError(
                    f"{self.state_file}: in use by {_describe(_read(self.path))}; wait until it ends, "
                    "or stop it (Ctrl-C) and try again"
                ) from None
            if _same_file(fd, self.path):
                break
            os.close(fd)
        else:
            raise UsageError(f"{self.path}: could not take the lock (it keeps being replaced)")
        self._fd = fd
        previous = _read_fd(fd)
        self.orphans = [p for p in previous.processes if is_alive(p)] if previous else []
        pid = os.getpid()
        holder = ServiceRecord(name="holder", kind="quotaquake", pid=pid, start_time=proc_start_time(pid),
                               argv=list(sys.argv))  # fmt: skip
        self._record = LockRecord(holder=holder, purpose=self.purpose, processes=list(self.orphans))
        self._write()
        with _HELD_GUARD:
            _HELD[self.state_file.resolve()] = self

    def _open(self) -> int:
        try:
            missing = [p for p in (self.path.parent, *self.path.parent.parents) if not p.exists()]
            self._created = self._created or missing
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return os.open(self.path, os.O_RDWR | os.O_CREAT, STATE_FILE_MODE)
        except OSError as exc:
            raise UsageError(f"{self.state_file}: cannot create its lock file {self.path}: {exc.strerror}") from None

    def record(self, name: str, kind: str, pid: int) -> None:
        """Note a process this command started (it is stopped with the stack if the command dies)."""
        assert self._record is not None
        entry = ServiceRecord(name=name, kind=kind, pid=pid, start_time=proc_start_time(pid))
        self._record.processes = [p for p in self._record.processes if is_alive(p)] + [entry]
        self._write()

    def forget_orphans(self) -> None:
        """The orphans were stopped: drop them from the record."""
        assert self._record is not None
        gone = {(o.pid, o.start_time) for o in self.orphans}
        self._record.processes = [p for p in self._record.processes if (p.pid, p.start_time) not in gone]
        self.orphans = []
        self._write()

    def release(self) -> None:
        """Clear the record, remove the lock file and drop the lock (idempotent)."""
        if self._fd is None:
            return
        with _HELD_GUARD:
            _HELD.pop(self.state_file.resolve(), None)
        with contextlib.suppress(OSError):
            if _same_file(self._fd, self.path):
                os.unlink(self.path)
        os.close(self._fd)  # closing drops the flock
        self._fd = None
        for folder in self._created:  # deepest first; only if nothing (a state file) was put there
            with contextlib.suppress(OSError):
                folder.rmdir()
        self._created = []

    def _write(self) -> None:
        assert self._fd is not None and self._record is not None
        data = self._record.model_dump_json().encode()
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, data, 0)


def record_process(state_file: Path, name: str, kind: str, pid: int) -> None:
    """Record ``pid`` in the lock this process holds on ``state_file`` (no-op when it holds none, e.g. a
    test driving Locust directly): a later ``stack down`` stops it even if this command is SIGKILLed."""
    with _HELD_GUARD:
        held = _HELD.get(state_file.resolve())
    if held is not None:
        held.record(name, kind, pid)


def _same_file(fd: int, path: Path) -> bool:
    try:
        on_disk = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (held.st_dev, held.st_ino) == (on_disk.st_dev, on_disk.st_ino)


def _read(path: Path) -> LockRecord | None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        return _read_fd(fd)
    finally:
        os.close(fd)


def _read_fd(fd: int) -> LockRecord | None:
    """The record in the lock file, or ``None`` (empty, half written by a holder killed mid-write)."""
    size = os.fstat(fd).st_size
    raw = os.pread(fd, size, 0) if size else b""
    if not raw.strip():
        return None
    try:
        return LockRecord.model_validate(json.loads(raw))
    except (ValueError, ValidationError):
        return None
