"""A plain ``locust -f`` run samples its host itself (``host.jsonl``): the Locust master's greenlet finds
the generator (itself) and the stack's processes (the state file's process groups) once a second."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from quotaquake.runfolder import RunFolder
from quotaquake.stack.state import Consumer, StackState
from tests.integration.test_load_tiered import fresh_state, run_scenario


@pytest.mark.integration
def test_a_plain_locust_run_writes_host_samples(
    stack: StackState, fresh_consumer: Callable[[str], Consumer], tmp_path: Path
) -> None:
    state = fresh_state(stack, fresh_consumer, tmp_path, tiers=("enterprise",), per_tier=1)
    run_dir = tmp_path / "run"
    done = run_scenario("tiered.py", state, run_dir, "--run-time", "6s", "--qq-rate", "100")
    assert done.returncode == 0, done.stderr[-3000:]
    samples = RunFolder(run_dir).read_host_samples()
    assert len(samples) >= 4, samples
    assert all(s.generator_processes == 1 for s in samples)  # the local runner: the master itself
    assert sum(s.generator_cpu for s in samples) > 0
    assert all(s.stack_on_host is True and s.stack_processes >= len(stack.services) - 1 for s in samples)
    assert sum(s.stack_cpu or 0.0 for s in samples) > 0
    assert all(sum(s.wake_delay_counts) > 50 for s in samples)  # the probe woke ~200 times a second
