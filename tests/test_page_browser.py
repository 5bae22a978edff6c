"""The demo page in a real headless Chromium: upload a photo, see the skeleton overlay and the table; or go live on
the camera (Chromium's fake capture device playing a Y4M file) or a video file, answered frame after frame."""

from __future__ import annotations

import io
import json
import shutil
from collections.abc import Iterator, Sequence
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
from tests.support.benchmarks import load_benchmark
from tests.support.camera import BROWSER_ARGS, CHROMIUM, fake_camera_args, webcam_frame, webcam_place, write_y4m
from tests.support.moving_people import NOSES, REACH, group_photos, whose, write_video
from tests.support.onnx_models import MakeArtifact, spot_image
from tests.support.server import StartServer, run_server, test_settings

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
def _page(
    server_url: str, args: Sequence[str] = (), model: str = "v1", before: str | None = None
) -> Iterator[tuple[Any, list[str]]]:
    """A headless page on the server's `/` (Chromium started with `args` too, `before` run before the page's own
    script), its model card shown; yields it and its script errors."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[*BROWSER_ARGS, *args], headless=True)
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            if before is not None:
                page.add_init_script(before)
            page.goto(server_url + "/")
            page.wait_for_selector(f"#model:has-text('model {model}')")
            yield page, errors
        finally:
            browser.close()


@contextmanager
def _upload(server_url: str, photo: Path, expect_poses: int) -> Iterator[tuple[Any, list[str]]]:
    """A headless page on the server's `/` with `photo` uploaded and answered; yields it and its script errors."""
    with _page(server_url) as (page, errors):
        page.set_input_files("#file", str(photo))
        page.click("button[type=submit]")
        page.wait_for_selector(f"#overlay[data-poses='{expect_poses}']", timeout=15_000)
        yield page, errors


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


# A bright square crossing a 640 x 480 frame, 20 px a frame: what the spot models (tests/support/onnx_models.py) read
# as a person whose every keypoint is at the square
CROSSING_X = [120 + 20 * i for i in range(21)]


def _crossing_frames() -> list[Image.Image]:
    return [Image.open(io.BytesIO(spot_image(640, 480, (x, 240), size=60))) for x in CROSSING_X]


# Run before the page's script: record the stream fields of each form the page posts (Chromium does not show a
# request body that holds a file to Playwright)
_RECORD_STREAM_FIELDS = """
window.__sent = [];
const realFetch = window.fetch;
window.fetch = (url, options) => {
  const body = options && options.body;
  if (body instanceof FormData) {
    window.__sent.push({ timestamp_s: body.get("timestamp_s"), tracks: body.get("tracks") });
  }
  return realFetch(url, options);
};
"""


def _stream_fields(page: Any) -> list[dict[str, Any]]:
    """Each posted form's `timestamp_s` (float) and `tracks` (parsed, or None) so far."""
    return [
        {"timestamp_s": float(f["timestamp_s"]), "tracks": None if f["tracks"] is None else json.loads(f["tracks"])}
        for f in page.evaluate("window.__sent")
    ]


def _frames_answered(page: Any) -> int:
    return int(page.eval_on_selector("#overlay", "c => c.dataset.frames || '0'"))


# In one look (a live answer can land between two): where the table puts the last keypoint, and the middle of the
# white pixels the overlay shows, the square of the frame drawn under the skeleton
_KEYPOINT_AND_SQUARE = """() => {
  const cells = Array.from(document.querySelectorAll('#keypoints tbody tr')).pop().cells;
  const c = document.getElementById('overlay');
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let sx = 0, sy = 0, n = 0;
  for (let i = 0; i < d.length; i += 4) {
    if (d[i] > 230 && d[i + 1] > 230 && d[i + 2] > 230) {
      sx += (i / 4) % c.width; sy += Math.floor(i / 4 / c.width); n++;
    }
  }
  return [cells[1].textContent, +cells[2].textContent, +cells[3].textContent, sx / n, sy / n];
}"""


def _follow(page: Any, answers: int, places: int | None = None) -> list[tuple[float, float, float, float]]:
    """After each of the next `answers` live answers: where the last keypoint is drawn, and the square under it; with
    `places`, only until the answers have been drawn at that many places of the square."""
    seen: list[tuple[float, float, float, float]] = []
    start = _frames_answered(page)
    for n in range(start + 1, start + answers + 1):
        page.wait_for_function("n => +(document.getElementById('overlay').dataset.frames || 0) >= n", arg=n)
        name, *where = page.evaluate(_KEYPOINT_AND_SQUARE)
        assert name == "right_ankle"
        seen.append(tuple(where))
        if places is not None and len({round(x) for x, *_ in seen}) >= places:
            break
    return seen


