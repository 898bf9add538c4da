"""Which parts of the quota policy the target can express: never a silent pass for what it cannot.

Kong 3.9 OSS's rate-limiting plugin (``docs/kong-3.9.md``) counts each request 1 in fixed UTC windows per
consumer, so a run against Kong verifies Kong's limits, not the policy's token bucket, costs or exemptions.
This check lists each part of ``stack/policy.yaml`` the target cannot express as a "not verifiable on this
target" line (status ``not-applicable``: listed in the report, left out of the composition, so a correct
Kong can still pass), and fails when the limits the target declares (``run.json``'s ``kong``) differ from
the policy's: then the run does not test the policy at all.

Runs for targets judged by the Kong model (``model: kong``) or the generic fixed window (``fixed-window``);
the embedded limiter implements the whole policy.
"""

from __future__ import annotations

import math

from quotaquake.kongspec import KongSpec
from quotaquake.policy import DegradationMode, Limits, Policy
from quotaquake.verify.data.rundata import RunData
from quotaquake.verify.thresholds import Thresholds
from quotaquake.verify.verdict import NOT_APPLICABLE, Verdict

CHECK = "policy-expressiveness"


def check_expressiveness(run: RunData, thresholds: Thresholds) -> Verdict:
    del thresholds
    policy, spec = run.info.policy, run.info.kong
    lines = _counting_lines(policy) + _window_lines(policy)
    mismatches: list[str] = []
    if spec is not None:
        lines += _degradation_lines(policy, spec) + _client_lines(policy, spec)
        mismatches = _limit_mismatches(policy, spec) + _degradation_mismatches(policy, spec)
    else:
        lines.append("degradation: the target declares no plugin configuration (model fixed-window)")
    evidence: dict[str, object] = {"not_verifiable": lines, "mismatches": mismatches, "model": run.info.model}
    if mismatches:
        return Verdict(
            CHECK, "fail", "the target is not configured as the policy says: " + "; ".join(mismatches), evidence
        )
    if lines:
        summary = "not verifiable on this target: " + "; ".join(line.split(":", 1)[0] for line in lines)
        return Verdict(CHECK, NOT_APPLICABLE, summary, evidence)
    return Verdict(CHECK, "pass", "every part of the policy is expressible on this target", evidence)


def _counting_lines(policy: Policy) -> list[str]:
    """Costs and exemptions: Kong increments every counter by 1 (handler.lua:209,212; policies/init.lua:409)."""
    lines = []
    weighted = sorted(f"{path} {e.cost:g}x" for path, e in policy.endpoints.items() if e.cost not in (0.0, 1.0))
    if weighted or policy.default_cost != 1.0:
        costs = ", ".join(weighted + ([f"default {policy.default_cost:g}x"] if policy.default_cost != 1.0 else []))
        lines.append(f"endpoint costs ({costs}): the target counts every request as 1")
    exempt = sorted(path for path, e in policy.endpoints.items() if e.cost == 0.0)
    if exempt:
        lines.append(
            f"exempt endpoints ({', '.join(exempt)}): the target counts them like any request (its plugin is "
            "scoped to the consumer, so every route of the API counts)"
        )
    return lines


def _window_lines(policy: Policy) -> list[str]:
    lines = []
    if any(t.per_minute is not None for t in [*policy.tiers.values(), policy.anonymous]):
        lines.append(
            f"token bucket (burst {policy.bucket.burst_factor:g}x per_minute, steady refill): the target counts in "
            "fixed UTC minutes (kong/tools/timestamp.lua:46-69), so up to 2x per_minute in 60 s across a minute "
            "boundary and no refill inside a minute"
        )
    if any(t.per_month is not None for t in [*policy.tiers.values(), policy.anonymous]):
        lines.append(
            "per_month over UTC calendar months: the target's month counter expires 30 days after its first "
            "request (expiration.lua:6, policies/init.lua:410-412), so on the 31st of a long month it may restart "
            "at 0 (such requests are not judged) and RateLimit-Reset assumes 30-day months"
        )
    return lines


def _degradation_lines(policy: Policy, spec: KongSpec) -> list[str]:
    mode = policy.degradation.on_redis_unavailable
    if mode is DegradationMode.FAIL_OPEN_LOCAL and spec.fault_tolerant:
        return [
            "fail-open-local (per-replica buckets while Redis is down): the target's fault_tolerant plugin proxies "
            "limited tiers without any limit and without rate-limit headers (handler.lua:144-152); the "
            "degradation check judges that and reports the unbounded admissions"
        ]
    if mode is DegradationMode.FAIL_CLOSED and not spec.fault_tolerant:
        return ["fail-closed 503: the target answers 500 'An unexpected error occurred' (kong/init.lua:393-410)"]
    return []


def _client_lines(policy: Policy, spec: KongSpec) -> list[str]:
    lines = []
    if spec.anonymous is not None and not spec.forwarded_ip_trusted and policy.anonymous.client_ip == "x-forwarded-for":
        lines.append("keyless limits per X-Forwarded-For address: the target counts every keyless client together")
    return lines


def _limit_mismatches(policy: Policy, spec: KongSpec) -> list[str]:
    problems = []
    for tier, limits in [*policy.tiers.items(), ("anonymous", policy.anonymous)]:
        declared = spec.limits_of(tier)
        if declared is None:
            if tier != "anonymous" or limits.per_minute is not None or limits.per_month is not None:
                problems.append(f"tier {tier}: the target declares no limits for it")
            continue
        expected = _expected(limits)
        if declared != expected:
            problems.append(f"tier {tier}: the target limits {_text(declared)}, the policy {_text(expected)}")
    return problems


def _degradation_mismatches(policy: Policy, spec: KongSpec) -> list[str]:
    mode = policy.degradation.on_redis_unavailable
    if mode is DegradationMode.FAIL_CLOSED and spec.fault_tolerant:
        return ["degradation: the policy fails closed, the target's plugin is fault_tolerant (admits unlimited)"]
    if mode is DegradationMode.FAIL_OPEN_LOCAL and not spec.fault_tolerant:
        return ["degradation: the policy fails open, the target's plugin is not fault_tolerant (answers 500)"]
    return []


def _expected(limits: Limits) -> dict[str, int]:
    expected: dict[str, int] = {}
    if limits.per_minute is not None:
        expected["minute"] = math.ceil(limits.per_minute)
    if limits.per_month is not None:
        expected["month"] = limits.per_month
    return expected


def _text(limits: dict[str, int]) -> str:
    return ", ".join(f"{period} {value}" for period, value in limits.items()) or "nothing (unlimited)"
