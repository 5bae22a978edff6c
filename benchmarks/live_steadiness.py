"""How steady a camera's people are answered: the same scene in frame after frame, only the sensor's noise changing.

    .venv/bin/python benchmarks/live_steadiness.py                  # the pretrained Lightning and Thunder
    .venv/bin/python benchmarks/live_steadiness.py models/production --frames 30 --noise 6

Frames: each of the six group photographs `posewheel pretrained fetch` caches (22 people, noses marked by eye:
tests/support/moving_people.py NOSES) as a 640 x 480 webcam frame (tests/support/camera.py), held still before a
camera: `--frames` frames, each with fresh Gaussian noise of `--noise` grey levels (a webcam's sensor in room
light is about 2-6), sent as the demo page sends them (JPEG, quality 90), answered as served without boxes.

Per photograph and in all: how many frames answered every marked person exactly once (`whose`, the nose within
reach), the people answered a frame (min and max), answers near nobody; and the jitter of each person's sure
keypoints (scored at least 0.3 in every frame): the spread of their positions over the frames (the root of the
summed variances of x and y), pixels of the 640 px frame, median and 90th percentile. Jitter is what a viewer sees
as a skeleton trembling on someone standing still. Prints one JSON line per artifact and photograph, and a total.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # as a script, sys.path[0] is benchmarks/

from serving.engine import ServedModel
from serving.images import decode_image
from tests.support.benchmarks import answered_without_boxes, detector_models
from tests.support.camera import webcam_frame, webcam_place
from tests.support.figures import emit
from tests.support.moving_people import NOSES, REACH, group_photos, whose

BENCHMARK = "live_steadiness"
SURE = 0.3


def steadiness(
    model: ServedModel, photo: Image.Image, noses: np.ndarray, frames: int, noise: float, seed: int
) -> dict[str, float]:
    """The figures of one photograph held still for `frames` noisy frames (see the module docstring)."""
    rng = np.random.default_rng(seed)
    base = np.asarray(webcam_frame(photo), dtype=np.float64)
    per_person: list[list[tuple[np.ndarray, np.ndarray]]] = [[] for _ in noses]
    everyone, counts, nobody = 0, [], 0
    for _ in range(frames):
        noisy = np.clip(base + rng.normal(0.0, noise, base.shape), 0, 255).astype(np.uint8)
        out = io.BytesIO()
        Image.fromarray(noisy).save(out, format="JPEG", quality=90)
        points, scores = answered_without_boxes(model, decode_image(out.getvalue(), 40_000_000).image)
        who = whose(points, scores, noses)
        counts.append(len(points))
        nobody += who.count(None)
        everyone += sorted(w for w in who if w is not None) == list(range(len(noses)))
        for row, person in enumerate(who):
            if person is not None and who.count(person) == 1:
                per_person[person].append((points[row], scores[row]))
    spreads = []
    for seen in per_person:
        if len(seen) < 2:
            continue
        points = np.stack([p for p, _ in seen])
        sure = (np.stack([s for _, s in seen]) >= SURE).all(axis=0)
        spreads.append(np.sqrt(points.var(axis=0).sum(axis=1))[sure])
    jitter = np.concatenate(spreads) if spreads else np.zeros(0)
    return {
        "people": len(noses),
        "frames": frames,
        "frames_with_everyone": everyone,
        "answered_min": min(counts),
        "answered_max": max(counts),
        "near_nobody": nobody,
        "sure_keypoints": len(jitter),
        "jitter_px_median": round(float(np.median(jitter)), 2) if len(jitter) else float("nan"),
        "jitter_px_p90": round(float(np.percentile(jitter, 90)), 2) if len(jitter) else float("nan"),
        "_jitter": jitter,  # type: ignore[dict-item]
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("artifacts", nargs="*", type=Path, help="model folders; default: the pretrained two")
    parser.add_argument("--frames", type=int, default=20, help="frames a photograph (default 20)")
    parser.add_argument("--noise", type=float, default=4.0, help="the sensor's noise, grey levels (default 4)")
    args = parser.parse_args()
    photos = group_photos()
    with tempfile.TemporaryDirectory() as tmp:
        for name, model in detector_models(args.artifacts, Path(tmp) / "models", BENCHMARK):
            jitters, totals = [], {"people": 0, "frames_with_everyone": 0, "near_nobody": 0}
            for n, (photo_name, photo) in enumerate(sorted(photos.items())):
                scale, left, top = webcam_place(photo.size)
                noses = np.array([(left + x * scale, top + y * scale, REACH * scale) for x, y in NOSES[photo_name]])
                figures = steadiness(model, photo, noses, args.frames, args.noise, seed=n)
                jitters.append(figures.pop("_jitter"))
                for key in totals:
                    totals[key] += int(figures[key])
                emit("photograph", benchmark=BENCHMARK, model=name, photograph=photo_name, noise=args.noise, **figures)
            jitter = np.concatenate(jitters)
            emit(
                "all",
                benchmark=BENCHMARK,
                model=name,
                noise=args.noise,
                frames=args.frames * len(photos),
                **totals,
                jitter_px_median=round(float(np.median(jitter)), 2),
                jitter_px_p90=round(float(np.percentile(jitter, 90)), 2),
            )


if __name__ == "__main__":
    main()