def _on_the_square(seen: list[tuple[float, float, float, float]]) -> None:
    """Each answer is drawn on the frame it was read from (the keypoint on the square the canvas shows under it,
    which moves 20 px a frame), and the answers follow the square across the frame."""
    for x, y, sx, sy in seen:
        assert abs(x - sx) < 16 and abs(y - sy) < 16, (x, y, sx, sy)
    assert len({round(x) for x, *_ in seen}) >= 3, seen


def test_the_camera_is_answered_frame_after_frame_until_stopped(start_server: StartServer, tmp_path: Path) -> None:
    server = start_server(review_random_fraction=1.0, review_cap_per_hour=1000)
    camera = tmp_path / "camera.y4m"
    write_y4m(_crossing_frames(), camera)
    style = page_style()
    with _page(server.url, fake_camera_args(camera), before=_RECORD_STREAM_FIELDS) as (page, errors):
        page.click("#camera")
        seen = _follow(page, 8)
        _on_the_square(seen)
        # each frame carries its time and the tracks of an answer drawn before: the person stays track 1
        sent = _stream_fields(page)
        times = [f["timestamp_s"] for f in sent]
        carried = [f["tracks"] for f in sent if f["tracks"] is not None]
        assert len(carried) >= len(sent) - 2, sent  # all but the first frames (two senders)
        for n, tracks in enumerate(carried):
            assert tracks["next_id"] == 2 and [t["track_id"] for t in tracks["tracks"]] == [1]
            assert tracks["tracks"][0]["last_seen_s"] in times[: len(sent) - len(carried) + n]
        assert page.locator("#keypoints tbody tr").first.inner_text().split("\t")[0] == "#1"
        label = page.eval_on_selector("#overlay", "c => Array.from(c.getContext('2d').getImageData(0, 0, 16, 24).data)")
        assert tuple(_rgb(style["tracks"][0])) in {tuple(label[i : i + 3]) for i in range(0, len(label), 4)}
        status = page.inner_text("#status")
        assert status.startswith("camera: 1 person(s) in frame") and "frames/s" in status, status
        assert load_benchmark("live_page").STATUS.match(status), status  # what benchmarks/live_page.py reads
        assert "queued for review" in status  # live frames are traffic like any other: here every one is picked
        page.click("#stop")
        stopped_at = _frames_answered(page)
        page.wait_for_timeout(1000)
        assert _frames_answered(page) == stopped_at  # an answer already in flight is dropped, none sent after
        assert page.eval_on_selector("#overlay", "c => [c.width, c.height]") == [640, 480]
        x, y = _last_keypoint(page)  # the last frame answered stays, drawn as an upload is
        assert _pixel(page, x, y) == _rgb(style["joint"][16])
        assert page.evaluate("document.getElementById('source').srcObject") is None  # the camera is let go
        assert page.is_disabled("#stop")
        assert page.inner_text("#status") == "stopped"
        assert errors == []
    queued = list((tmp_path / "var" / "outbox").rglob("*.json"))
    assert queued, "no live frame reached the review outbox"


def test_a_video_file_is_answered_as_it_plays(start_server: StartServer, tmp_path: Path) -> None:
    server = start_server()
    video = tmp_path / "crossing.mp4"
    # H.264, as a phone hands it over: each position held 4 frames at 25 frames/s, 3.4 s
    write_video([frame for frame in _crossing_frames() for _ in range(4)], video)
    with _page(server.url) as (page, errors):
        page.set_input_files("#video", str(video))
        # the video holds each place 0.16 s: a fast server answers it several times (10 answers saw 2 places once)
        _on_the_square(_follow(page, 40, places=3))
        page.wait_for_selector("#status:has-text('ended')", timeout=15_000)
        status = page.inner_text("#status")
        assert status.startswith("crossing.mp4 ended:") and "posewheel predict" in status, status
        assert page.evaluate("document.getElementById('source').hasAttribute('src')") is False
        assert page.is_disabled("#stop")
        assert errors == []


def test_without_a_secure_page_the_camera_button_says_why(start_server: StartServer) -> None:
    """A browser lends the camera only to https pages and localhost: opened as http://<the server's name>/, the
    page has no navigator.mediaDevices, and says what to open instead."""
    server = start_server()
    with _page(server.url, before="Object.defineProperty(navigator, 'mediaDevices', { value: undefined })") as (
        page,
        errors,
    ):
        page.click("#camera")
        page.wait_for_selector("#status.error")
        assert "only over https or on localhost" in page.inner_text("#status")
        assert page.is_disabled("#stop")
        assert errors == []


