"""The warm-up at the start of the load: the first ``slo.warmup_s`` seconds from the first intended send.

Connection set-up, JIT-free but cold caches and the first flush of every process make the first seconds
unrepresentative; the latency SLO and the generator's steady rates leave them out and report them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from quotaquake.verify.data.rundata import RunData

NS_PER_S = 1_000_000_000


@dataclass(frozen=True)
class Warmup:
    """``start_ns``: the first intended send; ``end_ns``: ``start_ns + warmup_s``; ``rows``: rows sent
    before ``end_ns`` (left out)."""

    start_ns: int
    end_ns: int
    rows: int
    warmup_s: float

    def evidence(self) -> dict[str, object]:
        return {"warmup_s": self.warmup_s, "excluded_rows": self.rows, "load_start": self.start_ns / NS_PER_S}


def warmup(run: RunData, warmup_s: float) -> Warmup:
    intended = np.asarray(run.history["intended_ns"])
    sent = np.asarray(run.history["sent_ns"])
    if len(intended) == 0:
        return Warmup(0, 0, 0, warmup_s)
    start = int(intended.min())
    end = start + round(warmup_s * NS_PER_S)
    return Warmup(start, end, int(np.sum(sent < end)), warmup_s)


def after_warmup(run: RunData, warmup_s: float) -> npt.NDArray[np.bool_]:
    """True for rows sent after the warm-up."""
    return np.asarray(run.history["sent_ns"]) >= warmup(run, warmup_s).end_ns
