"""Statistics behind the verdicts: confidence bounds that decide pass / fail / unknown, and tests for change.

Conventions used throughout:

* **One-sided bounds.** Every bound is a one-sided bound at ``confidence``: the true value is <= ``high``
  with probability >= ``confidence``, and >= ``low`` with probability >= ``confidence``. A verdict uses one of
  them (pass: the bound on the good side is inside the limit; fail: the bound on the bad side is outside),
  so each wrong conclusion has probability <= 1 - ``confidence``. Read as a pair, ``(low, high)`` is a
  two-sided interval at level ``2 x confidence - 1`` (90 % for the default 95 %).
* **Percentiles** ``q`` are in percent (``99.0`` is p99), as in k6's ``p(N)`` and ``verify``'s percentiles;
  point estimates are nearest-rank order statistics (numpy ``method="inverted_cdf"``), never interpolated.
* **Unknown** says how much data would decide: ``needed_n`` is the smallest sample size at which, with the
  same observed rate (or the same fraction of samples within the limit), the bound would decide; ``None``
  when it never would (the observation sits exactly on the limit). A projection keeps the observed rate
  (allowing a fractional failure count) or fraction and searches whole sample sizes up to ``MAX_N``.
* Results are plain floats (no rounding); infinite bounds mean "no bound exists at this sample size".
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy import special
from scipy import stats as sps

Status = Literal["pass", "fail", "unknown"]
RateMethod = Literal["wilson", "clopper-pearson"]
Alternative = Literal["two-sided", "less", "greater"]
F64 = npt.NDArray[np.float64]

MAX_N = 10**12
"""Largest sample size a projection searches; beyond it ``needed_n`` is ``None`` (never, in practice)."""

MAX_RANK_INVERSION_CELLS = 20_000_000
"""Largest ``m x m x k`` (baseline, baseline, current counts) ``mann_whitney_ratio_bounds`` accepts: the
tests run on an (m x k) x m array, ~160 MB of float64 at this size."""

MIN_AVG_SAMPLES = 30
"""Fewest samples for a t-interval of a mean (central-limit rule of thumb); fewer give infinite bounds."""


@dataclass(frozen=True)
class Judgement:
    """A verdict on one estimate against one limit.

    ``estimate`` is the point estimate (NaN when ``n == 0``); ``low``/``high`` the one-sided bounds at the
    judged confidence; ``needed_n`` is only set when ``status == "unknown"`` (see the module docstring).
    """

    status: Status
    estimate: float
    low: float
    high: float
    n: int
    needed_n: int | None = None


@dataclass(frozen=True)
class RankTest:
    """A Mann–Whitney U test of ``x`` against ``y``: U of ``x``, its p-value and both sample sizes."""

    statistic: float
    p_value: float
    n_x: int
    n_y: int
    alternative: Alternative


@dataclass(frozen=True)
class RatioInterval:
    """``ratio = stat(current) / stat(baseline)`` with one-sided percentile-bootstrap bounds at ``confidence``.

    ``low``/``high`` are NaN when the baseline statistic is 0 (the ratio is undefined).
    """

    ratio: float
    low: float
    high: float
    n_baseline: int
    n_current: int
    confidence: float


# --- shared helpers -------------------------------------------------------------------------------------


def check_confidence(confidence: float) -> None:
    """Raise ``ValueError`` unless 0.5 < ``confidence`` < 1 (a one-sided level; 0.95 is the default)."""
    if not 0.5 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0.5, 1), got {confidence}")


def _check_percentile(q: float) -> None:
    if not 0.0 < q < 100.0:
        raise ValueError(f"percentile q must be in (0, 100) percent, got {q}")


def _smallest_n(decides: Callable[[int], bool], known_undecided: int) -> int | None:
    """The smallest n > ``known_undecided`` with ``decides(n)``: doubling, then bisection (assumes ``decides``
    is monotone in n, as widths of confidence bounds are up to the discreteness of ranks); ``None`` past
    ``MAX_N``."""
    lo, hi = known_undecided, max(known_undecided + 1, 1)
    while not decides(hi):
        if hi >= MAX_N:
            return None
        lo, hi = hi, min(hi * 2, MAX_N)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if decides(mid) else (mid, hi)
    return hi


# --- rates ----------------------------------------------------------------------------------------------


def rate_bounds(
    failures: int, n: int, confidence: float = 0.95, method: RateMethod = "clopper-pearson"
) -> tuple[float, float]:
    """One-sided bounds ``(low, high)`` at ``confidence`` on a binomial rate (``failures`` of ``n``).

    Clopper–Pearson is exact (never below the nominal level); Wilson is shorter and approximate. Both come
    from ``scipy.stats.binomtest(...).proportion_ci`` at the two-sided level ``2 x confidence - 1``, whose
    two ends are exactly the one-sided bounds at ``confidence``. ``n == 0`` gives ``(0, 1)``.
    """
    check_confidence(confidence)
    if n < 0 or not 0 <= failures <= n:
        raise ValueError(f"need 0 <= failures <= n, got failures={failures}, n={n}")
    if n == 0:
        return 0.0, 1.0
    scipy_method = "exact" if method == "clopper-pearson" else "wilson"
    ci = sps.binomtest(failures, n).proportion_ci(confidence_level=2 * confidence - 1, method=scipy_method)
    return float(ci.low), float(ci.high)


def projected_rate_bounds(
    rate: float, n: int, confidence: float = 0.95, method: RateMethod = "clopper-pearson"
) -> tuple[float, float]:
    """The bounds ``rate_bounds`` would give for ``rate x n`` failures in ``n``, allowing a fractional count.

    Used to project the same observed rate to other sample sizes; at whole counts it equals
    ``rate_bounds`` (Clopper–Pearson via beta quantiles, Wilson via its score-interval formula).
    """
    x = rate * n
    if method == "clopper-pearson":
        low = 0.0 if x <= 0 else float(sps.beta.ppf(1 - confidence, x, n - x + 1))
        high = 1.0 if x >= n else float(sps.beta.ppf(confidence, x + 1, n - x))
        return low, high
    z = float(sps.norm.ppf(confidence))
    denominator = 1 + z * z / n
    centre = (rate + z * z / (2 * n)) / denominator
    half = z / denominator * math.sqrt(rate * (1 - rate) / n + z * z / (4 * n * n))
    return max(centre - half, 0.0), min(centre + half, 1.0)


def needed_rate_n(
    rate: float, n: int, limit: float, confidence: float = 0.95, method: RateMethod = "clopper-pearson"
) -> int | None:
    """The smallest sample size > ``n`` at which the same observed ``rate`` would decide against ``limit``.

    Below the limit the upper bound must fall under it; above, the lower bound must rise over it.
    ``None`` when ``rate == limit`` (no sample size decides) or past ``MAX_N``.
    """
    if rate == limit:
        return None

    def decides(m: int) -> bool:
        low, high = projected_rate_bounds(rate, m, confidence, method)
        return high < limit if rate < limit else low > limit

    return _smallest_n(decides, n)


def judge_rate(
    failures: int,
    n: int,
    limit: float,
    confidence: float = 0.95,
    method: RateMethod = "clopper-pearson",
) -> Judgement:
    """An error rate against ``limit``: pass when the one-sided upper bound < ``limit``, fail when the
    one-sided lower bound > ``limit``, unknown otherwise (with ``needed_n``).

    With ``n == 0`` the projection assumes no failures: ``needed_n`` is then the fewest requests that could
    ever pass (e.g. 2,995 for a 0.1 % limit at 95 %, since 1 - 0.05^(1/2995) < 0.001).
    """
    low, high = rate_bounds(failures, n, confidence, method)
    estimate = failures / n if n else math.nan
    if high < limit:
        return Judgement("pass", estimate, low, high, n)
    if low > limit:
        return Judgement("fail", estimate, low, high, n)
    needed = needed_rate_n(failures / n if n else 0.0, n, limit, confidence, method)
    return Judgement("unknown", estimate, low, high, n, needed)


# --- percentiles ----------------------------------------------------------------------------------------


def order_statistic_ranks(n: int, q: float, confidence: float = 0.95) -> tuple[int | None, int | None]:
    """1-based ranks ``(l, u)`` of the order statistics that bound the q-th percentile, one-sided each.

    Distribution-free (any continuous or discrete distribution): with ``K ~ Binomial(n, q/100)``,
    ``P(x_(u) >= ξ_q) >= P(K <= u - 1)``, so ``u`` is the smallest rank with ``binom.cdf(u - 1) >=
    confidence``; ``P(x_(l) <= ξ_q) >= 1 - P(K <= l - 1)``, so ``l`` is the largest rank with
    ``binom.cdf(l - 1) <= 1 - confidence``. ``None`` when the rank would fall outside ``1..n``: then no
    order statistic bounds the percentile on that side at this ``n``. Example: n = 20, median, 95 % ->
    (6, 15).
    """
    check_confidence(confidence)
    _check_percentile(q)
    if n <= 0:
        return None, None
    p = q / 100.0
    upper = int(sps.binom.ppf(confidence, n, p)) + 1
    lower = int(sps.binom.ppf(1 - confidence, n, p))
    return (lower if lower >= 1 else None), (upper if upper <= n else None)


def min_n_for_upper_bound(q: float, confidence: float = 0.95) -> int:
    """The fewest samples for which the sample maximum bounds the q-th percentile from above:
    the smallest n with ``1 - (q/100)^n >= confidence`` (p99 at 95 %: 299)."""
    check_confidence(confidence)
    _check_percentile(q)
    return math.ceil(math.log(1 - confidence) / math.log(q / 100.0) - 1e-12)


def nearest_rank(n: int, q: float) -> int:
    """The 1-based nearest rank of the q-th percentile among n samples: ``max(ceil(q/100 x n), 1)``, as in
    ``verify``'s exact percentiles."""
    return max(math.ceil(q / 100.0 * n), 1)


