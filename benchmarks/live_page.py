"""The demo page live on a camera: frames answered a second, against plain clients posting the same frames.

    .venv/bin/python benchmarks/live_page.py                         # the pretrained Lightning, 24 s each way
    .venv/bin/python benchmarks/live_page.py models/production --screenshot docs/images/demo_page_live.jpg

The camera is Chromium's fake capture device playing a Y4M file (tests/support/camera.py): the six group
photographs `posewheel pretrained fetch` caches, each scaled into a 640 x 480 webcam frame and held 2 s at 30
frames/s, looped. The page (headless Chromium on this machine, beside the server) goes live on it (`#camera`): each
of its senders grabs the frame on screen, makes it a JPEG (quality 0.9), posts it to /v1/predict of `posewheel
serve` (a child process, default settings: one inference lane a core), draws the answer and takes the next frame.
Measured with the page's default two senders and with one (`?in_flight=1`): `two_vs_one`.

Baselines, in the same run: Python clients (httpx, a connection each) posting the same six frames as JPEGs of the
same quality (Pillow), one request after another, each photograph for 2 s in turn, one client and two.
`page_vs_client`: the page's frames a second over two clients': what grabbing, encoding and drawing in a browser
cost the loop; `page*_browser_cores`: Chromium's CPU seconds a second (every process of it), which a browser on the
server's own 2 cores takes from the server. `*_answer_ms_median`: from sending a request to the last byte of its
answer (the page: Chromium's own timing of each request; the clients: around httpx's post). Each way runs
`--seconds` (24: each photograph twice) after its first answer. Prints one JSON line per artifact.
"""

from __future__ import annotations

import argparse
import io
import re
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import psutil
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # as a script, sys.path[0] is benchmarks/

from tests.support.camera import BROWSER_ARGS, CHROMIUM, fake_camera_args, webcam_frame, write_y4m
from tests.support.figures import emit
from tests.support.moving_people import group_photos
from tests.support.server_process import ServerProcess

BENCHMARK = "live_page"
FPS = 30  # a webcam's
IN_FLIGHT = 2  # the page's default senders (serving/static/index.html IN_FLIGHT); one is measured too
HELD_S = 2
# The page's status line while live: "camera: 3 person(s) in frame 41, 96 ms an answer, 9.1 frames/s, model ..."
STATUS = re.compile(r"camera: (\d+) person\(s\) in frame (\d+), (\d+) ms an answer, ([\d.]+) frames/s")


def browser_cpu_s() -> float:
    """CPU seconds used so far by this process's Chromium children (browser, renderer, GPU and utility processes)."""
    total = 0.0
    for child in psutil.Process().children(recursive=True):
        try:
            if "chrom" in child.name():
                times = child.cpu_times()
                total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


