"""A verdict's evidence as tables: a view tree the template draws, built without knowing any check.

Evidence is whatever JSON a checker returned (``jsonable``). The rules, applied recursively:

* a list of dicts is a table (columns: keys in first-seen order); a column whose values are all dicts of
  scalars is spread into one column per key (``corrected_ms p95``); other nested values nest;
* a dict is a key/value table; at the top level its scalar entries form one key/value table and each
  list or dict entry its own titled block;
* a list of scalars is one comma-separated line; an empty list or dict reads "none";
* numbers get thousands separators and at most 4 significant digits after the point; a number under a
  key naming a moment (``MOMENT_KEYS``, ``*_start``, ``*_end``, ``*_at``) that is an epoch time in
  seconds (2001 to 2096) reads as UTC time; ``None`` reads "unlimited" under a key naming a limit
  (``LIMIT_KEYS``, ``*_room``, ``*_limit``), "-" otherwise;
* a row is marked offending (red) when one of ``OFFENDING_FLAGS`` is true, ``agrees`` is false, its
  ``status`` is "fail" or its ``problems`` are not empty.

Text is masked by the template (``mask_secrets``), not here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

MAX_INLINE_ITEMS = 50
LIMIT_KEYS: frozenset[str] = frozenset({"limit", "per_minute", "per_month", "capacity", "month_room", "room"})
MOMENT_KEYS: frozenset[str] = frozenset({"t", "start", "end", "sent_s", "time", "load_start", "load_end"})
EPOCH_RANGE_S: tuple[float, float] = (1e9, 4e9)  # 2001-09-09 .. 2096-10-02
OFFENDING_FLAGS: tuple[str, ...] = ("offending", "breach", "over", "month_over", "violation", "violates")


@dataclass(frozen=True)
class Text:
    """One value as shown; ``css``: "num" (right-aligned), "none" (absent), "bad", "good" or ""."""

    text: str
    css: str = ""
    kind: Literal["text"] = "text"


@dataclass(frozen=True)
class KeyValues:
    rows: list[tuple[str, Node]]
    kind: Literal["kv"] = "kv"


@dataclass(frozen=True)
class Row:
    cells: list[Node]
    offending: bool = False


@dataclass(frozen=True)
class Table:
    columns: list[str]
    rows: list[Row]
    kind: Literal["table"] = "table"

    @property
    def offending(self) -> int:
        return sum(row.offending for row in self.rows)


Node = Text | KeyValues | Table


@dataclass(frozen=True)
class Block:
    title: str
    node: Node


@dataclass(frozen=True)
class EvidenceView:
    """The top level: scalar facts first, then one block per list or dict entry."""

    facts: KeyValues | None
    blocks: list[Block] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return self.facts is None and not self.blocks


def evidence_view(evidence: object) -> EvidenceView:
    """The view of a verdict's evidence (already ``jsonable``)."""
    if isinstance(evidence, dict):
        scalars = [(str(k), view(v, str(k))) for k, v in evidence.items() if not _nested(v)]
        blocks = [Block(humanize(str(k)), view(v, str(k))) for k, v in evidence.items() if _nested(v)]
        return EvidenceView(KeyValues(scalars) if scalars else None, blocks)
    if _nested(evidence):
        return EvidenceView(None, [Block("rows" if isinstance(evidence, list) else "values", view(evidence))])
    return EvidenceView(KeyValues([("value", view(evidence))]) if evidence is not None else None)


def view(value: object, key: str = "") -> Node:
    """The node of any JSON value; ``key`` is the name it was found under (for ``None`` and flags)."""
    if isinstance(value, dict):
        return KeyValues([(str(k), view(v, str(k))) for k, v in value.items()]) if value else Text("none", "none")
    if isinstance(value, list):
        if value and all(isinstance(item, dict) for item in value):
            return _table(value)
        return _inline(value, key)
    return scalar(value, key)


