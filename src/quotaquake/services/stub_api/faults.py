"""Seeded latency model and error injection: the stub API's configurable misbehaviour.

Latency is lognormal: ``delay = median * exp(sigma * Z)`` with ``Z`` standard normal, so half of all
delays are below ``median`` and ``sigma`` (of the underlying normal) sets the tail:
p99 = median * exp(2.326 * sigma), e.g. 2 ms median, sigma 0.5 -> p99 ~ 6.4 ms.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field


@dataclass
class LatencyModel:
    """Draws per-request delays in seconds from a seeded lognormal distribution.

    ``median_ms == 0`` means no delay at all (the request never sleeps); ``sigma == 0`` gives exactly
    the median every time.
    """

    median_ms: float
    sigma: float
    seed: int | None = None
    _rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.median_ms < 0 or self.sigma < 0:
            raise ValueError(f"median_ms and sigma must be >= 0, got {self.median_ms}, {self.sigma}")
        self._rng = random.Random(self.seed)
        self._mu = math.log(self.median_ms / 1000.0) if self.median_ms > 0 else 0.0

    @property
    def enabled(self) -> bool:
        return self.median_ms > 0

    def next_delay_s(self) -> float:
        """The next delay in seconds (0.0 when disabled)."""
        if self.median_ms == 0:
            return 0.0
        if self.sigma == 0:
            return self.median_ms / 1000.0
        return self._rng.lognormvariate(self._mu, self.sigma)


def lognormal_delays_ms(median_ms: float, sigma: float, seed: int, count: int) -> list[float]:
    """``count`` delays in milliseconds from a fresh ``LatencyModel`` (pure: same arguments, same list)."""
    model = LatencyModel(median_ms=median_ms, sigma=sigma, seed=seed)
    return [model.next_delay_s() * 1000.0 for _ in range(count)]


@dataclass
class ErrorInjector:
    """Decides per request whether to answer ``status`` instead of the real answer.

    Each request fails independently with probability ``rate`` (0.0 never, 1.0 always). The random
    stream is separate from the latency model's, so changing the rate does not change the delays.
    """

    rate: float
    status: int = 500
    seed: int | None = None
    _rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"error rate must be in [0, 1], got {self.rate}")
        self._rng = random.Random(None if self.seed is None else self.seed + 1)

    def should_fail(self) -> bool:
        if self.rate == 0.0:
            return False
        if self.rate == 1.0:
            return True
        return self._rng.random() < self.rate
