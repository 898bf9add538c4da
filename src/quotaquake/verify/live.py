"""Judging ``abortOnFail`` thresholds while the load runs, from the history parts written so far.

Every Locust process writes a part each second (``history/part-<worker>-<seq>.parquet``, renamed into place
whole); ``LiveJudge.update`` reads the parts it has not seen (parts are never rewritten), ``judge`` rebuilds
the rows of the abort thresholds' submetrics as ``verify.summary`` does at the end (latency over responses
after the warm-up, rates over every request; ``endpoint``/``tier`` filters, no phases: the fault windows
are known only after the experiment) and the limiter's decision time from a Prometheus snapshot of the run
so far.

A threshold is judged again at every look, so a violation is declared only when it is proven at the
stricter level ``1 - (1 - confidence) / looks`` (Bonferroni over the planned looks): the chance of
stopping a run whose threshold holds stays under ``1 - confidence`` however many looks there are. Only a
proven violation stops a run; a counter's count can only be proven too high (it grows), never too low,
and its rate not at all before the end. k6's ``delayAbortEval`` waits that long after the load's start.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from quotaquake.gate.expressions import Threshold
from quotaquake.gate.summary import (
    SummaryRow,
    ThresholdResult,
    counter_rows,
    evaluate,
    histogram_rows,
    rate_rows,
    summary_frame,
    trend_rows,
)
from quotaquake.runfolder import RunFolder
from quotaquake.runfolder.history import part_paths
from quotaquake.runfolder.models import AbortRecord, PrometheusSnapshot
from quotaquake.verify.data.outcomes import error_mask

NS_PER_S = 1_000_000_000
LIVE_COLUMNS: tuple[str, ...] = ("intended_ns", "sent_ns", "latency_ms", "status", "endpoint", "tier")
F64 = npt.NDArray[np.float64]


@dataclass
class LiveJudge:
    """The abort thresholds of one run and the history read so far. ``looks``: how many times the run will
    be judged (the stricter level above); ``warmup_s``: ``slo.warmup_s``."""

    folder: RunFolder
    thresholds: Sequence[Threshold]
    confidence: float
    warmup_s: float
    looks: int
    seen: set[Path] = field(default_factory=set)
    tables: list[pa.Table] = field(default_factory=list)

    @property
    def look_confidence(self) -> float:
        """The one-sided level each look judges at (Bonferroni over ``looks``)."""
        return 1.0 - (1.0 - self.confidence) / max(self.looks, 1)

    def update(self) -> int:
        """Read the parts not read yet; returns how many rows they added. A part that cannot be read yet
        (a foreign file) is tried again at the next look."""
        added = 0
        for path in part_paths(self.folder.history_dir):
            if path in self.seen:
                continue
            try:
                table = pq.read_table(path, columns=list(LIVE_COLUMNS))
            except (OSError, pa.ArrowException):
                continue
            self.seen.add(path)
            self.tables.append(table)
            added += table.num_rows
        return added

    def judge(self, elapsed_s: float, snapshot: PrometheusSnapshot | None = None) -> list[ThresholdResult]:
        """Each threshold whose ``delayAbortEval`` has passed and that the rows so far can decide, judged on
        them (each on its own: a count judged for "too many" says nothing yet of "too few")."""
        history = pa.concat_tables(self.tables) if self.tables else None
        results: list[ThresholdResult] = []
        for threshold in self.thresholds:
            if elapsed_s < (threshold.delay_abort_s or 0.0) or not _decidable_now(threshold):
                continue
            if threshold.metric == "qq_limiter_decision_ms":
                rows = self._limiter_rows(threshold, snapshot)
            else:
                rows = self._history_rows(threshold, history) if history is not None and history.num_rows else []
            results += evaluate([threshold], summary_frame(rows))
        return results

    def first_violation(
        self, elapsed_s: float, snapshot: PrometheusSnapshot | None = None
    ) -> tuple[ThresholdResult, AbortRecord] | None:
        """The first threshold proven broken now, with the record ``run.json`` keeps; ``None`` if none is."""
        for result in self.judge(elapsed_s, snapshot):
            if result.status == "fail":
                record = AbortRecord(
                    at=datetime.now(UTC),
                    after_s=round(elapsed_s, 3),
                    threshold=result.threshold.label,
                    reason=result.reason,
                    value=result.value,
                    low=_finite(result.low),
                    high=_finite(result.high),
                    n=result.n,
                    confidence=self.look_confidence,
                )
                return result, record
        return None

    def _limiter_rows(self, threshold: Threshold, snapshot: PrometheusSnapshot | None) -> list[SummaryRow]:
        if snapshot is None or not snapshot.decision_buckets:
            return []
        buckets = {float(le) * 1e3: count for le, count in snapshot.decision_buckets.items()}
        return histogram_rows(threshold.metric, (), buckets, (threshold.aggregation,), self.look_confidence)

    def _history_rows(self, threshold: Threshold, history: pa.Table) -> list[SummaryRow]:
        chosen = _filtered(history, threshold)
        status = np.asarray(chosen.column("status").to_numpy(zero_copy_only=False), dtype=np.int32)
        sent = np.asarray(chosen.column("sent_ns").to_numpy(zero_copy_only=False), dtype=np.int64)
        intended = np.asarray(chosen.column("intended_ns").to_numpy(zero_copy_only=False), dtype=np.int64)
        latency = np.asarray(chosen.column("latency_ms").to_numpy(zero_copy_only=False), dtype=np.float64)
        first = int(np.asarray(history.column("intended_ns").to_numpy(zero_copy_only=False)).min())
        steady = sent >= first + round(self.warmup_s * NS_PER_S)
        metric, tags, aggregation = threshold.metric, threshold.tags, (threshold.aggregation,)
        confidence = self.look_confidence
        if metric == "http_req_duration":
            return trend_rows(metric, tags, latency[steady & (status != 0)], aggregation, confidence)
        if metric == "qq_req_duration_intended":
            corrected = (sent - intended) / 1e6 + latency
            return trend_rows(metric, tags, corrected[steady & (status != 0)], aggregation, confidence)
        if metric == "qq_generator_lag_ms":
            return trend_rows(metric, tags, ((sent - intended) / 1e6)[steady], aggregation, confidence)
        if metric == "http_req_failed":
            return rate_rows(metric, tags, int(error_mask(status).sum()), len(status), confidence)
        if metric == "qq_rejected_ratio":
            return rate_rows(metric, tags, int((status == 429).sum()), len(status), confidence)
        if metric == "http_reqs":
            return counter_rows(metric, tags, len(status), len(status))
        return []


def _decidable_now(threshold: Threshold) -> bool:
    """Whether rows so far can prove the threshold broken: a count only grows, so only "too many" can
    (``<``, ``<=``); a counter's rate is known only at the end."""
    if threshold.metric != "http_reqs":
        return True
    return threshold.aggregation == "count" and threshold.operator in ("<", "<=")


def _filtered(history: pa.Table, threshold: Threshold) -> pa.Table:
    """The rows matching the threshold's ``endpoint``/``tier`` filters."""
    mask: pa.ChunkedArray | None = None
    for key, value in threshold.tags:
        matches = pc.equal(history.column(key), pa.scalar(value))
        mask = matches if mask is None else pc.and_(mask, matches)
    return history if mask is None else history.filter(pc.fill_null(mask, False))


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else value
