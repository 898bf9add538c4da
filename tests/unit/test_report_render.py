"""The report: self-contained HTML with embedded plots and masked keys; JUnit with one case per check."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

from quotaquake.policy import load_policy
from quotaquake.report import render_report
from quotaquake.report.junit import junit_xml
from quotaquake.report.masking import mask_secrets
from quotaquake.runfolder import RunFolder
from quotaquake.verify.engine import verify_run
from quotaquake.verify.verdict import Outcome, Verdict
from tests.support.synthetic import SyntheticRun, mixed_consumers, write_run

REPO = Path(__file__).resolve().parents[2]
POLICY = load_policy(REPO / "stack" / "policy.yaml")
KEY = "qq_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6"


def test_mask_secrets():
    assert KEY not in mask_secrets(f"consumer free-1 key {KEY}")
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


def test_report_is_self_contained_with_plots_and_masked_keys(tmp_path: Path):
    run_dir = tmp_path / "run"
    spec = SyntheticRun(
        policy=POLICY, consumers=mixed_consumers(POLICY, 1, 4.0), duration_s=60, redis_fault=(20.0, 30.0), defect="racy"
    )
    write_run(run_dir, spec)
    folder = RunFolder(run_dir)
    folder.write_info(folder.read_info().model_copy(update={"command": ["quotaquake", "run", "--key", KEY]}))
    outcome = verify_run(run_dir)
    index = render_report(folder, outcome)
    html = index.read_text()
    assert len(re.findall(r'<img alt="[^"]+" src="data:image/png;base64,', html)) == 5
    assert not re.search(r'(src|href)="(https?:)?//', html)  # nothing fetched from elsewhere
    assert KEY not in html and "qq_A****" in html
    assert "SEEDED DEFECT: racy" in html
    assert outcome.verdict("quota-accuracy").status == "fail"
    assert ">fail<" in html
    assert (run_dir / "junit.xml").exists()


def test_report_of_empty_history(tmp_path: Path):
    run_dir = tmp_path / "run"
    write_run(run_dir, SyntheticRun(policy=POLICY, consumers=(), duration_s=1))
    html = render_report(RunFolder(run_dir), verify_run(run_dir)).read_text()
    assert "No history rows" in html