def _finite_sorted(values: npt.ArrayLike) -> F64:
    array = np.asarray(values, dtype=np.float64).ravel()
    return np.sort(array[~np.isnan(array)])


def sorted_percentile_bounds(ordered: F64, q: float, confidence: float = 0.95) -> tuple[float, float]:
    """``percentile_bounds`` of values already sorted ascending and free of NaN."""
    lower, upper = order_statistic_ranks(len(ordered), q, confidence)
    low = float(ordered[lower - 1]) if lower is not None else -math.inf
    high = float(ordered[upper - 1]) if upper is not None else math.inf
    return low, high


def percentile_bounds(values: npt.ArrayLike, q: float, confidence: float = 0.95) -> tuple[float, float]:
    """Distribution-free one-sided bounds ``(low, high)`` on the q-th percentile (q in percent) from order
    statistics (see ``order_statistic_ranks``); NaN values are ignored. ``-inf``/``inf`` where no order
    statistic bounds it (too few samples)."""
    return sorted_percentile_bounds(_finite_sorted(values), q, confidence)


def needed_percentile_n(within: float, q: float, confidence: float = 0.95, n: int = 0) -> int | None:
    """The smallest sample size > ``n`` at which a sample with the same fraction ``within`` of values inside
    the limit would decide the q-th percentile against it (``None`` when ``within == q/100``).

    Pass needs the upper rank ``u(m) <= floor(within x m)``; fail needs the lower rank ``l(m) >
    ceil(within x m)`` (rounded towards not deciding).
    """
    p = q / 100.0
    if within == p:
        return None

    def decides(m: int) -> bool:
        lower, upper = order_statistic_ranks(m, q, confidence)
        if within > p:
            return upper is not None and upper <= math.floor(within * m)
        return lower is not None and lower > math.ceil(within * m)

    return _smallest_n(decides, n)


