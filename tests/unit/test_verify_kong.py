"""The Kong checks on simulated Kong 3.9 targets (``tests/support/synthetic_kong.py``): a correct Kong with the
seed's configuration passes, each seeded defect fails the check that owns it.

The simulator decides with ``kong_decision`` (a replay of ``kong/plugins/rate-limiting/handler.lua:89-205``
at tag 3.9.3) against one Redis counter per identifier, period and window (``policies/init.lua:68-73,
407-415``); every test names the Kong fact it relies on.
"""

from __future__ import annotations

import collections
from pathlib import Path

import pytest

from quotaquake.kongspec import KongLimits, KongSpec
from quotaquake.policy import Policy, load_policy
from quotaquake.runfolder import RunFolder
from quotaquake.runfolder.models import InitialState
from quotaquake.verify.checks.expressiveness import check_expressiveness
from quotaquake.verify.data.rundata import load_run
from quotaquake.verify.engine import verify_run
from quotaquake.verify.thresholds import Thresholds
from quotaquake.verify.verdict import Outcome
from tests.support.synthetic import SyntheticConsumer
from tests.support.synthetic_kong import KongRun, kong_consumers, write_kong_run

POLICY = load_policy()
SPEC = KongSpec.from_policy(POLICY, replicas=3, clock_skew_ms=10.0, forwarded_ip_trusted=True)  # the docker stack


def verified(tmp_path: Path, run: KongRun, name: str = "run") -> Outcome:
    write_kong_run(tmp_path / name, run)
    return verify_run(tmp_path / name)


def statuses(outcome: Outcome) -> dict[str, str]:
    return {v.check: v.status for v in outcome.verdicts}


def nothing_fails(outcome: Outcome) -> bool:
    """No check fails (short synthetic runs may leave sample-size-bound checks, e.g. the error budget, unknown)."""
    return "fail" not in statuses(outcome).values()


def burst_consumers(rate: float = 15.0) -> tuple[SyntheticConsumer, ...]:
    return (SyntheticConsumer("free-1", "free", rate), SyntheticConsumer("free-2", "free", rate),
            SyntheticConsumer("pro-1", "pro", rate))  # fmt: skip


# ------------------------------------------------------------------------------------ a correct Kong passes


def test_correct_kong_passes_a_tiered_run(tmp_path: Path):
    outcome = verified(tmp_path, KongRun(POLICY, SPEC, kong_consumers(2, 4.5), 90.0))  # enough to decide everything
    result = statuses(outcome)
    assert result["quota-accuracy"] == "pass" and result["headers"] == "pass"
    assert "exact, zero tolerance" in outcome.verdict("quota-accuracy").summary  # policies/init.lua:407-415
    # no Prometheus declared: the server-side checks are listed, not judged, and the run still exits 0
    assert result["prometheus-crosscheck"] == result["limiter-latency"] == "not-applicable"
    assert result["policy-expressiveness"] == "not-applicable"
    assert outcome.exit_code == 0, result


def test_keyless_clients_share_one_counter_when_kong_ignores_x_forwarded_for(tmp_path: Path):
    # Kong's default trusted_ips is empty (kong.conf.default:930): X-Forwarded-For is ignored, so every keyless
    # client and unknown key counts under the generator's own address (handler.lua:86, pdk/client.lua:92-96)
    untrusted = SPEC.model_copy(update={"forwarded_ip_trusted": False})
    run = KongRun(POLICY, untrusted, kong_consumers(1, 3.0), 70.0)
    assert statuses(verified(tmp_path, run, "declared"))["quota-accuracy"] == "pass"
    # declaring the wrong one is caught: the per-IP counters this Kong kept do not fit one shared counter
    run_dir = tmp_path / "misdeclared"
    write_kong_run(run_dir, KongRun(POLICY, SPEC, kong_consumers(1, 3.0), 70.0))  # Kong trusted X-Forwarded-For
    folder = RunFolder(run_dir)
    folder.write_info(folder.read_info().model_copy(update={"kong": untrusted}))  # the target file said not
    assert statuses(verify_run(run_dir))["quota-accuracy"] == "fail"


