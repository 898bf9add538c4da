"""Start, identify, signal and stop local processes; poll readiness with a deadline.

Every process runs in its own session (so its process group holds its children: uvicorn workers,
Postgres backends) and carries the stack's markers in its environment (``QUOTAQUAKE_STACK_ID`` and
``QUOTAQUAKE_STATE_FILE``), so that a later ``stack down`` finds it even when the harness was SIGKILLed
before it could write the pid down, or the state file is unreadable. The processes a run starts (Locust,
the chaos runner) carry the same markers (``marker_env``).

Ports: ``reserve_port`` binds a loopback port with ``SO_REUSEADDR`` and holds it (bound, not listening)
until the service listens on it; every server we run sets ``SO_REUSEADDR`` on its listener, so it can
bind the reserved port, while the kernel hands the port to no one else meanwhile (no outgoing connection,
no ``bind(0)`` of another program takes it).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from quotaquake.errors import StackError
from quotaquake.stack.state import ServiceRecord

STACK_ID_ENV = "QUOTAQUAKE_STACK_ID"
STATE_FILE_ENV = "QUOTAQUAKE_STATE_FILE"
POLL_INTERVAL_S = 0.02


def free_port() -> int:
    """An unused loopback TCP port (the kernel's choice; a clash later is reported by the service).

    Racy by nature (the port is free only when asked): prefer ``reserve_port`` for a server we start."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def reserve_port() -> socket.socket:
    """A loopback port held for a server about to start: bound with ``SO_REUSEADDR``, not listening.

    The server (which sets ``SO_REUSEADDR`` too) can bind and listen on it; nobody else gets it from the
    kernel while the returned socket is open. Close it once the server listens."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def marker_env(stack_id: str, state_file: str | Path) -> dict[str, str]:
    """The environment markers of every process of a stack, and of every process a run starts."""
    return {STACK_ID_ENV: stack_id, STATE_FILE_ENV: str(state_file)}


def proc_start_time(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot (field 22 of /proc/PID/stat), None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[19])


def proc_state(pid: int) -> str | None:
    """One-letter process state (R, S, T, Z, ...) or None when the process is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2]


def is_alive(record: ServiceRecord) -> bool:
    """True when the recorded pid still runs the process we started (not a reused pid, not a zombie)."""
    if record.pid is None:
        return False
    started = proc_start_time(record.pid)
    return started is not None and started == record.start_time and proc_state(record.pid) != "Z"


def run_as(user: str | None) -> tuple[int, int] | None:
    """(uid, gid) to drop to when we are root and ``user`` is given (Postgres refuses to run as root)."""
    if user is None or os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise StackError(user, "system user not found", "install the Debian package that creates it") from None
    return entry.pw_uid, entry.pw_gid


def spawn(record: ServiceRecord, stack_id: str, user: str | None = None, state_file: str | Path = "") -> ServiceRecord:
    """Start ``record.argv`` detached in its own session; return the record with pid and start time."""
    env = {**os.environ, **record.env, **marker_env(stack_id, state_file)}
    log_path = Path(record.log) if record.log else Path(os.devnull)
    ids = run_as(user)
    try:
        with log_path.open("ab") as log:
            proc = subprocess.Popen(
                record.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=record.cwd,
                env=env,
                start_new_session=True,
                user=ids[0] if ids else None,
                group=ids[1] if ids else None,
                extra_groups=[] if ids else None,
            )
    except FileNotFoundError:
        raise StackError(record.name, f"binary not found: {record.argv[0]}", "run the README's setup") from None
    return record.model_copy(update={"pid": proc.pid, "start_time": proc_start_time(proc.pid)})


def signal_group(record: ServiceRecord, sig: signal.Signals) -> bool:
    """Send ``sig`` to the record's process group if its leader is still ours; False if it is gone."""
    if not is_alive(record) or record.pid is None:
        return False
    with contextlib.suppress(ProcessLookupError):
        os.killpg(record.pid, sig)
        return True
    return False


def _other_pids() -> Iterator[int]:
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != me:
            yield int(entry.name)


def _environ(pid: int) -> list[bytes]:
    try:
        return Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return []


def pids_with_stack_id(stack_id: str) -> list[int]:
    """Every process whose environment carries our stack id (strays the state file may not name)."""
    marker = f"{STACK_ID_ENV}={stack_id}".encode()
    return [pid for pid in _other_pids() if marker in _environ(pid)]


