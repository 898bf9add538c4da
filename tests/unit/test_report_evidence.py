"""Evidence as tables, whatever shape a checker returns; and what the charts take from the quota verdict."""

from __future__ import annotations

from pathlib import Path

from quotaquake.report.evidence import KeyValues, Table, Text, evidence_view, number, view
from quotaquake.report.verdict_marks import marks, offenders, quota_evidence
from quotaquake.verify.verdict import Outcome, Verdict


def texts(table: Table) -> list[list[str]]:
    return [[cell.text if isinstance(cell, Text) else cell.kind for cell in row.cells] for row in table.rows]


def test_a_dict_gives_facts_then_one_block_per_list_or_dict():
    evidence = {
        "over_admitted_cost": 73.0,
        "offenders": ["pro-1", "free-1"],
        "month_offenders": [],
        "unknown_tiers": {},
        "consumers": [
            {"consumer": "pro-1", "month_room": 1_000_000.0, "offending": True},
            {"consumer": "enterprise-1", "month_room": None, "offending": False},
        ],
        "violations": {"429 without Retry-After": 0},
    }
    result = evidence_view(evidence)
    assert result.facts is not None
    facts = {key: node.text for key, node in result.facts.rows if isinstance(node, Text)}
    assert facts == {"over_admitted_cost": "73", "offenders": "pro-1, free-1", "month_offenders": "none",
                     "unknown_tiers": "none"}  # fmt: skip
    assert [block.title for block in result.blocks] == ["consumers", "violations"]
    consumers = result.blocks[0].node
    assert isinstance(consumers, Table)
    assert consumers.columns == ["consumer", "month room", "offending"]
    assert texts(consumers) == [["pro-1", "1,000,000", "yes"], ["enterprise-1", "unlimited", "no"]]
    assert [row.offending for row in consumers.rows] == [True, False] and consumers.offending == 1
    assert isinstance(result.blocks[1].node, KeyValues)


def test_nested_dicts_of_numbers_spread_into_columns():
    groups = [
        {"endpoint": "/batch", "corrected_ms": {"p50": 4.3, "p99": 6.96}, "breach": False},
        {"endpoint": "/identify", "corrected_ms": None, "breach": True},
    ]
    table = view(groups)
    assert isinstance(table, Table)
    assert table.columns == ["endpoint", "corrected ms p50", "corrected ms p99", "breach"]
    assert texts(table) == [["/batch", "4.3", "6.96", "no"], ["/identify", "-", "-", "yes"]]
    assert [row.offending for row in table.rows] == [False, True]


def test_deeper_nesting_nests_tables():
    table = view([{"fault": "kill redis", "rows": [{"status": 503}, {"status": 200}]}])
    assert isinstance(table, Table)
    inner = table.rows[0].cells[1]
    assert isinstance(inner, Table) and texts(inner) == [["503"], ["200"]]


def test_a_top_level_list_is_one_table_and_problems_mark_rows():
    result = evidence_view([{"fault": "a", "status": "pass", "problems": ""}, {"fault": "b", "status": "fail"}])
    assert result.facts is None
    (block,) = result.blocks
    assert isinstance(block.node, Table) and [r.offending for r in block.node.rows] == [False, True]
    assert evidence_view({}).empty
    disagree = view([{"count": "requests", "agrees": False}])
    assert isinstance(disagree, Table) and disagree.rows[0].offending


def test_epoch_moments_read_as_utc_times():
    row = view([{"sent_s": 1_767_225_610.5, "warmup_s": 3.0, "load_start": 1_767_225_600.0, "count": 1_767_225_600}])
    assert isinstance(row, Table)
    assert texts(row) == [["2026-01-01 00:00:10.500 UTC", "3", "2026-01-01 00:00:00.000 UTC", "1,767,225,600"]]


def test_numbers_read_like_numbers():
    assert [number(v) for v in (3484.0, 12.592, 0.0012, 1_000_000, 94.666667, 1234.5)] == [
        "3,484", "12.59", "0.0012", "1,000,000", "94.67", "1,234.5",
    ]  # fmt: skip


QUOTA = {
    "offenders": ["pro-1"],
    "over_admitted_rows": [
        {"row": 3, "sent_s": 1_767_225_610.5, "consumer": "pro-1", "tier": "pro"},
        {"row": 4, "consumer": "pro-1"},  # no time: no mark
    ],
    "false_rejection_rows": [{"sent_s": 1_767_225_611.0, "consumer": "free-1"}],
}


def test_marks_and_offenders_come_from_the_documented_keys():
    found = marks(QUOTA)
    assert [(m.label, m.consumer, m.tier, m.sent_s) for m in found] == [
        ("over admitted", "pro-1", "pro", 1_767_225_610.5),
        ("false rejection", "free-1", "", 1_767_225_611.0),
    ]
    assert offenders(QUOTA) == ["pro-1"]
    # without "offenders": the offending rows of the consumers table; without either: none
    assert offenders({"consumers": [{"consumer": "a", "offending": True}, {"consumer": "b"}]}) == ["a"]
    assert offenders({}) == [] and marks({"rows": [1, 2]}) == []


def test_quota_evidence_absent_or_not_a_dict():
    assert quota_evidence(Outcome(Path("."), (Verdict("latency", "pass", "ok"),))) == {}
    listed = Outcome(Path("."), (Verdict("quota-accuracy", "unknown", "?", [{"a": 1}]),))
    assert quota_evidence(listed) == {}
