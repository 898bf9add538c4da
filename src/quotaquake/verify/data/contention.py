"""The machine during a stretch of the run, from the host samples (``host.jsonl``): was it saturated, how
long did a runnable task wait for a CPU, and who used the CPU (generator, stack).

Used by the latency checks (may contention explain a missed target?) and generator health (which limit
was hit?). The rules and their defaults are in ``verify.thresholds.Contention``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from quotaquake.runfolder.models import WAKE_DELAY_EDGES_MS, HostSample
from quotaquake.verify.thresholds import Contention


def saturation_reasons(sample: HostSample, limits: Contention) -> list[str]:
    """Why one sample counts as saturated (empty: it does not)."""
    reasons = []
    if sample.psi_some is not None and sample.psi_some >= limits.max_cpu_pressure:
        reasons.append("cpu-pressure")
    busy = (sum(sample.cpu_busy) / len(sample.cpu_busy) if sample.cpu_busy else 0.0) + sample.steal
    if busy >= limits.max_busy:
        reasons.append("cores-busy")
    if sample.steal >= limits.max_steal:
        reasons.append("steal")
    if sample.cores and sample.load1 / sample.cores > limits.max_load_per_core:
        reasons.append("load")
    return reasons


@dataclass(frozen=True)
class HostWindow:
    """The host samples of one stretch of the run, summarised. ``stack_on_host``: True (here), False
    (remote target), None (here, processes not attributed) or, without samples, None."""

    samples: int
    saturated: int
    reasons: dict[str, int]
    stack_on_host: bool | None
    cores: int
    psi_some_max: float | None
    busy_mean: float | None
    load1_max: float | None
    steal_max: float | None
    generator_cpu_max: float | None
    generator_cpu_mean: float | None
    generator_bound: int  # samples in which a generator process used >= ``generator_core`` of a core
    stack_cpu_mean: float | None
    stack_wait_max: float | None
    wake_counts: tuple[int, ...]

    @property
    def measured(self) -> bool:
        return self.samples > 0

    @property
    def others_cpu(self) -> float | None:
        """Cores busy on average with neither the stack nor the generator (other processes of the machine)."""
        if self.busy_mean is None or self.stack_cpu_mean is None or self.generator_cpu_mean is None:
            return None
        return round(max(0.0, self.busy_mean * self.cores - self.stack_cpu_mean - self.generator_cpu_mean), 2)

    @property
    def saturated_share(self) -> float:
        return self.saturated / self.samples if self.samples else 0.0

    @property
    def generator_bound_share(self) -> float:
        return self.generator_bound / self.samples if self.samples else 0.0

    def saturated_for(self, q: float) -> bool:
        """Whether the machine was saturated long enough to make the slowest (100 - q) % of requests:
        >= (100 - q) % of the samples (and at least one)."""
        return self.saturated > 0 and self.saturated_share >= (100.0 - q) / 100.0

    def wake_delay_ms(self, quantile: float) -> float | None:
        """The probe's wake-up delay at ``quantile`` (0..1), as the upper edge of its bucket (so never
        below the true value; ``inf`` past the last edge); ``None`` without probe counts."""
        total = sum(self.wake_counts)
        if total == 0:
            return None
        rank = max(1, math.ceil(quantile * total))
        index = int(np.searchsorted(np.cumsum(self.wake_counts), rank))
        return WAKE_DELAY_EDGES_MS[index] if index < len(WAKE_DELAY_EDGES_MS) else math.inf

    def scheduler_allowance_ms(self, q: float, hops: int) -> float | None:
        """What ``hops`` scheduler waits can add to the q-th percentile (ms): ``hops x`` the wake-up delay
        at the (1 - (1 - q/100) / hops) quantile (union bound; see ``Contention``)."""
        delay = self.wake_delay_ms(1.0 - (1.0 - q / 100.0) / hops)
        return None if delay is None else hops * delay

    def evidence(self) -> dict[str, object]:
        return {
            "samples": self.samples,
            "saturated_samples": self.saturated,
            "saturated_share": round(self.saturated_share, 4),
            "saturation_reasons": self.reasons,
            "stack_on_host": self.stack_on_host,
            "cores": self.cores,
            "cpu_pressure_max": self.psi_some_max,
            "busy_mean": self.busy_mean,
            "load1_max": self.load1_max,
            "steal_max": self.steal_max,
            "generator_cpu_max_cores": self.generator_cpu_max,
            "generator_cpu_mean_cores": self.generator_cpu_mean,
            "others_cpu_mean_cores": self.others_cpu,
            "generator_cpu_bound_samples": self.generator_bound,
            "stack_cpu_mean_cores": self.stack_cpu_mean,
            "stack_threads_waiting_max": self.stack_wait_max,
            "wake_delay_p50_ms": self.wake_delay_ms(0.5),
            "wake_delay_p99_ms": self.wake_delay_ms(0.99),
            "wake_delay_max_bucket_ms": self.wake_delay_ms(1.0),
        }


def host_window(samples: list[HostSample], start_s: float, end_s: float, limits: Contention) -> HostWindow:
    """The samples whose interval overlaps ``[start_s, end_s]`` (epoch seconds), summarised."""
    chosen = [s for s in samples if s.t > start_s and s.t - s.interval_s < end_s]
    reasons: dict[str, int] = {}
    saturated = generator_bound = 0
    wake = np.zeros(len(WAKE_DELAY_EDGES_MS) + 1, dtype=np.int64)
    for sample in chosen:
        found = saturation_reasons(sample, limits)
        saturated += bool(found)
        for reason in found:
            reasons[reason] = reasons.get(reason, 0) + 1
        generator_bound += sample.generator_max_process_cpu >= limits.generator_core
        counts = np.asarray(sample.wake_delay_counts[: len(wake)], dtype=np.int64)
        wake[: len(counts)] += counts
    return HostWindow(
        samples=len(chosen),
        saturated=saturated,
        reasons=reasons,
        stack_on_host=_stack_on_host(chosen),
        cores=max((s.cores for s in chosen), default=0),
        psi_some_max=_max([s.psi_some for s in chosen]),
        busy_mean=_mean([sum(s.cpu_busy) / len(s.cpu_busy) for s in chosen if s.cpu_busy]),
        load1_max=_max([s.load1 for s in chosen]),
        steal_max=_max([s.steal for s in chosen]),
        generator_cpu_max=_max([s.generator_cpu for s in chosen]),
        generator_cpu_mean=_mean([s.generator_cpu for s in chosen]),
        generator_bound=generator_bound,
        stack_cpu_mean=_mean([s.stack_cpu for s in chosen if s.stack_cpu is not None]),
        stack_wait_max=_max([s.stack_wait for s in chosen]),
        wake_counts=tuple(int(c) for c in wake),
    )


def _stack_on_host(samples: list[HostSample]) -> bool | None:
    if any(s.stack_on_host is False for s in samples):
        return False
    if any(s.stack_on_host for s in samples):
        return True
    return None


def _max(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(max(present), 4) if present else None


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None
