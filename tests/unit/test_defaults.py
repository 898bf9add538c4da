"""The packaged defaults (``quotaquake.defaults``): found relative to the package, shipped in the wheel, named."""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

import pytest

from quotaquake import defaults
from quotaquake.context import EXPERIMENT, SCENARIO, missing_named, resolve_named
from quotaquake.policy import DEFAULT_POLICY_PATH, load_policy
from quotaquake.stack.local.provider import BUNDLED_TEMPLATES
from quotaquake.verify.thresholds import DEFAULT_THRESHOLDS_PATH, Thresholds, load_thresholds

REPO = Path(__file__).resolve().parents[2]


def test_defaults_are_found_relative_to_the_package_not_the_working_directory() -> None:
    for path in (DEFAULT_POLICY_PATH, DEFAULT_THRESHOLDS_PATH, BUNDLED_TEMPLATES, defaults.STUB_DOCKERFILE):
        assert path.is_absolute() and path.exists(), path
        assert path.is_relative_to(defaults.PACKAGE_DIR)
    assert load_policy(DEFAULT_POLICY_PATH) == load_policy(REPO / "stack" / "policy.yaml")
    assert load_thresholds(DEFAULT_THRESHOLDS_PATH) == Thresholds()
    assert (BUNDLED_TEMPLATES / "replica.yaml.j2").is_file() and (BUNDLED_TEMPLATES / "prometheus.yml.j2").is_file()


def test_the_repository_folders_are_the_packaged_ones() -> None:
    for name in ("stack", "scenarios", "chaos"):
        assert (defaults.PACKAGE_DIR / name).resolve() == (REPO / name).resolve()


def test_every_packaged_file_is_package_data_of_the_wheel() -> None:
    """setuptools ships only files matching ``[tool.setuptools.package-data]`` (and modules): every file under
    the packaged folders must match one pattern, or an installed quotaquake would miss it."""
    patterns = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["quotaquake"]
    package = defaults.PACKAGE_DIR.parent
    needed = [defaults.POLICY, defaults.THRESHOLDS, defaults.STUB_DOCKERFILE, *BUNDLED_TEMPLATES.iterdir()]
    needed += [defaults.SCENARIOS_DIR / f"{n}.py" for n in defaults.scenario_names()]
    needed += [defaults.CHAOS_DIR / f"{n}.json" for n in defaults.experiment_names()]
    for path in needed:
        relative = str(path.relative_to(package))
        shipped = path.suffix == ".py" or any(
            fnmatch.fnmatch(relative, p) or fnmatch.fnmatch(relative, p.replace("**/", "")) for p in patterns
        )
        assert shipped, f"{relative} matches no package-data pattern"


def test_packaged_names() -> None:
    assert defaults.scenario_names() == ["burst", "quota-month", "soak", "tiered"]
    assert {"redis-kill", "postgres-kill", "k8s/redis-kill"} <= set(defaults.experiment_names())


def test_names_resolve_in_the_project_first_then_the_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert resolve_named(Path("tiered"), SCENARIO, tmp_path) == (
        defaults.SCENARIOS_DIR / "tiered.py",
        "packaged scenario tiered",
    )
    assert resolve_named(Path("redis-kill.json"), EXPERIMENT, tmp_path)[0] == defaults.CHAOS_DIR / "redis-kill.json"
    (tmp_path / "chaos").mkdir()
    (tmp_path / "chaos" / "redis-kill.json").write_text("{}")
    assert resolve_named(Path("redis-kill"), EXPERIMENT, tmp_path) == (
        tmp_path / "chaos" / "redis-kill.json",
        "project experiment redis-kill",
    )
    (tmp_path / "tiered").write_text("")  # a file of that name here: taken as given
    assert resolve_named(Path("tiered"), SCENARIO, tmp_path) == (Path("tiered"), None)
    assert resolve_named(Path("nope"), SCENARIO, tmp_path) == (Path("nope"), None)
    assert resolve_named(Path("/abs/tiered"), SCENARIO, tmp_path) == (Path("/abs/tiered"), None)


def test_a_name_found_nowhere_lists_the_packaged_ones(tmp_path: Path) -> None:
    assert str(missing_named(Path("nope"), SCENARIO)) == (
        "--scenario: nope does not exist (packaged scenarios by name: burst, quota-month, soak, tiered)"
    )
    assert str(missing_named(tmp_path, EXPERIMENT)).startswith(f"--chaos: {tmp_path} is not a file (packaged")
