"""Start a plain ``locust -f <scenario>`` in its own session, as a user (or ``quotaquake run``) would, and stop
whatever is left of it afterwards; for the integration tests of the load side.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def distributed_args(processes: int) -> list[str]:
    """``--processes N`` on a loopback port of its own (never Locust's shared default port 5557)."""
    if processes <= 1:
        return []
    port = str(free_port())
    return [
        "--processes", str(processes), "--master-bind-host", "127.0.0.1",
        "--master-bind-port", port, "--master-port", port,
    ]  # fmt: skip


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


class PlainLocust:
    """``with PlainLocust(args, log, cwd=..., env=...) as locust:`` a running Locust; SIGKILLs its group at exit.

    SIGINT is reset to its default in the child: a background job of a non-interactive shell inherits it
    ignored, and Locust would then never see a Ctrl-C.
    """

    def __init__(self, args: list[str], log: Path, *, cwd: Path = REPO, env: dict[str, str] | None = None) -> None:
        self.command = [sys.executable, "-m", "locust", *args]
        self.log = log
        self.cwd = cwd
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> PlainLocust:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                self.command,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.cwd,
                env=self.env,
                start_new_session=True,
                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
            )
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def wait_for_log(self, text: str, timeout_s: float) -> None:
        """Poll the log until ``text`` appears (``AssertionError`` after ``timeout_s`` or if Locust exited)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if text in self.log.read_text(errors="replace"):
                return
            assert self.process is not None and self.process.poll() is None, self.log.read_text()[-3000:]
            time.sleep(0.05)  # poll interval while Locust starts
        raise AssertionError(f"{text!r} not in the log within {timeout_s} s:\n{self.log.read_text()[-3000:]}")

    def wait(self, timeout_s: float) -> int:
        """Wait for the master and then for every process of its group; returns the master's exit code."""
        assert self.process is not None
        code = self.process.wait(timeout=timeout_s)
        deadline = time.monotonic() + timeout_s
        while group_alive(self.pid) and time.monotonic() < deadline:
            time.sleep(0.05)  # poll interval while worker processes exit
        assert not group_alive(self.pid), "Locust's worker processes outlived their master"
        return code

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.process is None:
            return
        if group_alive(self.process.pid):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
