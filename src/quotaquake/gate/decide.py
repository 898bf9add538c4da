"""``quotaquake gate``: the newest run(s) of a baseline store against the comparable runs before them.

1. **The window** (``select_window``): runs comparable with the newest one (same ``MATCH_COLUMNS``:
   scenario, rate, duration, stack, CPU count); its newest ``current_runs`` are judged against up to
   ``baseline_runs`` before them. Runs stopped by an abortOnFail threshold are never part of a baseline.
2. **Per key** (``compare.compare_runs``): regressed / improved / unchanged / unknown with the ratio and its
   bounds, for every (metric, tags, aggregation) the current runs have, except ``min``/``max`` (one
   request each: noise, not a statistic) and the machine's own metrics.
3. **Noise of the machine**: a timing metric (ms, s) that regressed while the current run(s) ran on a
   significantly busier machine (CPU pressure, or other processes' CPU: the same one-sided test as a
   regression) is unknown, not regressed: a busier machine slows every timing down, a slower system does
   not need one (the limiter's ``slow`` defect waits without using a CPU).
4. **The verdict**: the keys of ``gate.keys`` decide (a regression fails, an unknown key makes the gate
   unknown; a key the current run does not have, e.g. recovery without an experiment, is left out); every
   other key is compared and shown ("watched") but decides nothing, since hundreds of per-key tests would
   find some change by chance. The current runs' own verdicts (``verdicts.json``: quota accuracy,
   k6-style thresholds, ...) still apply as they were: fail > unknown > pass.

Exit codes as elsewhere: 0 pass, 1 fail, 3 unknown (2: usage or configuration error).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import pandas as pd

from quotaquake import stats
from quotaquake.gate.baseline import MATCH_COLUMNS, run_ids
from quotaquake.gate.compare import ComparePolicy, Comparison, compare_runs, runs_needed
from quotaquake.gate.expressions import METRICS, Tags, parse_summary_key, submetric_name, tags_key

Status = str  # pass, fail, unknown
Key = tuple[str, Tags, str]
NOISE_METRICS: tuple[str, ...] = ("qq_host_cpu_pressure", "qq_host_other_cpu")
NOT_COMPARED_AGGREGATIONS: frozenset[str] = frozenset({"min", "max"})
_RANK = {"pass": 0, "unknown": 1, "fail": 2}


@dataclass(frozen=True)
class GatePolicy:
    """The knobs of the gate (the thresholds file's ``gate:`` section, ``verify.thresholds.GateSection``)."""

    current_runs: int = 1
    baseline_runs: int | None = None
    alpha: float = 0.05
    min_effect: float = 0.10
    min_effect_by_metric: dict[str, float] = field(default_factory=dict)
    keys: tuple[Key, ...] = ()
    fdr: bool = False

    @classmethod
    def from_texts(cls, keys: Sequence[str], **options: object) -> GatePolicy:
        """A policy whose gated keys are given as ``metric{tags}: aggregation`` texts."""
        return cls(keys=tuple(parse_summary_key(text) for text in keys), **options)  # type: ignore[arg-type]

    def compare_policy(self) -> ComparePolicy:
        return ComparePolicy(
            min_effect=self.min_effect,
            min_effect_by_metric=self.min_effect_by_metric,
            alpha=self.alpha,
            min_current_runs=self.current_runs,
            fdr=self.fdr,
        )


@dataclass(frozen=True)
class Window:
    """Which runs the gate compares: ``current`` and ``baseline`` run ids (oldest first); ``matched`` the
    identity they share; ``other_identity`` and ``aborted``: run ids left out and why."""

    current: list[str]
    baseline: list[str]
    matched: dict[str, object]
    other_identity: list[str]
    aborted: list[str]


@dataclass(frozen=True)
class AbsoluteVerdict:
    """One verdict of a current run, as verification gave it (``verdicts.json``)."""

    run_id: str
    check: str
    status: str


@dataclass(frozen=True)
class GateResult:
    """The gate's verdict: ``status`` (pass, fail, unknown) and ``headline`` (one line saying why); the
    comparisons of the gated keys, of every other key (``watched``) and of the machine (``environment``);
    the current runs' own verdicts (``absolute``)."""

    status: Status
    headline: str
    window: Window
    gated: list[Comparison]
    watched: list[Comparison]
    environment: list[Comparison]
    absolute: list[AbsoluteVerdict]
    policy: GatePolicy

    @property
    def exit_code(self) -> int:
        return {"pass": 0, "fail": 1}.get(self.status, 3)

    @property
    def regressions(self) -> list[Comparison]:
        return [c for c in self.gated if c.change == "regressed"]


# --- the window -----------------------------------------------------------------------------------------


def select_window(store: pd.DataFrame, current_runs: int = 1, baseline_runs: int | None = None) -> Window:
    """The newest ``current_runs`` runs comparable with the newest run, and up to ``baseline_runs`` (all when
    None) comparable, not aborted runs before them. An empty store is a ``ValueError``."""
    ids = run_ids(store)
    if not ids:
        raise ValueError("the baseline store holds no run")
    identity = store.drop_duplicates("run_id").set_index("run_id")
    newest = identity.loc[ids[-1]]
    matched = {column: _plain(newest[column]) for column in MATCH_COLUMNS}
    same = [run for run in ids if all(_same(identity.loc[run, c], newest[c]) for c in MATCH_COLUMNS)]
    other = [run for run in ids if run not in same]
    current = same[-current_runs:]
    earlier = same[: max(len(same) - current_runs, 0)]
    aborted = [run for run in earlier if str(identity.loc[run, "aborted"])]
    baseline = [run for run in earlier if run not in aborted]
    if baseline_runs is not None:
        baseline = baseline[-baseline_runs:]
    return Window(current, baseline, matched, other, aborted)


def _same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return bool(a == b)


def _plain(value: object) -> object:
    return value.item() if hasattr(value, "item") else value


# --- judging --------------------------------------------------------------------------------------------


def judge(store: pd.DataFrame, policy: GatePolicy) -> GateResult:
    """The gate over a store frame (``baseline.load``), as the module docstring says."""
    window = select_window(store, policy.current_runs, policy.baseline_runs)
    frame = store[~store["aggregation"].isin(NOT_COMPARED_AGGREGATIONS)]
    frame = frame[frame["run_id"].isin([*window.baseline, *window.current])]
    is_environment = frame["metric"].map(lambda m: m in METRICS and METRICS[m].environment).astype(bool)
    compare = policy.compare_policy()
    machine = _compared(frame[is_environment], window, replace(compare, fdr=False))
    system = frame[~is_environment]
    system = system[_in(system, set(_keys(system[system["run_id"].isin(window.current)])))]
    gated_mask = _in(system, {(m, tags_key(t), a) for m, t, a in policy.keys})
    gated = _compared(system[gated_mask], window, compare)
    watched = _compared(system[~gated_mask], window, replace(compare, fdr=False))
    noise = busier_machine(store, window, policy.alpha)
    if noise is not None:
        gated = [_excused(c, noise) for c in gated]
        watched = [_excused(c, noise) for c in watched]
    absolute = absolute_verdicts(store, window.current)
    status, headline = verdict(window, gated, absolute, policy)
    return GateResult(status, headline, window, gated, watched, machine, absolute, policy)


def _keys(frame: pd.DataFrame) -> list[tuple[str, str, str]]:
    return list(zip(frame["metric"], frame["tags"], frame["aggregation"], strict=True))


def _in(frame: pd.DataFrame, keys: set[tuple[str, str, str]]) -> pd.Series:
    """Rows of ``frame`` whose (metric, tags text, aggregation) is one of ``keys``."""
    return pd.Series([key in keys for key in _keys(frame)], index=frame.index, dtype=bool)


def _compared(frame: pd.DataFrame, window: Window, policy: ComparePolicy) -> list[Comparison]:
    """``compare_runs`` of the current runs' rows of ``frame`` against the baseline runs' rows."""
    baseline = frame[frame["run_id"].isin(window.baseline)]
    return compare_runs(baseline, frame[frame["run_id"].isin(window.current)], policy)


def busier_machine(store: pd.DataFrame, window: Window, alpha: float = 0.05) -> str | None:
    """Why the current run(s) ran on a significantly busier machine than the baseline runs, or ``None``:
    the same one-sided Mann–Whitney test at ``alpha`` as a regression, on each ``NOISE_METRICS`` value the
    runs have on both sides (CPU pressure keeps growing when the cores are full, other processes' CPU
    cannot)."""
    for metric in NOISE_METRICS:
        rows = store[(store["metric"] == metric) & (store["aggregation"] == "value")]
        base = rows[rows["run_id"].isin(window.baseline)]["value"].dropna().to_numpy(dtype=float)
        curr = rows[rows["run_id"].isin(window.current)]["value"].dropna().to_numpy(dtype=float)
        if len(base) == 0 or len(curr) == 0 or stats.mann_whitney_min_p(len(curr), len(base)) >= alpha:
            continue
        p = stats.mann_whitney(curr, base, "greater").p_value
        if p < alpha:
            return (
                f"the machine was busier than on the baseline runs ({METRICS[metric].description}: "
                f"{', '.join(f'{v:.3g}' for v in curr)} vs {base.min():.3g}..{base.max():.3g} before; one-sided "
                f"Mann–Whitney p = {p:.3g}): a slower timing cannot be told from it; run again"
            )
    return None


def _excused(comparison: Comparison, noise: str) -> Comparison:
    if comparison.change != "regressed" or not METRICS[comparison.metric].timing:
        return comparison
    return replace(comparison, change="unknown", reason=f"{comparison.reason}; but {noise}")


def absolute_verdicts(store: pd.DataFrame, current: Sequence[str]) -> list[AbsoluteVerdict]:
    """Every verdict of the current runs (from each run's ``verdicts`` identity column)."""
    identity = store.drop_duplicates("run_id").set_index("run_id")
    verdicts: list[AbsoluteVerdict] = []
    for run in current:
        try:
            statuses = json.loads(str(identity.loc[run, "verdicts"]))
        except json.JSONDecodeError:
            statuses = {"verdicts": "unknown"}
        verdicts += [AbsoluteVerdict(run, str(check), str(status)) for check, status in sorted(statuses.items())]
    return verdicts


def verdict(
    window: Window, gated: Sequence[Comparison], absolute: Sequence[AbsoluteVerdict], policy: GatePolicy
) -> tuple[Status, str]:
    """fail > unknown > pass over the gated keys and the current runs' own verdicts, with one line why."""
    failed = [v for v in absolute if v.status == "fail"]
    regressed = [c for c in gated if c.change == "regressed"]
    if regressed or failed:
        parts = [f"{label(c)} {percent(c.ratio)} ({percent(c.low)}..{percent(c.high)})" for c in regressed[:5]]
        parts += [f"{v.check} failed in {v.run_id}" for v in failed[:5]]
        what = f"{len(regressed)} regression(s)" if regressed else "a run's own verdicts failed"
        return "fail", f"{what}: {'; '.join(parts)}"
    too_few = _too_few(window, policy)
    if too_few is not None:
        return "unknown", too_few
    unknown = [c for c in gated if c.change == "unknown"]
    open_verdicts = [v for v in absolute if v.status == "unknown"]
    if unknown or open_verdicts:
        parts = [f"{label(c)}: {c.reason}" for c in unknown[:3]]
        parts += [f"{v.check} unknown in {v.run_id}" for v in open_verdicts[:3]]
        return "unknown", f"{len(unknown)} key(s) and {len(open_verdicts)} verdict(s) undecided: {'; '.join(parts)}"
    if not gated:
        return "unknown", "none of the gated keys is in the current run(s): nothing was judged"
    return "pass", (
        f"{len(gated)} gated key(s) proven unchanged or better against {len(window.baseline)} baseline run(s); "
        "the current run(s)' own verdicts pass"
    )


def _too_few(window: Window, policy: GatePolicy) -> str | None:
    """Why the window is too small for any test to decide (with the counts that would), or ``None``."""
    compare = policy.compare_policy()
    m, k = len(window.baseline), len(window.current)
    possible = stats.mann_whitney_min_p(m, k) < policy.alpha
    if m >= compare.min_baseline_runs and k >= compare.min_current_runs and possible:
        return None
    k_used, m_used = max(k, compare.min_current_runs), max(m, compare.min_baseline_runs)
    need_m = max(compare.min_baseline_runs, runs_needed(k_used, policy.alpha))
    need_k = max(compare.min_current_runs, runs_needed(m_used, policy.alpha))
    return (
        f"{m} comparable baseline run(s) and {k} current run(s) are too few to tell a regression from noise "
        f"(one-sided Mann–Whitney at p < {policy.alpha:g}): need >= {need_m} baseline runs with {k_used} current, "
        f"or >= {need_k} current runs (gate.current_runs) with {m_used} baseline"
    )


def matched_text(window: Window) -> str:
    """The identity the window's runs share, as ``scenario=..., rate=200, ...``."""
    return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in window.matched.items())


def label(comparison: Comparison) -> str:
    """``submetric: aggregation``, e.g. ``http_req_duration{tier:pro}: p(95)``."""
    return f"{submetric_name(comparison.metric, comparison.tags)}: {comparison.aggregation}"


def percent(ratio: float | None) -> str:
    """A ratio as a signed change in percent (``+18.0 %``); ``n/a`` when undefined."""
    if ratio is None or math.isnan(ratio):
        return "n/a"
    if math.isinf(ratio):
        return "+∞"
    return f"{(ratio - 1) * 100:+.1f} %"
