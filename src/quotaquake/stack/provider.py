"""What every stack provider (local processes, Kong via Testcontainers, an existing deployment) offers.

A provider brings the system under test up and down, reports each service's health, adds consumers at
run time, resets consumers' quota state before a run, and hands out one ``ServiceHandle`` per service so
that faults break it the same way whatever runs it. Providers are found by name or by a state file
through ``quotaquake.stack.registry``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from quotaquake.policy import DEFAULT_POLICY_PATH
from quotaquake.stack.state import Consumer, RedisTopology, StackState
from quotaquake.stack.status import ServiceHealth


@runtime_checkable
class ServiceHandle(Protocol):
    """Fault-injection handle of one service (process or container)."""

    name: str

    def kill(self) -> None:
        """SIGKILL (or docker kill): the service dies without cleanup."""

    def stop(self) -> None:
        """SIGSTOP (or docker pause): the service hangs; connections stay open but nothing answers."""

    def resume(self) -> None:
        """SIGCONT (or docker unpause)."""

    def restart(self) -> None:
        """Start the service again as it was started (after a kill), and wait until it is ready."""

    def is_running(self) -> bool:
        """True when the process/container exists and is not stopped."""


@dataclass(frozen=True)
class ProviderOptions:
    """What a provider is built from: the CLI's options, or what a state file recorded."""

    state_path: Path
    policy_path: Path = DEFAULT_POLICY_PATH
    replicas: int = 3
    defect: str | None = None
    redis: RedisTopology = "single"  # the local provider's Redis topology
    target: Path | None = None  # the external provider's target file
    allow_hosts: tuple[str, ...] = ()


class Provider(Protocol):
    name: str

    def up(self) -> StackState:
        """Start everything, wait for readiness, write and return the state."""

    def down(self, state: StackState) -> None:
        """Stop everything named in ``state``; safe to call on a half-started or stale stack."""

    def status(self, state: StackState) -> list[ServiceHealth]:
        """Each service's process state and readiness."""

    def handle(self, state: StackState, service: str) -> ServiceHandle:
        """The fault-injection handle of ``service`` (a key of ``state.services``)."""

    def add_consumer(self, state: StackState, tier: str) -> Consumer:
        """Provision a consumer of ``tier`` with an untouched quota in the running stack."""

    def reset_consumers(self, state: StackState, consumers: Sequence[Consumer]) -> None:
        """Forget the rate limiter's state of ``consumers``: full buckets, nothing counted this month.

        Keyless clients are passed as consumers of tier ``anonymous`` with id ``anon:<ip>``. Raises
        ``UsageError`` when the provider cannot (the run's initial state then stays unknown)."""