def test_correct_kong_passes_a_burst_run_with_many_429s(tmp_path: Path):
    outcome = verified(tmp_path, KongRun(POLICY, SPEC, burst_consumers(), 75.0))
    history = load_run(tmp_path / "run").history
    assert int((history["status"] == 429).sum()) > 600  # 15 req/s against 100/min
    assert nothing_fails(outcome), statuses(outcome)


def test_a_second_run_right_after_passes_when_the_provider_reset_the_counters(tmp_path: Path):
    # Kong's counters outlive a run (30-day month keys, expiration.lua:6); the docker provider deletes them by
    # Kong's key format before the run (initial_state reset), so the second run's windows start at 0
    redis: collections.Counter[tuple[str, str, int]] = collections.Counter()
    first = KongRun(POLICY, SPEC, burst_consumers(), 40.0, counters=redis)
    assert nothing_fails(verified(tmp_path, first, "first"))
    redis.clear()
    second = KongRun(POLICY, SPEC, burst_consumers(), 60.0, start_s=first.start_s + 42.0, seed=1, counters=redis)
    outcome = verified(tmp_path, second, "second")
    assert nothing_fails(outcome), statuses(outcome)


def test_a_second_run_without_reset_is_judged_from_unknown_starts(tmp_path: Path):
    redis: collections.Counter[tuple[str, str, int]] = collections.Counter()
    first = KongRun(POLICY, SPEC, burst_consumers(), 40.0, counters=redis)
    verified(tmp_path, first, "first")
    after = dict(start_s=first.start_s + 42.0, seed=1, counters=redis, initial_state=InitialState.UNKNOWN)
    outcome = verified(tmp_path, KongRun(POLICY, SPEC, burst_consumers(), 60.0, **after), "second")  # type: ignore[arg-type]
    quota = outcome.verdict("quota-accuracy")
    # the minute the first run exhausted goes on stopping the second run's first requests: Remaining 0 is
    # Kong's own claim, and no admission in that minute refutes it, so those 429s are undecided, not passed;
    # everything the headers pin (Remaining = limit - count_before - 1, handler.lua:100,165-167) is judged
    assert quota.status == "unknown" and "before the run" in quota.summary
    assert not quota.evidence["offenders"]
    # claiming a reset that did not happen is caught: the first answers show counts from the first run
    redis.clear()
    verified(tmp_path, KongRun(POLICY, SPEC, burst_consumers(), 40.0, counters=redis), "again")
    claimed = KongRun(POLICY, SPEC, burst_consumers(), 60.0, start_s=first.start_s + 42.0, seed=1, counters=redis)
    assert statuses(verified(tmp_path, claimed, "claimed"))["quota-accuracy"] == "fail"


# ------------------------------------------------------------------------------------------ seeded defects


def test_a_consumer_whose_kong_limit_differs_from_the_policy_fails_naming_it(tmp_path: Path):
    run = KongRun(POLICY, SPEC, burst_consumers(), 70.0, actual_limits={"free-2": {"minute": 120, "month": 50000}})
    outcome = verified(tmp_path, run)
    quota, headers = outcome.verdict("quota-accuracy"), outcome.verdict("headers")
    assert quota.status == "fail" and "free-2" in quota.summary and quota.evidence["offenders"] == ["free-2"]
    assert headers.status == "fail" and "X-RateLimit-Limit differs" in headers.summary  # handler.lua:160-167
    assert {row["consumer"] for row in headers.evidence["X-RateLimit-Limit differs from the declared limit"]} == {
        "free-2"
    }


