"""Fault-injection handles for the docker provider: one container per service.

The actions mirror the local provider's signals, so chaos experiments use the same action names
whatever runs the stack: ``kill`` = ``docker kill`` (SIGKILL), ``stop`` = ``docker pause`` (the
cgroup freezer: connections stay open, nothing answers), ``resume`` = ``docker unpause``,
``restart`` = start the container again (or restart it if still running) and wait until its readiness
URL answers. Host ports are bound explicitly at creation (see ``quotaquake.stack.docker.provider``), so the
endpoints in the state file stay valid across restarts.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import docker
import docker.errors
from docker.models.containers import Container

from quotaquake.errors import StackError, UsageError
from quotaquake.stack.provider import ServiceHandle
from quotaquake.stack.readiness import is_ready
from quotaquake.stack.state import StackState

RESTART_READY_TIMEOUT_S = 60.0
POLL_INTERVAL_S = 0.25
DOCKER_CLIENT_TIMEOUT_S = 10.0

ClientFactory = Callable[[], docker.DockerClient]


def default_client() -> docker.DockerClient:
    return docker.from_env(timeout=DOCKER_CLIENT_TIMEOUT_S)


def wait_until(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Poll ``predicate`` every 0.25 s until it returns True; exceptions count as "not yet".

    Raises ``StackError`` naming ``what`` after ``timeout_s`` seconds.
    """
    deadline = time.monotonic() + timeout_s
    last_error = ""
    while True:
        try:
            if predicate():
                return
        except Exception as exc:  # transient: refused connections, resets, not-yet-ready answers
            last_error = f" (last error: {type(exc).__name__}: {exc})"
        if time.monotonic() >= deadline:
            raise StackError(what, f"not ready after {timeout_s:.0f} s{last_error}")
        time.sleep(POLL_INTERVAL_S)


@dataclass
class ContainerHandle:
    """``ServiceHandle`` of one container. ``ready_url`` (http://, redis://, postgresql://) is probed
    after ``restart``; without it, restart waits only for the container to be running."""

    name: str
    container_id: str
    ready_url: str | None = None
    client_factory: ClientFactory = field(default=default_client, repr=False)
    ready_timeout_s: float = RESTART_READY_TIMEOUT_S
    _client: docker.DockerClient | None = field(default=None, init=False, repr=False, compare=False)

    def _container(self) -> Container:
        if self._client is None:
            self._client = self.client_factory()
        client = self._client
        try:
            return client.containers.get(self.container_id)
        except docker.errors.NotFound:
            raise StackError(self.name, f"container {self.container_id[:12]} no longer exists") from None

    def kill(self) -> None:
        container = self._container()
        if container.status == "paused":
            container.unpause()  # a frozen container cannot receive SIGKILL until thawed
        container.kill()

    def stop(self) -> None:
        self._container().pause()

    def resume(self) -> None:
        container = self._container()
        if container.status == "paused":
            container.unpause()

    def restart(self) -> None:
        container = self._container()
        if container.status == "paused":
            container.unpause()
        container.reload()
        if container.status == "running":
            container.restart(timeout=5)
        else:
            container.start()
        wait_until(self.is_running, self.ready_timeout_s, self.name)
        if self.ready_url is not None:
            url = self.ready_url
            wait_until(lambda: is_ready(url), self.ready_timeout_s, self.name)

    def is_running(self) -> bool:
        try:
            container = self._container()
        except StackError:
            return False
        return bool(container.status == "running")


def container_handle(state: StackState, service: str) -> ServiceHandle:
    """The handle of ``service`` (a key of ``state.services``) of a docker-provider stack."""
    record = state.services.get(service)
    if record is None:
        known = ", ".join(sorted(state.services)) or "none"
        raise UsageError(f"stack {state.stack_id} has no service {service!r} (services: {known})")
    if record.container_id is None:
        raise UsageError(f"service {service!r} has no container id in the state file (still starting?)")
    return ContainerHandle(name=service, container_id=record.container_id, ready_url=record.ready_url)
