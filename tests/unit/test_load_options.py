"""Scenario options: registration on an argparse parser, weights, validation errors naming the option."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from quotaquake.errors import UsageError
from quotaquake.load.options import ScenarioDefaults, ScenarioOptions, add_options, parse_weights


def parse(*argv: str, defaults: ScenarioDefaults | None = None) -> ScenarioOptions:
    parser = argparse.ArgumentParser()
    add_options(parser, defaults or ScenarioDefaults())
    return ScenarioOptions.from_namespace(parser.parse_args(list(argv)))


def test_defaults_come_from_the_scenario(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUOTAQUAKE_STATE", "/tmp/somewhere/stack.json")
    options = parse(defaults=ScenarioDefaults(rate=60, shape="spike", tiers="free=1", consumers_per_tier=2))
    assert options.rate == 60
    assert options.shape == "spike"
    assert options.tiers == {"free": 1.0}
    assert options.consumers_per_tier == 2
    assert options.state == Path("/tmp/somewhere/stack.json")
    assert options.out.parent == Path("reports")
    assert options.plan.users == 3


def test_options_parse() -> None:
    options = parse(
        "--qq-rate",
        "2000",
        "--qq-out",
        "/tmp/run",
        "--qq-target",
        "calibrate",
        "--qq-endpoints",
        "/identify=3,/compare=1",
        "--qq-allow-host",
        "a.example, b.example",
        "--qq-key-header",
        "ApiKey",
    )
    assert options.rate == 2000
    assert options.out == Path("/tmp/run")
    assert options.target == "calibrate"
    assert options.endpoints == {"/identify": 3.0, "/compare": 1.0}
    assert options.allow_hosts == ("a.example", "b.example")
    assert options.key_header == "apikey"


def test_weights_drop_zero_and_keep_order() -> None:
    assert parse_weights("free=4, pro=0,anonymous=0.5", "--qq-tiers") == {"free": 4.0, "anonymous": 0.5}


@pytest.mark.parametrize("text", ["free", "free=x", "=3", "free=-1", "free=0", ""])
def test_bad_weights_name_the_option(text: str) -> None:
    with pytest.raises(UsageError, match="--qq-tiers"):
        parse_weights(text, "--qq-tiers")


@pytest.mark.parametrize(
    ("argv", "option"),
    [
        (["--qq-rate", "0"], "--qq-rate"),
        (["--qq-max-in-flight", "0"], "--qq-max-in-flight"),
        (["--qq-shape", "sine"], "--qq-shape"),
        (["--qq-target", "elsewhere"], "--qq-target"),
        (["--qq-anon-ips", "0"], "--qq-anon-ips"),
        (["--qq-endpoints", "identify=1"], "--qq-endpoints"),
        (["--qq-timeout", "0"], "--qq-timeout"),
        (["--qq-initial-state", "fresh"], "--qq-initial-state"),
    ],
)
def test_bad_values_name_the_option(argv: list[str], option: str) -> None:
    with pytest.raises(UsageError, match=option):
        parse(*argv)


def test_every_option_but_the_orchestration_flag_is_a_web_ui_field() -> None:
    parser = argparse.ArgumentParser()
    add_options(parser, ScenarioDefaults())
    shown = {a.dest for a in parser._actions if getattr(a, "include_in_web_ui", False)}
    ours = {a.dest for a in parser._actions if a.dest.startswith("qq_")}
    assert shown == ours - {"qq_orchestrated"}
    assert "max_in_flight" in {f for f in ScenarioOptions.__dataclass_fields__}


def test_in_flight_cap_is_split_over_the_peak_users() -> None:
    assert parse("--qq-rate", "500", "--qq-max-in-flight", "1000").in_flight_per_user == 40  # 25 users
    assert parse("--qq-rate", "100000", "--qq-max-in-flight", "1000").in_flight_per_user == 1  # at least one
    assert parse("--qq-rate", "100").max_in_flight == 1000  # the documented default


def test_default_out_dir_is_stable_within_a_process() -> None:
    """Locust's web UI re-parses the options at every page load: the default folder must not move."""
    first = parse().out
    assert parse().out == first


def test_initial_state_is_reset_unless_kept() -> None:
    assert parse().initial_state == "reset"
    assert parse("--qq-initial-state", "keep").initial_state == "keep"
