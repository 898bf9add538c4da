"""Deleting a rate limiter's state of chosen consumers in Redis: what ``Provider.reset_consumers`` does for
the stacks quotaquake runs.

* the embedded limiter (``quotaquake.services.limiter.keys``): each consumer's bucket hash
  ``qq:{<id>}:bucket`` and every month counter ``qq:{<id>}:month:<YYYY-MM>`` (absent = full bucket, 0 used);
* Kong's rate-limiting plugin (policy ``redis``): counters ``ratelimit:<route_id>:<service_id>:<identifier>:
  <period_start_ms>:<period>``, the identifier being Kong's consumer id (``limit_by: consumer``) or the
  client IP (``limit_by: ip``); absent = nothing counted in that period.

One SCAN over the keyspace finds the month counters and Kong's counters (their names carry a month or a
period start that is not known in advance); keys are deleted in batches. A Redis error is a one-line
``StackError``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import redis

from quotaquake.errors import StackError
from quotaquake.services.limiter.keys import PREFIX, bucket_key

SCAN_COUNT = 1000
DELETE_BATCH = 500
KONG_PREFIX = "ratelimit:"


def delete_limiter_state(redis_url: str, consumer_ids: Iterable[str]) -> int:
    """Delete the embedded limiter's bucket and month counters of ``consumer_ids``; returns keys deleted."""
    ids = set(consumer_ids)
    month_marker = "}:month:"

    def owned(key: str) -> bool:
        if not key.startswith(PREFIX + ":{") or month_marker not in key:
            return False
        return key[len(PREFIX) + 2 : key.rindex(month_marker)] in ids

    return _delete(redis_url, f"{PREFIX}:*", owned, [bucket_key(i) for i in sorted(ids)])


def delete_kong_counters(redis_url: str, identifiers: Iterable[str]) -> int:
    """Delete Kong's rate-limiting counters of ``identifiers`` (consumer ids or client IPs), every route,
    service and period; returns keys deleted."""
    wanted = set(identifiers)

    def owned(key: str) -> bool:
        parts = key.split(":")
        return len(parts) >= 6 and ":".join(parts[3:-2]) in wanted

    return _delete(redis_url, KONG_PREFIX + "*", owned, [])


def _delete(redis_url: str, pattern: str, owned: Callable[[str], bool], always: list[str]) -> int:
    client = redis.Redis.from_url(redis_url, decode_responses=True, socket_timeout=5.0)
    try:
        keys = [*always, *(key for key in _scan(client, pattern) if owned(key))]
        deleted = 0
        for start in range(0, len(keys), DELETE_BATCH):
            deleted += int(client.delete(*keys[start : start + DELETE_BATCH]))
        return deleted
    except redis.RedisError as exc:
        raise StackError("redis", f"cannot reset the consumers' quota state at {redis_url}: {exc}") from None
    finally:
        client.close()


def _scan(client: redis.Redis[str], pattern: str) -> Iterator[str]:
    for key in client.scan_iter(match=pattern, count=SCAN_COUNT):
        yield str(key)
