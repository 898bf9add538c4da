"""Reliability guards of the stack layer, on files and in-process objects only: ownership markers, the
state file's lock and mode, credentials in URLs, the loopback guard, the up-front checks of a run."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import sys
from pathlib import Path

import pytest

from quotaquake.context import RunRequest
from quotaquake.errors import ConfigError, UsageError
from quotaquake.load.safety import MAX_DURATION_S, capped_run_time, check_target
from quotaquake.policy import load_policy
from quotaquake.preflight import (
    check_chaos_request,
    check_extra_locust_args,
    check_out_folder,
    check_scenario_syntax,
    check_thresholds_file,
    error_line,
)
from quotaquake.services.limiter.resp import RedisUnavailable, RespProtocol, _authenticate
from quotaquake.services.limiter.shared import parse_redis_url, redis_password
from quotaquake.stack import ownership, processes
from quotaquake.stack.lock import StackLock, record_process
from quotaquake.stack.processes import proc_start_time
from quotaquake.stack.state import StackState, checked_state_path, read_state, write_state
from quotaquake.stack.urls import masked, with_password

REPO = Path(__file__).resolve().parents[2]


# -- ownership ---------------------------------------------------------------------------------------------


def test_only_a_folder_marked_by_the_same_stack_is_removed(tmp_path):
    ours, foreign, other_stack = tmp_path / "ours", tmp_path / "foreign", tmp_path / "other"
    for folder in (ours, foreign, other_stack):
        folder.mkdir()
        (folder / "file").write_text("x")
    ownership.claim(ours, "s1", tmp_path / "stack.json")
    ownership.claim(other_stack, "s2", tmp_path / "stack.json")
    assert ownership.remove_owned(ours, "s1") is True and not ours.exists()
    assert ownership.remove_owned(foreign, "s1") is False and (foreign / "file").exists()
    assert ownership.remove_owned(other_stack, "s1") is False and (other_stack / "file").exists()
    assert ownership.remove_owned(None, "s1") is False


def test_a_symlink_to_a_marked_folder_is_not_followed(tmp_path):
    target = tmp_path / "target"
    target.mkdir()
    ownership.claim(target, "s1", "x")
    link = tmp_path / "link"
    link.symlink_to(target)
    assert ownership.remove_owned(link, "s1") is False
    assert target.is_dir()


def test_a_corrupt_marker_owns_nothing(tmp_path):
    (tmp_path / ownership.MARKER_NAME).write_text("{not json")
    assert ownership.owner_of(tmp_path) is None
    (tmp_path / ownership.MARKER_NAME).write_text('["s1"]')
    assert ownership.owner_of(tmp_path) is None


# -- state file --------------------------------------------------------------------------------------------


def _state(path: Path, stack_id: str = "abc") -> StackState:
    return StackState(provider="local", stack_id=stack_id, work_dir=str(path.parent), state_file=str(path))


def test_state_file_is_written_owner_only_and_atomically(tmp_path):
    path = tmp_path / "deep" / "stack.json"
    write_state(_state(path), path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    write_state(_state(path, "def"), path)
    assert read_state(path).stack_id == "def"
    assert [p.name for p in path.parent.iterdir()] == ["stack.json"]  # no temp file left


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"{oops", "corrupt state file"), (b"\xff\xfe", "cannot read"), (b"[1]", "stack.json")],
)
def test_unreadable_state_is_one_line(tmp_path, content, message):
    path = tmp_path / "stack.json"
    path.write_bytes(content)
    with pytest.raises(UsageError, match=message):
        read_state(path)


def test_state_path_that_is_a_folder_or_under_a_file_is_refused(tmp_path):
    with pytest.raises(UsageError, match="is a folder"):
        checked_state_path(tmp_path)
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="which is a file"):
        checked_state_path(tmp_path / "file" / "stack.json")
    assert checked_state_path(tmp_path / "new" / "stack.json") == tmp_path / "new" / "stack.json"


# -- the lock ----------------------------------------------------------------------------------------------


def test_second_holder_is_refused_naming_the_first(tmp_path):
    state_file = tmp_path / "stack.json"
    with (
        StackLock(state_file, "quotaquake run"),
        pytest.raises(UsageError, match=r"in use by `quotaquake run` \(pid \d+\)"),
    ):
        StackLock(state_file, "quotaquake stack down").acquire()
    with StackLock(state_file, "quotaquake stack down"):  # released: free again
        pass
    assert not (tmp_path / "stack.json.lock").exists()


def test_processes_recorded_by_a_dead_holder_are_its_orphans(tmp_path):
    state_file = tmp_path / "stack.json"
    lock = StackLock(state_file, "quotaquake run")
    lock.acquire()
    record_process(state_file, "locust", "locust", os.getpid())  # stands in for a child still running
    record_process(state_file, "chaos run", "chaos", 2**22 + 7)  # never alive: not an orphan
    os.close(lock._fd)  # the holder dies without cleaning up: its lock goes, its record stays
    lock._fd = None
    with StackLock(state_file, "quotaquake stack down") as successor:
        assert [(o.name, o.pid) for o in successor.orphans] == [("locust", os.getpid())]
        successor.forget_orphans()
        assert successor.orphans == []


def test_recording_without_a_held_lock_is_a_no_op(tmp_path):
    record_process(tmp_path / "stack.json", "locust", "locust", os.getpid())
    assert not (tmp_path / "stack.json.lock").exists()


def test_lock_in_an_impossible_place_is_one_line(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="cannot create its lock file"):
        StackLock(tmp_path / "file" / "stack.json", "quotaquake stack up").acquire()


# -- process markers ---------------------------------------------------------------------------------------


def test_marked_processes_are_found_by_state_file(tmp_path):
    import subprocess

    state_file = tmp_path / "stack.json"
    env = {**os.environ, **processes.marker_env("feed", state_file.resolve())}
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"], env=env)
    try:
        assert processes.poll_until(lambda: "feed" in processes.stacks_of_state_file(state_file), 5)
        assert child.pid in processes.stacks_of_state_file(state_file)["feed"]
        assert child.pid in processes.pids_with_stack_id("feed")
        assert proc_start_time(child.pid) is not None
    finally:
        child.kill()
        child.wait()
    assert processes.stacks_of_state_file(state_file) == {}


def test_only_server_programs_are_found_by_working_folder(tmp_path):
    import subprocess

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"], cwd=tmp_path)
    try:
        assert child.pid not in processes.pids_working_in([tmp_path])  # python: a user's program
        assert child.pid in processes.pids_working_in([tmp_path], frozenset({Path(sys.executable).resolve().name}))
    finally:
        child.kill()
        child.wait()


def test_reserved_port_is_held_until_released():
    import socket

    held = processes.reserve_port()
    port = held.getsockname()[1]
    with socket.socket() as server:  # the service binds with SO_REUSEADDR, as every server we run does
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", port))
        server.listen()
    with socket.socket() as intruder, pytest.raises(OSError):  # anyone else is refused meanwhile
        intruder.bind(("127.0.0.1", port))
    held.close()


# -- credentials -------------------------------------------------------------------------------------------


def test_urls_carry_passwords_and_tables_show_them_masked():
    redis_url = with_password("redis://127.0.0.1:6379/0", "", "s3cr/t")
    assert redis_url == "redis://:s3cr%2Ft@127.0.0.1:6379/0"
    assert masked(redis_url) == "redis://:***@127.0.0.1:6379/0"
    assert redis_password(redis_url) == "s3cr/t"
    assert parse_redis_url(redis_url) == ("127.0.0.1", 6379)
    pg = with_password("postgresql://127.0.0.1:5432/postgres", "quotaquake", "pw")
    assert masked(pg) == "postgresql://quotaquake:***@127.0.0.1:5432/postgres"
    assert masked("http://127.0.0.1:1") == "http://127.0.0.1:1" and masked(None) == ""


class _Transport:
    def __init__(self) -> None:
        self.written = b""

    def write(self, data: bytes) -> None:
        self.written += data

    def abort(self) -> None:
        pass


@pytest.mark.parametrize(("reply", "accepted"), [(b"+OK\r\n", True), (b"-WRONGPASS invalid password\r\n", False)])
def test_limiter_authenticates_before_anything_else(reply, accepted):
    async def scenario() -> None:
        protocol = RespProtocol()
        transport = _Transport()
        protocol.connection_made(transport)  # type: ignore[arg-type]
        task = asyncio.ensure_future(_authenticate(protocol, "pw"))
        await asyncio.sleep(0)
        assert transport.written == b"*2\r\n$4\r\nAUTH\r\n$2\r\npw\r\n"
        protocol.data_received(reply)
        if accepted:
            await task
            assert not protocol.closed
        else:
            with pytest.raises(RedisUnavailable, match="refused the password"):
                await task
            assert protocol.closed

    asyncio.run(scenario())


# -- the loopback guard and the duration cap ---------------------------------------------------------------


@pytest.mark.parametrize(
    "url", ["redis://:pw@127.0.0.1:1/0", "postgresql://u:pw@localhost:5/db", "http://[::1]:9/", "https://127.9.9.9"]
)
def test_guard_allows_loopback_of_every_scheme(url):
    check_target(url, what="probe")


@pytest.mark.parametrize("url", ["redis://:secretpw@10.0.0.1:6379/0", "postgresql://u:secretpw@db.example.com/x"])
def test_guard_refuses_other_hosts_without_showing_credentials(url):
    with pytest.raises(UsageError) as caught:
        check_target(url, what="probe")
    assert "secretpw" not in str(caught.value) and "--allow-host" in str(caught.value)


def test_plain_locust_run_without_run_time_is_capped():
    assert capped_run_time(None) == MAX_DURATION_S
    assert capped_run_time(0) == MAX_DURATION_S
    assert capped_run_time(30) == 30
    with pytest.raises(UsageError):
        capped_run_time(MAX_DURATION_S + 1)


# -- up-front checks of a run ------------------------------------------------------------------------------


def _request(**changes) -> RunRequest:
    base = {"scenario": REPO / "scenarios/tiered.py", "rate": 10.0, "duration_s": 5.0}
    return RunRequest(**{**base, **changes})


@pytest.mark.parametrize("arg", ["--run-time=1h", "-t", "--csv", "--processes", "--qq-state", "-f", "--headless"])
def test_locust_arguments_quotaquake_sets_are_refused(arg):
    with pytest.raises(UsageError, match="sets it itself"):
        check_extra_locust_args((arg,))
    check_extra_locust_args(("--qq-tiers", "free=1", "--loglevel", "INFO"))


def test_scenario_syntax_names_the_line(tmp_path):
    scenario = tmp_path / "s.py"
    scenario.write_text("x = 1\ndef broken(:\n")
    with pytest.raises(ConfigError, match=r"s.py: line 2: SyntaxError"):
        check_scenario_syntax(scenario)
    with pytest.raises(UsageError, match="not a Python locustfile"):
        check_scenario_syntax(REPO / "README.md")


def test_thresholds_file_that_is_empty_is_refused(tmp_path):
    empty = tmp_path / "t.yaml"
    empty.write_text("# nothing\n")
    with pytest.raises(ConfigError, match="empty thresholds file"):
        check_thresholds_file(empty)
    check_thresholds_file(REPO / "stack" / "thresholds.yaml")


def test_experiment_must_start_while_the_load_flows(tmp_path):
    request = _request(chaos=REPO / "chaos/redis-kill.json", duration_s=3.0, chaos_delay_s=8.0)
    with pytest.raises(UsageError, match="--chaos-delay: 8 s is not shorter than --duration 3 s"):
        check_chaos_request(request)


@pytest.mark.parametrize(("count", "message"), [("one", "'one' is not a int"), (True, "True is not a int")])
def test_experiment_argument_types_are_checked_without_a_stack(tmp_path, count, message):
    experiment = json.loads((REPO / "chaos/gateway-replica-kill.json").read_text())
    for activity in experiment["method"]:
        if activity["provider"].get("func") == "kill_gateway_replicas":
            activity["provider"]["arguments"]["count"] = count
    path = tmp_path / "e.json"
    path.write_text(json.dumps(experiment))
    with pytest.raises(ConfigError, match=message):
        check_chaos_request(_request(chaos=path, duration_s=30.0, chaos_delay_s=2.0))


def test_experiment_that_is_not_json_names_the_line(tmp_path):
    path = tmp_path / "e.json"
    path.write_text('{\n  "title": "x",\n  oops\n}')
    with pytest.raises(ConfigError, match=r"e.json: line 3: not valid JSON"):
        check_chaos_request(_request(chaos=path, duration_s=30.0, chaos_delay_s=2.0))


def test_out_folder_is_tried_and_nothing_is_left(tmp_path):
    check_out_folder(tmp_path / "a" / "b" / "run")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="not a folder"):
        check_out_folder(tmp_path / "file" / "run")


def test_error_line_prefers_the_error():
    assert error_line("usage: locust ...\nlocust: error: unrecognized arguments: --x\n") == (
        "locust: error: unrecognized arguments: --x"
    )
    assert error_line("Traceback ...\nModuleNotFoundError: No module named 'x'\n") == (
        "ModuleNotFoundError: No module named 'x'"
    )


def test_policy_numbers_are_not_booleans(tmp_path):
    text = (REPO / "stack" / "policy.yaml").read_text().replace("per_minute: 100", "per_minute: true", 1)
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="per_minute: Value error, must be a number, not true/false"):
        load_policy(path)