def test_a_file_the_browser_cannot_play_is_named(start_server: StartServer, tmp_path: Path) -> None:
    server = start_server()
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    with _page(server.url) as (page, errors):
        page.set_input_files("#video", str(broken))
        page.wait_for_selector("#status.error")
        assert "cannot play broken.mp4" in page.inner_text("#status")
        assert page.is_disabled("#stop")
        assert _frames_answered(page) == 0
        assert errors == []


def test_real_people_on_camera_are_each_answered_by_the_pretrained_model(
    pretrained_artifact: Path, tmp_path: Path
) -> None:
    """A fresh install's model (MoveNet Lightning and its detector) on a real group photograph held before the
    camera (640 x 480, as a webcam gives): every person answered live, once, where the photograph uploaded whole
    is answered (the camera's frame passed through 4:2:0 colour and the page's JPEG)."""
    photo = group_photos()["sample1"]
    frame = webcam_frame(photo)
    scale, left, top = webcam_place(photo.size)  # 1920 x 1280 shown 640 x 427, centred
    frame.save(tmp_path / "frame.png")
    camera = tmp_path / "camera.y4m"
    write_y4m([frame], camera)
    marked = np.array([(left + x * scale, top + y * scale, REACH * scale) for x, y in NOSES["sample1"]])

    def noses() -> np.ndarray:
        return np.array([(float(r[2]), float(r[3])) for r in rows() if r[1] == "nose"])

    def rows() -> list[list[str]]:
        return [row.split("\t") for row in page.locator("#keypoints tbody tr").all_inner_texts()]

    def whose_label() -> dict[int | None, str]:
        """The marked person each nose row is, by its label in the table (a live answer's track id)."""
        nose_rows = [r for r in rows() if r[1] == "nose"]
        points = np.zeros((len(nose_rows), 17, 2))
        points[:, 0] = [(float(r[2]), float(r[3])) for r in nose_rows]
        return dict(zip(whose(points, np.ones((len(nose_rows), 17)), marked), [r[0] for r in nose_rows], strict=True))

    settings = test_settings(tmp_path, pretrained_artifact.parent / "production", intra_op_threads=2)
    with (
        run_server(settings) as server,
        _page(server.url, fake_camera_args(camera), model=pretrained_artifact.name) as (page, errors),
    ):
        page.set_input_files("#file", str(tmp_path / "frame.png"))
        page.click("button[type=submit]")
        page.wait_for_selector("#status:has-text('person(s), score')")
        uploaded = noses()
        page.click("#camera")
        page.wait_for_function("+(document.getElementById('overlay').dataset.frames || 0) >= 3", timeout=30_000)
        live = noses()
        first = whose_label()
        assert page.inner_text("#status").startswith(f"camera: {len(marked)} person(s)")
        page.wait_for_function("+(document.getElementById('overlay').dataset.frames || 0) >= 8", timeout=30_000)
        assert whose_label() == first  # each keeps their track id
        assert sorted(first.values()) == ["#1", "#2", "#3"]
        assert errors == []
    # each marked person answered once, near their nose
    scores = np.ones((len(live), 17))
    points = np.zeros((len(live), 17, 2))
    points[:, 0] = live
    assert sorted(whose(points, scores, marked)) == list(range(len(marked))), (live, marked)
    # where the upload is answered, within 1% of the frame's width (measured: 1.0-3.2 px)
    assert len(uploaded) == len(live)
    apart = np.hypot(*(live[:, None] - uploaded[None]).transpose(2, 0, 1)).min(axis=1)
    assert apart.max() < 6.4, (live, uploaded)


def test_a_refused_frame_stops_the_camera_and_says_why(start_server: StartServer, tmp_path: Path) -> None:
    """The server wants an API key the page was not given: the first answer (401) is said, the camera let go."""
    server = start_server(api_key="s3cret")
    camera = tmp_path / "camera.y4m"
    write_y4m(_crossing_frames()[:2], camera)
    with _page(server.url, fake_camera_args(camera), model="") as (page, errors):
        page.click("#camera")
        page.wait_for_selector("#status.error")
        assert "X-API-Key" in page.inner_text("#status"), page.inner_text("#status")
        page.wait_for_function("document.getElementById('source').srcObject === null")
        assert page.is_disabled("#stop")
        assert _frames_answered(page) == 0
        assert errors == []