def page_run(url: str, camera: Path, seconds: float, in_flight: int, screenshot: Path | None) -> dict[str, float]:
    """The page live on `camera` with `in_flight` senders for `seconds` after its first answer: frames answered a
    second, median answer, Chromium's CPU (cores busy)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, args=[*BROWSER_ARGS, *fake_camera_args(camera)], headless=True
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 760})
            answers: list[tuple[float, float]] = []  # (when it ended, ms from sending the request to the answer's end)

            def finished(request: Any) -> None:
                if request.url.endswith("/v1/predict"):
                    timing = request.timing
                    answers.append((time.perf_counter(), timing["responseEnd"] - timing["requestStart"]))

            page.on("requestfinished", finished)
            page.goto(f"{url}/?in_flight={in_flight}")
            page.wait_for_selector("#model:has-text('model ')")
            page.click("#camera")
            page.wait_for_function("+(document.getElementById('overlay').dataset.frames || 0) >= 1", timeout=60_000)
            first = int(page.eval_on_selector("#overlay", "c => c.dataset.frames"))
            started, cpu = time.perf_counter(), browser_cpu_s()
            page.wait_for_timeout(seconds * 1000)
            frames = int(page.eval_on_selector("#overlay", "c => c.dataset.frames")) - first
            elapsed, cpu = time.perf_counter() - started, browser_cpu_s() - cpu
            status = page.inner_text("#status")
            if STATUS.match(status) is None:
                raise RuntimeError(f"the page is not live: {status!r}")
            if screenshot is not None:
                page.screenshot(path=str(screenshot), type="jpeg", quality=80, full_page=False)
            page.click("#stop")
        finally:
            browser.close()
    during = [ms for ended, ms in answers if started <= ended <= started + elapsed]
    return {
        "frames_per_s": frames / elapsed,
        "answer_ms_median": statistics.median(during),
        "browser_cores": cpu / elapsed,
    }


def client_run(url: str, frames: list[Image.Image], seconds: float, in_flight: int) -> dict[str, float]:
    """`in_flight` clients, each posting `frames` as JPEGs one after another for `seconds`."""
    jpegs = []
    for frame in frames:
        out = io.BytesIO()
        frame.save(out, format="JPEG", quality=90)
        jpegs.append(out.getvalue())

    def client(started: float) -> list[float]:
        times = []
        with httpx.Client(base_url=url, timeout=60) as http:
            while (now := time.perf_counter() - started) < seconds:
                data = jpegs[int(now / HELD_S) % len(jpegs)]  # each photograph for as long as the camera holds it
                sent = time.perf_counter()
                http.post("/v1/predict", files={"image": ("frame.jpg", data, "image/jpeg")}).raise_for_status()
                times.append(time.perf_counter() - sent)
        return times

    with httpx.Client(base_url=url, timeout=60) as http:  # warm
        http.post("/v1/predict", files={"image": ("frame.jpg", jpegs[0], "image/jpeg")}).raise_for_status()
    started = time.perf_counter()
    with ThreadPoolExecutor(in_flight) as pool:
        times = [t for each in pool.map(client, [started] * in_flight) for t in each]
    elapsed = time.perf_counter() - started
    return {"frames_per_s": len(times) / elapsed, "answer_ms_median": 1000 * statistics.median(times)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("artifacts", nargs="*", type=Path, help="artifact folders (default: the pretrained Lightning)")
    parser.add_argument(
        "--seconds", type=float, default=24.0, help="how long each side runs (default 24: the six photographs twice)"
    )
    parser.add_argument("--screenshot", type=Path, help="save the page as it answers (JPEG), for the docs")
    args = parser.parse_args()

    frames = [webcam_frame(photo) for _, photo in sorted(group_photos().items())]
    with tempfile.TemporaryDirectory(prefix="live-page-") as tmp:
        root = Path(tmp)
        camera = root / "camera.y4m"
        write_y4m([frame for frame in frames for _ in range(FPS * HELD_S)], camera, fps=FPS)
        given = [(str(a), a) for a in args.artifacts]
        if not given:
            from training.pretrained import export_pretrained

            given = [("pretrained movenet-lightning", export_pretrained("movenet-lightning", root / "models"))]
        for n, (name, folder) in enumerate(given):
            # the server's default settings, but nothing queued for review (no Label Studio here)
            env = {"POSEWHEEL_INTRA_OP_THREADS": "0", "POSEWHEEL_REVIEW_RANDOM_FRACTION": "0"}
            with ServerProcess(root / f"server{n}", folder, env=env).start() as server:
                clients = {n: client_run(server.url, frames, args.seconds, n) for n in (1, IN_FLIGHT)}
                pages = {
                    n: page_run(server.url, camera, args.seconds, n, args.screenshot if n == IN_FLIGHT else None)
                    for n in (1, IN_FLIGHT)
                }
            figures = {f"page{n}_{key}": value for n, each in pages.items() for key, value in each.items()}
            figures.update({f"client{n}_{key}": value for n, each in clients.items() for key, value in each.items()})
            emit(
                "live",
                benchmark=BENCHMARK,
                artifact=name,
                frame=list(frames[0].size),
                camera_fps=FPS,
                seconds=args.seconds,
                **{key: round(value, 2) for key, value in figures.items()},
                page_vs_client=round(pages[IN_FLIGHT]["frames_per_s"] / clients[IN_FLIGHT]["frames_per_s"], 3),
                two_vs_one=round(pages[IN_FLIGHT]["frames_per_s"] / pages[1]["frames_per_s"], 3),
            )


if __name__ == "__main__":
    main()
