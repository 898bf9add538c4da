"""The report: self-contained interactive HTML (plotly.js embedded, nothing fetched), admitted vs allowed
per tier, the per endpoint x tier table, evidence as tables, artifact links, masked keys everywhere;
JUnit with one case per check."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from quotaquake.policy import load_policy
from quotaquake.report import render_report
from quotaquake.report.junit import junit_xml
from quotaquake.report.masking import mask_secrets
from quotaquake.report.series import STATUS_CLASSES
from quotaquake.runfolder import RunFolder
from quotaquake.verify.engine import verify_run
from quotaquake.verify.verdict import Outcome, Verdict
from tests.support.synthetic import SyntheticRun, mixed_consumers, simulate, write_run

REPO = Path(__file__).resolve().parents[2]
POLICY = load_policy(REPO / "stack" / "policy.yaml")
KEY = "qq_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6"
SPEC = re.compile(r'<script type="application/json" class="chart-spec" data-target="plot-([\w-]+)">(.*?)</script>')
FAULT_LABEL = "kill redis: outage of redis (rate-limit-store), expect fail-open-local"


def test_mask_secrets():
    assert KEY not in mask_secrets(f"consumer free-1 key {KEY}")
    metric = "threshold qq_limiter_decision_ms: p(99)<2; qq_recovery_s{fault:x}"
    assert mask_secrets(metric) == metric  # the gate's metric names are not keys
    assert mask_secrets("qq_limiter_decision_ms_and_more_x") == "qq_l****"
    assert mask_secrets("apikey: s3cr3tvalue99") == "apikey: s3cr****"
    assert mask_secrets('{"x-api-key": "abcdef123456"}') == '{"x-api-key": "abcd****"}'
    assert mask_secrets("consumer free-1 admitted 9") == "consumer free-1 admitted 9"


def test_junit_maps_statuses():
    outcome = Outcome(
        Path("."),
        (
            Verdict("a", "pass", "fine"),
            Verdict("b", "fail", f"over-admitted, key {KEY}"),
            Verdict("c", "unknown", "no data"),
        ),
    )
    root = ET.fromstring(junit_xml(outcome).split("?>", 1)[1])
    assert root.get("tests") == "3" and root.get("failures") == "1" and root.get("skipped") == "1"
    cases = {case.get("name"): case for case in root.iter("testcase")}
    assert cases["a"].find("failure") is None and cases["a"].find("skipped") is None
    assert cases["b"].find("failure") is not None
    assert KEY not in ET.tostring(root, encoding="unicode")
    assert cases["c"].find("skipped").get("message") == "unknown: no data"


@pytest.fixture(scope="module")
def chaos_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, Outcome]:
    """A racy limiter through a Redis kill; one consumer's id is an API key (a misconfigured target could
    record one) and so is an argument of the recorded command: neither may reach the page."""
    run_dir = tmp_path_factory.mktemp("report") / "run"
    spec = SyntheticRun(
        policy=POLICY, consumers=mixed_consumers(POLICY, 1, 4.0), duration_s=60, redis_fault=(20.0, 30.0), defect="racy"
    )
    history = simulate(spec)
    history["consumer"] = history["consumer"].cat.rename_categories({"pro-1": KEY})
    write_run(run_dir, spec, frame=history)
    folder = RunFolder(run_dir)
    folder.write_info(folder.read_info().model_copy(update={"command": ["quotaquake", "run", "--key", KEY]}))
    outcome = verify_run(run_dir)
    return run_dir, render_report(folder, outcome).read_text(), outcome


def charts(html: str) -> dict[str, dict]:
    return {key: json.loads(spec) for key, spec in SPEC.findall(html)}


def test_report_is_self_contained_and_masks_keys_everywhere(chaos_report):
    run_dir, html, outcome = chaos_report
    markup = re.sub(r"<script\b.*?</script>", "", html, flags=re.S)  # plotly.js itself names plotly.com
    assert not re.search(r'(src|href)="(https?:)?//', markup)  # nothing fetched from elsewhere, no link out
    assert "<script src" not in html and "Plotly.newPlot" in html and len(html) > 4_000_000  # plotly.js inside
    assert KEY not in html and "qq_A****" in html
    assert "SEEDED DEFECT: racy" in html and "@media print" in html
    assert outcome.verdict("quota-accuracy").status == "fail"
    assert (run_dir / "junit.xml").exists()


def test_charts_shade_faults_and_show_status_classes(chaos_report):
    _, html, _ = chaos_report
    specs = charts(html)
    assert {"status", "tiers", "latency", "lag"} <= set(specs)
    for spec in specs.values():
        assert [shape["label"]["text"] for shape in spec["layout"]["shapes"]] == [FAULT_LABEL]
        assert spec["layout"]["xaxis"]["type"] == "date"
    status_names = {trace["name"] for trace in specs["status"]["data"]}
    assert {"2xx", "429"} <= status_names <= {*STATUS_CLASSES, "marked degraded"}
    assert "2xx-4xx" not in html
    latency = {trace["name"] for trace in specs["latency"]["data"]}
    assert {"p50", "p99", "p50 from intended", "p99 from intended"} <= latency
    assert {trace["name"] for trace in specs["lag"]["data"]} == {"p50", "p99", "max"}


def test_admitted_vs_allowed_per_tier_with_the_verdicts_marks(chaos_report):
    _, html, outcome = chaos_report
    specs = charts(html)
    titles = {key: spec["layout"]["title"]["text"] for key, spec in specs.items()}
    prefix = "Admitted vs allowed: tier "
    tier_charts = {titles[k].removeprefix(prefix): specs[k] for k in specs if k.startswith("tier-")}
    assert list(tier_charts) == ["free", "pro", "enterprise", "partner", "anonymous"]  # policy order
    pro = {trace["name"]: trace for trace in tier_charts["pro"]["data"]}
    assert pro["allowed by the model"]["fill"] == "tonexty" and "admitted" in pro
    assert "over admitted (verdict)" in pro  # the racy limiter's rows the verdict named
    assert "allowed by the model" not in {t["name"] for t in tier_charts["enterprise"]["data"]}  # unlimited
    worst = [titles[k] for k in specs if k.startswith("consumer-")]
    named = outcome.verdict("quota-accuracy").evidence["offenders"]
    assert 1 <= len(worst) <= 4 and worst[0].startswith(f"Admitted vs allowed: consumer {mask_secrets(named[0])}")


def test_tables_not_blobs(chaos_report):
    _, html, outcome = chaos_report
    table = html[html.index('<table id="endpoint-table">') :]
    table = table[: table.index("</table>")]
    assert re.search(r"<td>/identify</td><td>free</td>", table) and "all tiers" in table
    for verdict in outcome.verdicts:
        section = html[html.index(f'data-check="{verdict.check}"') :]
        section = section[: section.index("</section>")]
        assert section.index("<table") < section.index("<details")  # evidence shown, raw JSON folded
    assert "None/min" not in html
    policy = html[html.index('id="policy"') :]
    assert re.search(r"<td>enterprise</td><td class=\"num\">unlimited</td>", policy)
    assert re.search(r"<tr class=\"offending\">", html)  # the offending consumers' rows stand out


def test_links_only_to_artifacts_that_exist(chaos_report):
    run_dir, html, outcome = chaos_report
    folder = RunFolder(run_dir)
    linked = set(re.findall(r'<a href="([^"#]+)"', html))
    present = {folder.verdicts_file, folder.junit_file, folder.faults_file, folder.run_file}
    assert {p.relative_to(run_dir).as_posix() for p in present} | {"history/"} <= linked
    absent = {folder.locust_html, folder.locust_log, folder.journal_file, folder.chaos_log}
    assert not {p.relative_to(run_dir).as_posix() for p in absent} & linked
    folder.locust_html.write_text("<p>stand-in</p>")
    again = render_report(folder, outcome).read_text()
    assert f'<a href="{folder.locust_html.relative_to(run_dir).as_posix()}"' in again
    folder.locust_html.unlink()
    assert "stack-logs/" not in linked
    folder.stack_logs_dir.mkdir()
    (folder.stack_logs_dir / "redis.log").write_text("ready\n")
    with_logs = render_report(folder, outcome).read_text()
    assert '<a href="stack-logs/"' in with_logs and "1 file," in with_logs
    (folder.stack_logs_dir / "redis.log").unlink()
    folder.stack_logs_dir.rmdir()


def test_every_status_listed_and_any_evidence_shape_rendered(tmp_path: Path):
    run_dir = tmp_path / "run"
    write_run(run_dir, SyntheticRun(policy=POLICY, consumers=mixed_consumers(POLICY, 1, 1.0), duration_s=10))
    odd = {"deep": [{"rows": [{"x": {"y": [1, {"z": None}]}}]}], "quota": None, "limit": None}
    outcome = Outcome(
        run_dir,
        (
            Verdict("quota-accuracy", "pass", "no documented keys at all", {"something": "else"}),
            Verdict("odd", "unknown", "evidence of a new shape", odd),
            Verdict("limiter-latency", "not-applicable", "the target declares no Prometheus"),
        ),
    )
    html = render_report(RunFolder(run_dir), outcome).read_text()
    assert '<span class="status not-applicable">not-applicable</span>' in html
    assert "No evidence recorded." in html
    odd_section = html[html.index('data-check="odd"') :]
    assert odd_section.index("<table") < odd_section.index("<details") and ">unlimited<" in odd_section
    assert "over admitted (verdict)" not in html  # no documented keys: no marks, charts still drawn
    assert len(charts(html)) >= 4


def test_report_of_empty_history(tmp_path: Path):
    run_dir = tmp_path / "run"
    write_run(run_dir, SyntheticRun(policy=POLICY, consumers=(), duration_s=1))
    html = render_report(RunFolder(run_dir), verify_run(run_dir)).read_text()
    assert "No history rows" in html and not charts(html) and len(html) < 200_000  # no plotly.js without charts