def test_not_counting_rejected_requests_fails(tmp_path: Path):
    # Kong >= 3.4 INCRs before the check, so a 429 is counted in every period (policies/init.lua:407-415);
    # Kong <= 3.3's read-then-increment left them out: the month header shows it
    outcome = verified(tmp_path, KongRun(POLICY, SPEC, burst_consumers(), 70.0, defect="no-count-429"))
    assert outcome.verdict("quota-accuracy").status == "fail"


def test_month_seeded_in_kongs_key_is_enforced_and_one_kong_never_reads_fails(tmp_path: Path):
    # the quota-month scenario writes ratelimit:<route>:<service>:<consumer id>:<month start ms>:month
    # (policies/init.lua:68-73); Kong then stops the consumer after the headroom (month period, handler.lua:108)
    seeds = {"free-1": 49_950}
    run = KongRun(POLICY, SPEC, (SyntheticConsumer("free-1", "free", 1.5),), 60.0, month_seeds=seeds)
    outcome = verified(tmp_path, run, "read")
    history = load_run(tmp_path / "read").history
    assert int((history["status"] == 200).sum()) == 50 and nothing_fails(outcome), statuses(outcome)
    # RateLimit-Reset of the month (the tightest window) is ~30 days, not a minute (handler.lua:181)
    assert float(history["rl_reset"].max()) > 86_400 * 11  # mid-January: 30 days minus 11.4 elapsed
    ignored = KongRun(POLICY, SPEC, (SyntheticConsumer("free-1", "free", 1.5),), 60.0, month_seeds=seeds,
                      defect="ignore-seed")  # fmt: skip
    assert statuses(verified(tmp_path, ignored, "ignored"))["quota-accuracy"] == "fail"


def test_reset_header_off_kongs_formula_fails_headers(tmp_path: Path):
    run = KongRun(POLICY, SPEC, (SyntheticConsumer("free-1", "free", 1.5),), 60.0, month_seeds={"free-1": 49_990},
                  defect="reset-61")  # fmt: skip
    result = statuses(verified(tmp_path, run))
    assert result["headers"] == "fail" and result["quota-accuracy"] == "pass"


def test_hidden_headers_leave_admissions_undecided(tmp_path: Path):
    # hide_client_headers (handler.lua:155): a limited admission looks like a fault_tolerant pass-through
    hidden = SPEC.model_copy(update={"hide_client_headers": True})
    outcome = verified(tmp_path, KongRun(POLICY, hidden, burst_consumers(), 70.0))
    assert statuses(outcome)["quota-accuracy"] == "unknown"
    assert statuses(outcome)["headers"] == "pass"


def test_chaos_probe_requests_with_a_consumers_key_count_in_its_windows(tmp_path: Path):
    # known_consumer_works sends GET /health with a provisioned key: Kong counts it (no exemption, the plugin is
    # consumer-scoped), so the next answers' Remaining skip it; the probe ledger names the consumer
    probes = [(float(t), "free-1") for t in (5, 6, 7, 35, 36)]
    run = KongRun(POLICY, SPEC, (SyntheticConsumer("free-1", "free", 1.0),), 60.0, probes=probes)
    assert statuses(verified(tmp_path, run, "ledger"))["quota-accuracy"] == "pass"
    unrecorded = KongRun(POLICY, SPEC, (SyntheticConsumer("free-1", "free", 1.0),), 60.0, probes=probes, ledger=False)
    # without a ledger the skipped counts may be the harness's own requests: unknown, never a false fail
    quota = verified(tmp_path, unrecorded, "no-ledger").verdict("quota-accuracy")
    assert quota.status == "unknown" and "no ledger recorded" in quota.summary
    # but unrecorded requests never make Kong admit more: an over-admission still fails
    over = KongRun(POLICY, SPEC, (SyntheticConsumer("free-1", "free", 4.0),), 60.0, probes=probes, ledger=False,
                   actual_limits={"free-1": {"minute": 120, "month": 50000}})  # fmt: skip
    assert statuses(verified(tmp_path, over, "over"))["quota-accuracy"] == "fail"


