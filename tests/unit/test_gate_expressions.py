"""Threshold files in k6's syntax: expressions, metric keys with tag filters, long form, and the one-line
ConfigError for every problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from quotaquake.errors import ConfigError
from quotaquake.gate.expressions import (
    Expression,
    load_threshold_file,
    parse_duration_s,
    parse_expression,
    parse_metric_key,
    parse_thresholds,
    submetric_name,
)

ISSUE_EXAMPLE = """\
thresholds:
  http_req_duration{endpoint:/identify,tier:pro}: ["p(95)<50", "p(99)<120"]
  http_req_failed: ["rate<0.001"]
  qq_over_admitted_cost: ["count==0"]
  qq_limiter_decision_ms: [{threshold: "p(99)<2", abortOnFail: true, delayAbortEval: "10s"}]
"""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("p(95)<50", Expression("p(95)", 95.0, "<", 50.0)),
        ("p(99.9) <= 2000", Expression("p(99.9)", 99.9, "<=", 2000.0)),
        ("p(95.0)>1", Expression("p(95)", 95.0, ">", 1.0)),
        ("rate<0.001", Expression("rate", None, "<", 0.001)),
        ("count==0", Expression("count", None, "==", 0.0)),
        ("count===0", Expression("count", None, "==", 0.0)),
        ("avg != 3", Expression("avg", None, "!=", 3.0)),
        ("value>=1e3", Expression("value", None, ">=", 1000.0)),
        ("  med < .5 ", Expression("med", None, "<", 0.5)),
        ("min>-1", Expression("min", None, ">", -1.0)),
        ("p(0)>=0", Expression("p(0)", 0.0, ">=", 0.0)),
        ("p(100)<9", Expression("p(100)", 100.0, "<", 9.0)),
    ],
)
def test_expressions_parse_like_k6(text: str, expected: Expression) -> None:
    assert parse_expression(text) == expected


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("rate 0.1", "no operator"),
        ("p(95)=<50", "unknown aggregation"),  # k6 splits at '<' first: the left side is 'p(95)='
        ("count<==5", "not a decimal number"),  # split at '<=': the right side is '=5'
        ("p(95)<", "not a decimal number"),
        ("p( 95)<1", "unknown aggregation"),
        ("p (95)<1", "unknown aggregation"),
        ("p(101)<1", "outside 0..100"),
        ("p<5", "unknown aggregation"),
        ("mean<5", "unknown aggregation"),
        ("rate<NaN", "not a decimal number"),
        ("rate<Inf", "not a decimal number"),
        ("count<0x10", "not a decimal number"),
        ("count<1_000", "not a decimal number"),
        ("count<1e999", "out of range"),
    ],
)
def test_bad_expressions_say_what_is_wrong(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_expression(text)


def test_metric_keys_sort_and_trim_tag_filters() -> None:
    assert parse_metric_key("http_req_failed") == ("http_req_failed", ())
    expected = ("http_req_duration", (("endpoint", "/identify"), ("tier", "pro")))
    assert parse_metric_key("http_req_duration{endpoint:/identify,tier:pro}") == expected
    assert parse_metric_key("http_req_duration{ tier : 'pro' , endpoint:\"/identify\"}") == expected
    assert parse_metric_key("qq_fault_availability{fault:redis:kill}") == (
        "qq_fault_availability",
        (("fault", "redis:kill"),),
    )
    assert submetric_name("http_req_duration", {"tier": "pro", "endpoint": "/identify"}) == (
        "http_req_duration{endpoint:/identify,tier:pro}"
    )


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("http_req_duration{tier}", "not key:value"),
        ("http_req_duration{tier:}", "not key:value"),
        ("http_req_duration{}", "not key:value"),
        ("http_req_duration{tier:pro", "unmatched"),
        ("http_req_duration}", "unmatched"),
        ("http_req_duration{tier:pro}x", "must end"),
        ("http_req_duration{tier:pro,tier:free}", "filtered twice"),
    ],
)
def test_malformed_metric_keys(key: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_metric_key(key)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("10s", 10.0),
        ("1m30s", 90.0),
        ("1.5h", 5400.0),
        ("250ms", 0.25),
        ("1d2h", 93600.0),
        ("2d", 172800.0),
        ("500", 0.5),  # a bare number is milliseconds
        (250, 0.25),
        (1.5, 0.0015),
        ("0", 0.0),
    ],
)
def test_delay_abort_eval_durations_follow_k6(value: object, seconds: float) -> None:
    assert parse_duration_s(value) == pytest.approx(seconds)


@pytest.mark.parametrize("value", ["ten", "-5s", "5x", "s", True, None, "1d-2h"])
def test_bad_durations(value: object) -> None:
    with pytest.raises(ValueError):
        parse_duration_s(value)


def test_the_issue_example_loads(tmp_path: Path) -> None:
    path = tmp_path / "thresholds.yaml"
    path.write_text(ISSUE_EXAMPLE, encoding="utf-8")
    thresholds = load_threshold_file(path)
    assert [t.label for t in thresholds] == [
        "http_req_duration{endpoint:/identify,tier:pro}: p(95)<50",
        "http_req_duration{endpoint:/identify,tier:pro}: p(99)<120",
        "http_req_failed: rate<0.001",
        "qq_over_admitted_cost: count==0",
        "qq_limiter_decision_ms: p(99)<2",
    ]
    limiter = thresholds[-1]
    assert limiter.abort_on_fail is True
    assert limiter.delay_abort_s == 10.0
    assert limiter.percentile == 99.0
    assert limiter.source == "p(99)<2"
    assert thresholds[0].tags == (("endpoint", "/identify"), ("tier", "pro"))
    assert thresholds[0].abort_on_fail is False and thresholds[0].delay_abort_s is None


def _config_error(data: object) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_thresholds(data, "gate.yaml")
    return info.value


@pytest.mark.parametrize(
    ("data", "field", "problem"),
    [
        ({"http_req_latency": ["p(95)<1"]}, "thresholds.http_req_latency", "unknown metric 'http_req_latency'"),
        ({"http_req_duration{region:eu}": ["p(95)<1"]}, "thresholds.http_req_duration{region:eu}", "unknown tag key"),
        ({"http_req_duration{tier}": ["p(95)<1"]}, "thresholds.http_req_duration{tier}", "not key:value"),
        ({"http_req_failed": ["p(95)<1"]}, "thresholds.http_req_failed[0]", "a rate; supported: rate"),
        ({"qq_over_admitted_cost": ["count==0", "avg<1"]}, "thresholds.qq_over_admitted_cost[1]", "count, rate"),
        ({"qq_recovery_s": ["max<10"]}, "thresholds.qq_recovery_s[0]", "supported: value"),
        ({"http_req_failed": "rate<0.01"}, "thresholds.http_req_failed", "non-empty list"),
        ({"http_req_failed": []}, "thresholds.http_req_failed", "non-empty list"),
        ({"http_req_failed": [0.01]}, "thresholds.http_req_failed[0]", "expression string"),
        ({"http_req_failed": [{"abortOnFail": True}]}, "thresholds.http_req_failed[0].threshold", "required"),
        (
            {"http_req_failed": [{"threshold": "rate<0.1", "abortOnFailure": True}]},
            "thresholds.http_req_failed[0].abortOnFailure",
            "unknown key",
        ),
        (
            {"http_req_failed": [{"threshold": "rate<0.1", "abortOnFail": "yes"}]},
            "thresholds.http_req_failed[0].abortOnFail",
            "true or false",
        ),
        (
            {"http_req_failed": [{"threshold": "rate<0.1", "delayAbortEval": "soon"}]},
            "thresholds.http_req_failed[0].delayAbortEval",
            "not a duration",
        ),
        ({"http_req_failed": ["rate<<0.1"]}, "thresholds.http_req_failed[0]", "not a decimal number"),
        (["http_req_failed"], "thresholds", "mapping"),
    ],
)
def test_every_problem_is_a_config_error_naming_the_key(data: object, field: str, problem: str) -> None:
    error = _config_error(data)
    assert error.field == field
    assert problem in error.problem
    assert str(error).startswith(f"gate.yaml: {field}: ")
    assert "\n" not in str(error)


def test_the_same_submetric_in_another_tag_order_adds_thresholds() -> None:
    thresholds = parse_thresholds(
        {
            "http_req_duration{tier:pro,phase:steady}": ["p(95)<50"],
            "http_req_duration{phase:steady,tier:pro}": ["max<900"],
        }
    )
    assert {t.submetric for t in thresholds} == {"http_req_duration{phase:steady,tier:pro}"}
    assert len(thresholds) == 2


@pytest.mark.parametrize(
    ("text", "field", "problem"),
    [
        ("thresholds:\n  http_req_failed: [rate<0.1]\n  http_req_failed: [rate<0.2]\n", "line 3", "duplicate key"),
        ("http_req_failed: [rate<0.1]\n", "thresholds", "top-level 'thresholds'"),
        ("thresholds: {}\nslo: {}\n", "slo", "unknown top-level key"),
        ("thresholds: [\n", "line 2", "not valid YAML"),
    ],
)
def test_file_level_problems(tmp_path: Path, text: str, field: str, problem: str) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_threshold_file(path)
    assert info.value.field == field
    assert problem in info.value.problem
    assert info.value.path == path


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_threshold_file(tmp_path / "absent.yaml")
