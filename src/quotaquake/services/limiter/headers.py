"""Status, headers and body of an /authz answer (the table in docs/ARCHITECTURE.md).

Rate-limit headers go on every answer for a limited tier: ``x-ratelimit-limit`` (per-minute limit),
``x-ratelimit-remaining`` (floor of the tokens left after the decision; up to the burst capacity),
``x-ratelimit-reset`` (whole seconds until the bucket is full), the monthly pair, and the IETF
``ratelimit-policy`` / ``ratelimit`` fields. Unlimited tiers carry none.
"""

from __future__ import annotations

import json
import math

from quotaquake.services.limiter.bucket import Quota, reset_seconds
from quotaquake.services.limiter.decider import Verdict

Headers = list[tuple[bytes, bytes]]

_JSON = (b"content-type", b"application/json")
BODIES = {
    401: json.dumps({"message": "Invalid authentication credentials"}).encode(),
    429: json.dumps({"message": "API rate limit exceeded"}).encode(),
    503: json.dumps({"message": "Rate limiting unavailable"}).encode(),
}


def _number(value: float) -> bytes:
    """A header number: integral floats without a decimal point (``100`` not ``100.0``)."""
    return b"%d" % value if value == int(value) else repr(value).encode()


def rate_limit_headers(quota: Quota, tokens: float | None, month_used: float) -> Headers:
    headers: Headers = []
    if quota.per_minute is not None and quota.capacity is not None and tokens is not None:
        remaining = max(0, math.floor(tokens))
        reset = reset_seconds(quota, tokens)
        limit = _number(quota.per_minute)
        headers += [
            (b"x-ratelimit-limit", limit),
            (b"x-ratelimit-remaining", b"%d" % remaining),
            (b"x-ratelimit-reset", b"%d" % reset),
            (b"ratelimit-policy", b'"minute";q=%s;w=60;burst=%s' % (limit, _number(quota.capacity))),
            (b"ratelimit", b'"minute";r=%d;t=%d' % (remaining, reset)),
        ]
    if quota.per_month is not None:
        headers += [
            (b"x-ratelimit-limit-month", _number(quota.per_month)),
            (b"x-ratelimit-remaining-month", _number(max(0.0, quota.per_month - month_used))),
        ]
    return headers


def response_for(verdict: Verdict, retry_after: bool = True) -> tuple[int, Headers, bytes]:
    """``(status, headers, body)`` of a verdict; ``retry_after=False`` is the no-retry-after defect."""
    headers: Headers = []
    if verdict.status == 200:
        headers += [(b"x-consumer-id", verdict.consumer_id.encode()), (b"x-consumer-tier", verdict.tier.encode())]
    else:
        headers.append(_JSON)
    if verdict.quota is not None and verdict.outcome is not None:
        headers += rate_limit_headers(verdict.quota, verdict.outcome.tokens, verdict.outcome.month_used)
    if verdict.retry_after is not None and retry_after:
        headers.append((b"retry-after", b"%d" % verdict.retry_after))
    if verdict.degraded is not None:
        headers.append((b"x-quotaquake-degraded", verdict.degraded.encode()))
    return verdict.status, headers, BODIES.get(verdict.status, b"")
