"""Recorder with ``--processes 2`` against a direct-response Envoy: history rows add up to Locust's count."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from quotaquake.load.direct_envoy import DirectEnvoy
from quotaquake.load.history import read_history
from quotaquake.load.measure import arrival_stats
from quotaquake.load.runner import run_locust
from quotaquake.record import read_run_info

REPO = Path(__file__).resolve().parents[2]
RATE = 400.0
DURATION_S = 6.0


@pytest.fixture(scope="module")
def envoy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DirectEnvoy]:
    with DirectEnvoy(tmp_path_factory.mktemp("direct-envoy")) as running:
        yield running


@pytest.mark.integration
def test_two_processes_record_every_request(envoy: DirectEnvoy, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    result = run_locust(
        scenario=REPO / "scenarios" / "tiered.py",
        state_path=envoy.state_path,
        run_dir=run_dir,
        rate=RATE,
        duration_s=DURATION_S,
        processes=2,
    )
    assert result.exit_code == 0, result.log_path.read_text()[-2000:]
    history = read_history(run_dir)
    assert result.request_count > 0
    assert len(history) == result.request_count
    assert read_run_info(run_dir).locust_request_count == result.request_count
    assert history["worker"].nunique() == 2
    workers_in_names = {p.name.rsplit("-", 1)[0] for p in (run_dir / "history").glob("part-*.parquet")}
    assert len(workers_in_names) == 2
    assert set(history["status"]) == {200}
    assert history["replica"].eq("direct-1").all()
    stats = arrival_stats(history)
    assert stats.steady_rate == pytest.approx(RATE, rel=0.03)
