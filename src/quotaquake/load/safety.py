"""Guards that keep generated traffic on the lab: loopback targets only, bounded rate and duration.

``check_target`` is the one loopback guard of every outgoing connection quotaquake makes: the load (before
Locust starts and in every scenario's ``init`` hook, so a plain ``locust -f scenarios/...`` is held to the
same limits as ``quotaquake run``), the chaos probes and health checks, the Prometheus snapshot, the
readiness probes, Kong's Admin API. A host that is not loopback passes only when the user named it
(``--allow-host``, or a target file's ``allow_hosts``, kept in the state file). No DNS lookup decides it.

``capped_run_time`` bounds a plain ``locust -f`` run started without ``-t``.
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
GUARDED_SCHEMES = frozenset({"http", "https", "redis", "postgresql", "postgres"})


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and any address in 127.0.0.0/8 or ``::1``."""
    name = host.strip("[]").lower()
    if name in LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_target(url: str, allow_hosts: Sequence[str] = (), *, what: str = "target") -> None:
    """Raise ``UsageError`` unless ``url``'s host is loopback or named in ``allow_hosts``.

    ``url`` is http(s), redis or postgresql; ``what`` names the connection in the message (``target``,
    ``prometheus``, ``chaos probe``, ...). Credentials in ``url`` never appear in the message."""
    parts = urlsplit(url)
    if parts.scheme not in GUARDED_SCHEMES or not parts.hostname:
        shown = url if "@" not in url else "(a URL with credentials)"
        raise UsageError(f"{what} {shown!r}: not an http(s) URL with a host")
    host = parts.hostname
    allowed = {h.strip().lower() for h in allow_hosts if h.strip()}
    if is_loopback(host) or host.lower() in allowed:
        return
    raise UsageError(
        f"{what} {parts.scheme}://{host}: host {host} is not loopback; "
        f"pass --allow-host {host} if you really mean to reach it"
    )


def capped_run_time(run_time_s: float | None) -> float:
    """A plain Locust run's duration: ``run_time_s`` when given (checked), else the cap ``MAX_DURATION_S``."""
    if run_time_s is None or run_time_s <= 0:
        return MAX_DURATION_S
    check_duration(run_time_s)
    return run_time_s


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
