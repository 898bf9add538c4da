"""Kong's own series over a run window, from instant queries at its start and end (a fake Prometheus)."""

from __future__ import annotations

from collections.abc import Mapping

from quotaquake.prometheus_kong import HISTOGRAMS, REJECTED_429, REQUESTS, snapshot_kong

START, END = 1000.0, 1060.0


def prometheus(answers: dict[tuple[str, float], Mapping[str, float]]):  # type: ignore[no-untyped-def]
    def query(expression: str, at: float) -> Mapping[str, float]:
        if expression.startswith("sum(resets("):
            return answers.get(("resets", at), {"": 0.0})
        return answers.get((expression, at), {})

    return query


def test_counts_are_per_replica_differences_and_histograms_per_bucket() -> None:
    answers = {
        (REQUESTS, START): {"gateway-1:8100": 100.0, "gateway-2:8100": 50.0},
        (REQUESTS, END): {"gateway-1:8100": 400.0, "gateway-2:8100": 350.0, "gateway-3:8100": 10.0},
        (REJECTED_429, END): {"gateway-1:8100": 7.0},
        (HISTOGRAMS["kong_latency_ms"], START): {"1": 90.0, "2": 100.0, "+Inf": 150.0},
        (HISTOGRAMS["kong_latency_ms"], END): {"1": 690.0, "2": 705.0, "+Inf": 760.0},
    }
    snap = snapshot_kong("http://p", START, END, query=prometheus(answers))
    assert snap.error is None and snap.requests == 610.0 and snap.rejected_429 == 7.0
    assert snap.latency_buckets == {"kong_latency_ms": {"1": 600.0, "2": 605.0, "+Inf": 610.0}}


def test_a_replica_restarted_in_the_window_leaves_the_counts_unknown() -> None:
    # kong_http_requests_total lives in the replica's shared memory: a restart starts it again at 0
    answers = {
        (REQUESTS, START): {"gateway-1:8100": 100.0},
        (REQUESTS, END): {"gateway-1:8100": 40.0},
        ("resets", END): {"": 1.0},
    }
    snap = snapshot_kong("http://p", START, END, query=prometheus(answers))
    assert snap.requests is None and snap.rejected_429 is None and snap.error is None


def test_an_unreachable_prometheus_is_recorded_as_an_error() -> None:
    def down(expression: str, at: float) -> Mapping[str, float]:
        raise ConnectionError("refused")

    snap = snapshot_kong("http://p", START, END, query=down)
    assert snap.error is not None and "refused" in snap.error
