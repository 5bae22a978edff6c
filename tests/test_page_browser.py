"""The demo page in a real headless Chromium: upload a photo, see the skeleton overlay and the table."""

from __future__ import annotations

import io
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from posewheel.artifact import promote
from posewheel.draw import page_style
from serving import heif
from tests.fixtures.heic.make_heic import FIXTURE
from tests.support.onnx_models import MakeArtifact, spot_image
from tests.support.server import StartServer, run_server, test_settings

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


def _pixel(page: Any, x: int, y: int) -> list[int]:
    """The overlay canvas's RGB at (x, y)."""
    script = f"c => Array.from(c.getContext('2d').getImageData({x}, {y}, 1, 1).data)"
    return list(page.eval_on_selector("#overlay", script)[:3])


def _rgb(css: str) -> list[int]:
    return [int(css[i : i + 2], 16) for i in (1, 3, 5)]


def _last_keypoint(page: Any) -> tuple[int, int]:
    """Where the table puts the last keypoint drawn (right_ankle), in canvas pixels."""
    cells = page.locator("#keypoints tbody tr").last.inner_text().split("\t")
    assert cells[1] == "right_ankle"
    return round(float(cells[2])), round(float(cells[3]))


@contextmanager
def _upload(server_url: str, photo: Path, expect_poses: int) -> Iterator[tuple[Any, list[str]]]:
    """A headless page on the server's `/` with `photo` uploaded and answered; yields it and its script errors."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(server_url + "/")
            page.wait_for_selector("#model:has-text('model v1')")
            page.set_input_files("#file", str(photo))
            page.click("button[type=submit]")
            page.wait_for_selector(f"#overlay[data-poses='{expect_poses}']", timeout=15_000)
            yield page, errors
        finally:
            browser.close()


def test_uploading_a_photo_shows_the_skeleton_overlay_and_keypoints(start_server: StartServer, tmp_path: Path) -> None:
    server = start_server()
    photo = tmp_path / "person.png"
    photo.write_bytes(spot_image(960, 720, (480, 240), size=80))
    style = page_style()
    with _upload(server.url, photo, expect_poses=1) as (page, errors):
        assert page.eval_on_selector("#overlay", "c => [c.width, c.height]") == [960, 720]
        # the page draws by the server's rules (posewheel.draw, as /v1/render), not a copy of its own
        assert page.evaluate("STYLE") == style
        # every keypoint lands on the bright spot, confident: a filled disc in the colour of the last one drawn
        # (right_ankle: the right side's), its centre covered
        x, y = _last_keypoint(page)
        assert abs(x - 480) < 30 and abs(y - 240) < 30  # a heatmap cell is 40 px of this photo
        assert _pixel(page, x, y) == _rgb(style["joint"][16])
        # the person's box (without a detector, the whole photo) is numbered at its corner as the table's "person"
        # column: a label in the box colour, the number in black on it
        label = page.eval_on_selector("#overlay", "c => Array.from(c.getContext('2d').getImageData(0, 0, 16, 24).data)")
        colours = {tuple(label[i : i + 3]) for i in range(0, len(label), 4)}
        assert {tuple(_rgb(style["box"])), (0, 0, 0)} <= colours
        assert page.locator("#keypoints tbody tr").first.inner_text().split("\t")[0] == "1"
        rows = page.locator("#keypoints tbody tr")
        assert rows.count() == 17
        assert rows.first.inner_text().split("\t")[1] == "nose"
        assert page.locator("#keypoints tbody tr.low").count() == 0
        assert "1 person(s)" in page.inner_text("#status")
        assert f"under {style['low_score']}" in page.inner_text("#legend")
        assert errors == []


def test_a_heic_the_browser_cannot_show_is_drawn_on_the_servers_upright_jpeg(
    start_server: StartServer, tmp_path: Path
) -> None:
    """Chromium cannot show an iPhone's HEIC: the page has the server make it the JPEG the model reads
    (/v1/upright), sends that for the prediction and draws on it."""
    server = start_server()
    photo = tmp_path / "IMG_0001.HEIC"
    photo.write_bytes(FIXTURE.read_bytes())
    jpeg = np.asarray(Image.open(io.BytesIO(heif.heif_to_jpeg(photo.read_bytes(), 40_000_000))).convert("RGB"))
    with _upload(server.url, photo, expect_poses=1) as (page, errors):
        assert page.eval_on_selector("#overlay", "c => [c.width, c.height]") == [384, 512]  # upright: a portrait
        assert "server's upright JPEG" in page.inner_text("#status")
        assert page.locator("#keypoints tbody tr").count() == 17
        # the photograph under the drawing: most points of a grid show the JPEG's pixels (the skeleton covers few)
        grid = [(x, y) for x in range(40, 384, 80) for y in range(40, 512, 80)]
        same = sum(np.abs(np.array(_pixel(page, x, y)) - jpeg[y, x].astype(int)).max() <= 6 for x, y in grid)
        assert same >= 0.8 * len(grid), (same, len(grid))
        assert errors == []


def test_keypoints_under_the_low_score_are_drawn_hollow(tmp_path: Path, make_artifact: MakeArtifact) -> None:
    unsure = make_artifact("v1", scale=0.2)  # every keypoint scores about 0.2, under posewheel.draw.LOW_SCORE
    promote(unsure.parent, "v1")
    photo = tmp_path / "person.png"
    photo.write_bytes(spot_image(960, 720, (480, 240), size=80))
    style = page_style()
    with (
        run_server(test_settings(tmp_path, unsure.parent / "production")) as server,
        _upload(server.url, photo, expect_poses=1) as (page, errors),
    ):
        # a ring in the joint's colour, the photo (the white spot) showing through its middle
        x, y = _last_keypoint(page)
        assert abs(x - 480) < 30 and abs(y - 240) < 30  # inside the spot
        assert _pixel(page, x, y) == [255, 255, 255]
        radius = page.evaluate("Math.max(2, Math.round(Math.min(960, 720) / 120))")
        ring = [_pixel(page, x + radius + dx, y) for dx in (-1, 0, 1)]
        assert _rgb(style["joint"][16]) in ring
        assert page.locator("#keypoints tbody tr.low").count() == 17
        assert errors == []
