"""Consumer identities every provider provisions: ids ``<tier>-<n>`` (or ``<tier>-<hex>`` at run time)
and random API keys."""

from __future__ import annotations

import secrets
from collections.abc import Iterable

from quotaquake.stack.state import Consumer


def new_key() -> str:
    """A random API key (``qq_`` + 32 url-safe characters)."""
    return "qq_" + secrets.token_urlsafe(24)


def plan_consumers(tiers: Iterable[str], per_tier: int) -> list[Consumer]:
    """``per_tier`` consumers for every tier, ids ``<tier>-<n>`` starting at 1, each with a fresh key."""
    return [Consumer(id=f"{tier}-{n}", tier=tier, key=new_key()) for tier in tiers for n in range(1, per_tier + 1)]


def fresh_consumer(tier: str) -> Consumer:
    """A consumer of ``tier`` with an id no earlier consumer had (``<tier>-<8 hex>``) and a fresh key."""
    return Consumer(id=f"{tier}-{secrets.token_hex(4)}", tier=tier, key=new_key())
