"""Kong's view of a history: which rate-limiting counter each request counts in, and with which limits.

Kong 3.9 counts per *identifier* (``kong/plugins/rate-limiting/handler.lua:60-86``), not per history
consumer. With the plugin scoped to each consumer and ``limit_by: consumer`` (what ``quotaquake.stack.kong``
provisions and ``KongSpec`` declares):

* a provisioned consumer is its own identifier (its Kong consumer id);
* keyless requests *and unknown keys* fall back to key-auth's ``anonymous`` consumer
  (``key-auth/handler.lua:233-243``), whose plugin has ``limit_by: ip``: each keyless client address is one
  identifier when Kong trusts ``X-Forwarded-For`` (``anon:<ip>`` rows), else every keyless and unknown-key
  request of the generator shares the peer address (one identifier, ``peer``). Unknown keys carry no
  ``X-Forwarded-For``, so they always count under the peer address (history consumer ``invalid``);
* without an ``anonymous`` consumer keyless and unknown keys get 401 and are never counted (key-auth,
  PRIORITY 1250, runs before rate-limiting, 910);
* routes each gateway answers without the API service (``/calibrate``, ``/gateway-health``:
  request-termination, no key-auth) are never rate limited.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from quotaquake.kongspec import KongSpec
from quotaquake.policy import ANONYMOUS_TIER
from quotaquake.verify.data.rundata import RunData

INVALID_TIER = "invalid"
PEER_IDENTITY = "peer"
BYPASS_ROUTES: frozenset[str] = frozenset({"/calibrate", "/gateway-health"})
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class KongIdentity:
    """One rate-limiting counter: its name, the tier whose limits apply, the history consumers counting
    in it, and its limits (``{}``: no plugin, unlimited)."""

    name: str
    tier: str
    consumers: tuple[str, ...]
    limits: dict[str, int]


@dataclass(frozen=True)
class KongRows:
    """Per history row: ``identity`` (index into ``identities``; -1 for rows no plugin counts: unlimited
    tier, bypass route, expected 401, unknown tier) and the limits Kong shows for it (``limit_minute``,
    ``limit_month``: NaN where that period is not configured, or no plugin runs)."""

    spec: KongSpec
    identities: list[KongIdentity]
    identity: I64
    limit_minute: F64
    limit_month: F64
    unknown_tiers: dict[str, str]

    @property
    def limited(self) -> Bools:
        """Rows whose request goes through a rate-limiting plugin with at least one limit."""
        has_limits = np.asarray([bool(i.limits) for i in self.identities] + [False], dtype=np.bool_)
        return np.asarray(has_limits[self.identity], dtype=np.bool_)


def kong_rows(run: RunData, spec: KongSpec) -> KongRows:
    """Map every history row to its Kong identifier (see the module docstring)."""
    history = run.history
    names = [str(c) for c in history["consumer"].cat.categories]
    tiers = _first_tiers(run, len(names))
    identity_of_consumer = np.full(len(names) + 1, -1, dtype=np.int64)  # last slot: rows without consumer
    identities: list[KongIdentity] = []
    index: dict[str, int] = {}
    unknown: dict[str, str] = {}
    for code, (name, tier) in enumerate(zip(names, tiers, strict=True)):
        found = _identity(name, tier, spec)
        if found is None:
            if tier not in (INVALID_TIER, ANONYMOUS_TIER, ""):
                unknown[name] = tier
            continue
        key, limits_tier = found
        if key not in index:
            index[key] = len(identities)
            identities.append(KongIdentity(key, limits_tier, (), spec.limits_of(limits_tier) or {}))
        slot = index[key]
        identities[slot] = KongIdentity(key, limits_tier, (*identities[slot].consumers, name), identities[slot].limits)
        identity_of_consumer[code] = slot
    codes = np.asarray(history["consumer"].cat.codes, dtype=np.int64)
    identity = identity_of_consumer[codes]
    identity[_bypass_rows(run)] = -1
    limit_minute, limit_month = _row_limits(identities, identity)
    return KongRows(spec, identities, identity, limit_minute, limit_month, unknown)


def _identity(consumer: str, tier: str, spec: KongSpec) -> tuple[str, str] | None:
    """``(identifier, tier of its limits)`` of one history consumer, or ``None`` when no plugin counts it."""
    if tier == INVALID_TIER:
        return (PEER_IDENTITY, ANONYMOUS_TIER) if spec.anonymous is not None else None
    if tier == ANONYMOUS_TIER:
        if spec.anonymous is None:
            return None
        return (consumer, ANONYMOUS_TIER) if spec.forwarded_ip_trusted else (PEER_IDENTITY, ANONYMOUS_TIER)
    if tier in spec.tiers:
        return consumer, tier
    return None


def _bypass_rows(run: RunData) -> Bools:
    endpoints = run.history["endpoint"].cat
    bypass = [code for code, name in enumerate(endpoints.categories) if name in BYPASS_ROUTES]
    return np.isin(np.asarray(endpoints.codes), bypass)


def _row_limits(identities: list[KongIdentity], identity: I64) -> tuple[F64, F64]:
    minute = np.asarray([float(i.limits.get("minute", np.nan)) for i in identities] + [np.nan])
    month = np.asarray([float(i.limits.get("month", np.nan)) for i in identities] + [np.nan])
    return np.asarray(minute[identity], dtype=np.float64), np.asarray(month[identity], dtype=np.float64)


def _first_tiers(run: RunData, n_consumers: int) -> list[str]:
    """The tier of each consumer category (from its first row; "" when none)."""
    first = run.groups.first_rows()
    tier_codes = np.asarray(run.history["tier"].cat.codes)
    tier_names = [str(t) for t in run.history["tier"].cat.categories]
    tiers = [""] * n_consumers
    for code in range(min(len(first), n_consumers)):
        if first[code] >= 0 and tier_codes[first[code]] >= 0:
            tiers[code] = tier_names[int(tier_codes[first[code]])]
    return tiers
