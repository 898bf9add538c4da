"""JUnit XML for CI: one testcase per check; fail -> <failure>, unknown and not-applicable -> <skipped>
with the status and the summary."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from quotaquake.report.masking import mask_secrets
from quotaquake.verify.verdict import Outcome, jsonable

MAX_EVIDENCE_CHARS = 20_000


def junit_xml(outcome: Outcome, suite: str = "quotaquake") -> str:
    verdicts = outcome.verdicts
    root = ET.Element(
        "testsuite",
        name=suite,
        tests=str(len(verdicts)),
        failures=str(sum(v.status == "fail" for v in verdicts)),
        skipped=str(sum(v.status in ("unknown", "not-applicable") for v in verdicts)),
        errors="0",
    )
    for verdict in verdicts:
        case = ET.SubElement(root, "testcase", classname=f"{suite}.verify", name=verdict.check)
        summary = mask_secrets(verdict.summary)
        if verdict.status == "fail":
            ET.SubElement(case, "failure", message=summary, type="VerdictFail").text = summary
        elif verdict.status in ("unknown", "not-applicable"):
            ET.SubElement(case, "skipped", message=f"{verdict.status}: {summary}")
        evidence = json.dumps(jsonable(verdict.evidence), indent=1)[:MAX_EVIDENCE_CHARS]
        ET.SubElement(case, "system-out").text = mask_secrets(evidence)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def write_junit(path: Path, outcome: Outcome) -> Path:
    path.write_text(junit_xml(outcome), encoding="utf-8")
    return path
