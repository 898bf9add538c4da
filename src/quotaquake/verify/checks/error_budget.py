"""Error budget: non-429, non-401 errors (5xx and no response, status 0) / requests <= ``slo.error_rate``.

Judged outside fault windows (the degradation check judges availability during faults); in-fault
counts are reported in the evidence.
"""

from __future__ import annotations

import numpy as np

from quotaquake.verify.checks.evidence import first_rows_per_consumer
from quotaquake.verify.data.outcomes import error_mask
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
    limit = thresholds.slo.error_rate
    evidence: dict[str, object] = {
        "requests": requests,
        "errors": failed,
        "errors_by_status": {str(s): int(n) for s, n in zip(*by_status, strict=True)},
        "error_rate": failed / requests if requests else None,
        "limit": limit,
        "in_fault_requests": int(run.in_fault.sum()),
        "in_fault_errors": int((errors & run.in_fault).sum()),
        "first_errors": first_rows_per_consumer(run.history, np.flatnonzero(errors & outside)),
    }
    if requests == 0:
        return Verdict(CHECK, "unknown", "no requests outside fault windows", evidence)
    rate = failed / requests
    if rate > limit:
        return Verdict(CHECK, "fail", f"error rate {rate:.4%} > {limit:.4%} ({failed}/{requests})", evidence)
    return Verdict(CHECK, "pass", f"error rate {rate:.4%} <= {limit:.4%} ({failed}/{requests})", evidence)