def judge_percentile(
    values: npt.ArrayLike, q: float, limit_ms: float, confidence: float = 0.95, strict: bool = True
) -> Judgement:
    """The q-th percentile of ``values`` (ms) against ``limit_ms``.

    ``strict=True`` reads the SLO as ``p(q) < limit`` (k6's ``p(95)<50``): pass when the upper-bound order
    statistic is < limit, fail when the lower-bound order statistic is >= limit (a proven violation).
    ``strict=False`` reads ``p(q) <= limit``: pass on upper <= limit, fail on lower > limit. Decisions compare
    ranks with the count of values within the limit, so ties at the limit are exact. Too few samples for an
    upper bound (the needed rank exceeds n) is unknown, with ``needed_n`` (p99 with every value within the
    limit: 299 at 95 %). With no samples, ``needed_n`` assumes every future value is within the limit.
    """
    ordered = _finite_sorted(values)
    n = len(ordered)
    lower, upper = order_statistic_ranks(n, q, confidence)
    low, high = sorted_percentile_bounds(ordered, q, confidence)
    estimate = float(ordered[nearest_rank(n, q) - 1]) if n else math.nan
    within = int(np.searchsorted(ordered, limit_ms, side="left" if strict else "right"))
    if upper is not None and upper <= within:
        return Judgement("pass", estimate, low, high, n)
    if lower is not None and lower > within:
        return Judgement("fail", estimate, low, high, n)
    needed = needed_percentile_n(within / n if n else 1.0, q, confidence, n)
    return Judgement("unknown", estimate, low, high, n, needed)


