"""The open model keeps its arrival rate when the system slows, up to the declared in-flight cap.

Real Locust against a direct-response Envoy whose ``/slow/`` paths answer after 200 ms. 200 req/s over 10
users (20 req/s each): with one request in flight per user the run could send only 10 / 0.2 s = 50 req/s.
With the default cap (``--qq-max-in-flight 1000``) it must send its 200 req/s; with a cap of 20 (2 per user)
at most 20 / 0.2 s = 100 req/s, and ``engine.json`` must say the cap was the limit.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from quotaquake.load.measure import arrival_stats
from quotaquake.runfolder import RunFolder
from quotaquake.runfolder.history import read_history
from quotaquake.runfolder.models import EngineRecord, GeneratorRecord
from tests.support.direct_envoy import DirectEnvoy
from tests.support.plain_locust import REPO, PlainLocust

RATE = 200.0
SLOW_MS = 200
RUN_S = 8


@pytest.fixture(scope="module")
def slow_envoy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DirectEnvoy]:
    with DirectEnvoy(tmp_path_factory.mktemp("slow-envoy"), slow_ms=SLOW_MS) as running:
        yield running


def run_slow(envoy: DirectEnvoy, out: Path, *extra: str) -> tuple[EngineRecord, GeneratorRecord]:
    args = [
        "-f", str(REPO / "scenarios" / "tiered.py"), "--headless", "--run-time", f"{RUN_S}s",
        "--qq-state", str(envoy.state_path), "--qq-out", str(out), "--qq-rate", f"{RATE:g}",
        "--qq-endpoints", "/slow/identify=1", *extra,
    ]  # fmt: skip
    with PlainLocust(args, out.parent / "locust.log") as locust:
        assert locust.wait(timeout_s=60) == 0, (out.parent / "locust.log").read_text()[-3000:]
    engine = RunFolder(out).read_engine()
    assert engine is not None and engine.generator is not None
    return engine, engine.generator


@pytest.mark.integration
def test_a_slow_system_keeps_its_arrival_rate(slow_envoy: DirectEnvoy, tmp_path: Path) -> None:
    out = tmp_path / "run"
    engine, generator = run_slow(slow_envoy, out)
    history = read_history(RunFolder(out).history_dir)
    stats = arrival_stats(history)
    assert history["latency_ms"].median() >= 0.95 * SLOW_MS  # the system was slow (Envoy timers: +-1 ms)
    assert stats.steady_rate == pytest.approx(RATE, rel=0.03)  # ... and the arrivals kept their rate
    assert generator.max_in_flight == 1000 and generator.max_in_flight_per_user == 100
    assert generator.slot_waits == 0  # the cap was never reached
    assert generator.unsent <= generator.peak_users  # at most the one a user had due as it was stopped
    assert generator.in_flight_peak > 1  # several requests in flight per user
    assert generator.sent == len(history) == engine.requests
    assert generator.cpu_s > 0 and all(p.wall_s >= RUN_S - 1 for p in generator.processes)


@pytest.mark.integration
def test_the_in_flight_cap_shows_as_lag_and_slot_waits(slow_envoy: DirectEnvoy, tmp_path: Path) -> None:
    out = tmp_path / "run"
    engine, generator = run_slow(slow_envoy, out, "--qq-max-in-flight", "20")
    history = read_history(RunFolder(out).history_dir)
    stats = arrival_stats(history)
    capacity = 20 / (SLOW_MS / 1000)  # req/s that 20 requests in flight at 200 ms allow
    assert stats.steady_rate <= capacity * 1.05  # the cap, not the schedule, set the rate
    assert stats.lag_p50_ms > 500  # sends waited: recorded as lag, never skipped
    assert generator.max_in_flight_per_user == 2 and generator.in_flight_peak == 2
    assert generator.slot_waits > 0 and generator.slot_wait_s > 1.0
    assert generator.unsent > 0 and generator.scheduled == generator.sent + generator.unsent
    assert generator.sent == len(history) == engine.requests
