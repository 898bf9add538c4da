"""Redis key names of the limiter's state, and helpers other components use to prepare that state.

Both keys of a consumer share the hash tag ``{consumer_id}`` so that one Lua script touching both stays
in one slot (Redis Cluster safe). The monthly counter is per UTC calendar month ("YYYY-MM").

- ``bucket_key``: a hash ``{tokens, ts}`` -- tokens left (float cost units) at time ``ts`` (epoch seconds,
  Redis server clock); absent means a full bucket.
- ``month_key``: a string holding the cost units used this month (float); absent means 0.
"""

from __future__ import annotations

import calendar
import time

import redis

PREFIX = "qq"
MONTH_KEY_MARGIN_SECONDS = 86_400  # keep a month's counter one day past the month's end


def bucket_key(consumer_id: str) -> str:
    """Key of the consumer's token bucket hash."""
    return f"{PREFIX}:{{{consumer_id}}}:bucket"


def month_key(consumer_id: str, month: str) -> str:
    """Key of the consumer's monthly usage counter; ``month`` is ``YYYY-MM`` (UTC)."""
    return f"{PREFIX}:{{{consumer_id}}}:month:{month}"


def current_month(now: float | None = None) -> str:
    """The UTC calendar month of ``now`` (epoch seconds; default: this machine's clock) as ``YYYY-MM``."""
    return time.strftime("%Y-%m", time.gmtime(time.time() if now is None else now))


def seconds_to_month_end(now: float) -> float:
    """Seconds from ``now`` (epoch seconds) until the next UTC month begins (> 0)."""
    tm = time.gmtime(now)
    year, month = (tm.tm_year + 1, 1) if tm.tm_mon == 12 else (tm.tm_year, tm.tm_mon + 1)
    return calendar.timegm((year, month, 1, 0, 0, 0, 0, 0, 0)) - now


def month_ttl_seconds(now: float) -> int:
    """Expiry of a month counter written at ``now``: until the month ends plus one day of margin."""
    return int(seconds_to_month_end(now)) + MONTH_KEY_MARGIN_SECONDS


def seed_month_usage(redis_url: str, consumer_id: str, used: float, month: str | None = None) -> None:
    """Set the consumer's monthly usage to ``used`` cost units (``month`` defaults to the current UTC month).

    Used by scenarios to put a consumer near its monthly limit without sending that many requests.
    """
    now = time.time()
    client = redis.Redis.from_url(redis_url)
    try:
        client.set(month_key(consumer_id, month or current_month(now)), repr(float(used)), ex=month_ttl_seconds(now))
    finally:
        client.close()


def reset_consumer(redis_url: str, consumer_id: str) -> None:
    """Forget all limiter state of the consumer: a full bucket and zero usage in every month."""
    client = redis.Redis.from_url(redis_url)
    try:
        pattern = month_key(_glob_escape(consumer_id), "*")
        months = list(client.scan_iter(match=pattern, count=1000))
        client.delete(bucket_key(consumer_id), *months)
    finally:
        client.close()


def _glob_escape(text: str) -> str:
    """Escape Redis glob metacharacters so ``text`` matches itself literally in SCAN MATCH."""
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)
