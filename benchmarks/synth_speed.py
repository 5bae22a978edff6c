"""Synthetic data speed: rendered + JPEG-encoded images per second, one process, 256x256.

    .venv/bin/python benchmarks/synth_speed.py [--count 400] [--size 256]

Prints one JSON line per figure: each domain's images/s (render + encode, the work of `posewheel
synth` minus the file writes; best of interleaved rounds, wall clock and per CPU second), the whole
`generate` call (files, truth store, atomic dataset swap), and a baseline measured in the same
rounds: PIL encoding a blank image of the same size, the floor any generator writing JPEGs pays.
The target is at least 100 images/s per domain.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # as a script, sys.path[0] is benchmarks/

from posewheel.synth import generate
from posewheel.synth.writer import JPEG_QUALITY, encode_sample
from tests.support.figures import emit

TARGET_IMAGES_PER_S = 100.0


def _timed(work: Callable[[], None]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) to run `work` once."""
    wall, cpu = time.perf_counter(), time.process_time()
    work()
    return time.perf_counter() - wall, time.process_time() - cpu


def _blank_encode(count: int, size: int) -> Callable[[], None]:
    blank = Image.new("RGB", (size, size), (128, 128, 128))

    def work() -> None:
        for _ in range(count):
            blank.save(io.BytesIO(), format="JPEG", quality=JPEG_QUALITY)

    return work


def _render(domain: str, start: int, count: int, size: int) -> Callable[[], None]:
    def work() -> None:
        for i in range(start, start + count):
            encode_sample(domain, 0, i, size)

    return work


def render_rates(count: int, size: int, rounds: int) -> dict[str, dict[str, float]]:
    """Best-of-`rounds` images/s (wall and per CPU second) per domain and for the blank-encode baseline.

    The rounds interleave the baseline and both domains, so a burst of load on this shared machine
    hits all of them alike; the best round is the least disturbed one.
    """
    for domain in ("studio", "street"):  # warm-up: imports, noise bank, ramps
        _render(domain, 10_000, 5, size)()
    best: dict[str, dict[str, float]] = {}
    for r in range(rounds):
        jobs = {"blank_encode": _blank_encode(count, size)}
        jobs |= {d: _render(d, r * count, count, size) for d in ("studio", "street")}
        for name, work in jobs.items():
            wall, cpu = _timed(work)
            entry = best.setdefault(name, {"wall": 0.0, "cpu": 0.0})
            entry["wall"] = max(entry["wall"], round(count / wall, 1))
            entry["cpu"] = max(entry["cpu"], round(count / max(cpu, 1e-9), 1))
    return best


def generate_rate(domain: str, count: int, size: int) -> float:
    """Images/s of the whole `generate` call, dataset and truth store written to a temporary folder."""
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        generate(domain, count, 0, Path(tmp) / "set", size=size, truth_dir=Path(tmp) / "truth")
        return round(count / (time.perf_counter() - start), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=150, help="images per round and domain")
    parser.add_argument("--rounds", type=int, default=4, help="rounds; the best one is reported")
    parser.add_argument("--size", type=int, default=256, help="image side in pixels")
    args = parser.parse_args()
    rates = render_rates(args.count, args.size, args.rounds)
    baseline = rates["blank_encode"]
    emit(
        "blank_jpeg_encode_images_per_s",
        value=baseline["wall"],
        per_cpu_s=baseline["cpu"],
        size=args.size,
    )
    for domain in ("studio", "street"):
        rate = rates[domain]
        emit(
            f"synth_{domain}_images_per_s",
            value=rate["wall"],
            per_cpu_s=rate["cpu"],
            size=args.size,
            processes=1,
            best_of_rounds=args.rounds,
            images_per_round=args.count,
            baseline_blank_encode_images_per_s=baseline["wall"],
            fraction_of_baseline=round(rate["wall"] / baseline["wall"], 3),
            target=TARGET_IMAGES_PER_S,
            meets_target=rate["wall"] >= TARGET_IMAGES_PER_S,
        )
        full = generate_rate(domain, args.count * 2, args.size)
        emit(
            f"generate_{domain}_images_per_s",
            value=full,
            size=args.size,
            processes=1,
            render_only_images_per_s=rate["wall"],
            includes="render, encode, image files, truth store, atomic save",
        )


if __name__ == "__main__":
    main()
