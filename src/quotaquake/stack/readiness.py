"""Readiness probes by URL scheme: Redis PING, Postgres ``SELECT 1``, HTTP 200.

Each probe answers within its own short timeout and never raises for "not ready yet" conditions the
caller polls over; ``wait_ready`` in ``processes`` turns persistent failure into a ``StackError``.
"""

from __future__ import annotations

from collections.abc import Sequence

import httpx
import psycopg
import redis

from quotaquake.load.safety import check_target

PROBE_TIMEOUT_S = 0.5


def redis_ready(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_timeout=PROBE_TIMEOUT_S, socket_connect_timeout=PROBE_TIMEOUT_S)
    try:
        return bool(client.ping())
    finally:
        client.close()


def postgres_ready(dsn: str) -> bool:
    with psycopg.connect(dsn, connect_timeout=1) as conn:
        return conn.execute("SELECT 1").fetchone() == (1,)


def http_ready(url: str) -> bool:
    return httpx.get(url, timeout=PROBE_TIMEOUT_S).status_code == 200


def is_ready(url: str, allow_hosts: Sequence[str] = ()) -> bool:
    """Probe ``url`` by its scheme; exceptions propagate (callers treat them as "not ready").

    The loopback guard (``load.safety.check_target``) refuses any other host not in ``allow_hosts``."""
    check_target(url, allow_hosts, what="readiness probe")
    if url.startswith("redis://"):
        return redis_ready(url)
    if url.startswith("postgresql://"):
        return postgres_ready(url)
    return http_ready(url)