def scalar(value: object, key: str = "") -> Text:
    if value is None:
        return Text("unlimited", "none") if _names_limit(key) else Text("-", "none")
    if isinstance(value, bool):
        return Text("yes" if value else "no", _flag_css(key, value))
    if isinstance(value, int | float):
        if _names_moment(key) and EPOCH_RANGE_S[0] <= value <= EPOCH_RANGE_S[1]:
            return Text(datetime.fromtimestamp(value, tz=UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC")
        return Text(number(value), "num")
    return Text(str(value))


def number(value: float) -> str:
    """Thousands separators; integral values without a point; others to 4 significant digits after
    the point (3,484 / 12.59 / 0.0012)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if float(value).is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    if abs(value) >= 1000:
        return f"{value:,.1f}"
    return f"{value:.4g}"


def humanize(key: str) -> str:
    return key.replace("_", " ")


def _nested(value: object) -> bool:
    """A non-empty dict, or a list holding dicts or lists: drawn as a block of its own."""
    if isinstance(value, dict):
        return bool(value)
    return isinstance(value, list) and any(_is_rich(v) for v in value)


def _is_rich(value: object) -> bool:
    return isinstance(value, dict | list)


def _inline(values: list[object], key: str) -> Node:
    if not values:
        return Text("none", "none")
    if any(_is_rich(v) for v in values):
        return Table(["value"], [Row([view(v, key)]) for v in values])
    shown = [scalar(v, key).text for v in values[:MAX_INLINE_ITEMS]]
    more = f" ... ({len(values) - MAX_INLINE_ITEMS} more)" if len(values) > MAX_INLINE_ITEMS else ""
    return Text(", ".join(shown) + more)


def _table(rows: list[dict[str, object]]) -> Table:
    columns: list[str] = []
    for row in rows:
        columns += [str(k) for k in row if str(k) not in columns]
    spread = {c: _sub_keys(rows, c) for c in columns}
    headers: list[str] = []
    for column in columns:
        headers += [f"{column} {sub}" for sub in spread[column]] if spread[column] else [column]
    return Table([humanize(h) for h in headers], [_row(row, columns, spread) for row in rows])


def _sub_keys(rows: list[dict[str, object]], column: str) -> list[str]:
    """The keys to spread a column into: all its values are dicts of scalars (or absent), else none."""
    values = [row.get(column) for row in rows if row.get(column) is not None]
    if not values or not all(isinstance(v, dict) and v and not any(map(_is_rich, v.values())) for v in values):
        return []
    keys: list[str] = []
    for value in values:
        assert isinstance(value, dict)
        keys += [str(k) for k in value if str(k) not in keys]
    return keys


def _row(row: dict[str, object], columns: list[str], spread: dict[str, list[str]]) -> Row:
    cells: list[Node] = []
    for column in columns:
        value = row.get(column)
        if spread[column]:
            parts = value if isinstance(value, dict) else {}
            cells += [scalar(parts.get(sub), sub) for sub in spread[column]]
        else:
            cells.append(view(value, column))
    return Row(cells, offending_row(row))


def offending_row(row: dict[str, object]) -> bool:
    """Whether a row of evidence shows a problem (see the module docstring)."""
    if any(row.get(flag) is True for flag in OFFENDING_FLAGS):
        return True
    if row.get("agrees") is False or row.get("status") == "fail":
        return True
    problems = row.get("problems")
    return bool(problems) and problems != "-"


def _names_moment(key: str) -> bool:
    return key in MOMENT_KEYS or key.endswith(("_start", "_end", "_at"))


def _names_limit(key: str) -> bool:
    return key in LIMIT_KEYS or key.endswith(("_room", "_limit", "per_minute", "per_month", "capacity"))


def _flag_css(key: str, value: bool) -> str:
    if key in OFFENDING_FLAGS:
        return "bad" if value else ""
    if key == "agrees":
        return "" if value else "bad"
    return ""
