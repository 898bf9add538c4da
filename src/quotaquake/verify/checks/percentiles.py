"""Exact percentiles: the nearest-rank order statistic (numpy ``method="inverted_cdf"``).

The p-th percentile is the smallest observed value with at least p % of the values <= it; no
interpolation and no histogram buckets, so a reported p95 is a latency some request really had.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

QUANTILES: tuple[float, ...] = (50.0, 95.0, 99.0)


def exact_percentiles(values: npt.NDArray[np.float64], in_place: bool = False) -> dict[str, float | None]:
    """``{"p50": .., "p95": .., "p99": ..}`` of the non-NaN values (None when there are none).

    Nearest rank: the k-th smallest value with k = ceil(q/100 x n). ``in_place=True`` lets the function
    reorder ``values`` (a partial sort, no copy) when it has no NaN.
    """
    nan = np.isnan(values)
    finite = values[~nan] if nan.any() else values if in_place else values.copy()
    n = len(finite)
    if n == 0:
        return {f"p{q:g}": None for q in QUANTILES}
    ranks = [max(int(np.ceil(q / 100.0 * n)) - 1, 0) for q in QUANTILES]
    finite.partition(ranks)
    return {f"p{q:g}": round(float(finite[k]), 3) for q, k in zip(QUANTILES, ranks, strict=True)}