def mean_bounds(values: npt.ArrayLike, confidence: float = 0.95) -> tuple[float, float]:
    """One-sided t-interval bounds on a mean (``scipy.stats.t``); approximate for skewed latencies, so
    ``(-inf, inf)`` below ``MIN_AVG_SAMPLES`` samples. Zero spread gives ``(mean, mean)``."""
    check_confidence(confidence)
    array = _finite_sorted(values)
    n = len(array)
    if n < MIN_AVG_SAMPLES:
        return -math.inf, math.inf
    mean = float(array.mean())
    sem = float(sps.sem(array))
    if sem == 0.0:
        return mean, mean
    low, high = sps.t.interval(2 * confidence - 1, n - 1, loc=mean, scale=sem)
    return float(low), float(high)


# --- change between runs --------------------------------------------------------------------------------


def mann_whitney(x: npt.ArrayLike, y: npt.ArrayLike, alternative: Alternative = "two-sided") -> RankTest:
    """``scipy.stats.mannwhitneyu(x, y)``: exact p-value for small samples without ties, normal
    approximation with continuity correction otherwise. ``greater`` tests whether ``x`` tends to exceed
    ``y``."""
    x_array = np.asarray(x, dtype=np.float64)
    y_array = np.asarray(y, dtype=np.float64)
    result = sps.mannwhitneyu(x_array, y_array, alternative=alternative)
    return RankTest(float(result.statistic), float(result.pvalue), len(x_array), len(y_array), alternative)


def mann_whitney_min_p(n_x: int, n_y: int) -> float:
    """The smallest one-sided p-value Mann–Whitney can give for these sizes: ``1 / C(n_x + n_y, n_x)``
    (every x beyond every y, no ties). A test that cannot get below ``alpha`` can never be significant."""
    if n_x <= 0 or n_y <= 0:
        return 1.0
    return 1.0 / float(special.comb(n_x + n_y, n_x, exact=True))


def mann_whitney_needed(n_fixed: int, alpha: float = 0.05) -> int:
    """The fewest observations on the other side for which a one-sided Mann–Whitney test against
    ``n_fixed`` observations can reach p <= ``alpha`` (1 current run: 19 baseline runs at 0.05)."""
    if n_fixed <= 0:
        raise ValueError("n_fixed must be >= 1")
    other = 1
    while mann_whitney_min_p(n_fixed, other) > alpha:
        other += 1
    return other


def _statistic(kind: float | Literal["mean"]) -> Callable[[F64, int], F64]:
    """The statistic as ``f(sample, axis)``: the mean, or a nearest-rank percentile (in percent)."""
    if kind == "mean":
        return lambda sample, axis: np.asarray(np.mean(sample, axis=axis), dtype=np.float64)
    q = float(kind)
    if not 0.0 < q <= 100.0:
        raise ValueError(f"statistic must be 'mean' or a percentile in (0, 100], got {kind}")
    return lambda sample, axis: np.asarray(np.percentile(sample, q, axis=axis, method="inverted_cdf"))


def _subsample(values: F64, max_samples: int, rng: np.random.Generator) -> F64:
    if len(values) <= max_samples:
        return values
    return rng.choice(values, size=max_samples, replace=False)


