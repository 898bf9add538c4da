"""What quotaquake ships besides its code: the repository's ``stack/``, ``scenarios/`` and ``chaos/`` folders.

In the repository, ``stack``, ``scenarios`` and ``chaos`` here are links to the top-level folders (one copy
of each file, edited where the documentation says); building the package copies them into it, so an
installed quotaquake has them too and works from any directory. Everything is found relative to this
package (``importlib.resources`` over an installed, unzipped package), never relative to the working
directory:

* ``stack/policy.yaml`` (``POLICY``) and ``stack/thresholds.yaml`` (``THRESHOLDS``): the default quota
  policy and verification thresholds;
* ``stack/gateway/`` (``GATEWAY_TEMPLATES``): the Envoy and Prometheus templates of the local stack;
  ``stack/docker/Dockerfile`` (``STUB_DOCKERFILE``): the stub API's image for the docker provider;
  ``stack/kong/``: the DB-less Kong example;
* ``scenarios/<name>.py``: the scenarios, by name (``--scenario tiered``);
* ``chaos/<name>.json``: the Chaos Toolkit experiments, by name (``--chaos redis-kill``, ``k8s/redis-kill``).

A project overrides them with files of the same name in its own ``stack/``, ``scenarios/`` and ``chaos/``
folders (``project_file``, ``find_named``); the project is the folder of the configuration file
(``quotaquake.configfile``), else the working directory.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

PACKAGE_DIR = Path(str(files(__name__)))
"""This package's folder: an installed quotaquake is a folder on disk (no zip import), so a plain path."""

STACK_DIR = PACKAGE_DIR / "stack"
SCENARIOS_DIR = PACKAGE_DIR / "scenarios"
CHAOS_DIR = PACKAGE_DIR / "chaos"

POLICY = STACK_DIR / "policy.yaml"
THRESHOLDS = STACK_DIR / "thresholds.yaml"
GATEWAY_TEMPLATES = STACK_DIR / "gateway"
STUB_DOCKERFILE = STACK_DIR / "docker" / "Dockerfile"

POLICY_NAME = "stack/policy.yaml"
THRESHOLDS_NAME = "stack/thresholds.yaml"
SCENARIO_SUFFIX = ".py"
EXPERIMENT_SUFFIX = ".json"


def project_file(project: Path, relative: str) -> Path | None:
    """``project/relative`` when that file exists (a project's own ``stack/policy.yaml``), else ``None``."""
    candidate = project / relative
    return candidate if candidate.is_file() else None


def named(folder: Path, name: str, suffix: str) -> Path | None:
    """The file ``name`` (or ``name`` + ``suffix``) under ``folder``, if one exists there."""
    if not name or Path(name).is_absolute():
        return None
    for candidate in (folder / name, folder / f"{name}{suffix}"):
        if candidate.is_file():
            return candidate
    return None


def names(folder: Path, suffix: str) -> list[str]:
    """The names ``find_named`` accepts for the files under ``folder`` (sub-folders as ``k8s/redis-kill``)."""
    if not folder.is_dir():
        return []
    return sorted(str(path.relative_to(folder).with_suffix("")) for path in folder.rglob(f"*{suffix}"))


def scenario_names() -> list[str]:
    """The packaged scenarios, by name."""
    return names(SCENARIOS_DIR, SCENARIO_SUFFIX)


def experiment_names() -> list[str]:
    """The packaged Chaos Toolkit experiments, by name."""
    return names(CHAOS_DIR, EXPERIMENT_SUFFIX)
