"""Fault windows from a small hand-written Chaos Toolkit journal (times hand-computed)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from quotaquake.chaos.journal import fault_windows, read_faults, windows_of, write_faults
from quotaquake.errors import ConfigError
from quotaquake.record import FaultWindow

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
EPOCH0 = T0.timestamp()


def run(name: str, func: str, start: float, end: float, status: str = "succeeded", output: object = None,
        **arguments: object) -> dict[str, object]:  # fmt: skip
    return {
        "activity": {"type": "action", "name": name,
                     "provider": {"type": "python", "module": "quotaquake.chaos.actions", "func": func,
                                  "arguments": arguments}},
        "status": status, "output": output,
        "start": (T0 + timedelta(seconds=start)).isoformat(), "end": (T0 + timedelta(seconds=end)).isoformat(),
    }  # fmt: skip


def probe(name: str, start: float, end: float) -> dict[str, object]:
    entry = run(name, "service_reachable", start, end, service="redis")
    entry["activity"]["type"] = "probe"  # type: ignore[index]
    entry["activity"]["provider"]["module"] = "quotaquake.chaos.probes"  # type: ignore[index]
    return entry


def test_kill_then_pause_then_rollback_is_one_window() -> None:
    # kill at 10.0-10.2, pause 10 s (not in the journal), probe at 20.2, rollback restore_all 21.0-24.5
    journal = {
        "run": [run("kill-redis", "kill_service", 10.0, 10.2, service="redis"), probe("redis-ping", 20.2, 20.3)],
        "rollbacks": [run("restore", "restore_all", 21.0, 24.5, output={"actions": ["restarted redis"]})],
    }
    assert windows_of(journal) == [FaultWindow(name="kill-redis", service="redis", start=EPOCH0 + 10.0,
                                               end=EPOCH0 + 24.5)]  # fmt: skip


def test_resume_in_the_method_ends_the_window_before_the_rollbacks() -> None:
    journal = {
        "run": [run("pause-redis", "stop_service", 5.0, 5.1, service="redis"),
                run("resume-redis", "resume_service", 15.1, 15.2, service="redis")],
        "rollbacks": [run("restore", "restore_all", 16.0, 17.0)],
    }  # fmt: skip
    (window,) = windows_of(journal)
    assert window.end is not None
    assert (window.start - EPOCH0, window.end - EPOCH0) == pytest.approx((5.0, 15.2))


def test_restoring_another_service_does_not_end_the_window() -> None:
    journal = {
        "run": [run("kill-redis", "kill_service", 1.0, 1.1, service="redis"),
                run("restart-pg", "restart_service", 2.0, 3.0, service="postgres")],
        "rollbacks": [run("restore", "restore_all", 9.0, 12.0)],
    }  # fmt: skip
    assert windows_of(journal)[0].end == pytest.approx(EPOCH0 + 12.0)


def test_combined_faults_replica_service_from_output_and_failed_fault_ignored() -> None:
    journal = {
        "run": [run("kill-replica", "kill_gateway_replicas", 1.0, 1.3, output=["gateway-3"], count=1),
                run("kill-redis", "kill_service", 1.4, 1.5, service="redis"),
                run("kill-nothing", "kill_service", 1.6, 1.6, status="failed", service="redsi")],
        "rollbacks": [run("restore", "restore_all", 12.0, 15.0)],
    }  # fmt: skip
    windows = windows_of(journal)
    assert [(w.name, w.service) for w in windows] == [("kill-replica", "gateway-3"), ("kill-redis", "redis")]
    assert [w.end for w in windows] == [pytest.approx(EPOCH0 + 15.0)] * 2


def test_never_rolled_back_has_no_end() -> None:
    journal = {"run": [run("kill-redis", "kill_service", 1.0, 1.1, service="redis")], "rollbacks": []}
    assert windows_of(journal)[0].end is None


def test_file_round_trip(tmp_path: Path) -> None:
    journal_path = tmp_path / "chaos" / "journal.json"
    journal_path.parent.mkdir()
    journal_path.write_text(json.dumps({
        "run": [run("kill-redis", "kill_service", 1.0, 1.1, service="redis")],
        "rollbacks": [run("restore", "restore_all", 5.0, 6.0)],
    }))  # fmt: skip
    windows = fault_windows(journal_path)
    written = write_faults(tmp_path, windows)
    assert written.name == "faults.json"
    assert read_faults(tmp_path) == windows and len(windows) == 1
    assert read_faults(tmp_path / "elsewhere") == []


def test_missing_journal_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no chaos journal"):
        fault_windows(tmp_path / "journal.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ConfigError, match="not JSON"):
        fault_windows(tmp_path / "bad.json")
