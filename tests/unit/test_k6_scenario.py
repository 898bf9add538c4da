"""Scenario files read without running them (they import Locust), and their --qq- options for k6."""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from quotaquake.context import RunRequest, validate_request
from quotaquake.errors import UsageError
from quotaquake.load.k6.scenario import parse_options, read_scenario
from quotaquake.load.month import seed_month_quota
from quotaquake.load.options import ScenarioDefaults

REPO = Path(__file__).resolve().parents[2]
SCENARIOS = REPO / "scenarios"


def test_every_scenario_file_gives_its_defaults_and_hook() -> None:
    burst = read_scenario(SCENARIOS / "burst.py")
    assert burst.defaults == ScenarioDefaults(
        rate=60.0, shape="spike", tiers="free=1,pro=1", endpoints="/identify=3,/compare=1", consumers_per_tier=2
    )
    assert burst.hook() is None
    month = read_scenario(SCENARIOS / "quota-month.py")
    assert month.before_start == "quotaquake.load.month:seed_month_quota"
    assert month.hook() is seed_month_quota
    assert read_scenario(SCENARIOS / "tiered.py").defaults == ScenarioDefaults(rate=100.0, shape="steady")
    assert read_scenario(SCENARIOS / "soak.py").defaults.rate == 300.0


def test_the_k6_engine_never_imports_locust() -> None:
    # Locust patches the standard library for gevent on import: the orchestrating process must not
    code = (
        "import sys; from quotaquake.load.k6.runner import run_k6, read_scenario; "
        f"read_scenario(__import__('pathlib').Path({str(SCENARIOS / 'quota-month.py')!r})).hook(); "
        "print('locust' in sys.modules, 'gevent.monkey' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False False"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("x = 1\n", "exactly one install_scenario"),
        ("install_scenario(events, ScenarioDefaults(rate=RATE))\n", "must be a literal"),
        ("install_scenario(events, ScenarioDefaults(speed=3))\n", "no field 'speed'"),
        ("install_scenario(events, make_defaults())\n", "ScenarioDefaults(name=literal"),
        ("install_scenario(events, ScenarioDefaults(), before_start=lambda r: [])\n", "before_start must be"),
        ("def broken(:\n", "cannot be read as Python"),
    ],
)
def test_a_file_k6_cannot_read_is_one_line_naming_it(tmp_path: Path, text: str, problem: str) -> None:
    scenario = tmp_path / "odd.py"
    scenario.write_text(text)
    with pytest.raises(UsageError, match=re.escape(problem)) as raised:
        read_scenario(scenario)
    assert str(scenario) in str(raised.value) and "\n" not in str(raised.value)


def test_a_hook_that_cannot_be_imported_is_named(tmp_path: Path) -> None:
    scenario = tmp_path / "hooked.py"
    scenario.write_text(
        "from quotaquake.load.nothing import seed\ninstall_scenario(events, ScenarioDefaults(), before_start=seed)\n"
    )
    with pytest.raises(UsageError, match=re.escape("quotaquake.load.nothing.seed cannot be imported")):
        read_scenario(scenario).hook()


def test_options_take_the_file_defaults_and_the_command_line() -> None:
    burst = read_scenario(SCENARIOS / "burst.py")
    args = ["--qq-tiers", "free=3", "--qq-seed", "7", "--qq-max-vus", "50"]
    parsed = parse_options(burst, args, state=Path("/s.json"), out=Path("/run"), rate=120.0)
    assert parsed.max_vus == 50
    options = parsed.scenario
    assert options.tiers == {"free": 3.0} and options.seed == 7 and options.shape == "spike"
    assert options.rate == 120.0 and options.state == Path("/s.json") and options.out == Path("/run")
    assert options.consumers_per_tier == 2  # the file's default


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["--users", "10"], "--users 10: not a --qq- scenario option"),
        (["--qq-shape", "wave"], "--qq-shape: 'wave' is not one of"),
        (["--qq-seed", "x"], "invalid int value"),
        (["--qq-max-vus", "0"], "--qq-max-vus: 0 must be at least 1"),
        (["--qq-tiers"], "expected one argument"),
    ],
)
def test_bad_options_are_one_usage_line(args: list[str], problem: str) -> None:
    with pytest.raises(UsageError, match=problem):
        parse_options(read_scenario(SCENARIOS / "tiered.py"), args, state=Path("s"), out=Path("o"), rate=1.0)


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"engine": "gatling"}, "--engine: 'gatling' is not one of locust, k6"),
        ({"engine": "k6", "processes": 2}, "--processes: Locust's; --engine k6 runs one k6 process"),
        ({"engine": "k6", "locust_args": ("--users", "3")}, "--users 3: not a --qq- scenario option"),
        (
            {"engine": "k6", "scenario": REPO / "benchmarks" / "load_plain_locustfile.py"},
            "exactly one install_scenario",
        ),
    ],
)
def test_a_run_k6_cannot_do_is_refused_before_anything_starts(changes: dict[str, object], problem: str) -> None:
    request = replace(RunRequest(scenario=SCENARIOS / "tiered.py", rate=10.0, duration_s=5.0), **changes)
    with pytest.raises(UsageError, match=re.escape(problem)):
        validate_request(request)  # type: ignore[arg-type]


def test_a_run_k6_can_do_passes_validation() -> None:
    validate_request(RunRequest(scenario=SCENARIOS / "quota-month.py", rate=10.0, duration_s=5.0, engine="k6"))
