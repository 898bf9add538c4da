"""Recorder with ``--processes 2`` against a direct-response Envoy: history rows add up to Locust's count."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console

from quotaquake.context import RunContext, RunRequest
from quotaquake.load.measure import arrival_stats
from quotaquake.load.runner import run_locust
from quotaquake.policy import load_policy
from quotaquake.runfolder import RunFolder
from quotaquake.runfolder.history import read_history
from quotaquake.stack.state import read_state
from tests.support.direct_envoy import DirectEnvoy

REPO = Path(__file__).resolve().parents[2]
RATE = 400.0
DURATION_S = 6.0


@pytest.fixture(scope="module")
def envoy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DirectEnvoy]:
    with DirectEnvoy(tmp_path_factory.mktemp("direct-envoy")) as running:
        yield running


@pytest.mark.integration
def test_two_processes_record_every_request(envoy: DirectEnvoy, tmp_path: Path) -> None:
    folder = RunFolder(tmp_path / "run").create()
    request = RunRequest(scenario=REPO / "scenarios" / "tiered.py", rate=RATE, duration_s=DURATION_S)
    context = RunContext(
        request=request,
        run_id="run",
        folder=folder,
        state=read_state(envoy.state_path),
        policy=load_policy(REPO / "stack" / "policy.yaml"),
        processes=2,
        console=Console(),
    )
    result = run_locust(context)
    assert result.exit_code == 0, result.log_path.read_text()[-2000:]
    history = read_history(folder.history_dir)
    assert result.request_count > 0
    assert len(history) == result.request_count
    engine = folder.read_engine()
    assert engine is not None and engine.requests == result.request_count
    assert not folder.is_run()  # orchestrated: run.json is quotaquake run's, not Locust's
    assert history["worker"].nunique() == 2
    workers_in_names = {p.name.rsplit("-", 1)[0] for p in folder.history_parts()}
    assert len(workers_in_names) == 2
    assert set(history["status"]) == {200}
    assert history["replica"].eq("direct-1").all()
    stats = arrival_stats(history)
    assert stats.steady_rate == pytest.approx(RATE, rel=0.03)
