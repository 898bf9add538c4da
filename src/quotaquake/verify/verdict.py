"""Verdicts: what one checker concludes, and how verdicts compose into the outcome of a run.

Jepsen-style: a check answers ``pass``, ``fail`` or ``unknown`` (never ``pass`` for lack of data, and a
crashing checker answers ``unknown``). Composition: fail > unknown > pass. A check whose data source the
target does not have (no Prometheus declared, no limiter histogram) answers ``not-applicable``: it is
listed with the reason and takes no part in the composition.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Literal

import numpy as np

Status = Literal["pass", "fail", "unknown", "not-applicable"]
Evidence = dict[str, object] | list[dict[str, object]]

_RANK: dict[Status, int] = {"pass": 0, "unknown": 1, "fail": 2}
EXIT_CODES: dict[Status, int] = {"pass": 0, "fail": 1, "unknown": 3}
NOT_APPLICABLE: Status = "not-applicable"


@dataclass(frozen=True)
class Verdict:
    """The conclusion of one check: status, a one-line summary and the evidence behind it."""

    check: str
    status: Status
    summary: str
    evidence: Evidence = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return {
            "check": self.check,
            "status": self.status,
            "summary": self.summary,
            "evidence": jsonable(self.evidence),
        }


def as_status(value: object) -> Status:
    """``value`` as a ``Status`` (a checker's own tables carry statuses as plain values); anything else is
    ``unknown``."""
    for status in ("pass", "fail", "unknown", "not-applicable"):
        if value == status:
            return status
    return "unknown"


def compose(statuses: Iterable[Status]) -> Status:
    """fail if any fails, else unknown if any is unknown, else pass; ``not-applicable`` is left out; no
    applicable status at all is unknown."""
    result: Status | None = None
    for status in statuses:
        if status == NOT_APPLICABLE:
            continue
        if result is None or _RANK[status] > _RANK[result]:
            result = status
    return "unknown" if result is None else result


@dataclass(frozen=True)
class Outcome:
    """All verdicts of a run and their composition; ``exit_code`` is 0 pass, 1 fail, 3 unknown."""

    run_dir: Path
    verdicts: tuple[Verdict, ...]

    @property
    def status(self) -> Status:
        return compose(v.status for v in self.verdicts)

    @property
    def exit_code(self) -> int:
        return EXIT_CODES.get(self.status, EXIT_CODES["unknown"])

    def verdict(self, check: str) -> Verdict:
        """The verdict of ``check``; ``KeyError`` if that check did not run."""
        for verdict in self.verdicts:
            if verdict.check == check:
                return verdict
        raise KeyError(check)

    def to_json(self) -> dict[str, object]:
        return {
            "run_dir": str(self.run_dir),
            "status": self.status,
            "exit_code": self.exit_code,
            "verdicts": [v.to_json() for v in self.verdicts],
        }


def jsonable(value: object) -> object:
    """``value`` with numpy scalars/arrays, paths and datetimes turned into JSON types; NaN -> None."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return [jsonable(v) for v in value.tolist()]
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return jsonable(value.item())
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, str | int | bool):
        return value
    return str(value)


def dumps(outcome: Outcome) -> str:
    return json.dumps(outcome.to_json(), indent=2)
