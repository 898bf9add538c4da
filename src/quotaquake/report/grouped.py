"""Per-group percentiles for display (time bins, endpoint x tier cells), all groups in one sort.

Nearest rank, as verification's exact percentiles and ``quotaquake.stats.nearest_rank``: the p-th
percentile of a group of n values is its k-th smallest value, k = max(ceil(p/100 x n), 1); never
interpolated, so a shown p99 is a latency some request really had. Empty groups get NaN.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
QUANTILES: tuple[float, ...] = (50.0, 95.0, 99.0)


def grouped_percentiles(
    groups: I64, values: F64, n_groups: int, quantiles: tuple[float, ...] = QUANTILES
) -> dict[str, F64]:
    """``{"p50": array, ...}``: the nearest-rank percentile of ``values`` within each group ``0..n_groups-1``
    (``groups[i]`` is the group of ``values[i]``; NaN values and negative groups are ignored)."""
    keep = (groups >= 0) & ~np.isnan(values)
    groups, values = groups[keep], values[keep]
    order = np.lexsort((values, groups))
    ordered = values[order]
    counts = np.bincount(groups, minlength=n_groups)[:n_groups]
    starts = np.concatenate(([0], np.cumsum(counts)[:-1])).astype(np.int64)
    out: dict[str, F64] = {}
    for q in quantiles:
        rank = np.maximum(np.ceil(q / 100.0 * counts).astype(np.int64), 1)
        index = np.clip(starts + rank - 1, 0, max(len(ordered) - 1, 0))
        picked = ordered[index] if len(ordered) else np.zeros(n_groups)
        out[f"p{q:g}"] = np.where(counts > 0, picked, np.nan)
    return out


def grouped_max(groups: I64, values: F64, n_groups: int) -> F64:
    """The largest of ``values`` within each group (NaN for empty groups)."""
    keep = (groups >= 0) & ~np.isnan(values)
    out = np.full(n_groups, -np.inf)
    np.maximum.at(out, groups[keep], values[keep])
    return np.where(np.isinf(out), np.nan, out)
