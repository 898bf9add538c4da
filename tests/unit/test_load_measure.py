"""The steady-rate and lag measures of a recorded history."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from quotaquake.load.measure import arrival_stats, steady_rate


def test_steady_rate_ignores_start_and_stop_transients() -> None:
    steady = np.arange(0, 10_000_000_000, 1_000_000)  # 1000 req/s for 10 s
    ramp = np.arange(-1_000_000_000, 0, 4_000_000)  # 250 req/s for the first second
    sent = np.concatenate([ramp, steady])
    assert steady_rate(sent, trim_s=1.0) == pytest.approx(1000, rel=0.001)
    assert len(sent) / ((sent.max() - sent.min()) / 1e9) < 950
    assert np.isnan(steady_rate(sent[:3], trim_s=1.0))


def test_arrival_stats_lag() -> None:
    frame = pd.DataFrame({"intended_ns": [0, 10_000_000, 20_000_000], "sent_ns": [0, 30_000_000, 20_500_000]})
    stats = arrival_stats(frame)
    assert stats.requests == 3
    assert stats.lag_max_ms == pytest.approx(20.0)
    assert stats.late_over_10ms == pytest.approx(1 / 3)
