"""Fixtures that start real stacks (Redis, Postgres, Envoy, limiter, stub API, Prometheus).

Stacks are session-scoped and shared: starting one takes a few seconds. Tests that exhaust a quota use
``fresh_consumer`` so they never depend on what an earlier test consumed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from quotaquake.stack.local.provider import LocalProvider
from quotaquake.stack.registry import provider_for
from quotaquake.stack.state import STATE_ENV_VAR, Consumer, RedisTopology, StackState

REPO = Path(__file__).resolve().parents[2]

StackFactory = Callable[..., StackState]


@pytest.fixture(scope="session")
def stack_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackFactory]:
    """``stack_factory(defect=None, replicas=3, redis="single")`` -> a running local stack, cached per arguments."""
    started: dict[tuple[str | None, int, RedisTopology], tuple[LocalProvider, StackState]] = {}

    def start(defect: str | None = None, replicas: int = 3, redis: RedisTopology = "single") -> StackState:
        key = (defect, replicas, redis)
        if key not in started:
            root = tmp_path_factory.mktemp(f"stack-{defect or 'ok'}-{replicas}-{redis}")
            provider = LocalProvider(
                state_path=root / "stack.json",
                work_root=root,
                policy_path=REPO / "stack" / "policy.yaml",
                replicas=replicas,
                defect=defect,
                redis=redis,
            )
            started[key] = (provider, provider.up())
        return started[key][1]

    yield start
    for provider, state in started.values():
        provider.down(state)


@pytest.fixture(scope="session")
def stack(stack_factory: StackFactory) -> StackState:
    """The default stack: 3 replicas, no defect."""
    return stack_factory()


@pytest.fixture
def stack_state_path(stack: StackState, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The default stack's state file, also exported as ``$QUOTAQUAKE_STATE`` for the test."""
    path = Path(stack.work_dir) / "stack.json"
    monkeypatch.setenv(STATE_ENV_VAR, str(path))
    return path


@pytest.fixture
def fresh_consumer(stack: StackState) -> Callable[[str], Consumer]:
    """``fresh_consumer(tier)`` -> a consumer inserted into the registry now, with an untouched quota."""

    def make(tier: str) -> Consumer:
        return provider_for(stack).add_consumer(stack, tier)

    return make