def test_redis_timeouts_outside_faults_are_passed_unlimited_and_reported(tmp_path: Path):
    # a Redis call slower than redis.timeout is a usage error: fault_tolerant proxies it with no header and no
    # limit (handler.lua:144-152); the model takes it as possibly counted and the summary reports it
    run = KongRun(POLICY, SPEC, burst_consumers(), 70.0, store_errors=0.02)
    quota = verified(tmp_path, run).verdict("quota-accuracy")
    assert quota.status == "pass" and "passed without a limit" in quota.summary


# --------------------------------------------------------------------------------------------- Redis kill


def test_redis_kill_under_fault_tolerant_is_an_unlimited_fail_open_reported_as_such(tmp_path: Path):
    # handler.lua:144-152: usage error + fault_tolerant -> proxied without headers and without any limit
    run = KongRun(POLICY, SPEC, burst_consumers(6.0), 90.0, redis_fault=(30.0, 50.0))
    outcome = verified(tmp_path, run)
    degradation = outcome.verdict("degradation")
    assert degradation.status == "pass"
    assert "admitted with no limit" in degradation.summary and "as declared" in degradation.summary
    assert outcome.verdict("degraded-over-admission").status == "not-applicable"
    assert outcome.verdict("quota-accuracy").status == "pass"  # Redis came back empty: judged in two segments
    assert nothing_fails(outcome)


def test_redis_kill_with_500s_although_fault_tolerant_fails_degradation(tmp_path: Path):
    run = KongRun(POLICY, SPEC, burst_consumers(6.0), 90.0, redis_fault=(30.0, 50.0), defect="500-on-fault")
    assert statuses(verified(tmp_path, run))["degradation"] == "fail"


def test_redis_kill_without_fault_tolerance_is_judged_as_500(tmp_path: Path):
    # fault_tolerant = false: error(err) -> kong/init.lua:393-410 answers 500
    strict = SPEC.model_copy(update={"fault_tolerant": False})
    fail_closed = Policy.model_validate({**POLICY.model_dump(), "degradation": {"on_redis_unavailable": "fail-closed"}})
    outcome = verified(tmp_path, KongRun(fail_closed, strict, burst_consumers(6.0), 90.0, redis_fault=(30.0, 50.0)))
    assert statuses(outcome)["degradation"] == "pass"
    leaking = KongRun(fail_closed, strict, burst_consumers(6.0), 90.0, redis_fault=(30.0, 50.0), defect="pass-on-fault")
    verdict = verified(tmp_path, leaking, "leaking").verdict("degradation")
    assert verdict.status == "fail" and "passed unlimited" in verdict.summary


# -------------------------------------------------------------------------------------- expressiveness


def test_what_kong_cannot_express_is_listed_never_passed():
    from tests.support.synthetic import run_data

    run = run_data(_empty_history(), POLICY, model="kong")
    run.info = run.info.model_copy(update={"kong": SPEC})
    verdict = check_expressiveness(run, Thresholds())
    assert verdict.status == "not-applicable"
    lines = " ".join(verdict.evidence["not_verifiable"])  # type: ignore[arg-type]
    for part in ("/compare 2x", "/health", "burst 1.5x", "fail-open-local", "30 days"):
        assert part in lines
    assert verdict.summary.startswith("not verifiable on this target")


def test_declared_limits_other_than_the_policy_fail_expressiveness():
    from tests.support.synthetic import run_data

    wrong = SPEC.model_copy(update={"tiers": {**SPEC.tiers, "free": KongLimits(minute=120, month=50000)}})
    run = run_data(_empty_history(), POLICY, model="kong")
    run.info = run.info.model_copy(update={"kong": wrong})
    verdict = check_expressiveness(run, Thresholds())
    assert verdict.status == "fail" and "tier free" in verdict.summary


def _empty_history():  # type: ignore[no-untyped-def]
    from tests.support.synthetic import frame_from_rows

    return frame_from_rows([{"t": 0, "consumer": "free-1", "tier": "free"}])


