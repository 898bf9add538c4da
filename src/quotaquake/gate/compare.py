"""Noise-aware comparison of the latest run(s) against a baseline window, per (metric, tags, aggregation).

Two methods, one decision rule:

* ``compare_runs`` (the nightly default) compares per-run values (e.g. each night's p95) with one-sided
  Mann–Whitney U tests at ``alpha``. Run-to-run noise (machine, neighbours) is what a nightly gate must
  see through, and only per-run values show it. The ratio is the Hodges–Lehmann estimate (median of the
  pairwise ratios current/baseline) with bounds from inverting the same tests.
* ``compare_samples`` compares per-request samples of two runs with a seeded percentile bootstrap of the
  ratio of the statistic (``stats.ratio_bootstrap``). It sees only within-run noise, so use it for A/B runs
  on the same machine at the same time, not for nights apart.

Decision, with ``floor`` the minimum effect (default 10 %, settable per metric) and "worse" per metric
(``MetricSpec.worse``: latency and errors higher, throughput and availability lower):

* ``regressed`` (fail): a significant change in the worse direction whose ratio is beyond the floor;
* ``improved`` (pass): the same in the better direction;
* ``unchanged`` (pass): proven not worse than the floor (current significantly better than the baseline
  degraded by the floor: a non-inferiority test), e.g. significant but smaller than the floor;
* ``unknown``: too few runs or samples for the test to ever reach significance (with the counts that
  would), or the data cannot tell a change beyond the floor from noise. Never a pass for lack of data.

Significance is strict (p < ``alpha``): Mann–Whitney's smallest one-sided p-value is 1 / C(m + k, k) for m
baseline and k current runs, so 1 current run needs >= 20 baseline runs at 0.05 (1/20 = 0.05 is not below
it), 2 current runs need >= 5 (1/21), 3 need >= 4 (``runs_needed``). Each key is tested on its own: with
many keys, some are "significant" by chance (about ``alpha`` of those unchanged, less when they move
together, as latencies on one machine do); ``ComparePolicy.fdr`` adjusts the p-values across the keys
(Benjamini–Hochberg), which a large family pays for with more runs.

Ratios are current / baseline, unitless; the bounds are one-sided at ``1 - alpha`` each.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import stats as sps

from quotaquake import stats
from quotaquake.gate.baseline import run_ids
from quotaquake.gate.expressions import METRICS, Tags, Worse, parse_tags_key, tags_key

Change = Literal["regressed", "improved", "unchanged", "unknown"]
Method = Literal["mann-whitney", "bootstrap"]
STATUS_OF_CHANGE: dict[Change, stats.Status] = {
    "regressed": "fail",
    "improved": "pass",
    "unchanged": "pass",
    "unknown": "unknown",
}
ICONS: dict[Change, str] = {"regressed": "❌", "unknown": "❔", "improved": "✅", "unchanged": "✅"}
STEP_SUMMARY_LIMIT_BYTES = 1024 * 1024
F64 = npt.NDArray[np.float64]


@dataclass(frozen=True)
class ComparePolicy:
    """Knobs of the comparison: ``min_effect`` is the relative floor (0.10 = 10 %), overridden per metric
    by ``min_effect_by_metric``; ``alpha`` the one-sided significance level; minimum run counts; bootstrap
    resamples and seed (``compare_samples`` only); ``fdr``: adjust the "worse" and "better" p-values of
    ``compare_runs`` across its keys (Benjamini–Hochberg)."""

    min_effect: float = 0.10
    min_effect_by_metric: Mapping[str, float] = field(default_factory=dict)
    alpha: float = 0.05
    min_baseline_runs: int = 5
    min_current_runs: int = 1
    n_resamples: int = 2000
    seed: int = 0
    fdr: bool = False  # compare_runs: Benjamini–Hochberg across the keys compared (see the module docstring)

    def floor(self, metric: str) -> float:
        """The minimum effect for ``metric`` (a fraction of the baseline)."""
        return self.min_effect_by_metric.get(metric, self.min_effect)


@dataclass(frozen=True)
class Comparison:
    """The comparison of one (metric, tags, aggregation). ``ratio`` is current / baseline with one-sided
    bounds ``low``/``high`` (None where undefined); ``baseline_value``/``current_value`` are the medians of
    the per-run values (or the statistics of the samples); ``p_value`` the one-sided p of "worse"
    (Mann–Whitney only); ``needed_*`` the run (or sample) counts that would make the test possible."""

    metric: str
    tags: Tags
    aggregation: str
    change: Change
    ratio: float | None
    low: float | None
    high: float | None
    baseline_value: float | None
    current_value: float | None
    n_baseline: int
    n_current: int
    min_effect: float
    method: Method
    p_value: float | None
    needed_baseline: int | None
    needed_current: int | None
    reason: str
    p_adjusted: float | None = None  # p_value after Benjamini–Hochberg across the keys (ComparePolicy.fdr)

    @property
    def status(self) -> stats.Status:
        """fail for a regression, unknown for unknown, pass otherwise."""
        return STATUS_OF_CHANGE[self.change]


@dataclass(frozen=True)
class _Key:
    metric: str
    tags: Tags
    aggregation: str


@dataclass(frozen=True)
class _Context:
    """What every result of one comparison shares."""

    key: _Key
    counts: tuple[int, int]
    floor: float
    method: Method
    baseline_value: float | None = None
    current_value: float | None = None

    def unknown(self, reason: str, needed: tuple[int | None, int | None] = (None, None)) -> Comparison:
        """An unknown result without a ratio."""
        return Comparison(
            metric=self.key.metric,
            tags=self.key.tags,
            aggregation=self.key.aggregation,
            change="unknown",
            ratio=None,
            low=None,
            high=None,
            baseline_value=self.baseline_value,
            current_value=self.current_value,
            n_baseline=self.counts[0],
            n_current=self.counts[1],
            min_effect=self.floor,
            method=self.method,
            p_value=None,
            needed_baseline=needed[0],
            needed_current=needed[1],
            reason=reason,
        )


@dataclass(frozen=True)
class _Evidence:
    """What a method found, in the terms of the decision rule."""

    ratio: float
    low: float
    high: float
    worse_significant: bool
    better_significant: bool
    non_inferior: bool
    p_value: float | None
    p_better: float | None = None
    p_adjusted: float | None = None


# --- decision -------------------------------------------------------------------------------------------


def classify(
    worse_significant: bool, better_significant: bool, non_inferior: bool, ratio: float, floor: float, worse: Worse
) -> Change:
    """The decision rule of the module docstring: ``*_significant`` say a test found a change in that
    direction, ``non_inferior`` that the current run(s) are proven better than the baseline degraded by
    ``floor``; ``ratio`` is current / baseline and ``worse`` the direction that is a regression."""
    beyond_worse = ratio > 1 + floor if worse == "higher" else ratio < 1 - floor
    beyond_better = ratio < 1 - floor if worse == "higher" else ratio > 1 + floor
    if worse_significant and beyond_worse:
        return "regressed"
    if better_significant and beyond_better:
        return "improved"
    return "unchanged" if non_inferior else "unknown"


def _decided(context: _Context, evidence: _Evidence, change: Change | None = None, reason: str = "") -> Comparison:
    """The result for ``evidence``, classified by the decision rule unless ``change`` is given."""
    if change is None:
        worse = METRICS[context.key.metric].worse
        change = classify(
            evidence.worse_significant,
            evidence.better_significant,
            evidence.non_inferior,
            evidence.ratio,
            context.floor,
            worse,
        )
    return replace(
        context.unknown(reason or _decision_reason(change, evidence, context.floor)),
        change=change,
        ratio=evidence.ratio,
        low=evidence.low,
        high=evidence.high,
        p_value=evidence.p_value,
        p_adjusted=evidence.p_adjusted,
    )


def _decision_reason(change: Change, evidence: _Evidence, floor: float) -> str:
    shown = f"{_percent(evidence.ratio)} ({_percent(evidence.low)}..{_percent(evidence.high)})"
    if change == "regressed":
        return f"significantly worse by {shown}, beyond the {floor:.0%} floor"
    if change == "improved":
        return f"significantly better by {shown}, beyond the {floor:.0%} floor"
    if change == "unchanged":
        return f"{shown}: proven within the {floor:.0%} floor on the worse side"
    return f"{shown}: cannot tell a change beyond the {floor:.0%} floor from noise; more runs would decide"


def _percent(ratio: float) -> str:
    if not math.isfinite(ratio):
        return "+∞" if ratio > 0 else "n/a"
    return f"{(ratio - 1) * 100:+.1f} %"


# --- per-run values (Mann–Whitney) ----------------------------------------------------------------------


def compare_runs(
    baseline: pd.DataFrame, current: pd.DataFrame, policy: ComparePolicy | None = None
) -> list[Comparison]:
    """Compare every (metric, tags, aggregation) in either frame: per-run values of ``current`` (one or more
    runs) against those of ``baseline`` (store frames, see ``baseline.load``). A key missing on one side is
    unknown. Results are sorted by metric, tags, aggregation."""
    chosen = policy or ComparePolicy()
    base_values, curr_values = _values_by_key(baseline), _values_by_key(current)
    keys = sorted(set(base_values) | set(curr_values), key=lambda k: (k.metric, tags_key(k.tags), k.aggregation))
    empty = np.zeros(0)
    found: dict[_Key, Comparison] = {}
    batches: dict[tuple[int, int], list[_Key]] = {}
    for k in keys:
        base, curr = base_values.get(k, empty), curr_values.get(k, empty)
        if _testable(base, curr, chosen):
            batches.setdefault((len(base), len(curr)), []).append(k)
        else:
            found[k] = compare_values(k.metric, k.tags, k.aggregation, base, curr, chosen)
    for group in batches.values():
        base = np.stack([base_values[k] for k in group])
        curr = np.stack([curr_values[k] for k in group])
        found.update(zip(group, _compare_batch(group, base, curr, chosen), strict=True))
    results = [found[k] for k in keys]
    return adjusted(results, base_values, curr_values, chosen) if chosen.fdr else results


def _testable(base: F64, curr: F64, policy: ComparePolicy) -> bool:
    """Enough runs for the test to decide, and every value > 0 (what ``compare_values`` tests)."""
    m, k = len(base), len(curr)
    if m < policy.min_baseline_runs or k < max(policy.min_current_runs, 1):
        return False
    return stats.mann_whitney_min_p(m, k) < policy.alpha and bool((base > 0).all() and (curr > 0).all())


def _compare_batch(keys: Sequence[_Key], base: F64, curr: F64, policy: ComparePolicy) -> list[Comparison]:
    """``compare_values`` of many keys with the same run counts at once (rows of ``base``/``curr``): the
    same tests and bounds, each scipy call over every key (``mann_whitney_rows``)."""
    higher = np.asarray([METRICS[k.metric].worse == "higher" for k in keys])
    floors = np.asarray([policy.floor(k.metric) for k in keys])
    p_greater = mann_whitney_rows(curr, base, "greater")
    p_less = mann_whitney_rows(curr, base, "less")
    degraded = base * np.where(higher, 1 + floors, 1 - floors)[:, None]
    p_non_inferior = np.where(
        higher, mann_whitney_rows(curr, degraded, "less"), mann_whitney_rows(curr, degraded, "greater")
    )
    p_worse, p_better = np.where(higher, p_greater, p_less), np.where(higher, p_less, p_greater)
    ratios = (curr[:, :, None] / base[:, None, :]).reshape(len(keys), -1)
    low, high = ratio_bounds_rows(base, curr, policy.alpha)
    out = []
    for i, key in enumerate(keys):
        context = _Context(
            key, (base.shape[1], curr.shape[1]), floors[i], "mann-whitney", _median(base[i]), _median(curr[i])
        )
        alpha = policy.alpha
        evidence = _Evidence(
            float(np.median(ratios[i])), float(low[i]), float(high[i]), bool(p_worse[i] < alpha),
            bool(p_better[i] < alpha), bool(p_non_inferior[i] < alpha), float(p_worse[i]), p_better=float(p_better[i]),
        )  # fmt: skip
        out.append(_decided(context, evidence))
    return out


def mann_whitney_rows(x: F64, y: F64, alternative: stats.Alternative) -> F64:
    """One-sided Mann–Whitney p-values of each row of ``x`` against the same row of ``y``, as
    ``stats.mann_whitney`` gives them one by one: scipy picks the exact or the asymptotic method by the
    ties of the whole batch, so rows with ties and rows without are tested apart."""
    ordered = np.sort(np.concatenate([x, y], axis=1), axis=1)
    ties = (np.diff(ordered, axis=1) == 0).any(axis=1)
    p = np.empty(len(x))
    for rows in (ties, ~ties):
        if rows.any():
            p[rows] = sps.mannwhitneyu(x[rows], y[rows], alternative=alternative, axis=1).pvalue
    return p


def ratio_bounds_rows(base: F64, curr: F64, alpha: float) -> tuple[F64, F64]:
    """``stats.mann_whitney_ratio_bounds`` of each row (the tests inverted at every pairwise ratio)."""
    g, m, k = base.shape[0], base.shape[1], curr.shape[1]
    candidates = (curr[:, :, None] / base[:, None, :]).reshape(g, k * m)
    x = np.broadcast_to(curr[:, None, :], (g, k * m, k)).reshape(-1, k)
    below = ((candidates * (1 - 1e-9))[:, :, None] * base[:, None, :]).reshape(-1, m)
    above = ((candidates * (1 + 1e-9))[:, :, None] * base[:, None, :]).reshape(-1, m)
    greater = mann_whitney_rows(x, below, "greater").reshape(g, k * m)
    less = mann_whitney_rows(x, above, "less").reshape(g, k * m)
    low = np.where(greater < alpha, candidates, -np.inf).max(axis=1)
    high = np.where(less < alpha, candidates, np.inf).min(axis=1)
    return np.where(np.isfinite(low), low, 0.0), high


def adjusted(
    results: list[Comparison], base_values: Mapping[_Key, F64], curr_values: Mapping[_Key, F64], policy: ComparePolicy
) -> list[Comparison]:
    """``results`` re-decided with their "worse" and "better" p-values adjusted by Benjamini–Hochberg
    (``scipy.stats.false_discovery_control``) across the keys that were tested."""
    tested = [i for i, r in enumerate(results) if r.p_value is not None and r.method == "mann-whitney"]
    if not tested:
        return results
    evidence = [_evidence_of(results[i], base_values, curr_values, policy) for i in tested]
    p_worse = sps.false_discovery_control([e.p_value for e in evidence])
    p_better = sps.false_discovery_control([e.p_better for e in evidence])
    out = list(results)
    for i, e, worse, better in zip(tested, evidence, p_worse, p_better, strict=True):
        result = results[i]
        fixed = replace(
            e, worse_significant=bool(worse < policy.alpha), better_significant=bool(better < policy.alpha),
            p_adjusted=float(worse),
        )  # fmt: skip
        context = _Context(
            _Key(result.metric, result.tags, result.aggregation),
            (result.n_baseline, result.n_current),
            result.min_effect,
            "mann-whitney",
            result.baseline_value,
            result.current_value,
        )
        out[i] = _decided(context, fixed)
    return out


def _evidence_of(
    result: Comparison, base_values: Mapping[_Key, F64], curr_values: Mapping[_Key, F64], policy: ComparePolicy
) -> _Evidence:
    key = _Key(result.metric, result.tags, result.aggregation)
    base, curr = _finite(base_values[key]), _finite(curr_values[key])
    return _rank_evidence(base, curr, result.min_effect, METRICS[result.metric].worse, policy.alpha)


def _values_by_key(frame: pd.DataFrame) -> dict[_Key, F64]:
    """Finite per-run values per key (one value per run and key)."""
    table = frame.loc[:, ["run_id", "metric", "tags", "aggregation", "value"]]
    if table.duplicated(subset=["run_id", "metric", "tags", "aggregation"]).any():
        raise ValueError("a run has two rows for the same metric, tags and aggregation")
    out: dict[_Key, F64] = {}
    for (metric, tags, aggregation), group in table.groupby(["metric", "tags", "aggregation"], sort=True):
        values = group["value"].to_numpy(dtype=np.float64)
        key = _Key(str(metric), parse_tags_key(str(tags)), str(aggregation))
        out[key] = values[np.isfinite(values)]
    return out


def compare_values(
    metric: str,
    tags: Tags,
    aggregation: str,
    baseline: npt.ArrayLike,
    current: npt.ArrayLike,
    policy: ComparePolicy | None = None,
) -> Comparison:
    """Compare per-run values of one key (Mann–Whitney; see the module docstring)."""
    chosen = policy or ComparePolicy()
    base, curr = _finite(baseline), _finite(current)
    context = _Context(
        _Key(metric, tags, aggregation),
        (len(base), len(curr)),
        chosen.floor(metric),
        "mann-whitney",
        _median(base),
        _median(curr),
    )
    too_few = _too_few_runs(context, chosen)
    if too_few is not None:
        return too_few
    if not (base > 0).all() or not (curr > 0).all():
        return _not_positive(context, base, curr)
    return _decided(context, _rank_evidence(base, curr, context.floor, METRICS[metric].worse, chosen.alpha))


def _median(values: F64) -> float | None:
    return float(np.median(values)) if len(values) else None


def _too_few_runs(context: _Context, policy: ComparePolicy) -> Comparison | None:
    """Unknown when a side is under its minimum or a one-sided test could not reach ``alpha`` at these
    counts (its smallest p-value is 1 / C(m + k, k)); says how many runs would."""
    m, k = context.counts
    possible = stats.mann_whitney_min_p(m, k) < policy.alpha
    if m >= policy.min_baseline_runs and k >= policy.min_current_runs and possible:
        return None
    k_used, m_used = max(k, policy.min_current_runs), max(m, policy.min_baseline_runs)
    need_m = max(policy.min_baseline_runs, runs_needed(k_used, policy.alpha))
    need_k = max(policy.min_current_runs, runs_needed(m_used, policy.alpha))
    reason = (
        f"{m} baseline and {k} current run(s) are too few for a one-sided test at p < {policy.alpha:g}: "
        f"need >= {need_m} baseline runs with {k_used} current, or >= {need_k} current runs with {m_used} baseline"
    )
    return context.unknown(reason, (need_m, need_k))


def runs_needed(n_fixed: int, alpha: float) -> int:
    """The fewest runs on the other side for which a one-sided Mann–Whitney test against ``n_fixed`` runs
    can give p < ``alpha`` (strictly, as the decision rule asks): its smallest p is 1 / C(m + k, k), so 1
    current run needs 20 baseline runs at 0.05 (1/20 is not below 0.05) and 2 current runs need 5 (1/21)."""
    other = 1
    while stats.mann_whitney_min_p(n_fixed, other) >= alpha:
        other += 1
    return other


def _not_positive(context: _Context, base: F64, curr: F64) -> Comparison:
    """Ratios need values > 0: zero in every run on both sides is unchanged, anything else unknown."""
    if not base.any() and not curr.any():
        evidence = _Evidence(1.0, 1.0, 1.0, False, False, True, None)
        return _decided(context, evidence, "unchanged", "0 in every baseline and current run")
    return context.unknown("a run measured 0 (or less): a ratio is undefined; judge it with an absolute threshold")


def _rank_evidence(base: F64, curr: F64, floor: float, worse: Worse, alpha: float) -> _Evidence:
    worse_side: stats.Alternative = "greater" if worse == "higher" else "less"
    better_side: stats.Alternative = "less" if worse == "higher" else "greater"
    degraded = base * (1 + floor if worse == "higher" else 1 - floor)
    p_worse = stats.mann_whitney(curr, base, worse_side).p_value
    p_better = stats.mann_whitney(curr, base, better_side).p_value
    p_non_inferior = stats.mann_whitney(curr, degraded, better_side).p_value
    low, high = stats.mann_whitney_ratio_bounds(base, curr, alpha)
    ratio = stats.hodges_lehmann_ratio(base, curr)
    return _Evidence(
        ratio, low, high, p_worse < alpha, p_better < alpha, p_non_inferior < alpha, p_worse, p_better=p_better
    )


def compare_latest(
    store: pd.DataFrame, k: int = 1, window: int | None = None, policy: ComparePolicy | None = None
) -> list[Comparison]:
    """The newest ``k`` runs of a store frame against the ``window`` runs before them (all when None)."""
    if k < 1:
        raise ValueError("k must be >= 1")
    ids = run_ids(store)
    current_ids = ids[-k:]
    baseline_ids = ids[: max(len(ids) - k, 0)]
    if window is not None:
        baseline_ids = baseline_ids[-window:] if window > 0 else []
    baseline = store[store["run_id"].isin(baseline_ids)]
    current = store[store["run_id"].isin(current_ids)]
    return compare_runs(baseline, current, policy)


# --- per-request samples (bootstrap) --------------------------------------------------------------------


def _statistic_of(aggregation: str) -> float | Literal["mean"]:
    if aggregation == "avg":
        return "mean"
    if aggregation == "med":
        return 50.0
    if aggregation.startswith("p(") and aggregation.endswith(")"):
        q = float(aggregation[2:-1])
        if 0.0 < q < 100.0:
            return q
    raise ValueError(f"samples can be compared on avg, med or p(N) with 0 < N < 100, not {aggregation!r}")


def _min_samples(statistic: float | Literal["mean"], confidence: float) -> int:
    """Fewest samples for which order statistics bound the percentile on both sides (or the t-interval
    minimum for a mean)."""
    if statistic == "mean":
        return stats.MIN_AVG_SAMPLES
    q = float(statistic)
    return stats.min_n_for_upper_bound(max(q, 100.0 - q), confidence)


def compare_samples(
    metric: str,
    tags: Tags | Mapping[str, str],
    aggregation: str,
    baseline: npt.ArrayLike,
    current: npt.ArrayLike,
    policy: ComparePolicy | None = None,
) -> Comparison:
    """Compare per-request samples of one key with the bootstrap ratio (see the module docstring)."""
    chosen = policy or ComparePolicy()
    pairs = tuple(sorted(tags.items())) if isinstance(tags, Mapping) else tuple(sorted(tags))
    statistic = _statistic_of(aggregation)
    base, curr = _finite(baseline), _finite(current)
    context = _Context(_Key(metric, pairs, aggregation), (len(base), len(curr)), chosen.floor(metric), "bootstrap")
    needed = _min_samples(statistic, 1 - chosen.alpha)
    if min(context.counts) < needed:
        m, k = context.counts
        return context.unknown(
            f"{m} baseline and {k} current samples: {aggregation} needs >= {needed} on each side", (needed, needed)
        )
    context = replace(context, baseline_value=_stat_value(base, statistic), current_value=_stat_value(curr, statistic))
    interval = stats.ratio_bootstrap(base, curr, statistic, 1 - chosen.alpha, chosen.n_resamples, chosen.seed)
    if math.isnan(interval.low):
        return context.unknown("the baseline statistic is 0: a ratio is undefined")
    return _decided(context, _bootstrap_evidence(interval, context.floor, METRICS[metric].worse))


def _finite(values: npt.ArrayLike) -> F64:
    array = np.asarray(values, dtype=np.float64).ravel()
    return array[np.isfinite(array)]


def _stat_value(values: F64, statistic: float | Literal["mean"]) -> float:
    if statistic == "mean":
        return float(values.mean())
    return float(np.percentile(values, float(statistic), method="inverted_cdf"))


def _bootstrap_evidence(interval: stats.RatioInterval, floor: float, worse: Worse) -> _Evidence:
    higher_worse = worse == "higher"
    return _Evidence(
        ratio=interval.ratio,
        low=interval.low,
        high=interval.high,
        worse_significant=interval.low > 1 if higher_worse else interval.high < 1,
        better_significant=interval.high < 1 if higher_worse else interval.low > 1,
        non_inferior=interval.high < 1 + floor if higher_worse else interval.low > 1 - floor,
        p_value=None,
    )


# --- GitHub step summary --------------------------------------------------------------------------------

_ORDER: dict[Change, int] = {"regressed": 0, "unknown": 1, "improved": 2, "unchanged": 3}
_HEADER = "| | metric | tags | aggregation | baseline | current | change (bounds) | runs / samples | note |"
_RULE = "|---|---|---|---|---|---|---|---|---|"
MARKDOWN_HEADER = f"{_HEADER}\n{_RULE}"


def markdown_summary(results: Sequence[Comparison], title: str = "quotaquake performance gate") -> str:
    """A GitHub step-summary table (✅ pass, ❌ regressed, ❔ unknown), worst first, at most 1 MiB of UTF-8:
    rows that do not fit are counted in a closing line instead."""
    counts = {change: sum(r.change == change for r in results) for change in _ORDER}
    head = [
        f"### {title}",
        "",
        f"❌ {counts['regressed']} regressed · ❔ {counts['unknown']} unknown · "
        f"✅ {counts['improved']} improved · ✅ {counts['unchanged']} unchanged",
        "",
        _HEADER,
        _RULE,
    ]
    ordered = sorted(results, key=lambda r: (_ORDER[r.change], r.metric, tags_key(r.tags), r.aggregation))
    return _fit("\n".join(head) + "\n", [_row(r) for r in ordered])


def _fit(head: str, rows: Iterable[str]) -> str:
    reserve = 200  # room for the closing "rows not shown" line
    size = len(head.encode())
    kept: list[str] = []
    all_rows = list(rows)
    for line in all_rows:
        line_size = len(line.encode()) + 1
        if size + line_size > STEP_SUMMARY_LIMIT_BYTES - reserve:
            break
        kept.append(line)
        size += line_size
    text = head + "".join(f"{line}\n" for line in kept)
    omitted = len(all_rows) - len(kept)
    if omitted:
        text += f"\n_{omitted} more row(s) not shown: a step summary holds at most 1 MiB._\n"
    return text


def markdown_row(result: Comparison) -> str:
    """One row of the step-summary table (``MARKDOWN_HEADER``)."""
    return _row(result)


def fit_markdown(head: str, rows: Iterable[str]) -> str:
    """``head`` and as many ``rows`` as fit in a step summary (1 MiB of UTF-8), the rest counted."""
    return _fit(head, rows)


def _row(result: Comparison) -> str:
    change = "n/a"
    if result.ratio is not None:
        change = _percent(result.ratio)
        if result.low is not None and result.high is not None:
            change += f" ({_percent(result.low)}..{_percent(result.high)})"
    cells = [
        ICONS[result.change],
        result.metric,
        tags_key(result.tags) or "—",
        result.aggregation,
        _number(result.baseline_value),
        _number(result.current_value),
        change,
        f"{result.n_baseline} / {result.n_current}",
        result.reason,
    ]
    return "| " + " | ".join(_cell(cell) for cell in cells) + " |"


def _number(value: float | None) -> str:
    return "—" if value is None else f"{value:.4g}"


def _cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")
