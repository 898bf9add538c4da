"""The consumer registry in Postgres: schema, provisioning per tier, and consumers added at run time.

The registry mirrors what Kong's Postgres holds for key-auth: consumers (id, tier) and their API keys.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable

import psycopg

from quotaquake.errors import StackError
from quotaquake.stack.state import Consumer, StackState

SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS consumers (
    id text PRIMARY KEY,
    tier text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS api_keys (
    key text PRIMARY KEY,
    consumer_id text NOT NULL REFERENCES consumers(id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now()
);
"""


def new_key() -> str:
    """A random API key (``qq_`` + 32 url-safe characters)."""
    return "qq_" + secrets.token_urlsafe(24)


def plan_consumers(tiers: Iterable[str], per_tier: int) -> list[Consumer]:
    """``per_tier`` consumers for every tier, ids ``<tier>-<n>`` starting at 1, each with a fresh key."""
    return [Consumer(id=f"{tier}-{n}", tier=tier, key=new_key()) for tier in tiers for n in range(1, per_tier + 1)]


def insert_consumers(dsn: str, consumers: Iterable[Consumer]) -> None:
    rows = list(consumers)
    with psycopg.connect(dsn, connect_timeout=2) as conn, conn.cursor() as cur:
        cur.executemany("INSERT INTO consumers (id, tier) VALUES (%s, %s)", [(c.id, c.tier) for c in rows])
        cur.executemany("INSERT INTO api_keys (key, consumer_id) VALUES (%s, %s)", [(c.key, c.id) for c in rows])


def create_schema(dsn: str) -> None:
    with psycopg.connect(dsn, connect_timeout=2) as conn:
        conn.execute(SCHEMA_SQL)


def add_consumer(state: StackState, tier: str) -> Consumer:
    """Insert a consumer with an untouched quota into a running stack's registry and return it.

    The limiter finds it on its first request (cache miss -> registry lookup). Needs Postgres up.
    """
    if state.provider == "docker":  # Kong's registry is its Admin API, not our tables
        from quotaquake.stack.docker import add_consumer as add_kong_consumer

        return add_kong_consumer(state, tier)
    dsn = state.require_endpoints().postgres
    if dsn is None:
        raise StackError("postgres", "this stack has no consumer registry to add to")
    consumer = Consumer(id=f"{tier}-{secrets.token_hex(4)}", tier=tier, key=new_key())
    try:
        insert_consumers(dsn, [consumer])
    except psycopg.OperationalError as exc:
        raise StackError("postgres", f"cannot add a consumer: {str(exc).strip().splitlines()[0]}") from None
    return consumer
