import os
import sys

import pytest

from quotaquake.errors import StackError
from quotaquake.stack import processes
from quotaquake.stack.state import ServiceRecord


def sleeper(tmp_path, name="sleeper", seconds="30"):
    record = ServiceRecord(name=name, kind="test", argv=["sleep", seconds], log=str(tmp_path / f"{name}.log"))
    return processes.spawn(record, stack_id="unit-test")


def test_spawn_records_identity_and_terminate_stops_it(tmp_path):
    record = sleeper(tmp_path)
    assert processes.is_alive(record)
    assert os.getpgid(record.pid) == record.pid  # its own process group
    assert record.pid in processes.pids_with_stack_id("unit-test")
    processes.terminate_pids([record.pid], grace_s=2)
    assert not processes.is_alive(record)


def test_reused_pid_is_not_ours(tmp_path):
    record = sleeper(tmp_path)
    try:
        impostor = record.model_copy(update={"start_time": record.start_time - 1})
        assert not processes.is_alive(impostor)
        assert not processes.signal_group(impostor, processes.signal.SIGKILL)
        assert processes.is_alive(record)  # the signal was not sent
    finally:
        processes.terminate_pids([record.pid], grace_s=2)


def test_wait_ready_reports_a_dying_service_with_its_log(tmp_path):
    record = ServiceRecord(
        name="crasher",
        kind="test",
        argv=[sys.executable, "-c", "import sys; print('boom: port in use'); sys.exit(3)"],
        log=str(tmp_path / "crasher.log"),
    )
    record = processes.spawn(record, stack_id="unit-test")
    with pytest.raises(StackError, match=r"crasher: exited during start.*boom: port in use"):
        processes.wait_ready(record, lambda: False, timeout_s=5)


def test_wait_ready_deadline(tmp_path):
    record = sleeper(tmp_path)
    try:
        with pytest.raises(StackError, match="not ready after 0 s"):
            processes.wait_ready(record, lambda: False, timeout_s=0.1)
    finally:
        processes.terminate_pids([record.pid], grace_s=2)


def test_missing_binary_is_a_stack_error(tmp_path):
    record = ServiceRecord(name="ghost", kind="test", argv=["/nonexistent/binary"], log=str(tmp_path / "g.log"))
    with pytest.raises(StackError, match="ghost: binary not found"):
        processes.spawn(record, stack_id="unit-test")


def test_poll_until():
    calls = iter([False, False, True])
    assert processes.poll_until(lambda: next(calls), 1.0)
    assert not processes.poll_until(lambda: False, 0.05)
