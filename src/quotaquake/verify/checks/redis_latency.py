"""A slow Redis (fault windows of kind ``latency``: every command delayed by ``delay_ms`` in the Redis proxy,
``quotaquake.faults.latency``) against the policy's ``redis_timeout_ms`` T.

Per window, after the first T of it (decisions already waiting when the delay switched):

* declared behaviour, from the history's rate-limited requests (rate-limit headers present): with a delay
  at or above T every Redis call outlasts the timeout, so decisions degrade as the policy declares (under
  fail-closed the rate-limited requests get 503). A reply that arrives within the event loop's timer
  resolution (``TIMER_RESOLUTION_MS``: libuv keeps milliseconds) of the timeout may still beat the timer,
  so with a delay of at least T + that resolution at most ``SHARE_TOLERANCE`` of the decisions may be
  shared (decided on Redis: the limiter waited past its timeout), and with a delay closer to T (Envoy adds
  0-5.5 ms: most replies still come after the timer) most of them must be degraded. With a delay below T
  no call times out: at most ``SHARE_TOLERANCE`` may be degraded (the limiter gave up before its declared
  timeout). Fewer than ``MIN_DECISIONS`` rate-limited requests: unknown;
* the limiter's decision time inside the window (its own histogram, read from every limiter when the delay
  was switched on and off: exact counts): the p99 is at most 2 T (``latency.judge_histogram``, one-sided
  ``slo.confidence`` bounds): no decision waits much past the timeout;
* the gateway's p95/p99 over the window's answered requests (actual latency), reported beside the p99 of
  the requests outside every fault window; the window's p99 is judged (``stats.judge_percentile``, <=)
  against that baseline + min(delay, 2 T) + ``ENVOY_JITTER_MS`` (Envoy's delay runs up to 5.5 ms long,
  docs/research/failover-and-k6.md section 3) + ``GATEWAY_SLACK_MS``.

The degradation check judges the same windows' availability and recovery (a delay below T declares no
degradation: ``available``).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from quotaquake.runfolder.models import Expectation, FaultKind, FaultWindow
from quotaquake.stats import judge_percentile
from quotaquake.verify.checks.latency import judge_histogram
from quotaquake.verify.checks.percentiles import exact_percentiles
from quotaquake.verify.data.rundata import RunData, fault_bounds_ns
from quotaquake.verify.thresholds import Thresholds
from quotaquake.verify.verdict import Status, Verdict, as_status, compose

CHECK = "redis-latency"
SHARE_TOLERANCE = 0.01  # decisions on the wrong side of the timeout tolerated
TIMER_RESOLUTION_MS = 2.0  # libuv's timers keep whole milliseconds (and fire at or after their time)
MIN_DECISIONS = 20  # rate-limited requests in a window below which its declared behaviour is not judged
ENVOY_JITTER_MS = 6.0
GATEWAY_SLACK_MS = 10.0
NS = 1_000_000_000
Bools = npt.NDArray[np.bool_]


def check_redis_latency(run: RunData, thresholds: Thresholds) -> Verdict:
    windows = [w for w in run.faults if w.kind is FaultKind.LATENCY]
    if not windows:
        return Verdict(CHECK, "not-applicable", "no Redis latency fault in this run", {"windows": []})
    timeout_ms = float(run.info.policy.degradation.redis_timeout_ms)
    baseline = _baseline_p99(run)
    rows = [_judge(run, thresholds, w, timeout_ms, baseline) for w in windows]
    status = compose(as_status(r["status"]) for r in rows)
    summary = "; ".join(str(r["summary"]) for r in rows)
    return Verdict(CHECK, status, summary, {"timeout_ms": timeout_ms, "baseline_p99_ms": baseline, "windows": rows})


def outside_latency_faults(buckets: dict[str, float], faults: list[FaultWindow]) -> tuple[dict[str, float], int]:
    """A run's cumulative decision buckets without the decisions made inside latency-fault windows (whose
    histograms the fault recorded), and how many were taken out; the run's buckets unchanged when a window
    has no histogram or it does not fit (more than the run's in a bucket)."""
    removed = 0
    result = dict(buckets)
    for window in faults:
        inside = (window.details or {}).get("limiter_buckets") if window.kind is FaultKind.LATENCY else None
        if not isinstance(inside, dict):
            continue
        counts = {str(k): float(v) for k, v in inside.items() if isinstance(v, int | float)}
        if any(result.get(k, 0.0) < v for k, v in counts.items()):
            return dict(buckets), 0
        result = {k: v - counts.get(k, 0.0) for k, v in result.items()}
        removed += int(counts.get("+Inf", 0.0))
    return result, removed


def _baseline_p99(run: RunData) -> float | None:
    """p99 (ms) of the answered requests sent outside every fault window."""
    latency = np.asarray(run.history["latency_ms"], dtype=np.float64)
    answered = (np.asarray(run.history["status"]) != 0) & ~run.in_fault
    return exact_percentiles(latency[answered])["p99"]


def _delay(window: FaultWindow) -> float | None:
    value = (window.details or {}).get("delay_ms")
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _judge(
    run: RunData, thresholds: Thresholds, window: FaultWindow, timeout_ms: float, baseline: float | None
) -> dict[str, object]:
    delay = _delay(window)
    row: dict[str, object] = {"fault": window.name, "delay_ms": delay, "expect": str(window.expect)}
    if delay is None:
        return {**row, "status": "unknown", "summary": f"{window.name}: the delay was not recorded"}
    if (window.details or {}).get("proxy_restarted") is True:
        why = (
            f"{window.name}: the Redis proxy was dead when the rollback came (it restarted it), so the window "
            "was an outage of unknown length, not a delay; its logs are in stack-logs/; run the experiment again"
        )
        return {**row, "proxy_restarted": True, "status": "unknown", "summary": why}
    start, end = fault_bounds_ns(window)
    sent = np.asarray(run.history["sent_ns"])
    inside = (sent >= start + int(timeout_ms * 1e6)) & (sent <= end)
    parts = [
        _declared(run, window, inside, delay, timeout_ms),
        _decision_time(window, timeout_ms, thresholds.slo.confidence),
        _gateway(run, inside, delay, timeout_ms, baseline, thresholds.slo.confidence),
    ]
    for part in parts:
        row |= {k: v for k, v in part.items() if k not in ("status", "problem")}
    problems = [str(p["problem"]) for p in parts if p.get("problem")]
    status: Status = compose(as_status(p["status"]) for p in parts)
    story = (
        f"+{delay:g} ms (timeout {timeout_ms:g} ms): {row.get('degraded_share_text')}, limiter decision p99 "
        f"<= {row.get('decision_p99_bound_ms')} ms, gateway p95 {row.get('gateway_p95_ms')} / p99 "
        f"{row.get('gateway_p99_ms')} ms (outside faults p99 {baseline} ms)"
    )
    summary = f"{window.name}: " + ("; ".join(problems) if problems else story)
    return {**row, "status": status, "summary": summary}


def _declared(run: RunData, window: FaultWindow, inside: Bools, delay: float, timeout_ms: float) -> dict[str, object]:
    """Degraded (or 503) when the delay reaches the timeout, shared below it."""
    status = np.asarray(run.history["status"])
    limited = inside & np.isfinite(np.asarray(run.history["rl_limit"], dtype=np.float64))
    decided = limited & (((status >= 200) & (status < 300)) | (status == 429))
    degraded = decided & run.degraded
    n = int(decided.sum())
    refused = int((inside & (status == 503)).sum())
    part: dict[str, object] = {"rate_limited_decisions": n, "degraded": int(degraded.sum()), "inside_503": refused}
    if window.expect is Expectation.FAIL_CLOSED:
        if not refused:
            return {
                **part,
                "status": "fail",
                "problem": "fail-closed policy but no 503 while Redis was slower than the timeout",
            }
        return {**part, "status": "pass", "degraded_share_text": f"{refused} declared 503(s)"}
    if n < MIN_DECISIONS:
        why = f"{n} rate-limited decision(s) in the window: too few to show the declared behaviour ({MIN_DECISIONS})"
        return {**part, "status": "unknown", "problem": why, "degraded_share_text": why}
    share = int(degraded.sum()) / n
    part["degraded_share"] = round(share, 6)
    part["degraded_share_text"] = f"{share:.1%} of {n} rate-limited decisions degraded"
    shared = 1.0 - share
    if delay >= timeout_ms + TIMER_RESOLUTION_MS and shared > SHARE_TOLERANCE:
        problem = (
            f"Redis {delay:g} ms slow > timeout {timeout_ms:g} ms, yet {shared:.1%} of rate-limited decisions "
            "waited for it (shared): the timeout is not honoured"
        )
        return {**part, "status": "fail", "problem": problem}
    if timeout_ms <= delay < timeout_ms + TIMER_RESOLUTION_MS and shared >= 0.5:
        problem = (
            f"Redis {delay:g} ms slow, at the timeout {timeout_ms:g} ms, yet most rate-limited decisions "
            f"({shared:.1%}) waited for it (shared): the timeout is not honoured"
        )
        return {**part, "status": "fail", "problem": problem}
    if delay < timeout_ms and share > SHARE_TOLERANCE:
        problem = (
            f"Redis {delay:g} ms slow < timeout {timeout_ms:g} ms, yet {share:.1%} of rate-limited decisions "
            "degraded: the limiter gave up before its declared timeout"
        )
        return {**part, "status": "fail", "problem": problem}
    return {**part, "status": "pass"}


def _decision_time(window: FaultWindow, timeout_ms: float, confidence: float) -> dict[str, object]:
    """The limiters' decisions inside the window: p99 <= 2 x the timeout."""
    buckets = (window.details or {}).get("limiter_buckets")
    if not isinstance(buckets, dict) or not buckets:
        return {"status": "unknown", "problem": "the limiters' decision histograms were not recorded"}
    counts = {str(le): float(v) for le, v in buckets.items() if isinstance(v, int | float)}
    limit = 2 * timeout_ms
    judged = judge_histogram(counts, 99.0, limit, confidence)
    if judged is None:
        return {"status": "unknown", "problem": "no limiter decision inside the window"}
    part: dict[str, object] = {
        "decisions": judged.n,
        "decision_p99_bound_ms": judged.high_ms,
        "decisions_within_2x_timeout": judged.within,
    }
    if judged.status == "fail":
        problem = f"limiter decision p99 > {limit:g} ms (2 x timeout): decisions waited past the timeout"
        return {**part, "status": "fail", "problem": problem}
    if judged.status == "unknown":
        return {
            **part,
            "status": "unknown",
            "problem": f"{judged.n} decisions cannot show a p99 (need {judged.needed_n})",
        }
    return {**part, "status": "pass"}


def _gateway(
    run: RunData, inside: Bools, delay: float, timeout_ms: float, baseline: float | None, confidence: float
) -> dict[str, object]:
    """p95/p99 of the window's answered requests; the p99 against baseline + min(delay, 2 T) + jitter + slack."""
    status = np.asarray(run.history["status"])
    latency = np.asarray(run.history["latency_ms"], dtype=np.float64)[inside & (status != 0)]
    percentiles = exact_percentiles(latency)
    part: dict[str, object] = {"gateway_p95_ms": percentiles["p95"], "gateway_p99_ms": percentiles["p99"]}
    if baseline is None:
        return {**part, "status": "unknown", "problem": "no request outside fault windows to compare the gateway with"}
    bound = baseline + min(delay, 2 * timeout_ms) + ENVOY_JITTER_MS + GATEWAY_SLACK_MS
    judged = judge_percentile(latency, 99.0, bound, confidence, strict=False)
    part["gateway_p99_bound_ms"] = round(bound, 3)
    if judged.status == "fail":
        problem = (
            f"gateway p99 {judged.estimate:.1f} ms > {bound:.1f} ms (outside faults {baseline:g} + the delay, capped)"
        )
        return {**part, "status": "fail", "problem": problem}
    if judged.status == "unknown":
        return {**part, "status": "unknown", "problem": f"gateway p99 not decided at {judged.n} requests"}
    return {**part, "status": "pass"}