def stacks_of_state_file(state_file: Path) -> dict[str, list[int]]:
    """Stack id -> pids of the live processes that carry ``state_file`` as their marker (a stack found
    without reading the state file: it may be corrupt or gone)."""
    marker = f"{STATE_FILE_ENV}={state_file.resolve()}".encode()
    prefix = f"{STACK_ID_ENV}=".encode()
    found: dict[str, list[int]] = {}
    for pid in _other_pids():
        environ = _environ(pid)
        if marker in environ and proc_state(pid) not in (None, "Z"):
            stack_id = next((v[len(prefix) :].decode() for v in environ if v.startswith(prefix)), "?")
            found.setdefault(stack_id, []).append(pid)
    return found


SERVER_PROGRAMS = frozenset({"postgres", "redis-server", "envoy", "prometheus"})
"""Programs of the embedded stack that ``pids_working_in`` may find by their working folder."""


def pids_working_in(folders: list[Path], programs: frozenset[str] = SERVER_PROGRAMS) -> list[int]:
    """Processes running one of ``programs`` whose current folder is one of ``folders`` or below.

    Finds servers that overwrite their environment with their process title (Postgres) in their data
    folder; only our server programs count, so a user's shell sitting in that folder is never touched."""
    roots = [str(f.resolve()) for f in folders]
    found = []
    for pid in _other_pids():
        try:
            cwd = os.readlink(f"/proc/{pid}/cwd")
            program = Path(os.readlink(f"/proc/{pid}/exe")).name
        except OSError:
            continue
        if program in programs and any(cwd == root or cwd.startswith(root + "/") for root in roots):
            found.append(pid)
    return found


def _reap(pid: int) -> None:
    """Collect the exit status of our own child so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _gone(pids: list[int]) -> bool:
    for pid in pids:
        _reap(pid)
    return all(proc_state(pid) in (None, "Z") for pid in pids)


def terminate_pids(pids: list[int], grace_s: float) -> None:
    """SIGCONT + SIGTERM each pid, SIGKILL whatever still runs after ``grace_s`` seconds."""
    for sig in (signal.SIGCONT, signal.SIGTERM):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
    if poll_until(lambda: _gone(pids), grace_s):
        return
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    poll_until(lambda: _gone(pids), 2.0)


def descendants(roots: set[int]) -> set[int]:
    """``roots`` and every process below them (children that left the group, e.g. Postgres backends)."""
    children: dict[int, list[int]] = {}
    for pid in _other_pids():
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        children.setdefault(int(stat[stat.rindex(")") + 2 :].split()[1]), []).append(pid)
    found, todo = set(roots), list(roots)
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def group_members(pgid: int) -> list[int]:
    """Pids whose process group is ``pgid`` (the leader may already be gone)."""
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if os.getpgid(int(entry.name)) == pgid:
                    members.append(int(entry.name))
    return members


def poll_until(condition: Callable[[], bool], timeout_s: float) -> bool:
    """Poll ``condition`` every 20 ms until it is true (True) or ``timeout_s`` passes (False)."""
    deadline = time.monotonic() + timeout_s
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_INTERVAL_S)


def log_tail(record: ServiceRecord, lines: int = 3) -> str:
    """The last lines of a service's log, joined on one line, for error messages."""
    if not record.log:
        return ""
    try:
        text = Path(record.log).read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(line.strip() for line in text[-lines:])


def wait_ready(record: ServiceRecord, check: Callable[[], bool], timeout_s: float) -> None:
    """Poll ``check`` (exceptions count as not ready) until it passes; StackError if the process dies
    or the deadline passes, quoting the end of its log."""

    def ready() -> bool:
        if not is_alive(record):
            raise StackError(record.name, "exited during start", log_tail(record) or f"see {record.log}")
        try:
            return check()
        except Exception:
            return False

    if not poll_until(ready, timeout_s):
        raise StackError(record.name, f"not ready after {timeout_s:.0f} s", log_tail(record) or f"see {record.log}")


@contextlib.contextmanager
def ignoring_sigint() -> Iterator[None]:
    """Ignore Ctrl-C and SIGTERM while a cleanup runs, so an impatient second one cannot leave processes
    behind (in the main thread only: elsewhere signal handlers cannot be changed, nor do they run)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


_interrupt_requested = threading.Event()


def request_interrupt() -> None:
    """Note that the user interrupted (the CLI's SIGINT/SIGTERM handler calls this, then raises
    ``KeyboardInterrupt``). The exception alone can be lost: raised inside a finalizer (``__del__``, a
    weakref callback run by the garbage collector), Python prints it as "Exception ignored" and goes on."""
    _interrupt_requested.set()


def check_interrupt() -> None:
    """Raise ``KeyboardInterrupt`` if an interrupt was requested: the checkpoints of a stack's start."""
    if _interrupt_requested.is_set():
        raise KeyboardInterrupt
