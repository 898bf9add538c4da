"""Per-group percentiles for display (time bins, endpoint x tier cells).

Nearest rank, as verification's exact percentiles and ``quotaquake.stats.nearest_rank``: the p-th
percentile of a group of n values is its k-th smallest value, k = max(ceil(p/100 x n), 1); never
interpolated, so a shown p99 is a latency some request really had. Empty groups get NaN.

Two ways, both O(n) after at most one sort of the values: groups laid out in runs (time bins of a history
in send order) are partitioned run by run; scattered groups (endpoint x tier) take the values sorted once
(``SortedValues``, shared by every grouping of them) and a stable radix sort by group.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
QUANTILES: tuple[float, ...] = (50.0, 95.0, 99.0)


@dataclass(frozen=True)
class SortedValues:
    """The non-NaN values in increasing order, and where each came from."""

    order: I64
    values: F64

    @classmethod
    def of(cls, values: F64) -> SortedValues:
        order = np.argsort(values)  # NaN sort last; ties need no order (equal values)
        order = order[: int(np.count_nonzero(~np.isnan(values)))].astype(np.int64)
        return cls(order, values[order])


def grouped_percentiles(
    groups: I64,
    values: F64,
    n_groups: int,
    quantiles: tuple[float, ...] = QUANTILES,
    presorted: SortedValues | None = None,
) -> dict[str, F64]:
    """``{"p50": array, ...}``: the nearest-rank percentile of ``values`` within each group ``0..n_groups-1``
    (``groups[i]`` is the group of ``values[i]``; NaN values and negative groups are ignored).
    ``presorted``: ``SortedValues.of(values)`` when already known."""
    if presorted is None and (len(groups) < 2 or bool(np.all(groups[1:] >= groups[:-1]))):
        return _percentiles_of_runs(groups, values, n_groups, quantiles)
    ranked = SortedValues.of(values) if presorted is None else presorted
    by_value = groups[ranked.order]
    kept = by_value >= 0
    by_value = by_value[kept]
    key = by_value.astype(np.int16) if n_groups < 2**15 else by_value
    ordered = ranked.values[kept][np.argsort(key, kind="stable")]  # by group, values increasing within
    counts = np.bincount(by_value, minlength=n_groups)[:n_groups]
    starts = np.concatenate(([0], np.cumsum(counts)[:-1])).astype(np.int64)
    out: dict[str, F64] = {}
    for q in quantiles:
        index = np.clip(starts + _ranks(counts, q) - 1, 0, max(len(ordered) - 1, 0))
        picked = ordered[index] if len(ordered) else np.zeros(n_groups)
        out[f"p{q:g}"] = np.where(counts > 0, picked, np.nan)
    return out


def _percentiles_of_runs(groups: I64, values: F64, n_groups: int, quantiles: tuple[float, ...]) -> dict[str, F64]:
    """``grouped_percentiles`` for groups in non-decreasing order: one partial sort per group."""
    kept = (groups >= 0) & ~np.isnan(values)
    groups, values = groups[kept], values[kept]
    counts = np.bincount(groups, minlength=n_groups)[:n_groups]
    ends = np.cumsum(counts)
    out = {f"p{q:g}": np.full(n_groups, np.nan) for q in quantiles}
    for g in np.flatnonzero(counts):
        ranks = [int(_ranks(counts[g : g + 1], q)[0]) - 1 for q in quantiles]
        part = np.partition(values[ends[g] - counts[g] : ends[g]], ranks)
        for q, rank in zip(quantiles, ranks, strict=True):
            out[f"p{q:g}"][g] = part[rank]
    return out


def _ranks(counts: npt.NDArray[np.integer], q: float) -> I64:
    """The 1-based nearest rank of the q-th percentile in groups of ``counts`` values."""
    return np.asarray(np.maximum(np.ceil(q / 100.0 * counts), 1), dtype=np.int64)


def grouped_max(groups: I64, values: F64, n_groups: int) -> F64:
    """The largest of ``values`` within each group (NaN for empty groups)."""
    keep = (groups >= 0) & ~np.isnan(values)
    out = np.full(n_groups, -np.inf)
    np.maximum.at(out, groups[keep], values[keep])
    return np.where(np.isinf(out), np.nan, out)
