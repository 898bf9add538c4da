"""The local stack on real processes: up, status, down, and the faults around them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from quotaquake.errors import UsageError
from quotaquake.stack import processes
from quotaquake.stack.local.provider import LocalProvider
from quotaquake.stack.state import read_state

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
QUOTAQUAKE = [sys.executable, "-m", "quotaquake"]


def cli(*args: str, state: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "QUOTAQUAKE_STATE": str(state)}
    return subprocess.run([*QUOTAQUAKE, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def our_listening_ports(state_file: Path) -> set[int]:
    state = read_state(state_file)
    ports = set()
    for record in state.services.values():
        if record.url and record.url.count(":") >= 2:
            ports.add(int(record.url.rsplit(":", 1)[1].split("/")[0]))
    return ports


def listening(port: int) -> bool:
    with processes.socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_cli_up_status_down_leaves_nothing_behind(tmp_path):
    state_file = tmp_path / "stack.json"
    up = cli("stack", "up", "--replicas", "2", state=state_file)
    assert up.returncode == 0, up.stderr
    state = read_state(state_file)
    assert state.ready and len(state.endpoints.replicas) == 2
    assert {c.tier for c in state.consumers} == {"free", "pro", "enterprise", "partner"}
    assert min(len(state.consumers_of(t)) for t in ("free", "pro", "enterprise", "partner")) >= 5
    ports = our_listening_ports(state_file)
    assert ports and all(listening(p) for p in ports)

    again = cli("stack", "up", state=state_file)
    assert again.returncode == 2 and "already up" in again.stderr and "Traceback" not in again.stderr

    status = cli("stack", "status", state=state_file)
    assert status.returncode == 0, status.stdout
    replicas_seen = {
        httpx.get(state.endpoints.gateway + "/calibrate").headers["x-quotaquake-replica"] for _ in range(6)
    }
    assert replicas_seen == {"gateway-1", "gateway-2"}  # round robin over both

    down = cli("stack", "down", state=state_file)
    assert down.returncode == 0, down.stderr
    assert not state_file.exists()
    assert processes.pids_with_stack_id(state.stack_id) == []
    assert not any(listening(p) for p in ports)
    assert not Path(state.work_dir).exists()


def test_down_after_the_harness_was_sigkilled_mid_start(tmp_path):
    state_file = tmp_path / "stack.json"
    env = {**os.environ, "QUOTAQUAKE_STATE": str(state_file)}
    harness = subprocess.Popen(
        [*QUOTAQUAKE, "stack", "up"], cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    assert processes.poll_until(lambda: state_file.exists() and len(read_state(state_file).services) >= 4, 20)
    harness.kill()
    harness.wait()
    stack_id = read_state(state_file).stack_id
    time.sleep(0.5)  # let processes the harness spawned just before dying show up in /proc
    down = cli("stack", "down", state=state_file)
    assert down.returncode == 0, down.stderr
    assert processes.pids_with_stack_id(stack_id) == []


def test_stale_state_file_is_reaped_on_the_next_up(tmp_path):
    state_file = tmp_path / "stack.json"
    provider = LocalProvider(
        state_path=state_file, work_root=tmp_path, policy_path=REPO / "stack/policy.yaml", replicas=1
    )
    first = provider.up()
    for record in first.services.values():  # simulate a crash of everything: the state file stays
        processes.signal_group(record, signal.SIGKILL)
    assert processes.poll_until(lambda: not any(processes.is_alive(r) for r in first.services.values()), 5)
    second = provider.up()
    try:
        assert second.stack_id != first.stack_id
        assert not Path(first.work_dir).exists()
    finally:
        provider.down(second)


def test_an_interrupt_a_finalizer_swallowed_still_stops_the_start(tmp_path):
    """The CLI's handler notes the interrupt before raising; if the raise is lost (raised inside a
    ``__del__``, Python only prints "Exception ignored"), the start's next checkpoint raises again."""
    import threading

    state_file = tmp_path / "stack.json"
    provider = LocalProvider(state_path=state_file, work_root=tmp_path, policy_path=REPO / "stack/policy.yaml",
                             replicas=1)  # fmt: skip

    def interrupt_once_two_services_run() -> None:
        processes.poll_until(lambda: state_file.exists() and len(read_state(state_file).services) >= 2, 20)
        processes.request_interrupt()  # noted, never raised: as if a finalizer had swallowed it

    threading.Thread(target=interrupt_once_two_services_run, daemon=True).start()
    try:
        with pytest.raises(KeyboardInterrupt):
            provider.up()
    finally:
        processes._interrupt_requested.clear()
    assert not state_file.exists()
    assert not list(tmp_path.glob("stack-*"))
    assert processes.stacks_of_state_file(state_file) == {}


