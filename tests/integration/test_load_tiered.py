"""Scenarios on the real stack with plain ``locust -f scenarios/... --headless``: history equals Locust's
count, the open model keeps its rate, and the limiter's answers (200/401/429 with headers) are recorded.

Each test runs on fresh consumers (a copy of the state file listing only them), so the quotas it uses up
do not leak into other tests.
"""

from __future__ import annotations

import csv
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from quotaquake.load.measure import arrival_stats
from quotaquake.runfolder import RunFolder
from quotaquake.runfolder.history import read_history
from quotaquake.stack.state import Consumer, StackState, write_state

REPO = Path(__file__).resolve().parents[2]
TIERS = ("free", "pro", "enterprise", "partner")


def fresh_state(
    stack: StackState,
    fresh_consumer: Callable[[str], Consumer],
    folder: Path,
    tiers: tuple[str, ...] = TIERS,
    per_tier: int = 2,
) -> Path:
    consumers = [fresh_consumer(tier) for tier in tiers for _ in range(per_tier)]
    path = folder / "stack.json"
    write_state(stack.model_copy(update={"consumers": consumers, "state_file": str(path)}), path)
    return path


def run_scenario(scenario: str, state: Path, run_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(REPO / "scenarios" / scenario),
        "--headless",
        "--stop-timeout",
        "5",
        "--csv",
        str(run_dir / "locust"),
        "--qq-state",
        str(state),
        "--qq-out",
        str(run_dir),
        *args,
    ]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.integration
def test_tiered_records_every_request_at_the_target_rate(
    stack: StackState, fresh_consumer: Callable[[str], Consumer], tmp_path: Path
) -> None:
    rate = 300.0
    state = fresh_state(stack, fresh_consumer, tmp_path)
    run_dir = tmp_path / "run"
    done = run_scenario("tiered.py", state, run_dir, "--run-time", "8s", "--qq-rate", f"{rate:g}", "--qq-anon-ips", "2")
    assert done.returncode == 0, done.stderr[-3000:]
    folder = RunFolder(run_dir)
    history = read_history(folder.history_dir)
    totals = folder.read_engine()
    assert totals is not None and totals.requests is not None and totals.ended_at is not None
    locust_count = totals.requests
    assert len(history) == locust_count > 0
    assert folder.read_info().ended_at is not None  # a plain locust run writes run.json itself
    assert arrival_stats(history).steady_rate == pytest.approx(rate, rel=0.02)

    by_tier = history.groupby("tier")["status"]
    assert set(by_tier.get_group("invalid")) == {401}
    assert 429 in set(by_tier.get_group("free"))  # 2 free consumers at ~60 req/s each: far over 150
    assert 429 in set(by_tier.get_group("anonymous"))  # 2 client IPs, 30 tokens each
    assert set(by_tier.get_group("enterprise")) == {200}
    limited = history[history["status"] == 429]
    assert limited["retry_after"].notna().all() and limited["rl_limit"].notna().all()
    assert set(history["replica"].dropna()) == {"gateway-1", "gateway-2", "gateway-3"}
    assert totals.failures == 0

    # Locust's own tables show 429 and 401 as statistics of their own, still not failures (exit code 0)
    with (run_dir / "locust_stats.csv").open(newline="") as handle:
        rows = {row["Name"]: row for row in csv.DictReader(handle)}
    named = {name for name in rows if name.endswith("]")}
    assert any(name.endswith("[429 over quota]") for name in named)
    assert any(name.endswith("[401 unknown key]") for name in named)
    assert all(rows[name]["Failure Count"] == "0" for name in named)


@pytest.mark.integration
def test_quota_month_seeds_counters_and_records_them(
    stack: StackState, fresh_consumer: Callable[[str], Consumer], tmp_path: Path
) -> None:
    state = fresh_state(stack, fresh_consumer, tmp_path, tiers=("free",))
    run_dir = tmp_path / "run"
    done = run_scenario(
        "quota-month.py",
        state,
        run_dir,
        "--run-time",
        "5s",
        "--qq-rate",
        "20",
        "--qq-tiers",
        "free=1",
        "--qq-month-headroom",
        "5",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    folder = RunFolder(run_dir)
    engine = folder.read_engine()
    assert engine is not None
    seeds = engine.monthly_seeds
    history = read_history(folder.history_dir)
    assert sorted(s.consumer for s in seeds) == sorted(history["consumer"].unique())
    assert {s.used for s in seeds} == {50_000 - 5}
    admitted = history[history["status"] == 200].groupby("consumer").size()
    assert (admitted <= 5).all()  # 5 cost units left in the month, /identify costs 1
    assert (history.groupby("consumer")["status"].apply(lambda s: (s == 429).sum()) > 0).all()
