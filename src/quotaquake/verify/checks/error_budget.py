"""Error budget: non-429, non-401 errors (5xx and no response, status 0) / requests <= ``slo.error_rate``.

Judged outside fault windows (the degradation check judges availability during faults), warm-up
included (an error in the first seconds is still an error a client saw), with a one-sided
``slo.confidence`` Clopper-Pearson bound (``stats.judge_rate``): pass when the upper bound on the error
rate is under the budget, fail when the lower bound is over it, otherwise unknown with ``needed_n``, the
number of requests at which the same error rate would decide (none when the rate sits on the budget).
Errors per phase and endpoint, and in-fault counts, are reported in the evidence.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from quotaquake.stats import judge_rate
from quotaquake.verify.checks.evidence import first_rows_per_consumer
from quotaquake.verify.data.outcomes import error_mask
from quotaquake.verify.data.phases import phase_codes, phase_labels
from quotaquake.verify.data.rundata import RunData
from quotaquake.verify.thresholds import Thresholds
from quotaquake.verify.verdict import Verdict

CHECK = "error-budget"


def check_error_budget(run: RunData, thresholds: Thresholds) -> Verdict:
    status = np.asarray(run.history["status"])
    errors = error_mask(status)
    outside = ~run.in_fault
    requests = int(outside.sum())
    failed = int((errors & outside).sum())
    by_status = np.unique(status[errors & outside], return_counts=True)
    limit, confidence = thresholds.slo.error_rate, thresholds.slo.confidence
    judgement = judge_rate(failed, requests, limit, confidence)
    evidence: dict[str, object] = {
        "requests": requests,
        "errors": failed,
        "errors_by_status": {str(s): int(n) for s, n in zip(*by_status, strict=True)},
        "error_rate": failed / requests if requests else None,
        "limit": limit,
        "confidence": confidence,
        "error_rate_bounds": [judgement.low, judgement.high],
        "needed_n": judgement.needed_n,
        "by_phase": _counts_by(
            phase_labels(run.faults), phase_codes(np.asarray(run.history["sent_ns"]), run.faults), errors
        ),
        "by_endpoint": _counts_by(
            [str(c) for c in run.history["endpoint"].cat.categories],
            np.asarray(run.history["endpoint"].cat.codes),
            errors,
            outside,
        ),
        "in_fault_requests": int(run.in_fault.sum()),
        "in_fault_errors": int((errors & run.in_fault).sum()),
        "first_errors": first_rows_per_consumer(run.history, np.flatnonzero(errors & outside)),
    }
    counts = f"{failed}/{requests}"
    if requests == 0:
        return Verdict(
            CHECK, "unknown", f"no requests outside fault windows; {judgement.needed_n} would decide", evidence
        )
    rate = failed / requests
    if judgement.status == "fail":
        summary = f"error rate {rate:.4%} > {limit:.4%} ({counts}; at least {judgement.low:.4%} at {confidence:.0%})"
        return Verdict(CHECK, "fail", summary, evidence)
    if judgement.status == "pass":
        summary = f"error rate {rate:.4%} <= {limit:.4%} ({counts}; at most {judgement.high:.4%} at {confidence:.0%})"
        return Verdict(CHECK, "pass", summary, evidence)
    needed = (
        "no sample size decides: the rate sits on the budget"
        if judgement.needed_n is None
        else (f"{judgement.needed_n} requests at this rate would decide")
    )
    bounds = f"{judgement.low:.4%}..{judgement.high:.4%}"
    return Verdict(
        CHECK, "unknown", f"error rate {rate:.4%} vs {limit:.4%} not decided ({counts}, {bounds}): {needed}", evidence
    )


def _counts_by(
    names: list[str],
    codes: npt.NDArray[np.integer],
    errors: npt.NDArray[np.bool_],
    mask: npt.NDArray[np.bool_] | None = None,
) -> list[dict[str, object]]:
    """Requests and errors per category code (rows outside ``mask`` left out)."""
    rows: list[dict[str, object]] = []
    for code, name in enumerate(names):
        selected = codes == code if mask is None else (codes == code) & mask
        n = int(selected.sum())
        if n:
            rows.append({"name": name, "requests": n, "errors": int((errors & selected).sum())})
    return rows
