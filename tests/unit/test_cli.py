"""The command line as a new user meets it: help everywhere, versions, options from the environment and from
``quotaquake.toml``, a bad file in one line, defaults that work from any directory (no stack started)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import quotaquake.run
from quotaquake import __version__, defaults
from quotaquake.cli import app
from quotaquake.context import RunRequest, validate_request
from quotaquake.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
HELP_COMMANDS = [[], ["run"], ["verify"], ["stack"], ["stack", "up"], ["stack", "status"], ["stack", "down"],
                 ["stack", "restore"], ["gate"], ["baseline"], ["baseline", "add"], ["baseline", "merge"],
                 ["baseline", "list"]]  # fmt: skip


def invoke(args: list[str], env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(app, args, env=env, prog_name="quotaquake")


@pytest.mark.parametrize("flag", ["-h", "--help"])
@pytest.mark.parametrize("command", HELP_COMMANDS, ids=lambda c: " ".join(c) or "quotaquake")
def test_every_command_has_plain_help_also_without_its_required_options(command: list[str], flag: str) -> None:
    result = invoke([*command, flag])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"Usage: quotaquake {' '.join(command)}".rstrip() + " ")
    for markup in ("``", "UsageError", "ConfigError", "[bold", "╭", "Missing option"):
        assert markup not in result.output


def test_run_help_names_every_option_with_its_environment_variable() -> None:
    result = invoke(["run", "-h"])
    for option in ("scenario", "rate", "duration", "policy", "thresholds", "state", "allow-host", "chaos-delay"):
        assert f"--{option} " in result.output
        assert f"QUOTAQUAKE_{option.upper().replace('-', '_')}" in result.output.replace("\n", "").replace(" ", "")


def test_version_names_quotaquake_and_the_tools_it_drives() -> None:
    for flag in ("--version", "-V"):
        result = invoke([flag])
        assert result.exit_code == 0
        first = result.output.splitlines()[0]
        assert first.startswith(f"quotaquake {__version__} (locust ") and "k6 " in first and "envoy " in first


def test_no_arguments_prints_the_help_and_exits_0() -> None:
    result = subprocess.run([sys.executable, "-m", "quotaquake"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.startswith("Usage: quotaquake ")


# -- options from the environment and the configuration file ------------------------------------------------


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> list[RunRequest]:
    """``quotaquake run`` stops right after building and validating its request (nothing is started)."""
    seen: list[RunRequest] = []

    def record(request: RunRequest, console: object) -> object:
        validate_request(request)
        seen.append(request)
        raise SystemExit(0)

    monkeypatch.setattr(quotaquake.run, "record_run", record)
    for name in [n for n in os.environ if n.startswith("QUOTAQUAKE_")]:
        monkeypatch.delenv(name)
    return seen


def settings_of(request: RunRequest) -> dict[str, tuple[object, str]]:
    return {s.option: (s.value, s.source) for s in request.settings}


def test_command_line_beats_environment_beats_file_beats_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, recorded: list[RunRequest]
) -> None:
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "mine.yaml").write_text(defaults.POLICY.read_text())
    config = tmp_path / "quotaquake.toml"
    config.write_text(
        'policy = "policies/mine.yaml"\n'  # shared: every command with --policy; relative to this file
        "[run]\n"
        'scenario = "tiered"\nrate = 5\nduration = "3s"\nreplicas = 2\n'
        'locust-args = ["--qq-tiers", "free=1"]\n'
        "[stack.up]\nreplicas = 1\n"
    )
    work = tmp_path / "deeper" / "down"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)  # found in a parent
    result = invoke(["run", "--duration", "4s", "--qq-shape", "ramp"], env={"QUOTAQUAKE_RATE": "7"})
    assert result.exit_code == 0, result.output
    request = recorded[0]
    assert (request.rate, request.duration_s, request.replicas) == (7.0, 4.0, 2)
    assert request.scenario == defaults.SCENARIOS_DIR / "tiered.py"
    assert request.policy_path == tmp_path / "policies" / "mine.yaml"
    assert request.thresholds == defaults.THRESHOLDS
    assert request.locust_args == ("--qq-tiers", "free=1", "--qq-shape", "ramp")
    assert request.config_file == config
    settings = settings_of(request)
    assert settings["--rate"] == (7.0, "environment variable QUOTAQUAKE_RATE")
    assert settings["--duration"] == ("4s", "command line")
    assert settings["--replicas"] == (2, f"config file {config} (run.replicas)")
    assert settings["--policy"] == (str(tmp_path / "policies" / "mine.yaml"), f"config file {config} (policy)")
    assert settings["--scenario"] == (
        str(defaults.SCENARIOS_DIR / "tiered.py"),
        f"config file {config} (run.scenario) (packaged scenario tiered)",
    )
    assert settings["--thresholds"] == (str(defaults.THRESHOLDS), "packaged default")
    assert settings["--engine"] == ("locust", "default")
    assert settings["locust arguments"] == (
        ["--qq-tiers", "free=1", "--qq-shape", "ramp"],
        f"config file {config} (run.locust-args) + command line",
    )


def test_pyproject_table_is_found_and_quotaquake_toml_wins_beside_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, recorded: list[RunRequest]
) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\n[tool.quotaquake.run]\nscenario = "burst"\nrate = 3\nduration = "2s"\n'
    )
    monkeypatch.chdir(tmp_path)
    assert invoke(["run"]).exit_code == 0
    assert recorded[-1].scenario == defaults.SCENARIOS_DIR / "burst.py" and recorded[-1].rate == 3.0
    assert (
        settings_of(recorded[-1])["--rate"][1]
        == f"config file {tmp_path / 'pyproject.toml'} (tool.quotaquake.run.rate)"
    )
    (tmp_path / "quotaquake.toml").write_text('[run]\nscenario = "soak"\nrate = 4\nduration = "2s"\n')
    assert invoke(["run"]).exit_code == 0
    assert recorded[-1].scenario == defaults.SCENARIOS_DIR / "soak.py" and recorded[-1].rate == 4.0


def test_a_pyproject_without_the_table_is_no_configuration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, recorded: list[RunRequest]
) -> None:
    (tmp_path / "quotaquake.toml").write_text('[run]\nscenario = "tiered"\nrate = 6\nduration = "2s"\n')
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "pyproject.toml").write_text("[tool.ruff]\nline-length = 100\n")
    monkeypatch.chdir(tmp_path / "sub")
    assert invoke(["run"]).exit_code == 0
    assert recorded[-1].rate == 6.0 and recorded[-1].config_file == tmp_path / "quotaquake.toml"


def test_config_option_and_variable_name_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, recorded: list[RunRequest]
) -> None:
    named = tmp_path / "ci.toml"
    named.write_text('[run]\nscenario = "tiered"\nrate = 8\nduration = "2s"\n')
    monkeypatch.chdir(tmp_path)
    assert invoke(["--config", str(named), "run"]).exit_code == 0
    assert recorded[-1].rate == 8.0
    assert invoke(["run"], env={"QUOTAQUAKE_CONFIG": str(named)}).exit_code == 0
    assert recorded[-1].config_file == named


def test_project_files_come_before_the_packaged_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, recorded: list[RunRequest]
) -> None:
    (tmp_path / "stack").mkdir()
    (tmp_path / "stack" / "policy.yaml").write_text(defaults.POLICY.read_text())
    (tmp_path / "scenarios").mkdir()
    (tmp_path / "scenarios" / "tiered.py").write_text("# the project's own\n")
    monkeypatch.chdir(tmp_path)
    assert invoke(["run", "--scenario", "tiered", "--rate", "1", "--duration", "1s"]).exit_code == 0
    request = recorded[-1]
    assert request.policy_path == Path("stack/policy.yaml").absolute()
    assert request.scenario == Path("scenarios/tiered.py").absolute()
    assert settings_of(request)["--policy"][1] == "project file"
    assert settings_of(request)["--scenario"][1] == "command line (project scenario tiered)"
    assert invoke(["run", "--scenario", "burst", "--rate", "1", "--duration", "1s", "--chaos", "k8s/redis-kill"]
                  ).exit_code == 0  # fmt: skip
    assert recorded[-1].scenario == defaults.SCENARIOS_DIR / "burst.py"
    assert recorded[-1].chaos == defaults.CHAOS_DIR / "k8s" / "redis-kill.json"


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        ("[run]\nrat = 5\n", "run.rat", "not an option of `quotaquake run`"),
        ('[run]\nrate = "fast"\n', "run.rate", "valid number"),
        ("[run]\nrate = true\n", "run.rate", "not a valid value"),
        ("[run]\nrate = [1, 2]\n", "run.rate", "not a list"),
        ("[run]\nreplicas = 1.5\n", "run.replicas", "integer"),
        ("[stack.upp]\nreplicas = 1\n", "stack.upp", "no such command"),
        ("run = 3\n", "run", "must be a table"),
        ("bogus = 1\n", "bogus", "not an option of run, stack down, stack restore, stack status, stack up, verify"),
        ("last = 3\n", "last", "not an option of run"),  # gate's: only in [gate]
        ("[gate]\nlast = 0.5\n", "gate.last", "integer"),
        ('[run]\nlocust-args = "--qq-tiers"\n', "run.locust-args", "list of strings"),
        ("[verify]\nthresholds = { a = 1 }\n", "verify.thresholds", "not a table"),
        ("[run\n", None, "not valid TOML"),
    ],
)
def test_a_bad_file_is_one_error_naming_file_and_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, key: str | None, problem: str
) -> None:
    (tmp_path / "quotaquake.toml").write_text(text)
    monkeypatch.chdir(tmp_path)
    result = invoke(["stack", "down"])
    assert isinstance(result.exception, ConfigError), result.output
    message = str(result.exception)
    assert message.startswith(f"{tmp_path / 'quotaquake.toml'}: " + (f"{key}: " if key else ""))
    assert problem in message


def test_a_bad_file_still_lets_help_show(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "quotaquake.toml").write_text("[run]\nrat = 5\n")
    monkeypatch.chdir(tmp_path)
    assert invoke(["run", "-h"]).exit_code == 0


def test_bad_file_through_main_is_one_line_and_exit_2(tmp_path: Path) -> None:
    (tmp_path / "quotaquake.toml").write_text('[run]\nrate = "fast"\n')
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)])}
    result = subprocess.run([sys.executable, "-m", "quotaquake", "run"], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=60)  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"error: {tmp_path / 'quotaquake.toml'}: run.rate: Input should be a valid number, unable to parse string "
        "as a number"
    )


def test_an_error_about_an_option_not_typed_says_where_it_was_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, recorded: list[RunRequest]
) -> None:
    (tmp_path / "quotaquake.toml").write_text('[run]\nscenario = "nope"\nrate = 1\nduration = "1s"\n')
    monkeypatch.chdir(tmp_path)
    result = invoke(["run"])
    assert "packaged scenarios by name: burst, quota-month, soak, tiered" in str(result.exception)
    assert str(result.exception).endswith(f"(set in {tmp_path / 'quotaquake.toml'}: run.scenario)")
    result = invoke(["run", "--duration", "1s"], env={"QUOTAQUAKE_DURATION": "9x", "QUOTAQUAKE_SCENARIO": "x"})
    assert str(result.exception).endswith("(set by environment variable QUOTAQUAKE_SCENARIO)")
    assert not recorded


def test_verify_takes_its_thresholds_from_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Path | None] = []

    def verify_and_report(run_dir: Path, thresholds: Path | None, console: object, **kw: object) -> int:
        seen.append(thresholds)
        return 0

    monkeypatch.setattr(quotaquake.run, "verify_and_report", verify_and_report)
    (tmp_path / "th.yaml").write_text(defaults.THRESHOLDS.read_text())
    (tmp_path / "quotaquake.toml").write_text('[verify]\nthresholds = "th.yaml"\n')
    monkeypatch.chdir(tmp_path)
    assert invoke(["verify", "somewhere"]).exit_code == 0
    assert seen == [tmp_path / "th.yaml"]


def test_locust_arguments_from_the_environment_come_before_the_typed_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, recorded: list[RunRequest]
) -> None:
    monkeypatch.chdir(tmp_path)
    env = {"QUOTAQUAKE_LOCUST_ARGS": "--qq-tiers 'free=1,pro=1'", "QUOTAQUAKE_SCENARIO": "tiered"}
    assert invoke(["run", "--rate", "1", "--duration", "1s", "--qq-shape", "ramp"], env=env).exit_code == 0
    assert recorded[-1].locust_args == ("--qq-tiers", "free=1,pro=1", "--qq-shape", "ramp")
    assert settings_of(recorded[-1])["locust arguments"][1] == (
        "environment variable QUOTAQUAKE_LOCUST_ARGS + command line"
    )
    assert settings_of(recorded[-1])["--scenario"][1] == (
        "environment variable QUOTAQUAKE_SCENARIO (packaged scenario tiered)"
    )
