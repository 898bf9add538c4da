"""Prometheus metrics of one limiter process (names fixed by docs/ARCHITECTURE.md).

Each ``LimiterMetrics`` owns its ``CollectorRegistry`` (no import-time global state), so tests can build
as many limiters as they like. Labelled children are resolved once and cached: ``labels()`` costs a lock
and a dict lookup per call, the cache a dict lookup.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.metrics import Counter as CounterChild

# Decision latency buckets in seconds: fine below 2 ms (the performance target), coarse above.
LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003, 0.005, 0.01, 0.025, 0.05, 0.1)

RESULTS = ("allowed", "limited", "unauthorized", "unavailable")


class LimiterMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._decisions = Counter(
            "quotaquake_limiter_decisions",
            "Rate-limit decisions by consumer tier and result (allowed|limited|unauthorized|unavailable).",
            ["tier", "result"],
            registry=self.registry,
        )
        self.redis_errors = Counter(
            "quotaquake_limiter_redis_errors",
            "Decisions whose Redis call failed or timed out (each then degraded or was refused).",
            registry=self.registry,
        )
        self.redis_switches = Counter(
            "quotaquake_limiter_redis_primary_switches",
            "Promotions of another Redis node to primary this limiter learned from Sentinel (+switch-master).",
            registry=self.registry,
        )
        self._degraded = Counter(
            "quotaquake_limiter_degraded_decisions",
            "Decisions made without Redis (per-process fallback buckets or fail-closed 503).",
            ["tier"],
            registry=self.registry,
        )
        self.decision_seconds = Histogram(
            "quotaquake_limiter_decision_seconds",
            "Time from receiving an /authz request to sending its answer, in seconds.",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._decision_children: dict[tuple[str, str], CounterChild] = {}
        self._degraded_children: dict[str, CounterChild] = {}

    def decision(self, tier: str, result: str) -> None:
        child = self._decision_children.get((tier, result))
        if child is None:
            child = self._decision_children[(tier, result)] = self._decisions.labels(tier, result)
        child.inc()

    def degraded(self, tier: str) -> None:
        child = self._degraded_children.get(tier)
        if child is None:
            child = self._degraded_children[tier] = self._degraded.labels(tier)
        child.inc()

    def exposition(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)
