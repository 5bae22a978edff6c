"""The demo page in a real headless Chromium: upload a photo, see the skeleton overlay and the table."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.support.onnx_models import spot_image
from tests.support.server import StartServer

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists() and shutil.which("chromium") is None, reason="no /usr/bin/chromium: run `make browser`"
)


def test_uploading_a_photo_shows_the_skeleton_overlay_and_keypoints(start_server: StartServer, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    server = start_server()
    photo = tmp_path / "person.png"
    photo.write_bytes(spot_image(240, 180, (120, 60)))
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(server.url + "/")
            page.wait_for_selector("#model:has-text('model v1')")
            before = page.eval_on_selector("#overlay", "c => c.toDataURL()")
            page.set_input_files("#file", str(photo))
            page.click("button[type=submit]")
            page.wait_for_selector("#overlay[data-poses='1']", timeout=15_000)
            assert page.eval_on_selector("#overlay", "c => [c.width, c.height]") == [240, 180]
            assert page.eval_on_selector("#overlay", "c => c.toDataURL()") != before
            # a keypoint marker is drawn (red) where the bright spot is
            red = page.eval_on_selector(
                "#overlay",
                """c => { const d = c.getContext('2d').getImageData(100, 40, 40, 40).data; let n = 0;
                          for (let i = 0; i < d.length; i += 4) if (d[i] > 200 && d[i+1] < 80) n++; return n; }""",
            )
            assert red > 0
            rows = page.locator("#keypoints tbody tr")
            assert rows.count() == 17
            assert rows.first.inner_text().split("\t")[1] == "nose"
            assert "1 person(s)" in page.inner_text("#status")
            assert errors == []
        finally:
            browser.close()
