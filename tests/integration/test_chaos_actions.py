"""Chaos actions and probes against real processes of a separate 2-replica stack (not the shared one)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from quotaquake.chaos import actions, probes
from quotaquake.chaos.health import stack_problems
from quotaquake.chaos.targets import STATE_CONFIG_KEY
from quotaquake.stack import processes
from quotaquake.stack.state import StackState, read_state

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def chaos_stack(stack_factory: Callable[..., StackState]) -> StackState:
    return stack_factory(replicas=2)


@pytest.fixture
def config(chaos_stack: StackState) -> Iterator[dict[str, object]]:
    """The experiments' configuration as chaoslib passes it; checks the stack is healthy after the test."""
    configuration: dict[str, object] = {STATE_CONFIG_KEY: chaos_stack.state_file}
    yield configuration
    actions.restore_all(timeout_s=60, configuration=configuration)
    assert stack_problems(read_state(Path(chaos_stack.state_file))) == []


def _alive(state_file: str, service: str) -> bool:
    return processes.is_alive(read_state(Path(state_file)).services[service])


def test_kill_then_restart_redis(config: dict[str, object], chaos_stack: StackState) -> None:
    assert probes.service_reachable("redis", configuration=config)
    actions.kill_service("redis", configuration=config)
    assert not _alive(chaos_stack.state_file, "redis")
    assert not probes.service_reachable("redis", configuration=config)
    actions.restart_service("redis", configuration=config)
    assert probes.service_reachable("redis", configuration=config)


def test_stopped_redis_is_alive_but_unreachable_until_resumed(
    config: dict[str, object], chaos_stack: StackState
) -> None:
    actions.stop_service("redis", configuration=config)
    assert _alive(chaos_stack.state_file, "redis")
    assert not probes.service_reachable("redis", configuration=config)
    actions.resume_service("redis", configuration=config)
    assert probes.service_reachable("redis", configuration=config)


def test_replica_kill_is_restored_and_checked(config: dict[str, object], chaos_stack: StackState) -> None:
    killed = actions.kill_gateway_replicas(1, configuration=config)
    assert killed["replicas"] == ["gateway-2"]
    assert set(killed["ejected_after_s"]) == {"gateway-2"}  # type: ignore[arg-type]  # the LB ejection was timed
    assert not _alive(chaos_stack.state_file, "gateway-2")
    assert any("gateway-2" in p or "replicas::" in p for p in stack_problems(read_state(Path(chaos_stack.state_file))))
    result = actions.restore_all(timeout_s=60, configuration=config)
    assert result["actions"] == ["restarted gateway-2"]
    assert probes.gateway_healthy(requests=4, configuration=config)


def test_probes_see_quota_and_known_consumers(config: dict[str, object]) -> None:
    assert probes.quota_enforced(tier="free", configuration=config)
    assert probes.known_consumer_works(tier="pro", configuration=config)
    assert 0.0 <= probes.recent_error_rate(window_s=10, configuration=config) <= 0.05
