"""The report opens in a real browser (headless Chromium) as a person would see it: no console error, no
request leaving the page, the admitted-vs-allowed chart, the per endpoint x tier table and every verdict's
evidence table visible without opening anything, the time-axis toggle working, and a screenshot.

Chromium is driven through the DevTools protocol over ``--remote-debugging-pipe`` (file descriptors 3 and
4, JSON messages ending in NUL): the standard library only, no port opened, no browser driver package.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import re
import select
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from quotaquake.policy import load_policy
from quotaquake.report import render_report
from quotaquake.runfolder import RunFolder
from quotaquake.verify.engine import verify_run
from tests.support.synthetic import SyntheticRun, mixed_consumers, write_run

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-pipe",
)
WIDTH, HEIGHT = 1366, 900  # a laptop screen
TIMEOUT_S = 60.0

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="Chromium (Debian package chromium) not installed"),
]


class Browser:
    """Headless Chromium and one page, over the DevTools pipe. Collects console errors, exceptions and the
    URL of every request the page makes."""

    def __init__(self, profile: Path) -> None:
        to_child_read, self._write = os.pipe()
        self._read, from_child_write = os.pipe()
        # the browser expects the pipe on fds 3 (commands) and 4 (replies): moved there in the child
        high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in (to_child_read, from_child_write)]
        os.close(to_child_read)
        os.close(from_child_write)

        def onto_3_and_4() -> None:
            os.dup2(high[0], 3)
            os.dup2(high[1], 4)

        self.process = subprocess.Popen(
            [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", f"--window-size={WIDTH},{HEIGHT}", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            close_fds=False,
            preexec_fn=onto_3_and_4,
        )
        for fd in high:
            os.close(fd)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.page(f"{domain}.enable")
        self.page("Emulation.setDeviceMetricsOverride", width=WIDTH, height=HEIGHT, deviceScaleFactor=1, mobile=False)

    def page(self, method: str, **params: Any) -> dict[str, Any]:
        """A command to the page's session."""
        return self.call(method, params, session=True)

    def call(self, method: str, params: dict[str, Any] | None = None, *, session: bool = False) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self.session
        os.write(self._write, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._receive()
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return dict(reply.get("result", {}))
            self.events.append(reply)

    def _receive(self) -> dict[str, Any]:
        deadline = time.monotonic() + TIMEOUT_S
        while b"\0" not in self._buffer:
            ready, _, _ = select.select([self._read], [], [], max(deadline - time.monotonic(), 0))
            if not ready:
                raise TimeoutError("no answer from Chromium")
            chunk = os.read(self._read, 1 << 20)
            if not chunk:
                raise RuntimeError("Chromium closed the DevTools pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return dict(json.loads(message))

    def evaluate(self, expression: str) -> Any:
        result = self.page("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise AssertionError(f"page script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def open(self, page: Path) -> None:
        self.page("Page.navigate", url=page.as_uri())
        self.wait_for("document.readyState === 'complete'")

    def wait_for(self, condition: str) -> None:
        deadline = time.monotonic() + TIMEOUT_S
        while not self.evaluate(condition):
            if time.monotonic() > deadline:
                raise TimeoutError(f"page never satisfied: {condition}")
            time.sleep(0.1)

    def screenshot(self, png: Path) -> None:
        """The whole page, at the laptop screen's width."""
        size = self.page("Page.getLayoutMetrics")["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": WIDTH, "height": int(size["height"]), "scale": 1}
        shot = self.page("Page.captureScreenshot", format="png", captureBeyondViewport=True, clip=clip)
        png.write_bytes(base64.b64decode(shot["data"]))

    def pdf(self, path: Path) -> None:
        """The page as printed (A4, the report's print CSS)."""
        printed = self.page("Page.printToPDF", paperWidth=8.27, paperHeight=11.69, printBackground=True)
        path.write_bytes(base64.b64decode(printed["data"]))

    def problems(self) -> list[str]:
        """Console errors, uncaught exceptions and error log entries, as text."""
        found = []
        for event in self.events:
            params = event.get("params", {})
            if event.get("method") == "Runtime.exceptionThrown":
                found.append(json.dumps(params["exceptionDetails"])[:500])
            elif event.get("method") == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                found.append(json.dumps(params.get("args"))[:500])
            elif event.get("method") == "Log.entryAdded" and params["entry"].get("level") == "error":
                found.append(params["entry"].get("text", "")[:500])
        return found

    def requested(self) -> list[str]:
        return [e["params"]["request"]["url"] for e in self.events if e.get("method") == "Network.requestWillBeSent"]

    def close(self) -> None:
        with contextlib.suppress(RuntimeError, TimeoutError, OSError):
            self.call("Browser.close")
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._write)
        os.close(self._read)


@pytest.fixture
def browser(tmp_path: Path):
    chromium = Browser(tmp_path / "profile")
    try:
        yield chromium
    finally:
        chromium.close()


def chaos_run(run_dir: Path) -> Path:
    """A synthetic run with a Redis kill and the racy defect, plus the files Locust and Chaos Toolkit
    would have left (stand-ins: the report only links them)."""
    policy = load_policy(REPO / "stack" / "policy.yaml")
    spec = SyntheticRun(
        policy=policy, consumers=mixed_consumers(policy, 2, 4.0), duration_s=90, redis_fault=(30, 45), defect="racy"
    )
    write_run(run_dir, spec)
    folder = RunFolder(run_dir)
    folder.locust_html.write_text("<!doctype html><title>Locust</title><p>Locust report stand-in</p>")
    folder.locust_log.write_text("locust log\n")
    folder.chaos_dir.mkdir(exist_ok=True)
    folder.journal_file.write_text("{}")
    folder.chaos_log.write_text("chaostoolkit log\n")
    return render_report(folder, verify_run(run_dir))


PRINTED = """(() => ({
  scrollBoxes: [...new Set([...document.querySelectorAll('.scroll')].map(e => getComputedStyle(e).maxHeight))],
  nav: getComputedStyle(document.querySelector('nav.top')).display,
  rawJson: getComputedStyle(document.querySelector('details.raw')).display,
}))()"""
DRAWN = "[...document.querySelectorAll('.plot')].every(div => div.querySelector('.main-svg'))"
VISIBILITY = """(() => {
  const shown = el => !!el && el.checkVisibility({checkOpacity: true, checkVisibilityCSS: true})
      && el.getBoundingClientRect().width > 0 && !el.closest('details:not([open])');
  const allowance = document.querySelector('#allowance .js-plotly-plot');
  return {
    endpointTable: shown(document.getElementById('endpoint-table')),
    endpointRows: document.querySelectorAll('#endpoint-table tbody tr').length,
    allowanceChart: shown(allowance) && !!allowance.querySelector('.main-svg'),
    allowanceTraces: allowance ? allowance.data.map(t => t.name) : [],
    plots: document.querySelectorAll('.plot').length,
    drawn: [...document.querySelectorAll('.plot')].filter(d => d.querySelector('.main-svg')).length,
    evidence: [...document.querySelectorAll('section.evidence')].map(s => ({
      check: s.dataset.check,
      status: s.querySelector('.status').textContent,
      tables: [...s.querySelectorAll('table')].filter(shown).length,
    })),
    links: [...document.querySelectorAll('#artifacts a')].map(a => a.getAttribute('href')),
  };
})()"""


def test_report_in_chromium(tmp_path: Path, browser: Browser):
    index = chaos_run(tmp_path / "run")
    browser.open(index)
    browser.wait_for(DRAWN)
    seen = browser.evaluate(VISIBILITY)
    png = tmp_path / "report.png"
    browser.screenshot(png)

    assert browser.problems() == []
    assert all(url.startswith(("file:", "data:", "about:")) for url in browser.requested()), browser.requested()
    assert seen["endpointTable"] and seen["endpointRows"] >= 10
    assert seen["allowanceChart"]
    assert {"allowed by the model", "admitted", "over admitted (verdict)"} <= set(seen["allowanceTraces"])
    assert seen["plots"] >= 9 and seen["drawn"] == seen["plots"]
    assert {e["check"] for e in seen["evidence"]} >= {"quota-accuracy", "latency", "degradation", "completeness"}
    assert all(e["tables"] >= 1 for e in seen["evidence"]), seen["evidence"]
    quota = next(e for e in seen["evidence"] if e["check"] == "quota-accuracy")
    assert quota["status"] == "fail"
    folder = RunFolder(index.parent)
    linked = [folder.locust_html, folder.locust_log, folder.journal_file, folder.chaos_log, folder.verdicts_file]
    expected = {p.relative_to(folder.path).as_posix() for p in [*linked, folder.junit_file]}
    assert expected | {folder.history_dir.name + "/"} <= set(seen["links"])

    pixels = np.asarray(Image.open(png).convert("RGB"), dtype=np.int16)
    assert pixels.shape[1] == WIDTH and pixels.shape[0] > 3 * HEIGHT
    red, green, blue = pixels[..., 0], pixels[..., 1], pixels[..., 2]
    band = (abs(red - 215) < 8) & (abs(green - 230) < 8) & (abs(blue - 241) < 8)  # the allowance band on white
    fault = (red > 240) & (abs(green - 222) < 12) & (abs(blue - 222) < 12)  # a fault window's shade on white
    badge_red = (abs(red - 0xD6) < 20) & (abs(green - 0x27) < 20) & (abs(blue - 0x28) < 20)
    assert band.sum() > 20_000, "no allowance band visible"
    assert fault.sum() > 20_000, "no shaded fault window visible"
    assert badge_red.sum() > 200, "no red fail badge visible"


def test_time_axis_toggle(tmp_path: Path, browser: Browser):
    index = chaos_run(tmp_path / "run")
    browser.open(index)
    browser.wait_for(DRAWN)
    axes = """[...document.querySelectorAll('.js-plotly-plot')].map(d => [d.layout.xaxis.type, d.data[0].x[0]])"""
    assert {kind for kind, _ in browser.evaluate(axes)} == {"date"}
    browser.evaluate("document.querySelector('input[value=relative]').click()")
    relative = browser.evaluate(axes)
    assert {kind for kind, _ in relative} == {"linear"}
    assert all(0 <= first < 5 for _, first in relative)  # seconds since the first request
    browser.evaluate("document.querySelector('input[value=wall]').click()")
    assert browser.evaluate(axes)[0][1].startswith("2026-01-01T00:00:00")
    browser.screenshot(tmp_path / "toggled.png")
    assert browser.problems() == []


def test_report_prints(tmp_path: Path, browser: Browser):
    index = chaos_run(tmp_path / "run")
    browser.open(index)
    browser.wait_for(DRAWN)
    browser.pdf(tmp_path / "report.pdf")
    pdf = (tmp_path / "report.pdf").read_bytes()
    assert pdf.startswith(b"%PDF") and len(re.findall(rb"/Type\s*/Page\b", pdf)) >= 5
    browser.page("Emulation.setEmulatedMedia", media="print")
    printed = browser.evaluate(PRINTED)
    assert printed["scrollBoxes"] == ["none"]  # every row of every table is on paper, none hidden in a box
    assert printed["nav"] == "none" and printed["rawJson"] == "none"
    assert browser.problems() == []
