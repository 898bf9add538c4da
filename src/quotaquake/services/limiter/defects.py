"""Seeded defects of the embedded rate-limit service, for proving that verification checks can fail.

Off by default; selected at stack start with ``--defect NAME`` and loudly marked in all output.
"""

from __future__ import annotations

from enum import StrEnum


class Defect(StrEnum):
    RACY = "racy"  # read-then-write instead of one atomic script: concurrent requests over-admit
    FAIL_CLOSED = "fail-closed"  # rejects everything while Redis is down although the policy says fail open
    NO_RETRY_AFTER = "no-retry-after"  # 429 without Retry-After
    SLOW = "slow"  # adds a few milliseconds to every decision
    NO_FAILOVER = "no-failover"  # keeps the primary Sentinel named at start: never follows a promotion


def parse_defect(name: str | None) -> Defect | None:
    """``None`` for no defect; raises ``ValueError`` naming the valid choices for an unknown name."""
    if name is None or name == "":
        return None
    try:
        return Defect(name)
    except ValueError:
        choices = ", ".join(d.value for d in Defect)
        raise ValueError(f"unknown defect '{name}' (choose one of: {choices})") from None
