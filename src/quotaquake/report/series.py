"""Time series for the report's charts: request rates by status class and tier, latency percentiles
(from the actual send and from the intended send), generator lag and degraded responses, per time bin.

Bins are 1 s, widened so that a run has at most ``MAX_BINS`` bins (bin k covers [t0 + k x bin_s,
t0 + (k + 1) x bin_s), t0 the first send). Rates are requests per second (count / the part of the bin
the run covered: the last bin ends at the last send; not drawn when under half covered); latencies and
lag are milliseconds, nearest-rank percentiles per bin (``quotaquake.report.grouped``), NaN for bins
without a sample (drawn as gaps, not zeros).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from quotaquake.report.grouped import grouped_max, grouped_percentiles

MAX_BINS = 600
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

STATUS_CLASSES: tuple[str, ...] = ("2xx", "429", "401", "other 4xx", "5xx", "no response", "other")
"""How a response is counted: 2xx; 429 (rejected by a quota); 401 (unknown key); other 4xx (403, 404,
...: answers, but not successes); 5xx; no response (status 0: timeout or connection error); other
(1xx/3xx, shown only when present)."""
ERROR_CLASSES: frozenset[str] = frozenset({"5xx", "no response"})


def status_classes(status: npt.NDArray[np.integer]) -> npt.NDArray[np.int8]:
    """The index in ``STATUS_CLASSES`` of every status."""
    classes = np.full(len(status), STATUS_CLASSES.index("other"), dtype=np.int8)
    classes[(status >= 200) & (status < 300)] = STATUS_CLASSES.index("2xx")
    classes[(status >= 400) & (status < 500)] = STATUS_CLASSES.index("other 4xx")
    classes[status == 429] = STATUS_CLASSES.index("429")
    classes[status == 401] = STATUS_CLASSES.index("401")
    classes[status >= 500] = STATUS_CLASSES.index("5xx")
    classes[status == 0] = STATUS_CLASSES.index("no response")
    return classes


@dataclass(frozen=True)
class Timeline:
    """The report's time bins: ``n`` bins of ``bin_s`` seconds from the first send ``t0_ns`` (epoch ns);
    the sends span ``span_s`` seconds, so the last bin is covered only up to the last send."""

    t0_ns: int
    bin_s: float
    n: int
    span_s: float = 0.0

    @property
    def t0_s(self) -> float:
        return self.t0_ns / 1e9

    @property
    def starts_s(self) -> F64:
        """Bin starts, seconds since t0."""
        return np.arange(self.n, dtype=np.float64) * self.bin_s

    @property
    def edges_s(self) -> F64:
        """The n + 1 bin edges, seconds since t0 (the last one is the end of the last bin)."""
        return np.arange(self.n + 1, dtype=np.float64) * self.bin_s

    @property
    def widths_s(self) -> F64:
        """How much of each bin the run covered (s): ``bin_s``, but the last bin ends at the last send."""
        widths = np.full(self.n, self.bin_s)
        widths[-1] = min(self.bin_s, max(self.span_s - (self.n - 1) * self.bin_s, 0.0))
        return widths

    def bin_of(self, sent_ns: npt.NDArray[np.int64]) -> I64:
        """The bin of every send time (rows before t0 or after the last bin get -1)."""
        bins = np.floor((sent_ns - self.t0_ns) / 1e9 / self.bin_s).astype(np.int64)
        return np.where((bins >= 0) & (bins < self.n), bins, -1)


def timeline_of(sent_ns: npt.NDArray[np.int64]) -> Timeline | None:
    """Bins covering ``sent_ns`` (sorted); ``None`` when there is no row."""
    if len(sent_ns) == 0:
        return None
    t0 = int(sent_ns[0])
    span_s = (int(sent_ns[-1]) - t0) / 1e9
    bin_s = max(1.0, float(np.ceil(span_s / MAX_BINS)))
    return Timeline(t0, bin_s, int(span_s // bin_s) + 1, span_s)


def wall_clock(epoch_s: F64) -> list[str]:
    """Epoch seconds as UTC ISO timestamps with milliseconds and no zone suffix (Plotly date strings)."""
    stamps = (np.asarray(epoch_s, dtype=np.float64) * 1e3).round().astype("datetime64[ms]")
    return [str(s) for s in np.datetime_as_string(stamps, unit="ms")]


@dataclass(frozen=True)
class Series:
    """Per-bin values on ``timeline`` (see the module docstring for units)."""

    timeline: Timeline
    by_status: dict[str, F64]  # req/s per class of ``STATUS_CLASSES`` (classes never seen left out)
    by_tier: dict[str, F64]  # req/s
    degraded: F64  # req/s of responses marked degraded (decided without Redis)
    latency: dict[str, F64]  # "p50".."p99" from the actual send, "p50 from intended".. ; ms
    lag: dict[str, F64]  # generator lag (sent - intended) "p50", "p99", "max"; ms


def time_series(history: pd.DataFrame, timeline: Timeline) -> Series:
    """Binned series of ``history`` (columns intended_ns, sent_ns, latency_ms, status, tier, degraded)."""
    sent = np.asarray(history["sent_ns"], dtype=np.int64)
    bins = timeline.bin_of(sent)
    n = timeline.n
    widths = timeline.widths_s
    # a last bin covered for less than half its width would show a dip or a spike that never happened
    widths = np.where(widths >= timeline.bin_s / 2, widths, np.nan)

    def rate(mask: npt.NDArray[np.bool_]) -> F64:
        picked = bins[mask & (bins >= 0)]
        return np.asarray(np.bincount(picked, minlength=n)[:n] / widths, dtype=np.float64)

    status = np.asarray(history["status"])
    classes = status_classes(status)
    by_status = {name: rate(classes == i) for i, name in enumerate(STATUS_CLASSES) if np.any(classes == i)}
    tiers = history["tier"].cat
    codes = np.asarray(tiers.codes)
    by_tier = {str(name): rate(codes == code) for code, name in enumerate(tiers.categories) if np.any(codes == code)}
    degraded = rate(np.asarray(history["degraded"].cat.codes) >= 0)
    lag_ms = (sent - np.asarray(history["intended_ns"], dtype=np.int64)) / 1e6
    actual = np.where(status != 0, np.asarray(history["latency_ms"], dtype=np.float64), np.nan)
    latency = grouped_percentiles(bins, actual, n)
    corrected = grouped_percentiles(bins, actual + lag_ms, n)  # from the intended send
    latency.update({f"{name} from intended": values for name, values in corrected.items()})
    lag = grouped_percentiles(bins, lag_ms, n, (50.0, 99.0))
    lag["max"] = grouped_max(bins, lag_ms, n)
    return Series(timeline, by_status, by_tier, degraded, latency, lag)
