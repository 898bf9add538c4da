"""The report opens in a real browser (headless Chromium) and shows its plots: a screenshot, not just a file."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

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

pytestmark = pytest.mark.integration


def screenshot(page: Path, png: Path, profile: Path) -> None:
    subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            f"--screenshot={png}",
            "--window-size=1280,2000",
            page.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=90,
    )


@pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="Chromium (Debian package chromium) not installed")
def test_report_renders_plots_in_chromium(tmp_path: Path):
    policy = load_policy(REPO / "stack" / "policy.yaml")
    run_dir = tmp_path / "run"
    spec = SyntheticRun(policy=policy, consumers=mixed_consumers(policy, 1, 4.0), duration_s=60, redis_fault=(20, 30))
    write_run(run_dir, spec)
    index = render_report(RunFolder(run_dir), verify_run(run_dir))
    png = tmp_path / "shot.png"
    screenshot(index, png, tmp_path / "profile")

    pixels = np.asarray(Image.open(png).convert("RGB"), dtype=np.int16)
    assert pixels.shape[:2] == (2000, 1280)
    colours = np.unique(pixels.reshape(-1, 3), axis=0)
    assert len(colours) > 50  # not a blank or single-colour page
    red, green, blue = pixels[..., 0], pixels[..., 1], pixels[..., 2]
    # matplotlib's default blue line (#1f77b4) and the shaded fault window (red at alpha 0.15 on white)
    line_blue = (abs(red - 0x1F) < 40) & (abs(green - 0x77) < 40) & (abs(blue - 0xB4) < 40)
    fault_pink = (red > 240) & (abs(green - 218) < 12) & (abs(blue - 218) < 12)
    assert line_blue.sum() > 500, "no plot lines visible"
    assert fault_pink.sum() > 5_000, "no shaded fault window visible"
    # the green "pass" badges of the verdict table
    badge_green = (abs(red - 0x2C) < 30) & (abs(green - 0xA0) < 30) & (abs(blue - 0x2C) < 30)
    assert badge_green.sum() > 200