def test_sigint_during_up_stops_everything(tmp_path):
    state_file = tmp_path / "stack.json"
    env = {**os.environ, "QUOTAQUAKE_STATE": str(state_file)}
    harness = subprocess.Popen(
        [*QUOTAQUAKE, "stack", "up"], cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    assert processes.poll_until(lambda: state_file.exists() and len(read_state(state_file).services) >= 4, 20)
    stack_id = read_state(state_file).stack_id
    harness.send_signal(signal.SIGINT)
    _, stderr = harness.communicate(timeout=30)
    assert harness.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert processes.pids_with_stack_id(stack_id) == []
    assert not state_file.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--replicas", "0"], "--replicas"),
        (["--defect", "sloppy"], "unknown defect 'sloppy'"),
        (["--policy", "nope.yaml"], "nope.yaml: file not found"),
        (["--provider", "cloud"], "unknown provider 'cloud'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, message):
    result = cli("stack", "up", *args, state=tmp_path / "stack.json")
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "stack.json").exists()


class _Taken:
    """A reservation of a port somebody else already listens on (what a clash looks like to the stack)."""

    def __init__(self, port: int) -> None:
        self.port = port

    def getsockname(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    def close(self) -> None:
        pass


def test_port_clash_is_reported_and_nothing_is_left(tmp_path, monkeypatch):
    blocker = processes.socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    taken = blocker.getsockname()[1]
    real_reserve = processes.reserve_port
    calls = iter(range(10_000))
    per_attempt = 6 + 3  # ports of a one-replica stack; the first of every attempt is Redis's
    monkeypatch.setattr(processes, "reserve_port", lambda: _Taken(taken) if next(calls) % per_attempt == 0
                        else real_reserve())  # fmt: skip
    provider = LocalProvider(
        state_path=tmp_path / "stack.json", work_root=tmp_path, policy_path=REPO / "stack/policy.yaml", replicas=1
    )
    try:
        with pytest.raises(UsageError, match="redis"):
            provider.up()
    finally:
        blocker.close()
    assert not (tmp_path / "stack.json").exists()
    assert not list(tmp_path.glob("stack-*"))


def test_a_port_taken_once_is_retried_on_fresh_ports(tmp_path, monkeypatch):
    blocker = processes.socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    taken = blocker.getsockname()[1]
    real_reserve = processes.reserve_port
    calls = iter(range(10_000))
    monkeypatch.setattr(processes, "reserve_port", lambda: _Taken(taken) if next(calls) == 0 else real_reserve())
    provider = LocalProvider(
        state_path=tmp_path / "stack.json", work_root=tmp_path, policy_path=REPO / "stack/policy.yaml", replicas=1
    )
    try:
        state = provider.up()
        assert state.ready and str(taken) not in str(state.endpoints.redis)
        provider.down(state)
    finally:
        blocker.close()
    assert len(list(tmp_path.glob("stack-*"))) == 0


def test_stop_and_resume_wait_for_the_state_they_promise(stack_factory):
    from quotaquake.stack.registry import handle_for

    state = stack_factory(replicas=1)
    for name in ("stub-api", "redis"):
        handle = handle_for(state, name)
        members = processes.group_members(state.services[name].pid)
        handle.stop()  # returns once stopped: no sleep between the promise and the check
        assert members and all(processes.proc_state(p) == "T" for p in members)
        handle.resume()
        assert all(processes.proc_state(p) != "T" for p in members)


def test_policy_outside_the_stack_folder_finds_the_templates(tmp_path):
    policy = tmp_path / "elsewhere" / "policy.yaml"
    policy.parent.mkdir()
    policy.write_text((REPO / "stack" / "policy.yaml").read_text())
    state_file = tmp_path / "stack.json"
    up = cli("stack", "up", "--replicas", "1", "--policy", str(policy), state=state_file)
    assert up.returncode == 0, up.stderr
    down = cli("stack", "down", state=state_file)
    assert down.returncode == 0, down.stderr


def test_down_does_not_depend_on_the_policy_file(tmp_path):
    """The policy may be edited (even broken) while its stack runs; taking the stack down never reads it."""
    policy = tmp_path / "policy.yaml"
    policy.write_text((REPO / "stack" / "policy.yaml").read_text())
    state_file = tmp_path / "stack.json"
    assert cli("stack", "up", "--replicas", "1", "--policy", str(policy), state=state_file).returncode == 0
    stack_id = read_state(state_file).stack_id
    policy.write_text("tiers: [broken\n")
    down = cli("stack", "down", state=state_file)
    assert down.returncode == 0, down.stderr
    assert processes.pids_with_stack_id(stack_id) == []


def test_corrupt_state_file_of_a_live_stack_is_not_lost(tmp_path):
    state_file = tmp_path / "stack.json"
    assert cli("stack", "up", "--replicas", "1", state=state_file).returncode == 0
    stack_id = read_state(state_file).stack_id
    state_file.write_text("{half a file")
    again = cli("stack", "up", "--replicas", "1", state=state_file)
    assert again.returncode == 2 and f"stack {stack_id}" in again.stderr and "still running" in again.stderr
    assert len(list(tmp_path.glob("stack-*"))) == 1, "no second stack"
    down = cli("stack", "down", state=state_file)
    assert down.returncode == 0 and f"stack {stack_id} is down" in down.stdout
    assert processes.pids_with_stack_id(stack_id) == []
    assert not list(tmp_path.glob("stack-*"))


def test_service_handles_kill_stop_resume_restart(stack_factory):
    from quotaquake.stack.registry import handle_for

    state = stack_factory(replicas=1)
    redis = handle_for(state, "redis")
    url = state.endpoints.redis
    redis.stop()
    assert not redis.is_running()
    redis.resume()
    assert redis.is_running()
    redis.kill()
    assert not redis.is_running()
    redis.restart()
    assert redis.is_running()
    from quotaquake.stack.readiness import redis_ready

    assert redis_ready(url)
    with pytest.raises(UsageError, match="unknown service 'mysql'"):
        handle_for(state, "mysql")


def test_down_stops_a_service_restarted_since_up(tmp_path):
    """Redis rewrites its environment (process title), so only the pid a restart recorded finds it."""
    from quotaquake.stack.registry import handle_for

    provider = LocalProvider(state_path=tmp_path / "stack.json", work_root=tmp_path,
                             policy_path=REPO / "stack/policy.yaml", replicas=1)  # fmt: skip
    state = provider.up()
    try:
        handle_for(state, "redis").restart()
        restarted = read_state(tmp_path / "stack.json").services["redis"]
        assert restarted.pid != state.services["redis"].pid
    finally:
        provider.down(state)  # the in-memory state from up(): stale redis pid
    assert not processes.is_alive(restarted)
