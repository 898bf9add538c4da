"""Generator health: did the load generator keep its schedule, and if not, which limit was hit?

Judged on the steady part of the load: rows sent after the warm-up (``slo.warmup_s`` from the first
intended send) up to the last send.

* Lag is ``sent - intended`` (ms); beyond ``generator.max_lag_p99_ms`` at p99 the generator was *late*:
  latency is then judged from the actual send (see ``latency``).
* The sent rate is sends per second of actual send time over the steady part (sends in
  ``[warm-up end, last send]`` / that span); the scheduled rate is intended sends per second of intended
  time (intended sends in ``[warm-up end, last intended send]`` / that span). Peak rates over
  ``RATE_WINDOW_S`` windows compare shaped loads (spikes, ramps) like with like. Either falling
  below ``generator.min_rate_fraction`` of its schedule is a problem too.

When the schedule was not kept, the host samples (``host.jsonl``) say who held it back:

* ``generator``: a generator process used >= ``contention.generator_core`` of a core (one Locust process
  runs on one core) in at least one steady sample;
* ``machine``: the machine was saturated (CPU pressure, busy cores, steal, load: ``contention``), the
  stack and the generator together filling the cores;
* ``system``: the generator had CPU to spare on an unsaturated machine, so its users were late because the
  responses were: a user whose requests in flight are at their cap (one, or the scenario's) waits for a
  response before its next send.

Verdict: pass when the schedule was kept, or when the system held it back (the generator was healthy;
the latency check judges the system); unknown when the generator's CPU or the machine was the limit, or
when the host was not sampled (nothing tells the three apart); unknown with too few rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from quotaquake.verify.data.contention import HostWindow, host_window
from quotaquake.verify.data.rundata import RunData
from quotaquake.verify.data.warmup import NS_PER_S, Warmup, warmup
from quotaquake.verify.thresholds import Thresholds
from quotaquake.verify.verdict import Verdict

CHECK = "generator-health"
RATE_WINDOW_S = 5.0
Party = Literal["generator", "machine", "system"]


@dataclass(frozen=True)
class GeneratorHealth:
    rows: int
    steady_rows: int
    lag_p99_ms: float | None
    sent_rate: float | None  # sends per second of actual send time over the steady part
    scheduled_rate: float | None  # intended sends per second over the same part
    peak_sent_rate: float | None  # busiest RATE_WINDOW_S window of send times, req/s
    peak_scheduled_rate: float | None  # busiest window of intended times, req/s
    target_rate: float | None
    latency_p99_ms: float | None  # actual-send latency p99 of the steady part (computed when not kept)
    late: bool  # lag p99 above the limit: latency is judged from the actual send
    problems: tuple[str, ...]
    host: HostWindow
    warmup: Warmup
    party: Party | None  # who held the schedule back (None: it was kept, or the host was not sampled)

    @property
    def kept(self) -> bool:
        return not self.problems

    @property
    def blame(self) -> str:
        """One line naming the limit that was hit, with its numbers."""
        host = self.host
        if self.party == "generator":
            return (
                f"the generator's CPU: a Locust process used >= {host.generator_cpu_max} core(s) "
                f"in {host.generator_bound} of {host.samples} s"
            )
        if self.party == "machine":
            return (
                f"the machine: saturated in {host.saturated} of {host.samples} s "
                f"({_reasons(host)}; cores used on average: stack {host.stack_cpu_mean}, generator "
                f"{host.generator_cpu_mean}, other processes {host.others_cpu} of {host.cores})"
            )
        if self.party == "system":
            return (
                f"the system: the generator had CPU to spare (<= {host.generator_cpu_max} cores) on an "
                f"unsaturated machine, but responses were slow (latency p99 {self.latency_p99_ms} ms) and a "
                "user with its requests in flight waits for a response before sending again"
            )
        return (
            "unknown: the host was not sampled (no host.jsonl), so the generator's CPU, the machine and the "
            "system cannot be told apart"
        )


def _reasons(host: HostWindow) -> str:
    return ", ".join(f"{name} {count} s" for name, count in host.reasons.items()) or "none"


def peak_send_rate(times_ns: npt.NDArray[np.int64], window_s: float = RATE_WINDOW_S) -> float | None:
    """Requests per second in the busiest ``window_s`` window of ``times_ns`` (any order; the whole span
    if shorter); ``None`` for fewer than 2 rows."""
    if len(times_ns) < 2:
        return None
    first, last = int(times_ns.min()), int(times_ns.max())
    span_s = (last - first) / 1e9
    if span_s <= window_s:
        return (len(times_ns) - 1) / span_s if span_s > 0 else None
    bins = (times_ns - first) // int(window_s * 1e9)
    full = int(span_s // window_s)  # the last, partial window is left out
    counts = np.bincount(bins, minlength=full + 1)[:full]
    return float(counts.max()) / window_s


def steady_rates(
    intended: npt.NDArray[np.int64], sent: npt.NDArray[np.int64], start_ns: int
) -> tuple[float | None, float | None]:
    """(sent rate, scheduled rate), req/s, over the steady part from ``start_ns``: the sends from then to
    the last send per second of that send time, and the intended sends from then to the last intended
    one per second of that intended time (``None`` for an empty span). A late generator spreads the same
    requests over more send time: its sent rate falls below the scheduled one."""
    return _rate(sent, start_ns), _rate(intended, start_ns)


def _rate(times_ns: npt.NDArray[np.int64], start_ns: int) -> float | None:
    count = int(np.count_nonzero(times_ns >= start_ns))
    if count == 0:
        return None
    span_s = (int(times_ns.max()) - start_ns) / NS_PER_S
    return round(count / span_s, 3) if span_s > 0 else None


def nearest_rank_p99(values: npt.NDArray[np.generic]) -> float:
    """The nearest-rank p99 of ``values`` (reordered in place: pass a temporary)."""
    k = max(int(np.ceil(0.99 * len(values))) - 1, 0)
    values.partition(k)
    return float(values[k])


def generator_health(run: RunData, thresholds: Thresholds) -> GeneratorHealth:
    history = run.history
    warm = warmup(run, thresholds.slo.warmup_s)
    sent_all = np.asarray(history["sent_ns"])
    intended_all = np.asarray(history["intended_ns"])
    first = int(np.searchsorted(sent_all, warm.end_ns, side="left"))  # rows are in send order
    sent, intended = sent_all[first:], intended_all[first:]  # views: the steady part
    end_s = float(sent[-1]) / NS_PER_S if len(sent) else 0.0
    host = host_window(run.host, warm.end_ns / NS_PER_S, end_s, thresholds.contention)
    lag_p99 = round(nearest_rank_p99(sent - intended) / 1e6, 3) if len(sent) else None
    sent_rate, scheduled_rate = steady_rates(intended_all, sent_all, warm.end_ns)
    peak_sent, peak_scheduled = peak_send_rate(sent), peak_send_rate(intended)
    problems = _problems(thresholds, lag_p99, sent_rate, scheduled_rate, peak_sent, peak_scheduled)
    latency_p99 = None
    if problems and len(sent):  # only the blame of a missed schedule names it
        latency = np.asarray(history["latency_ms"], dtype=np.float64)[first:]
        finite = latency[~np.isnan(latency)]
        latency_p99 = round(nearest_rank_p99(finite), 3) if len(finite) else None
    return GeneratorHealth(
        rows=len(history),
        steady_rows=len(sent),
        lag_p99_ms=lag_p99,
        sent_rate=sent_rate,
        scheduled_rate=scheduled_rate,
        peak_sent_rate=peak_sent,
        peak_scheduled_rate=peak_scheduled,
        target_rate=run.info.target_rate,
        latency_p99_ms=latency_p99,
        late=lag_p99 is not None and lag_p99 > thresholds.generator.max_lag_p99_ms,
        problems=problems,
        host=host,
        warmup=warm,
        party=None if not problems else _party(host),
    )


def _problems(
    thresholds: Thresholds,
    lag_p99: float | None,
    sent_rate: float | None,
    scheduled_rate: float | None,
    peak_sent: float | None,
    peak_scheduled: float | None,
) -> tuple[str, ...]:
    limits = thresholds.generator
    problems: list[str] = []
    if lag_p99 is not None and lag_p99 > limits.max_lag_p99_ms:
        problems.append(f"lag p99 {lag_p99:.1f} ms > {limits.max_lag_p99_ms:g} ms")
    if sent_rate is not None and scheduled_rate is not None and sent_rate < limits.min_rate_fraction * scheduled_rate:
        problems.append(
            f"sent {sent_rate:.1f} req/s < {limits.min_rate_fraction:g} x the scheduled {scheduled_rate:.1f}"
        )
    if peak_sent is not None and peak_scheduled is not None and peak_sent < limits.min_rate_fraction * peak_scheduled:
        problems.append(
            f"peak sent {peak_sent:.1f} req/s < {limits.min_rate_fraction:g} x the peak {peak_scheduled:.1f}"
        )
    return tuple(problems)


def _party(host: HostWindow) -> Party | None:
    if not host.measured:
        return None
    if host.generator_bound:
        return "generator"
    if host.saturated:
        return "machine"
    return "system"


def check_generator_health(run: RunData, thresholds: Thresholds) -> Verdict:
    health = generator_health(run, thresholds)
    evidence: dict[str, object] = {
        "rows": health.rows,
        "steady_rows": health.steady_rows,
        "warmup": health.warmup.evidence(),
        "lag_p99_ms": health.lag_p99_ms,
        "max_lag_p99_ms": thresholds.generator.max_lag_p99_ms,
        "sent_rate": health.sent_rate,
        "scheduled_rate": health.scheduled_rate,
        "peak_sent_rate": health.peak_sent_rate,
        "peak_scheduled_rate": health.peak_scheduled_rate,
        "target_rate": health.target_rate,
        "min_rate_fraction": thresholds.generator.min_rate_fraction,
        "latency_p99_ms": health.latency_p99_ms,
        "problems": list(health.problems),
        "limit_hit": health.party,
        "host": health.host.evidence(),
    }
    if health.steady_rows < 2:
        return Verdict(CHECK, "unknown", "too few requests after the warm-up to judge the generator", evidence)
    rate = "" if health.sent_rate is None else f", sent {health.sent_rate:.1f} req/s"
    if health.kept:
        return Verdict(CHECK, "pass", f"generator kept the schedule: lag p99 {health.lag_p99_ms} ms{rate}", evidence)
    problems = "; ".join(health.problems)
    if health.party == "system":
        return Verdict(CHECK, "pass", f"the generator was not the limit ({problems}): {health.blame}", evidence)
    return Verdict(CHECK, "unknown", f"schedule not kept ({problems}); limit hit: {health.blame}", evidence)
