"""Fixed-window (Kong-style) quota accuracy on tiny Kong-like histories with hand-computed answers.

Tier ``small``: 6 requests per UTC minute (no burst, no costs), 100 per month. ``START_S`` is a minute
boundary (2026-01-01T00:00:00Z); latency 1 ms, so w = 1 ms.
"""

from __future__ import annotations

from quotaquake.verify.checks.quota_fixed_window import check_quota_fixed_window
from quotaquake.verify.thresholds import Thresholds
from tests.support.synthetic import frame_from_rows, run_data
from tests.unit.test_verify_quota_bucket import POLICY


def kong(times: list[float], status: int = 200, consumer: str = "c1", **fields: object) -> list[dict[str, object]]:
    return [{"t": t, "consumer": consumer, "tier": "small", "status": status, **fields} for t in times]


def judge(rows: list[dict[str, object]], **kwargs: object):
    run = run_data(frame_from_rows(rows), POLICY, model="fixed-window", **kwargs)  # type: ignore[arg-type]
    return check_quota_fixed_window(run, Thresholds())


def test_limit_per_minute_passes_and_burst_is_not_allowed():
    assert judge(kong([1, 2, 3, 4, 5, 6])).status == "pass"
    verdict = judge(kong([1, 2, 3, 4, 5, 6, 7]))
    assert verdict.status == "fail"
    assert verdict.evidence["over_admitted"] == 1
    assert verdict.evidence["windows_over"][0]["minute"].startswith("2026-01-01T00:00:00")


def test_costs_do_not_matter():
    assert judge(kong([1, 2, 3, 4, 5, 6], endpoint="/compare", cost=2.0)).status == "pass"


def test_new_minute_resets():
    assert judge(kong([54, 55, 56, 57, 58, 59, 61, 62, 63, 64, 65, 66])).status == "pass"


def test_request_straddling_a_boundary_may_count_in_the_next_minute():
    # the 7th is sent 0.5 ms before the boundary with w = 1 ms: it may have been counted at 00:01
    assert judge(kong([1, 2, 3, 4, 5, 6, 59.9995])).status == "pass"
    # ... unless the next minute is full too
    verdict = judge(kong([1, 2, 3, 4, 5, 6, 59.9995, 61, 62, 63, 64, 65, 66]))
    assert verdict.status == "fail"
    assert verdict.evidence["over_admitted"] == 1


def test_429_with_room_in_the_window_is_false():
    verdict = judge(kong([1, 2]) + kong([5], status=429))
    assert verdict.status == "fail"
    assert verdict.evidence["false_rejections"] == 1


def test_429_after_the_limit_is_correct():
    assert judge(kong([1, 2, 3, 4, 5, 6]) + kong([7, 8], status=429)).status == "pass"


def test_429_sent_in_the_next_window_is_false():
    assert judge(kong([1, 2, 3, 4, 5, 6]) + kong([61], status=429)).status == "fail"


def test_monthly_quota():
    verdict = judge(kong([1, 2, 3]), monthly_seeds={"c1": 98.0})
    assert verdict.status == "fail"
    assert verdict.evidence["month_offenders"] == ["c1"]
    assert judge(kong([1, 2]) + kong([3], status=429), monthly_seeds={"c1": 98.0}).status == "pass"


def test_no_data_is_unknown():
    assert judge([]).status == "unknown"