def ratio_bootstrap(
    baseline: npt.ArrayLike,
    current: npt.ArrayLike,
    statistic: float | Literal["mean"] = 50.0,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
    max_samples: int = 100_000,
) -> RatioInterval:
    """Ratio of a statistic (a nearest-rank percentile in percent, or ``"mean"``) of ``current`` over
    ``baseline``, with one-sided bounds at ``confidence`` from ``scipy.stats.bootstrap``.

    Two independent samples are resampled separately (``paired=False``) with the percentile method (BCa's
    jackknife costs O(n²) memory for per-request samples). The RNG is ``numpy.random.default_rng(seed)``,
    so results are reproducible. Samples larger than ``max_samples`` are first subsampled without
    replacement (same RNG): the interval then reflects the smaller sample and is wider, never narrower.
    """
    check_confidence(confidence)
    stat = _statistic(statistic)
    rng = np.random.default_rng(seed)
    base = _subsample(_finite_sorted(baseline), max_samples, rng)
    curr = _subsample(_finite_sorted(current), max_samples, rng)
    if len(base) == 0 or len(curr) == 0:
        raise ValueError("both samples need at least one finite value")
    base_value = float(stat(base, -1))
    ratio = float(stat(curr, -1)) / base_value if base_value != 0 else math.nan
    if base_value == 0:
        return RatioInterval(ratio, math.nan, math.nan, len(base), len(curr), confidence)

    def ratio_of(curr_sample: F64, base_sample: F64, axis: int) -> F64:
        with np.errstate(divide="ignore", invalid="ignore"):
            return stat(curr_sample, axis) / stat(base_sample, axis)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sps.DegenerateDataWarning)
        result = sps.bootstrap(
            (curr, base),
            ratio_of,
            n_resamples=n_resamples,
            batch=max(1, 20_000_000 // (len(curr) + len(base))),
            vectorized=True,
            paired=False,
            confidence_level=2 * confidence - 1,
            method="percentile",
            rng=rng,
        )
    interval = result.confidence_interval
    return RatioInterval(ratio, float(interval.low), float(interval.high), len(base), len(curr), confidence)


def hodges_lehmann_ratio(baseline: npt.ArrayLike, current: npt.ArrayLike) -> float:
    """The Hodges–Lehmann estimate of ``current / baseline``: the median of all pairwise ratios
    ``current_i / baseline_j`` (values must be > 0). With one current value it is that value over the
    baseline median (for an odd number of baseline values)."""
    base, curr = _positive(baseline), _positive(current)
    return float(np.median(curr[:, None] / base[None, :]))


def mann_whitney_ratio_bounds(
    baseline: npt.ArrayLike, current: npt.ArrayLike, alpha: float = 0.05
) -> tuple[float, float]:
    """One-sided bounds at ``1 - alpha`` on the ratio r in "current is distributed as baseline x r",
    by inverting one-sided Mann–Whitney tests (values must be > 0).

    The tests change outcome only at the pairwise ratios ``current_i / baseline_j``, so ``low`` is the largest
    pairwise ratio just below which ``mannwhitneyu(current, baseline x r, "greater")`` rejects, and ``high``
    the smallest just above which ``"less"`` rejects (evaluated at r x (1 -/+ 1e-9), off the ties); 0 and
    ``inf`` when no r is rejected (too few runs). Consistent with the tests: ``low > 1`` means "greater"
    rejects at r = 1.
    """
    base, curr = _positive(baseline), _positive(current)
    if len(base) * len(base) * len(curr) > MAX_RANK_INVERSION_CELLS:
        raise ValueError("too many values to invert rank tests: meant for per-run values; use ratio_bootstrap")
    candidates = np.unique((curr[:, None] / base[None, :]).ravel())
    below = (candidates * (1 - 1e-9))[:, None] * base[None, :]
    above = (candidates * (1 + 1e-9))[:, None] * base[None, :]
    greater = sps.mannwhitneyu(curr[None, :], below, alternative="greater", axis=1).pvalue
    less = sps.mannwhitneyu(curr[None, :], above, alternative="less", axis=1).pvalue
    rejected_low, rejected_high = candidates[greater < alpha], candidates[less < alpha]
    low = float(rejected_low.max()) if len(rejected_low) else 0.0
    high = float(rejected_high.min()) if len(rejected_high) else math.inf
    return low, high


def _positive(values: npt.ArrayLike) -> F64:
    array = np.asarray(values, dtype=np.float64).ravel()
    if len(array) == 0 or not (array > 0).all():
        raise ValueError("ratios need at least one value, every value finite and > 0")
    return array
