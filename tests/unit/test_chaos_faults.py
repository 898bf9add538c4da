"""Actions and their target checks, with fake service handles (no processes)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest
from chaoslib.exceptions import InterruptExecution

from quotaquake.chaos import actions
from quotaquake.chaos.control import before_experiment_control
from quotaquake.chaos.preflight import check_experiment
from quotaquake.chaos.targets import STATE_CONFIG_KEY
from quotaquake.faults import outage, pause, replica_loss
from quotaquake.faults.restore import restore_stack
from quotaquake.faults.targets import ChaosTargetError, choose_replicas, gateway_replicas
from quotaquake.stack.state import Consumer, Endpoints, ServiceRecord, StackState, write_state

KINDS = {"redis": "redis", "postgres": "postgres", "stub-api": "stub-api", "lb": "lb", "prometheus": "prometheus"}


def make_state(tmp_path: Path, replicas: int = 3) -> StackState:
    services = {name: ServiceRecord(name=name, kind=kind) for name, kind in KINDS.items()}
    for n in range(1, replicas + 1):
        services[f"gateway-{n}"] = ServiceRecord(name=f"gateway-{n}", kind="gateway")
        services[f"limiter-{n}"] = ServiceRecord(name=f"limiter-{n}", kind="limiter")
    return StackState(
        provider="local", stack_id="s1", work_dir=str(tmp_path), state_file=str(tmp_path / "stack.json"),
        replicas=replicas, endpoints=Endpoints(gateway="http://127.0.0.1:9"), services=services,
        consumers=[Consumer(id="pro-1", tier="pro", key="k")],
    )  # fmt: skip


@dataclass
class FakeHandle:
    """A process that is running, stopped (SIGSTOP) or dead; records the calls it got."""

    name: str
    log: list[str]
    status: str = "running"  # running | stopped | dead

    def kill(self) -> None:
        self.log.append(f"kill {self.name}")
        self.status = "dead"

    def stop(self) -> None:
        self.log.append(f"stop {self.name}")
        self.status = "stopped"

    def resume(self) -> None:
        self.log.append(f"resume {self.name}")
        if self.status == "stopped":
            self.status = "running"

    def restart(self) -> None:
        self.log.append(f"restart {self.name}")
        self.status = "running"

    def is_running(self) -> bool:
        return self.status == "running"


@dataclass
class FakeStack:
    log: list[str] = field(default_factory=list)
    handles: dict[str, FakeHandle] = field(default_factory=dict)

    def __call__(self, state: StackState, service: str) -> FakeHandle:
        return self.handles.setdefault(service, FakeHandle(service, self.log))


def test_kill_and_stop_reach_the_named_service(tmp_path: Path) -> None:
    stack = FakeStack()
    state = make_state(tmp_path)
    outage.inject(state, "redis", stack)
    pause.inject(state, "postgres", stack)
    assert stack.log == ["kill redis", "stop postgres"]
    assert not stack.handles["redis"].is_running() and not stack.handles["postgres"].is_running()


def test_kill_replicas_kills_the_highest_numbered(tmp_path: Path) -> None:
    stack = FakeStack()
    killed = replica_loss.inject(make_state(tmp_path), 2, stack)
    assert killed["replicas"] == ["gateway-2", "gateway-3"]
    assert stack.log == ["kill gateway-2", "kill gateway-3"]


def test_replicas_sort_numerically(tmp_path: Path) -> None:
    assert gateway_replicas(make_state(tmp_path, replicas=11))[-2:] == ["gateway-10", "gateway-11"]


@pytest.mark.parametrize("count", [0, 4, -1])
def test_more_replicas_than_exist_is_one_clear_line(tmp_path: Path, count: int) -> None:
    with pytest.raises(ChaosTargetError, match=rf"count={count}: the stack s1 runs 3 gateway replicas") as err:
        choose_replicas(make_state(tmp_path), count)
    assert "\n" not in str(err.value)


def test_restore_resumes_stopped_restarts_dead_dependencies_first(tmp_path: Path) -> None:
    stack = FakeStack()
    state = make_state(tmp_path)
    outage.inject(state, "gateway-3", stack)
    pause.inject(state, "redis", stack)
    outage.inject(state, "postgres", stack)
    stack.log.clear()
    done = restore_stack(state, stack)
    assert done == ["restarted postgres", "resumed redis", "restarted gateway-3"]
    assert all(h.is_running() for h in stack.handles.values())
    assert restore_stack(state, stack) == []  # idempotent on a healthy stack


def _write(tmp_path: Path) -> dict[str, object]:
    state = make_state(tmp_path)
    write_state(state, Path(state.state_file))
    return {STATE_CONFIG_KEY: state.state_file}


def test_action_with_unknown_service_fails_before_touching_anything(tmp_path: Path) -> None:
    configuration = _write(tmp_path)
    with pytest.raises(ChaosTargetError, match="service 'redis-x': not in stack s1; known services: gateway-1"):
        actions.kill_service("redis-x", configuration=configuration)
    with pytest.raises(ChaosTargetError, match="count=4"):
        actions.kill_gateway_replicas(4, configuration=configuration)


def _experiment(**arguments: object) -> dict[str, object]:
    action = {"type": "action", "name": "break-it",
              "provider": {"type": "python", "module": "quotaquake.chaos.actions", "func": "kill_service",
                           "arguments": arguments}}  # fmt: skip
    return {"method": [action], "rollbacks": []}


def test_preflight_names_the_activity(tmp_path: Path) -> None:
    state = make_state(tmp_path)
    check_experiment(_experiment(service="redis"), state)
    with pytest.raises(ChaosTargetError, match="activity 'break-it': service 'redsi'"):
        check_experiment(_experiment(service="redsi"), state)


def test_preflight_control_interrupts_chaos_toolkit(tmp_path: Path) -> None:
    configuration = _write(tmp_path)
    before_experiment_control(_experiment(service="redis"), configuration=configuration)
    with pytest.raises(InterruptExecution, match="quotaquake preflight: activity 'break-it'"):
        before_experiment_control(_experiment(service="nope"), configuration=configuration)


def test_missing_state_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(InterruptExecution, match="no stack state file"):
        before_experiment_control(_experiment(service="redis"), configuration={STATE_CONFIG_KEY: str(tmp_path / "x")})
