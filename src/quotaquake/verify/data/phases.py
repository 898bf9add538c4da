"""Run phases relative to fault windows: ``run`` (no faults), else ``before``, ``during:<fault>``,
``after:<fault>`` (after a fault's rollback, until the next fault starts)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from quotaquake.runfolder.models import FaultWindow
from quotaquake.verify.data.rundata import fault_bounds_ns


def phase_labels(faults: list[FaultWindow]) -> list[str]:
    """Labels indexed by the codes ``phase_codes`` returns."""
    if not faults:
        return ["run"]
    labels = ["before"]
    for window in sorted(faults, key=lambda w: w.start):
        labels += [f"during:{window.name}", f"after:{window.name}"]
    return labels


def phase_codes(sent_ns: npt.NDArray[np.int64], faults: list[FaultWindow]) -> npt.NDArray[np.int8]:
    """Per row, the index into ``phase_labels`` (a row in overlapping faults gets the later one)."""
    if not faults:
        return np.zeros(len(sent_ns), dtype=np.int8)
    bounds: list[int] = []
    for window in sorted(faults, key=lambda w: w.start):
        start, end = fault_bounds_ns(window)
        bounds += [start, end]
    edges = np.maximum.accumulate(np.asarray(bounds, dtype=np.int64))
    return np.searchsorted(edges, sent_ns, side="right").astype(np.int8)


def is_steady(label: str) -> bool:
    """Phases outside fault windows (where the SLOs apply)."""
    return not label.startswith("during:")
