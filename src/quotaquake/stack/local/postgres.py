"""The embedded stack's consumer registry in Postgres: schema and inserts.

The registry mirrors what Kong's Postgres holds for key-auth: consumers (id, tier) and their API keys.
"""

from __future__ import annotations

from collections.abc import Iterable

import psycopg

from quotaquake.errors import StackError
from quotaquake.stack.state import Consumer

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


def create_schema(dsn: str) -> None:
    with psycopg.connect(dsn, connect_timeout=2) as conn:
        conn.execute(SCHEMA_SQL)


def insert_consumers(dsn: str, consumers: Iterable[Consumer]) -> None:
    """Insert consumers and their keys; ``StackError`` (one line) when Postgres cannot be reached."""
    rows = list(consumers)
    try:
        with psycopg.connect(dsn, connect_timeout=2) as conn, conn.cursor() as cur:
            cur.executemany("INSERT INTO consumers (id, tier) VALUES (%s, %s)", [(c.id, c.tier) for c in rows])
            cur.executemany("INSERT INTO api_keys (key, consumer_id) VALUES (%s, %s)", [(c.key, c.id) for c in rows])
    except psycopg.OperationalError as exc:
        raise StackError("postgres", f"cannot add consumers: {str(exc).strip().splitlines()[0]}") from None
