"""Container chaos handles against a fake Docker client (no engine needed)."""

from __future__ import annotations

from dataclasses import dataclass, field

import docker.errors
import pytest

from quotaquake.errors import StackError, UsageError
from quotaquake.stack.docker.handles import ContainerHandle, container_handle, wait_until
from quotaquake.stack.provider import ServiceHandle
from quotaquake.stack.state import ServiceRecord, StackState


@dataclass
class FakeContainer:
    status: str = "running"
    actions: list[str] = field(default_factory=list)

    def kill(self) -> None:
        self.actions.append("kill")
        self.status = "exited"

    def pause(self) -> None:
        self.actions.append("pause")
        self.status = "paused"

    def unpause(self) -> None:
        self.actions.append("unpause")
        self.status = "running"

    def restart(self, timeout: int) -> None:
        self.actions.append("restart")
        self.status = "running"

    def start(self) -> None:
        self.actions.append("start")
        self.status = "running"

    def reload(self) -> None:
        pass


@dataclass
class FakeContainers:
    by_id: dict[str, FakeContainer]

    def get(self, container_id: str) -> FakeContainer:
        if container_id not in self.by_id:
            raise docker.errors.NotFound("gone")
        return self.by_id[container_id]


@dataclass
class FakeClient:
    containers: FakeContainers


def handle_for(container: FakeContainer) -> ContainerHandle:
    client = FakeClient(FakeContainers({"abc": container}))
    return ContainerHandle(name="gateway-1", container_id="abc", client_factory=lambda: client)


def test_handle_is_a_service_handle() -> None:
    assert isinstance(handle_for(FakeContainer()), ServiceHandle)


def test_pause_resume_kill_restart_map_to_docker_actions() -> None:
    container = FakeContainer()
    handle = handle_for(container)
    handle.stop()
    assert not handle.is_running()
    handle.resume()
    assert handle.is_running()
    handle.stop()
    handle.kill()  # thaws first: a paused container cannot be killed
    assert not handle.is_running()
    handle.restart()
    assert handle.is_running()
    assert container.actions == ["pause", "unpause", "pause", "unpause", "kill", "start"]


def test_restart_of_a_running_container_restarts_it() -> None:
    container = FakeContainer()
    handle_for(container).restart()
    assert container.actions == ["restart"]


def test_missing_container_is_not_running_and_cannot_be_killed() -> None:
    client = FakeClient(FakeContainers({}))
    handle = ContainerHandle(name="redis", container_id="gone", client_factory=lambda: client)
    assert handle.is_running() is False
    with pytest.raises(StackError, match="no longer exists"):
        handle.kill()


def state_with(record: ServiceRecord, provider: str = "docker") -> StackState:
    return StackState(
        provider=provider, stack_id="qq-1", work_dir="/tmp", state_file="/tmp/s.json", services={record.name: record}
    )


def test_container_handle_uses_the_recorded_id_and_readiness_url() -> None:
    record = ServiceRecord(name="redis", kind="redis", container_id="c1", ready_url="redis://127.0.0.1:1/0")
    handle = container_handle(state_with(record), "redis")
    assert isinstance(handle, ContainerHandle)
    assert (handle.container_id, handle.ready_url) == ("c1", "redis://127.0.0.1:1/0")


@pytest.mark.parametrize(
    ("provider", "service", "container_id", "message"),
    [
        ("docker", "nope", "c1", "no service 'nope'"),
        ("docker", "redis", None, "no container id"),
    ],
)
def test_container_handle_refuses_what_it_cannot_control(
    provider: str, service: str, container_id: str | None, message: str
) -> None:
    record = ServiceRecord(name="redis", kind="redis", container_id=container_id)
    with pytest.raises(UsageError, match=message):
        container_handle(state_with(record, provider), service)


def test_wait_until_reports_the_last_error_after_the_deadline() -> None:
    def failing() -> bool:
        raise ConnectionError("refused")

    with pytest.raises(StackError, match=r"redis: not ready after 0 s \(last error: ConnectionError: refused\)"):
        wait_until(failing, 0.05, "redis")
