"""What the quota-accuracy verdict's evidence names, for the admitted-vs-allowed charts.

The only evidence keys the report depends on (each optional; without them the charts show no marks and
pick the worst consumers by headroom alone):

* ``offenders``: a list of consumer names (drawn first among the worst consumers); without it, the
  consumers of the ``consumers`` table whose row is ``offending``;
* any list under a key ending in ``_rows`` whose rows carry ``consumer`` and ``sent_s`` (epoch s), e.g.
  ``over_admitted_rows``, ``false_rejection_rows``: each row becomes a mark labelled by the key
  ("over admitted", "false rejection"); ``tier``, when present, puts it on the tier's chart too.
"""

from __future__ import annotations

from quotaquake.report.charts import Mark
from quotaquake.verify.verdict import Outcome, jsonable

QUOTA_CHECK = "quota-accuracy"
ROWS_SUFFIX = "_rows"


def quota_evidence(outcome: Outcome) -> dict[str, object]:
    """The quota-accuracy verdict's evidence as a dict (empty when the check did not run or is a list)."""
    try:
        evidence = jsonable(outcome.verdict(QUOTA_CHECK).evidence)
    except KeyError:
        return {}
    return evidence if isinstance(evidence, dict) else {}


def offenders(evidence: dict[str, object]) -> list[str]:
    named = evidence.get("offenders")
    if isinstance(named, list):
        return [str(name) for name in named if isinstance(name, str)]
    table = evidence.get("consumers")
    if not isinstance(table, list):
        return []
    return [
        str(row["consumer"]) for row in table if isinstance(row, dict) and row.get("offending") and "consumer" in row
    ]


def marks(evidence: dict[str, object]) -> list[Mark]:
    found: list[Mark] = []
    for key, rows in evidence.items():
        if not key.endswith(ROWS_SUFFIX) or not isinstance(rows, list):
            continue
        label = key.removesuffix(ROWS_SUFFIX).replace("_", " ")
        for row in rows:
            if isinstance(row, dict) and isinstance(row.get("sent_s"), int | float) and "consumer" in row:
                found.append(Mark(label, str(row["consumer"]), str(row.get("tier", "")), float(row["sent_s"])))
    return found
