"""Guards that keep generated load on the lab: loopback targets only, bounded rate and duration.

Used by ``quotaquake.load.runner`` before Locust starts and by every scenario's ``init`` hook, so a plain
``locust -f scenarios/...`` is held to the same limits as ``quotaquake run``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from urllib.parse import urlsplit

from quotaquake.errors import UsageError

MAX_RATE = 50_000.0
"""Highest target arrival rate accepted, in requests per second (whole run, all workers)."""

MAX_DURATION_S = 2 * 3600.0
"""Longest run accepted, in seconds (2 h)."""

LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and any address in 127.0.0.0/8 or ``::1``."""
    name = host.strip("[]").lower()
    if name in LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_target(url: str, allow_hosts: Sequence[str]) -> None:
    """Raise ``UsageError`` unless ``url``'s host is loopback or named in ``allow_hosts``."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"target {url!r}: not an http(s) URL with a host")
    host = parts.hostname
    allowed = {h.strip().lower() for h in allow_hosts if h.strip()}
    if is_loopback(host) or host.lower() in allowed:
        return
    raise UsageError(
        f"target {url}: host {host} is not loopback; pass --allow-host {host} if you really mean to load it"
    )


def check_rate(rate: float) -> None:
    """Raise ``UsageError`` unless ``0 < rate <= MAX_RATE`` (req/s)."""
    if not rate > 0:
        raise UsageError(f"rate {rate:g} req/s: must be greater than 0")
    if rate > MAX_RATE:
        raise UsageError(f"rate {rate:g} req/s: above the cap of {MAX_RATE:g} req/s")


def check_duration(duration_s: float) -> None:
    """Raise ``UsageError`` unless ``0 < duration_s <= MAX_DURATION_S``."""
    if not duration_s > 0:
        raise UsageError(f"duration {duration_s:g} s: must be greater than 0")
    if duration_s > MAX_DURATION_S:
        raise UsageError(f"duration {duration_s:g} s: above the cap of {MAX_DURATION_S:g} s (2 h)")
