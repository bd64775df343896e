"""The live view in a real browser: `python -m detect.serve` with the synthetic tracking clip as its source (the
trained tiny detector, SORT, the clip's zones), its page opened in headless Chromium (Debian's chromium,
driven by Playwright), the frame seen to update and a count to appear; the screenshot is kept in the test's folder."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from benchmarks.serve_load import server
from detect.data.synthetic_video import write_tracking_video

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# as root in a sandbox with no network: no setuid sandbox, no GPU, no calls home
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
                 "--disable-background-networking", "--disable-component-update"]
IMAGE = "#source-0 img"


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="no chromium here: apt-get install chromium (.ci/run does)")
def test_the_page_shows_live_frames_and_counts_in_chromium(trained_run: Path, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    clip = write_tracking_video(tmp_path, seed=1, frames=500)["video"]  # 20 s at 25 fps
    weights = trained_run / "checkpoints" / "best.ckpt"
    # the tiny detector's scores are low (0.1-0.4): thresholds low enough for tracks, as this checks the page
    live = [f"sources=[{clip}]", "tracker=sort", "tracker.track_activation_threshold=0.1", "zones=synthetic",
            "score_threshold=0.1", "threads=1"]
    with server(str(weights), "torch", "fp32", 8, 5.0, live) as (_, url), sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 720, "height": 560})
        page.goto(f"{url}/")
        page.wait_for_function(f"document.querySelector('{IMAGE}')?.naturalWidth > 0", timeout=30_000)
        first = page.locator(IMAGE).screenshot()
        page.wait_for_function("/^frame [0-9]+$/.test(document.querySelector('#source-0 .frame').textContent)")
        frame = int(page.locator("#source-0 .frame").text_content().split()[1])
        page.wait_for_function(f"+document.querySelector('#source-0 .frame').textContent.split(' ')[1] > {frame + 10}")
        assert page.locator(IMAGE).screenshot() != first  # the picture itself changed, not only the text
        page.wait_for_function("[...document.querySelectorAll('#source-0 .count')]"
                               ".some(cell => /[1-9]/.test(cell.textContent))", timeout=30_000)
        assert page.locator("#source-0 .state").text_content() == "live"
        page.screenshot(path=tmp_path / "live.png")
        browser.close()
    assert (tmp_path / "live.png").stat().st_size > 10_000
