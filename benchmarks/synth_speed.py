"""Synthetic data speed: rendered + JPEG-encoded images per second, one process, 256x256.

    .venv/bin/python benchmarks/synth_speed.py [--count 400] [--size 256]

Prints one JSON line per figure: each domain's images/s (render + encode, the work of `posewheel
synth` minus the file writes), the same for the whole `generate` call (files, truth store, atomic
dataset swap), and a baseline measured in the same run: PIL encoding a blank image of the same size,
the floor any generator writing JPEGs pays. The target is at least 100 images/s per domain.
"""

from __future__ import annotations

import argparse
import io
import json
import tempfile
import time
from pathlib import Path

from PIL import Image

from posewheel.synth import generate
from posewheel.synth.generate import JPEG_QUALITY, encode_sample

TARGET_IMAGES_PER_S = 100.0


def _rate(count: int, seconds: float) -> float:
    return round(count / seconds, 1)


def blank_encode_rate(count: int, size: int) -> float:
    """Images/s for PIL to JPEG-encode a blank size x size RGB image (the baseline)."""
    blank = Image.new("RGB", (size, size), (128, 128, 128))
    start = time.perf_counter()
    for _ in range(count):
        blank.save(io.BytesIO(), format="JPEG", quality=JPEG_QUALITY)
    return _rate(count, time.perf_counter() - start)


def render_rate(domain: str, count: int, size: int) -> float:
    """Images/s rendering and encoding `count` images of `domain` in this process."""
    for i in range(5):  # warm-up: imports, noise bank
        encode_sample(domain, 999, i, size)
    start = time.perf_counter()
    for i in range(count):
        encode_sample(domain, 0, i, size)
    return _rate(count, time.perf_counter() - start)


def generate_rate(domain: str, count: int, size: int) -> float:
    """Images/s of the whole `generate` call, dataset and truth store written to a temporary folder."""
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        generate(domain, count, 0, Path(tmp) / "set", size=size, truth_dir=Path(tmp) / "truth")
        return _rate(count, time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=400, help="images per measurement")
    parser.add_argument("--size", type=int, default=256, help="image side in pixels")
    args = parser.parse_args()
    baseline = blank_encode_rate(args.count, args.size)
    print(json.dumps({"figure": "blank_jpeg_encode_images_per_s", "value": baseline, "size": args.size}))
    for domain in ("studio", "street"):
        rate = render_rate(domain, args.count, args.size)
        print(json.dumps({
            "figure": f"synth_{domain}_images_per_s", "value": rate, "size": args.size, "processes": 1,
            "baseline_blank_encode_images_per_s": baseline, "fraction_of_baseline": round(rate / baseline, 3),
            "target": TARGET_IMAGES_PER_S, "meets_target": rate >= TARGET_IMAGES_PER_S,
        }))  # fmt: skip
        full = generate_rate(domain, args.count, args.size)
        print(json.dumps({
            "figure": f"generate_{domain}_images_per_s", "value": full, "size": args.size, "processes": 1,
            "render_only_images_per_s": rate, "includes": "render, encode, image files, truth store, atomic save",
        }))  # fmt: skip


if __name__ == "__main__":
    main()
