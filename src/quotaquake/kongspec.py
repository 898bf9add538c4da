"""What a Kong 3.9 target declares about its ``rate-limiting`` plugin: everything verification needs.

A provider that runs Kong (``docker``) or points at one (``external``, the ``kong:`` section of its target
file) writes a ``KongSpec`` into the stack state; ``run.json`` copies it (``RunInfo.kong``), so
``quotaquake verify`` judges the history with the Kong model (``quotaquake.verify.models.kong``) and needs
nothing else. Facts and source lines: ``docs/kong-3.9.md`` (Kong 3.9.3, commit a643428b).

Units: limits are requests per window (Kong has no per-request cost: every increment is 1,
``kong/plugins/rate-limiting/handler.lua:209,212``); ``sync_rate_s`` and ``*_ms`` fields as named.
"""

from __future__ import annotations

import math
from itertools import pairwise
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from quotaquake.policy import ANONYMOUS_TIER, DegradationMode, Limits, Policy

PERIODS: tuple[str, ...] = ("second", "minute", "hour", "day", "month", "year")
KONG_DEFAULT_REDIS_TIMEOUT_MS = 2000  # kong/tools/redis/schema.lua:2,11
PositiveInt = Annotated[int, Field(gt=0)]


class KongLimits(BaseModel):
    """The periods one ``rate-limiting`` plugin limits (``schema.lua:80-85``); none set = no plugin."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    second: PositiveInt | None = None
    minute: PositiveInt | None = None
    hour: PositiveInt | None = None
    day: PositiveInt | None = None
    month: PositiveInt | None = None
    year: PositiveInt | None = None

    @model_validator(mode="after")
    def _longer_not_lower(self) -> KongLimits:
        ordered = [v for v in (getattr(self, p) for p in PERIODS) if v is not None]
        if any(later < earlier for earlier, later in pairwise(ordered)):
            raise ValueError("a longer period cannot have a lower limit (Kong schema.lua:10-23)")
        return self

    def as_mapping(self) -> dict[str, int]:
        """``{period: limit}`` of the configured periods, shortest first."""
        return {p: v for p in PERIODS if (v := getattr(self, p)) is not None}

    @classmethod
    def from_policy(cls, limits: Limits) -> KongLimits:
        """The plugin config for a policy tier: ``minute`` = ``per_minute``, ``month`` = ``per_month``.

        Kong's limits are schema type ``number`` and admit ``ceil(limit)`` requests per window (a request
        is stopped once ``limit - count <= 0``, handler.lua:100-110), so a fractional ``per_minute`` is
        declared here as its ceiling.
        """
        minute = None if limits.per_minute is None else math.ceil(limits.per_minute)
        return cls(minute=minute, month=limits.per_month)


class KongSpec(BaseModel):
    """A Kong 3.9 target's rate limiting as deployed.

    ``policy``/``sync_rate_s``/``fault_tolerant``/``hide_client_headers``/``error_code``: the plugin's
    ``config`` (one value for every consumer's plugin). ``tiers``: the limits each tier's consumers have
    (a tier without periods has no plugin: unlimited). ``anonymous``: limits of key-auth's ``anonymous``
    consumer, which keyless requests *and unknown keys* fall back to (``key-auth/handler.lua:233-243``),
    counted per client address (``limit_by: ip``); ``None`` when no anonymous consumer is configured
    (keyless and unknown keys then get 401). ``forwarded_ip_trusted``: Kong takes the client address from
    ``X-Forwarded-For`` (``trusted_ips``/``real_ip_header``), so each simulated keyless IP has its own
    counter; else (Kong's default: ``trusted_ips`` empty, ``kong.conf.default:930``) every keyless and
    unknown-key request of the generator shares one counter.
    ``replicas``/``workers_per_replica``: Kong nodes and nginx workers (local and redis-async count per
    node / per worker). ``increment_lag_ms`` (local/cluster): assumed bound on how long an increment may
    stay invisible (Kong gives none). ``clock_skew_ms``: bound on |Kong node clock - generator clock|.
    ``redis_timeout_ms``: the plugin's ``redis.timeout`` (connect/send/read, policies/init.lua:108).
    ``cors_preflight``: a CORS plugin answers preflights before rate-limiting (cors/handler.lua:193-241,
    PRIORITY 2000 > key-auth 1250 > rate-limiting 910): they are never counted.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: str = "3.9"
    policy: Literal["redis", "local", "cluster"] = "redis"
    sync_rate_s: float = -1.0
    fault_tolerant: bool = True
    hide_client_headers: bool = False
    error_code: Annotated[int, Field(gt=0)] = 429
    redis_timeout_ms: Annotated[int, Field(ge=0)] = KONG_DEFAULT_REDIS_TIMEOUT_MS
    replicas: Annotated[int, Field(ge=1)] = 1
    workers_per_replica: Annotated[int, Field(ge=1)] = 1
    increment_lag_ms: Annotated[float, Field(ge=0)] = 1000.0
    clock_skew_ms: Annotated[float, Field(ge=0)] = 100.0
    tiers: dict[str, KongLimits] = Field(default_factory=dict)
    anonymous: KongLimits | None = None
    forwarded_ip_trusted: bool = False
    cors_preflight: bool = False

    @model_validator(mode="after")
    def _sync_rate(self) -> KongSpec:
        if self.policy != "redis" and self.sync_rate_s != -1:
            raise ValueError("sync_rate can only be used with the redis policy (Kong schema.lua:25-27)")
        if self.policy == "redis" and self.sync_rate_s != -1 and self.sync_rate_s < 0.02:
            raise ValueError("sync_rate must be greater than 0.02, or -1 to disable (Kong schema.lua:29-33)")
        return self

    def limits_of(self, tier: str) -> dict[str, int] | None:
        """``{period: limit}`` of ``tier`` (``anonymous`` included); ``{}`` = unlimited, ``None`` = unknown tier."""
        if tier == ANONYMOUS_TIER:
            return None if self.anonymous is None else self.anonymous.as_mapping()
        limits = self.tiers.get(tier)
        return None if limits is None else limits.as_mapping()

    @property
    def store_role(self) -> Literal["rate-limit-store", "registry"] | None:
        """The role of the service that holds the counters: Redis (``redis``), Kong's database
        (``cluster``, policies/cluster.lua), or none (``local``: each node's shared dict)."""
        if self.policy == "redis":
            return "rate-limit-store"
        return "registry" if self.policy == "cluster" else None

    @classmethod
    def from_policy(cls, quota: Policy, /, **settings: object) -> KongSpec:
        """The spec of a Kong provisioned from the quota policy ``quota`` (``stack.kong``): its tiers, the anonymous
        consumer's limits, the policy's Redis timeout, and the nearest Kong degradation (``fail-open-local``
        -> ``fault_tolerant`` (unlimited pass-through), ``fail-closed`` -> not (HTTP 500));
        ``settings`` override any field."""
        tiers = {name: KongLimits.from_policy(limits) for name, limits in quota.tiers.items()}
        values: dict[str, object] = {
            "tiers": tiers,
            "anonymous": KongLimits.from_policy(quota.anonymous),
            "redis_timeout_ms": math.ceil(quota.degradation.redis_timeout_ms),
            "fault_tolerant": quota.degradation.on_redis_unavailable is not DegradationMode.FAIL_CLOSED,
            **settings,
        }
        return cls.model_validate(values)


__all__ = ["PERIODS", "KongLimits", "KongSpec"]
