"""A headless Chromium for the demo page, and a camera for it: frames written as the Y4M file its fake capture
device plays.

    write_y4m([webcam_frame(photo)], Path("camera.y4m"))     # RGB frames (PIL), all one size
    chromium.launch(executable_path=CHROMIUM, args=[*BROWSER_ARGS, *fake_camera_args(Path("camera.y4m"))])

Chromium loops the file at its frame rate and lends it to `getUserMedia` without asking. Used by
tests/test_page_browser.py and benchmarks/live_page.py.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

CHROMIUM = "/usr/bin/chromium"  # Debian's (`make browser`)
BROWSER_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
WEBCAM = (640, 480)  # what a laptop's camera gives a page that asks for 640 x 480


def webcam_place(size: tuple[int, int]) -> tuple[float, int, int]:
    """Where `webcam_frame` puts a photograph of `size` (width, height): its scale, and its left and top edges."""
    width, height = size
    scale = min(WEBCAM[0] / width, WEBCAM[1] / height)
    return scale, (WEBCAM[0] - round(width * scale)) // 2, (WEBCAM[1] - round(height * scale)) // 2


def webcam_frame(photo: Image.Image) -> Image.Image:
    """`photo` as a webcam frame: scaled to fit WEBCAM, centred on black (`webcam_place`)."""
    scale, left, top = webcam_place(photo.size)
    small = photo.convert("RGB").resize(
        (round(photo.width * scale), round(photo.height * scale)), Image.Resampling.BILINEAR
    )
    frame = Image.new("RGB", WEBCAM)
    frame.paste(small, (left, top))
    return frame


def noisy_jpegs(photo: Image.Image, frames: int, noise: float, seed: int) -> Iterator[bytes]:
    """`photo` held still before a webcam (`webcam_frame`), `frames` times with fresh Gaussian sensor noise of `noise`
    grey levels, each as the demo page sends it (`page_jpeg`)."""
    rng = np.random.default_rng(seed)
    base = np.asarray(webcam_frame(photo), dtype=np.float64)
    for _ in range(frames):
        yield page_jpeg(Image.fromarray(np.clip(base + rng.normal(0.0, noise, base.shape), 0, 255).astype(np.uint8)))


def page_jpeg(frame: Image.Image) -> bytes:
    """`frame` as the demo page sends it: JPEG, quality 90."""
    out = io.BytesIO()
    frame.save(out, format="JPEG", quality=90)
    return out.getvalue()


def fake_camera_args(y4m: Path) -> list[str]:
    """Chromium's switches that make `y4m` the only camera and grant it to every page."""
    return [
        "--use-fake-device-for-media-stream",
        "--use-fake-ui-for-media-stream",
        f"--use-file-for-fake-video-capture={y4m}",
    ]


def write_y4m(frames: Sequence[Image.Image], target: Path, fps: int = 10) -> None:
    """Uncompressed 4:2:0 Y4M (full-range BT.601, as JPEG) of RGB frames of even width and height."""
    width, height = frames[0].size
    if width % 2 or height % 2:
        raise ValueError(f"4:2:0 needs an even frame size, not {width}x{height}")
    with target.open("wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for frame in frames:
            if frame.size != (width, height):
                raise ValueError(f"every frame must be {width}x{height}, not {frame.size[0]}x{frame.size[1]}")
            rgb = np.asarray(frame.convert("RGB"), dtype=np.float64)
            r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
            y = 0.299 * r + 0.587 * g + 0.114 * b
            cb = 128 - 0.168736 * r - 0.331264 * g + 0.5 * b
            cr = 128 + 0.5 * r - 0.418688 * g - 0.081312 * b
            out.write(b"FRAME\n")
            for plane in (y, _halved(cb), _halved(cr)):
                out.write(np.clip(np.rint(plane), 0, 255).astype(np.uint8).tobytes())


def _halved(plane: np.ndarray) -> np.ndarray:
    """A plane at half its width and height: the mean of each 2x2 block."""
    h, w = plane.shape
    return plane.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
