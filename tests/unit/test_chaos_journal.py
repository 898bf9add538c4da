"""Fault windows from a small hand-written Chaos Toolkit journal (times hand-computed)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from quotaquake.chaos.journal import fault_windows, windows_of
from quotaquake.errors import ConfigError
from quotaquake.policy import Policy, load_policy
from quotaquake.runfolder import RunFolder
from quotaquake.runfolder.models import Expectation, FaultKind, FaultWindow, ServiceRole

REPO = Path(__file__).resolve().parents[2]
POLICY = load_policy(REPO / "stack" / "policy.yaml")
FAIL_CLOSED = Policy.model_validate({**POLICY.model_dump(), "degradation": {"on_redis_unavailable": "fail-closed"}})

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
    assert windows_of(journal, POLICY) == [
        FaultWindow(name="kill-redis", kind=FaultKind.OUTAGE, service="redis", role=ServiceRole.RATE_LIMIT_STORE,
                    expect=Expectation.FAIL_OPEN_LOCAL, start=EPOCH0 + 10.0, end=EPOCH0 + 24.5)
    ]  # fmt: skip


def test_resume_in_the_method_ends_the_window_before_the_rollbacks() -> None:
    journal = {
        "run": [run("pause-redis", "stop_service", 5.0, 5.1, service="redis"),
                run("resume-redis", "resume_service", 15.1, 15.2, service="redis")],
        "rollbacks": [run("restore", "restore_all", 16.0, 17.0)],
    }  # fmt: skip
    (window,) = windows_of(journal, POLICY)
    assert window.end is not None
    assert (window.start - EPOCH0, window.end - EPOCH0) == pytest.approx((5.0, 15.2))


def test_restoring_another_service_does_not_end_the_window() -> None:
    journal = {
        "run": [run("kill-redis", "kill_service", 1.0, 1.1, service="redis"),
                run("restart-pg", "restart_service", 2.0, 3.0, service="postgres")],
        "rollbacks": [run("restore", "restore_all", 9.0, 12.0)],
    }  # fmt: skip
    assert windows_of(journal, POLICY)[0].end == pytest.approx(EPOCH0 + 12.0)


def test_combined_faults_replica_service_from_output_and_failed_fault_ignored() -> None:
    journal = {
        "run": [run("kill-replica", "kill_gateway_replicas", 1.0, 1.3, output=["gateway-3"], count=1),
                run("kill-redis", "kill_service", 1.4, 1.5, service="redis"),
                run("kill-nothing", "kill_service", 1.6, 1.6, status="failed", service="redsi")],
        "rollbacks": [run("restore", "restore_all", 12.0, 15.0)],
    }  # fmt: skip
    windows = windows_of(journal, POLICY)
    assert [(w.name, w.service) for w in windows] == [("kill-replica", "gateway-3"), ("kill-redis", "redis")]
    assert [w.end for w in windows] == [pytest.approx(EPOCH0 + 15.0)] * 2


def test_never_rolled_back_has_no_end() -> None:
    journal = {"run": [run("kill-redis", "kill_service", 1.0, 1.1, service="redis")], "rollbacks": []}
    assert windows_of(journal, POLICY)[0].end is None


def test_file_round_trip(tmp_path: Path) -> None:
    journal_path = tmp_path / "chaos" / "journal.json"
    journal_path.parent.mkdir()
    journal_path.write_text(json.dumps({
        "run": [run("kill-redis", "kill_service", 1.0, 1.1, service="redis")],
        "rollbacks": [run("restore", "restore_all", 5.0, 6.0)],
    }))  # fmt: skip
    windows = fault_windows(journal_path, POLICY)
    folder = RunFolder(tmp_path)
    folder.write_faults(windows)
    assert folder.faults_file.name == "faults.json"
    assert folder.read_faults() == windows and len(windows) == 1
    assert RunFolder(tmp_path / "elsewhere").read_faults() == []


def test_missing_journal_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no chaos journal"):
        fault_windows(tmp_path / "journal.json", POLICY)
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ConfigError, match="not JSON"):
        fault_windows(tmp_path / "bad.json", POLICY)


def test_kinds_roles_and_expectations_come_from_the_fault_registry() -> None:
    journal = {
        "run": [run("pause-redis", "stop_service", 1.0, 1.1, service="redis"),
                run("kill-pg", "kill_service", 2.0, 2.1, service="postgres"),
                run("kill-replica", "kill_gateway_replicas", 3.0, 3.2, output=["gateway-2", "gateway-3"], count=2)],
        "rollbacks": [run("restore", "restore_all", 9.0, 12.0)],
    }  # fmt: skip
    windows = windows_of(journal, FAIL_CLOSED)
    assert [(w.kind, w.role, w.expect) for w in windows] == [
        (FaultKind.PAUSE, ServiceRole.RATE_LIMIT_STORE, Expectation.FAIL_CLOSED),
        (FaultKind.OUTAGE, ServiceRole.REGISTRY, Expectation.AVAILABLE),
        (FaultKind.REPLICA_LOSS, ServiceRole.GATEWAY, Expectation.AVAILABLE),
    ]
    assert windows[2].service == "gateway-2,gateway-3"


def k8s(name: str, module: str, func: str, start: float, end: float, status: str = "succeeded",
        **arguments: object) -> dict[str, object]:  # fmt: skip
    entry = run(name, func, start, end, status=status, **arguments)
    entry["activity"]["provider"]["module"] = module  # type: ignore[index]
    return entry


def test_kubernetes_pod_kill_closes_when_the_pods_are_running_again() -> None:
    # terminate at 1.0; the first readiness probe fails (5.0-6.0), the retry succeeds (8.0-9.5)
    selector = "app.kubernetes.io/name=redis"
    journal = {
        "run": [k8s("kill-redis-pod", "chaosk8s.pod.actions", "terminate_pods", 1.0, 1.2, label_selector=selector)],
        "rollbacks": [
            k8s("ready?", "chaosk8s.pod.probes", "pods_in_phase", 5.0, 6.0, status="failed", label_selector=selector),
            k8s("ready!", "chaosk8s.pod.probes", "pods_in_phase", 8.0, 9.5, label_selector=selector),
        ],
    }
    (window,) = windows_of(journal, POLICY)
    assert (window.kind, window.role, window.expect) == (
        FaultKind.POD_LOSS, ServiceRole.RATE_LIMIT_STORE, Expectation.FAIL_OPEN_LOCAL
    )  # fmt: skip
    assert window.end == pytest.approx(EPOCH0 + 9.5)
