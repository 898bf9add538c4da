"""Probe logic without servers: Prometheus ratios with a fake query function, the quota burst against
``httpx.MockTransport`` limiters."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import httpx
import pytest

from quotaquake.chaos import ledger, promql
from quotaquake.chaos.burst import BurstPlan, plan_burst, run_burst
from quotaquake.errors import UsageError
from quotaquake.policy import load_policy
from quotaquake.runfolder import RunFolder
from quotaquake.stack.state import Endpoints, StackState

REPO = Path(__file__).resolve().parents[2]


def fake_prometheus(values: dict[str, float | None]) -> promql.QueryFn:
    """Answers each query whose text contains a key with that value; None -> no series."""

    def query(text: str) -> Sequence[object]:
        for fragment, value in values.items():
            if fragment in text:
                return [] if value is None else [{"metric": {}, "value": [1.0, str(value)]}]
        raise AssertionError(f"unexpected query {text}")

    return query


def test_error_rate_is_5xx_over_all_lb_responses() -> None:
    query = fake_prometheus({'envoy_response_code_class="5"': 2.0, "envoy_http_downstream_rq_xx": 40.0})
    assert promql.error_rate(query, 15) == pytest.approx(0.05)


def test_no_5xx_series_yet_counts_as_zero_but_no_metric_at_all_fails() -> None:
    assert promql.error_rate(fake_prometheus({'class="5"': None, "rq_xx": 10.0}), 15) == 0.0
    with pytest.raises(promql.PrometheusNoData):
        promql.ratio(fake_prometheus({'class="5"': None, "rq_xx": None}), 'class="5"', "rq_xx", data_timeout_s=0)


def test_a_fresh_prometheus_is_awaited_a_missing_metric_is_not() -> None:
    answers: list[Sequence[object]] = [[], [], [{"value": [1.0, "8"]}]]
    assert promql.await_value(lambda q: answers.pop(0), "q", timeout_s=5, poll_s=0) == 8.0
    with pytest.raises(promql.PrometheusNoData):
        promql.await_value(lambda q: [], "q", timeout_s=0.05, poll_s=0.01)


def test_idle_gateway_has_zero_rates_and_windows_need_two_scrapes() -> None:
    assert promql.limited_rate(fake_prometheus({'result="limited"': 0.0, "decisions_total": 0.0}), 30) == 0.0
    assert promql.limited_rate(fake_prometheus({'result="limited"': 3.0, "decisions_total": 12.0}), 30) == 0.25
    assert "[30s]" in promql.sum_rate("x", 30.0)
    with pytest.raises(UsageError, match="window_s=1"):
        promql.sum_rate("x", 1)


PLAN = BurstPlan("free consumer t", {"x-api-key": "k"}, "/identify", capacity=150, refill_per_s=100 / 60, deciders=3)


def limiter(admit: int, status_after: int = 429) -> httpx.Client:
    """A gateway that admits the first ``admit`` requests, then answers ``status_after``."""
    seen = {"n": 0}

    def handle(request: httpx.Request) -> httpx.Response:
        assert request.headers["x-api-key"] == "k" and request.url.path == "/identify"
        seen["n"] += 1
        return httpx.Response(200 if seen["n"] <= admit else status_after)

    return httpx.Client(transport=httpx.MockTransport(handle))


def test_shared_bucket_enforces_after_capacity() -> None:
    result = run_burst(limiter(150), "http://gw", PLAN, min_limited=3, margin=10, timeout_s=10)
    assert (result.sent, result.admitted, result.limited, result.enforced) == (153, 150, 3, True)
    assert len(result.requests) == 153 and result.requests[-1].status == 429


def test_per_replica_buckets_stay_within_the_bound() -> None:
    result = run_burst(limiter(450), "http://gw", PLAN, min_limited=3, margin=10, timeout_s=10)
    assert result.enforced and result.admitted == 450


def test_over_admission_stops_the_burst_and_fails() -> None:
    result = run_burst(limiter(10_000), "http://gw", PLAN, min_limited=3, margin=10, timeout_s=10)
    assert not result.enforced and result.limited == 0
    assert 460 < result.admitted < 500  # bound 3 x (150 + refill x elapsed) + 10, elapsed well under 10 s


def test_fail_closed_503s_are_not_enforcement_and_stop_the_burst_early() -> None:
    result = run_burst(limiter(0, status_after=503), "http://gw", PLAN, min_limited=3, margin=10, timeout_s=10)
    assert not result.enforced and result.other == result.sent == 20


def test_without_postgres_the_burst_goes_keyless_from_a_fresh_ip(tmp_path: Path) -> None:
    state = StackState(provider="local", stack_id="s", work_dir=str(tmp_path), state_file=str(tmp_path / "s.json"),
                       endpoints=Endpoints(gateway="http://gw", replicas=["a", "b", "c"],
                                           postgres="postgresql://u@127.0.0.1:1/postgres"))  # fmt: skip
    plan = plan_burst(state, load_policy(REPO / "stack" / "policy.yaml"), "free", "/identify")
    assert plan.identity.startswith("anonymous 198.1")
    assert (plan.capacity, plan.deciders) == (30.0, 3) and "x-forwarded-for" in plan.headers
    assert plan.admitted_bound(0.0) == 90.0


def test_ledger_round_trip_and_disabled_without_a_path(tmp_path: Path) -> None:
    folder = RunFolder(tmp_path)
    entries = run_burst(limiter(2), "http://gw", PLAN, min_limited=1, margin=10, timeout_s=5).requests
    ledger.record({ledger.LEDGER_CONFIG_KEY: str(folder.probe_ledger)}, entries)
    ledger.record({ledger.LEDGER_CONFIG_KEY: ""}, entries)
    assert [r.status for r in folder.read_probe_requests()] == [200, 200, 429]
