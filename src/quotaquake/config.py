"""Load YAML files into pydantic models, turning every failure into a one-line ``ConfigError``.

The error names the file and the dotted field path of the first problem, e.g.
``stack/policy.yaml: tiers.free.per_minute: Input should be greater than 0``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from quotaquake.errors import ConfigError

ModelT = TypeVar("ModelT", bound=BaseModel)


def field_path(location: tuple[int | str, ...]) -> str:
    """Render a pydantic error location as a dotted path (``tiers.free.per_minute``)."""
    return ".".join(str(part) for part in location) or "(top level)"


def validation_problem(path: Path | str, error: ValidationError) -> ConfigError:
    """The first validation error of ``error`` as a ``ConfigError`` naming ``path`` and the field."""
    first = error.errors()[0]
    return ConfigError(path, field_path(tuple(first["loc"])), first["msg"])


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe YAML loader that rejects a key repeated in one mapping (PyYAML keeps the last silently)."""


def _construct_unique_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> object:
    seen: set[object] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping)


def read_yaml(path: Path) -> object:
    """Parse a YAML file; a missing file, a syntax error or a repeated key becomes a ``ConfigError``."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(path, None, "file not found") from None
    except OSError as exc:
        raise ConfigError(path, None, f"cannot read: {exc.strerror}") from None
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else None
        raise ConfigError(path, where, f"not valid YAML: {getattr(exc, 'problem', exc)}") from None


def load_model(path: Path, model: type[ModelT]) -> ModelT:
    """Read ``path`` as YAML and validate it as ``model``."""
    data = read_yaml(path)
    if data is None:
        data = {}
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_problem(path, exc) from None
