"""Run every check over a run folder and write ``verdicts.json`` (and, after the checks, the run's
``summary.parquet`` with the verdicts of the thresholds file's k6-style ``thresholds:``).

A checker that raises yields ``unknown`` with the exception text (never ``pass``). The quota model
follows ``run.json``'s ``model``: ``token-bucket`` (embedded limiter), ``kong`` (Kong 3.9's rate-limiting
plugin as ``run.json``'s ``kong`` declares it) or ``fixed-window`` (a generic fixed window; older runs).
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from pathlib import Path

from quotaquake.runfolder import RunFolder
from quotaquake.runfolder.models import FaultKind
from quotaquake.verify.checks.completeness import check_completeness
from quotaquake.verify.checks.crosscheck import check_prometheus_crosscheck
from quotaquake.verify.checks.degradation import check_degradation, check_degraded_over_admission
from quotaquake.verify.checks.error_budget import check_error_budget
from quotaquake.verify.checks.expressiveness import CHECK as EXPRESSIVENESS_CHECK
from quotaquake.verify.checks.expressiveness import check_expressiveness
from quotaquake.verify.checks.failover import CHECK as FAILOVER_CHECK
from quotaquake.verify.checks.failover import check_failover
from quotaquake.verify.checks.generator import check_generator_health
from quotaquake.verify.checks.headers import check_headers
from quotaquake.verify.checks.latency import check_latency, check_limiter_latency
from quotaquake.verify.checks.quota_fixed_window import check_quota_fixed_window
from quotaquake.verify.checks.quota_kong import check_quota_kong
from quotaquake.verify.checks.quota_token_bucket import CHECK as QUOTA_CHECK
from quotaquake.verify.checks.quota_token_bucket import check_quota_token_bucket
from quotaquake.verify.checks.redis_latency import CHECK as REDIS_LATENCY_CHECK
from quotaquake.verify.checks.redis_latency import check_redis_latency
from quotaquake.verify.checks.replica_failover import CHECK as REPLICA_FAILOVER_CHECK
from quotaquake.verify.checks.replica_failover import check_replica_failover
from quotaquake.verify.data.rundata import RunData, load_run
from quotaquake.verify.summary import summarize_run
from quotaquake.verify.thresholds import Thresholds, load_thresholds
from quotaquake.verify.verdict import Outcome, Verdict, dumps

Checker = Callable[[RunData, Thresholds], Verdict]


def check_quota_accuracy(run: RunData, thresholds: Thresholds) -> Verdict:
    """The quota model the target declared in ``run.json``."""
    if run.info.model == "kong":
        return check_quota_kong(run, thresholds)
    if run.info.model == "fixed-window":
        return check_quota_fixed_window(run, thresholds)
    return check_quota_token_bucket(run, thresholds)


CHECKERS: tuple[tuple[str, Checker], ...] = (
    ("completeness", check_completeness),
    (QUOTA_CHECK, check_quota_accuracy),
    (EXPRESSIVENESS_CHECK, check_expressiveness),
    ("degraded-over-admission", check_degraded_over_admission),
    ("headers", check_headers),
    ("latency", check_latency),
    ("limiter-latency", check_limiter_latency),
    ("error-budget", check_error_budget),
    ("generator-health", check_generator_health),
    ("prometheus-crosscheck", check_prometheus_crosscheck),
    ("degradation", check_degradation),
    (FAILOVER_CHECK, check_failover),
    (REDIS_LATENCY_CHECK, check_redis_latency),
    (REPLICA_FAILOVER_CHECK, check_replica_failover),
)
FAULT_CHECKS = {
    FAILOVER_CHECK: FaultKind.FAILOVER,
    REDIS_LATENCY_CHECK: FaultKind.LATENCY,
    REPLICA_FAILOVER_CHECK: FaultKind.REPLICA_LOSS,
}
"""Checks of one kind of fault: listed only for runs that had such a fault window."""


def applies(name: str, run: RunData) -> bool:
    """Whether a check has anything to judge in ``run``.

    Degradation is judged only for runs that included an experiment (or that saw degraded decisions):
    a run without faults has no degradation verdict at all — neither pass (nothing was shown) nor
    unknown (nothing was asked). With an experiment but no fault window, the checks say unknown. The
    checks of one kind of fault (``FAULT_CHECKS``: failover, latency, replica loss) run when it happened.
    """
    if name == "degradation":
        return run.chaos_ran
    if name == EXPRESSIVENESS_CHECK:
        return run.info.model != "token-bucket"  # the embedded limiter implements the whole policy
    if name == "degraded-over-admission":
        return run.chaos_ran or bool(run.degraded.any())
    if name in FAULT_CHECKS:
        return any(w.kind is FAULT_CHECKS[name] for w in run.faults)
    return True


def run_checks(
    run: RunData, thresholds: Thresholds, checkers: tuple[tuple[str, Checker], ...] = CHECKERS
) -> tuple[Verdict, ...]:
    """Every applicable checker over ``run``; a crash becomes an ``unknown`` verdict naming the exception."""
    return tuple(_guarded(name, checker, run, thresholds) for name, checker in checkers if applies(name, run))


def _guarded(name: str, checker: Checker, run: RunData, thresholds: Thresholds) -> Verdict:
    try:
        return checker(run, thresholds)
    except Exception as exc:  # a crashing checker is unknown, never pass
        where = traceback.extract_tb(exc.__traceback__)[-1]
        return Verdict(
            name,
            "unknown",
            f"checker crashed: {type(exc).__name__}: {exc}",
            {"exception": repr(exc), "at": f"{where.filename}:{where.lineno}"},
        )


def verify_run(run_dir: Path, thresholds_path: Path | None = None) -> Outcome:
    """Load ``run_dir``, run all checks, write ``verdicts.json`` and return the outcome.

    ``thresholds_path=None`` uses the built-in defaults (the values in ``stack/thresholds.yaml``).
    Raises ``ConfigError`` (exit code 2) for a bad thresholds file or an unreadable run folder.
    """
    thresholds = load_thresholds(thresholds_path)
    run = load_run(run_dir)
    folder = RunFolder(run_dir)
    verdicts = run_checks(run, thresholds)
    verdicts += tuple(summarize_run(run, thresholds, verdicts, folder))  # summary.parquet, k6-style thresholds
    outcome = Outcome(run_dir=run_dir, verdicts=verdicts)
    folder.write_verdicts(dumps(outcome))
    return outcome
