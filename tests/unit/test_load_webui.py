"""The web UI form's values checked before a swarm starts (no web server: the pure part)."""

from __future__ import annotations

import argparse

import pytest

from quotaquake.errors import UsageError
from quotaquake.load.options import ScenarioDefaults, ScenarioOptions, add_options
from quotaquake.load.webui import check_form, form_namespace


def setup() -> tuple[argparse.Namespace, dict[str, argparse.Action]]:
    parser = argparse.ArgumentParser()
    add_options(parser, ScenarioDefaults())
    actions = {a.dest: a for a in parser._actions if a.dest.startswith("qq_")}
    namespace = parser.parse_args([])
    namespace.run_time = None
    return namespace, actions


def validate(namespace: argparse.Namespace) -> None:
    ScenarioOptions.from_namespace(namespace)


def test_form_values_are_converted_like_the_command_line() -> None:
    parsed, actions = setup()
    form = {
        "qq_rate": "250",
        "qq_max_in_flight": "64",
        "qq_orchestrated": "true",
        "run_time": "1m30s",
        "user_count": "9",
    }
    candidate = form_namespace(parsed, form, actions)
    assert (candidate.qq_rate, candidate.qq_max_in_flight, candidate.qq_orchestrated) == (250.0, 64, True)
    assert candidate.run_time == 90
    assert parsed.qq_rate == 100.0  # the running options are untouched until Locust applies the form


@pytest.mark.parametrize(
    ("form", "problem"),
    [
        ({"qq_rate": "abc"}, "--qq-rate: 'abc' is not a valid value"),
        ({"qq_max_in_flight": "2.5"}, "--qq-max-in-flight: '2.5' is not a valid value"),
        ({"qq_shape": "sine"}, "--qq-shape: 'sine' is not one of steady, ramp, step, spike"),  # from_namespace
        ({"qq_rate": "0"}, "--qq-rate: 0 must be greater than 0"),
        ({"run_time": "soon"}, "run time: 'soon' is not a duration"),
        ({"run_time": "3h"}, "duration 10800 s: above the cap"),
    ],
)
def test_bad_forms_are_refused_with_one_line(form: dict[str, str], problem: str) -> None:
    parsed, actions = setup()
    said = check_form("ready", parsed, form, actions, validate)
    assert said is not None and said.startswith(problem)


def test_a_running_swarm_keeps_its_options() -> None:
    parsed, actions = setup()
    assert check_form("ready", parsed, {"qq_rate": "300"}, actions, validate) is None
    assert check_form("stopped", parsed, {"qq_rate": "300"}, actions, validate) is None
    said = check_form("running", parsed, {"qq_rate": "300"}, actions, validate)
    assert said is not None and "a swarm is running" in said


def test_converted_rejects_what_argparse_would() -> None:
    parsed, actions = setup()
    with pytest.raises(UsageError, match="--qq-anon-ips"):
        form_namespace(parsed, {"qq_anon_ips": "many"}, actions)


def test_the_host_field_goes_through_the_same_checks() -> None:
    parsed, actions = setup()
    seen: list[object] = []
    assert (
        check_form("ready", parsed, {"host": "http://example.com<x>"}, actions, lambda ns: seen.append(ns.host)) is None
    )
    assert seen == ["http://example.comx"]
