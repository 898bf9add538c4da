"""Generator health: was the load generator, not the system under test, the bottleneck?

Lag is ``sent - intended`` (ms). Rates are peak rates over ``RATE_WINDOW_S`` windows (req/s), so shaped
loads (spikes, ramps) compare like with like: the achieved rate (send times) must reach
``generator.min_rate_fraction`` of the scheduled rate (intended times, the open-model schedule the
scenario asked for; ``target_rate`` is reported next to it). When the lag p99 exceeds
``generator.max_lag_p99_ms`` or the achieved peak falls short, the generator could not keep the schedule:
latency verdicts become unknown, and so does this check (the SUT is not to blame, but the run did not
test it as intended).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from quotaquake.verify.data.rundata import RunData
from quotaquake.verify.thresholds import Thresholds
from quotaquake.verify.verdict import Verdict

CHECK = "generator-health"
RATE_WINDOW_S = 5.0


@dataclass(frozen=True)
class GeneratorHealth:
    rows: int
    lag_p99_ms: float | None
    achieved_rate: float | None  # peak send rate, req/s
    scheduled_rate: float | None  # peak intended rate, req/s
    target_rate: float | None
    problems: tuple[str, ...]

    @property
    def saturated(self) -> bool:
        return bool(self.problems)


def peak_send_rate(times_ns: npt.NDArray[np.int64], window_s: float = RATE_WINDOW_S) -> float | None:
    """Requests per second in the busiest ``window_s`` window of ``times_ns`` (any order; the whole span
    if shorter); ``None`` for fewer than 2 rows."""
    if len(times_ns) < 2:
        return None
    first, last = int(times_ns.min()), int(times_ns.max())
    span_s = (last - first) / 1e9
    if span_s <= window_s:
        return (len(times_ns) - 1) / span_s if span_s > 0 else None
    bins = (times_ns - first) // int(window_s * 1e9)
    full = int(span_s // window_s)  # the last, partial window is left out
    counts = np.bincount(bins, minlength=full + 1)[:full]
    return float(counts.max()) / window_s


def generator_health(run: RunData, thresholds: Thresholds) -> GeneratorHealth:
    history = run.history
    rows = len(history)
    target = run.info.target_rate
    if rows == 0:
        return GeneratorHealth(0, None, None, None, target, ())
    intended = np.asarray(history["intended_ns"])
    sent = np.asarray(history["sent_ns"])
    lag_p99 = float(np.percentile((sent - intended) / 1e6, 99.0, method="inverted_cdf"))
    achieved = peak_send_rate(sent)
    scheduled = peak_send_rate(intended)
    problems: list[str] = []
    if lag_p99 > thresholds.generator.max_lag_p99_ms:
        problems.append(f"lag p99 {lag_p99:.1f} ms > {thresholds.generator.max_lag_p99_ms:g} ms")
    if scheduled is not None and achieved is not None:
        floor = thresholds.generator.min_rate_fraction * scheduled
        if achieved < floor:
            problems.append(f"achieved peak {achieved:.1f} req/s < {floor:.1f} of the scheduled {scheduled:.1f}")
    return GeneratorHealth(rows, round(lag_p99, 3), achieved, scheduled, target, tuple(problems))


def check_generator_health(run: RunData, thresholds: Thresholds) -> Verdict:
    health = generator_health(run, thresholds)
    evidence: dict[str, object] = {
        "rows": health.rows,
        "lag_p99_ms": health.lag_p99_ms,
        "achieved_rate": health.achieved_rate,
        "scheduled_rate": health.scheduled_rate,
        "target_rate": health.target_rate,
        "max_lag_p99_ms": thresholds.generator.max_lag_p99_ms,
        "min_rate_fraction": thresholds.generator.min_rate_fraction,
        "problems": list(health.problems),
    }
    if health.rows < 2:
        return Verdict(CHECK, "unknown", "too few requests to judge the generator", evidence)
    if health.saturated:
        return Verdict(CHECK, "unknown", "generator was the bottleneck: " + "; ".join(health.problems), evidence)
    rate = "" if health.achieved_rate is None else f", peak {health.achieved_rate:.1f} req/s"
    return Verdict(CHECK, "pass", f"generator kept the schedule: lag p99 {health.lag_p99_ms} ms{rate}", evidence)