@pytest.mark.parametrize("policy", ["local", "cluster"])
def test_spec_rejects_sync_rate_outside_redis(policy: str):
    # schema.lua:25-27
    with pytest.raises(ValueError, match=r"schema\.lua:25-27"):
        KongSpec(policy=policy, sync_rate_s=1.0)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------ headers, hand-computed rows


def headers_of(rows: list[dict[str, object]], spec: KongSpec) -> str:
    from tests.support.synthetic import frame_from_rows, run_data

    run = run_data(frame_from_rows(rows), POLICY, model="kong", kong=spec)
    from quotaquake.verify.checks.headers import check_headers

    return check_headers(run, Thresholds()).status


SMALL = KongSpec(tiers={"small": KongLimits(minute=10, month=100), "big": KongLimits()}, clock_skew_ms=0.0)


def e4(**overrides: object) -> list[dict[str, object]]:
    """docs/kong-3.9.md E4: minute 10, month 100, month count 99 at 00:00:15 -> 200 then 429 at :16."""
    base = {"consumer": "s1", "tier": "small", "rl_limit": 10, "rl_limit_month": 100, "rl_window_limit": 100,
            "rl_window_remaining": 0, "rl_remaining_month": 0}  # fmt: skip
    rows = [
        {**base, "t": 15.0, "status": 200, "rl_remaining": 9, "rl_reset": 2_591_985},
        {**base, "t": 16.0, "status": 429, "rl_remaining": 9, "rl_reset": 2_591_984, "retry_after": 2_591_984},
    ]
    return [{**r, **overrides} for r in rows]


def test_kong_headers_of_a_month_stopped_consumer_pass():
    # handler.lua:169-190: RateLimit-* describe the least remaining (the month here), reset by the 30-day month;
    # the minute is not decremented on the month-stopped 429 (164-165); Retry-After = RateLimit-Reset (196)
    assert headers_of(e4(), SMALL) == "pass"


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"rl_reset": 61, "retry_after": 61}, "reset ceiling of a minute"),
        ({"retry_after": None}, "429 without Retry-After"),
        ({"rl_limit": 12}, "another minute limit than declared"),
        ({"rl_window_limit": 10, "rl_window_remaining": 9}, "RateLimit-* of a window that is not the tightest"),
    ],
)
def test_kong_headers_seeded_defects_fail(overrides: dict[str, object], problem: str):
    rows = e4(**overrides)
    if overrides.get("retry_after", 0) is None:
        del rows[1]["retry_after"]
    assert headers_of(rows, SMALL) == "fail", problem


def test_kong_headers_on_an_unlimited_tier_or_hidden_fail():
    # a tier without a plugin gets no rate-limit header; hide_client_headers suppresses all (handler.lua:155)
    assert headers_of([{"t": 1.0, "consumer": "b1", "tier": "big", "rl_limit": 10}], SMALL) == "fail"
    hidden = SMALL.model_copy(update={"hide_client_headers": True})
    assert headers_of(e4(), hidden) == "fail"
    assert headers_of([{"t": 1.0, "consumer": "s1", "tier": "small", "status": 429}], hidden) == "pass"


def test_keyless_requests_all_answered_401_leave_the_declared_anonymous_limit_unverified():
    # with an anonymous consumer unknown keys are limited (key-auth/handler.lua:233-243); all 401 means the
    # target has none: the declared anonymous limits were never exercised, which is not a pass
    from quotaquake.verify.checks.quota_kong import check_quota_kong
    from tests.support.synthetic import frame_from_rows, run_data

    rows = [{"t": float(t), "consumer": "invalid", "tier": "invalid", "status": 401} for t in range(5)]
    run = run_data(frame_from_rows(rows), POLICY, model="kong", kong=SPEC)
    verdict = check_quota_kong(run, Thresholds())
    assert verdict.status == "unknown" and "all 401" in verdict.summary
