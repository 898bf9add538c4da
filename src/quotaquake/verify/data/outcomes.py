"""How a recorded HTTP status counts for quota models.

* admitted: a response the limiter let through (1xx-4xx other than 401 and 429: upstream 4xx count);
* rejected: 429;
* indeterminate: no response (status 0) or 5xx — the request *may* have been admitted (a timeout or an
  upstream failure after the limiter) or not (a limiter 503);
* unauthenticated: 401 — never reaches a quota.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

ADMITTED = 0
REJECTED = 1
INDETERMINATE = 2
UNAUTHENTICATED = 3


def outcome_classes(status: npt.NDArray[np.int32]) -> npt.NDArray[np.int8]:
    """One of the four classes above per row (int8)."""
    classes = np.full(len(status), ADMITTED, dtype=np.int8)
    classes[(status == 0) | (status >= 500)] = INDETERMINATE
    classes[status == 429] = REJECTED
    classes[status == 401] = UNAUTHENTICATED
    return classes


def error_mask(status: npt.NDArray[np.int32]) -> npt.NDArray[np.bool_]:
    """Errors for the error budget: no response or 5xx (429 and 401 are answers, not errors)."""
    return np.asarray((status == 0) | (status >= 500), dtype=np.bool_)
