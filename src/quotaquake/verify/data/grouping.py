"""Consumer blocks: copies of history columns laid out consumer by consumer (send order within each).

The sequential models (token bucket, fixed window, header replay) walk one consumer at a time. Walking
rows of the time-ordered history per consumer is random access (a consumer's rows are spread over the
whole run); scattering the few columns a model needs into consumer-contiguous blocks is one sequential
pass with a handful of write streams, after which the models read memory sequentially. ``unscatter``
maps per-block results (flags) back to history rows. Both are O(n); no index array is kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from numba import njit

IntArray = npt.NDArray[np.int64]
AnyArray = npt.NDArray[Any]


@dataclass(frozen=True)
class Groups:
    """Rows grouped by ``codes`` (category codes, -1 = no group): group ``g`` occupies block positions
    ``starts[g]:starts[g + 1]``."""

    codes: npt.NDArray[np.integer[Any]]
    starts: IntArray

    @property
    def count(self) -> int:
        return len(self.starts) - 1

    @property
    def size(self) -> int:
        return int(self.starts[-1])

    def scatter(self, values: npt.NDArray[Any]) -> npt.NDArray[Any]:
        """``values`` (one per history row) rearranged into consumer blocks."""
        return _scatter(self.codes, self.starts, values, np.empty(self.size, dtype=values.dtype))

    def unscatter(self, block_values: npt.NDArray[Any]) -> npt.NDArray[Any]:
        """Per-block-position values back in history row order (rows without a group get 0)."""
        return _unscatter(self.codes, self.starts, block_values, np.zeros(len(self.codes), dtype=block_values.dtype))

    def first_rows(self) -> IntArray:
        """The history row of each group's first (earliest sent) row; -1 for empty groups."""
        return _first_rows(self.codes, self.count)


@njit(cache=True)
def _scatter(codes: AnyArray, starts: IntArray, values: AnyArray, out: AnyArray) -> AnyArray:  # pragma: no cover
    cursor = starts[:-1].copy()
    for i in range(len(codes)):
        c = codes[i]
        if c >= 0:
            out[cursor[c]] = values[i]
            cursor[c] += 1
    return out


@njit(cache=True)
def _unscatter(
    codes: AnyArray, starts: IntArray, block_values: AnyArray, out: AnyArray
) -> AnyArray:  # pragma: no cover
    cursor = starts[:-1].copy()
    for i in range(len(codes)):
        c = codes[i]
        if c >= 0:
            out[i] = block_values[cursor[c]]
            cursor[c] += 1
    return out


@njit(cache=True)
def _first_rows(codes: AnyArray, n_groups: int) -> IntArray:  # pragma: no cover - numba
    first = np.full(n_groups, -1, dtype=np.int64)
    for i in range(len(codes)):
        c = codes[i]
        if c >= 0 and first[c] < 0:
            first[c] = i
    return first


def group_rows(
    codes: npt.NDArray[np.integer[Any]], sent_ns: npt.NDArray[np.int64], n_groups: int | None = None
) -> Groups:
    """Groups of ``codes`` (rows with code -1 are left out); ``sent_ns`` must be sorted so that each block
    is in send order."""
    if len(sent_ns) > 1 and not bool(np.all(sent_ns[1:] >= sent_ns[:-1])):
        raise ValueError("history rows must be in sent_ns order")
    if n_groups is None:
        n_groups = int(codes.max()) + 1 if len(codes) else 0
    valid = codes[codes >= 0] if len(codes) and codes.min() < 0 else codes
    counts = np.bincount(np.asarray(valid, dtype=np.int64), minlength=n_groups)[:n_groups]
    starts = np.zeros(n_groups + 1, dtype=np.int64)
    np.cumsum(counts, out=starts[1:])
    return Groups(codes=codes, starts=starts)
