"""How steady a camera's people are answered, frame after frame: each frame alone, and as a stream whose tracks carry.

    .venv/bin/python benchmarks/live_steadiness.py                  # the pretrained Lightning and Thunder
    .venv/bin/python benchmarks/live_steadiness.py models/production --frames 30 --noise 6 --still

Two ways, in the same run: `alone`, each frame answered on its own (a client sending no `timestamp_s`), its people
given ids by a PoseTracker afterwards; `stream`, each frame sent with the tracks of the answer before it, as the demo
page does, so that a person of the frames before whom the detector misses is looked for where their track says
(`ServedModel.with_carried`, `posewheel.detection.carried_persons`).

Still groups: each of the six group photographs `posewheel pretrained fetch` caches (22 people, noses marked by eye:
tests/support/moving_people.py NOSES) as a 640 x 480 webcam frame (tests/support/camera.py), held still before a
camera: `--frames` frames 0.1 s apart (the demo page's two senders draw about 10 a second), each with fresh Gaussian
noise of `--noise` grey levels (a webcam's sensor in room light is about 2-6), sent as the page sends them (JPEG,
quality 90). Per photograph and in all: frames answering every marked person exactly once (`whose`, the nose within
reach), the people answered a frame (min and max), answers near nobody; and the jitter of each person's sure keypoints
(scored at least 0.3 in every frame they were answered): the spread of their positions over the frames (the root of
the summed variances of x and y), pixels of the 640 px frame, median and 90th percentile, what a viewer sees as a
skeleton trembling on someone standing still.

Moving people (unless `--still`): the walking and panning clips of benchmarks/pose_tracking.py (real people walking
past each other, one hidden behind another for a while; a camera sweeping across each group photograph, people
leaving the picture), every second frame (12.5 a second), as JPEG 90: the marked people present in a frame, those
answered exactly once, twice or more, answers near nobody (on a pan, a person whose head has left the picture counts
there too), and identity switches (a person's track id changing between frames answering them).

Prints one JSON line per artifact, way and photograph or clip kind, and a total per artifact and way.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # as a script, sys.path[0] is benchmarks/

from posewheel.tracks import PoseTracker
from serving.engine import ServedModel
from serving.images import decode_image
from tests.support.benchmarks import answered_in_stream, detector_models
from tests.support.camera import noisy_jpegs, page_jpeg, webcam_place
from tests.support.figures import emit
from tests.support.moving_people import (
    FRAME_RATE,
    NOSES,
    REACH,
    Clip,
    ClipTally,
    crossing_clips,
    group_photos,
    pan_clips,
    whose,
)

BENCHMARK = "live_steadiness"
SURE = 0.3
FRAME_S = 0.1  # between two frames of a still group
CLIP_STEP = 2  # every second frame of a 25 frames/s clip
WAYS = {"alone": False, "stream": True}  # way -> whether the stream's tracks carry its people


def steadiness(
    model: ServedModel, photo: Image.Image, noses: np.ndarray, frames: int, noise: float, seed: int, carry: bool
) -> dict[str, float]:
    """The figures of one photograph held still for `frames` noisy frames (see the module docstring)."""
    tracker = PoseTracker()
    per_person: list[list[tuple[np.ndarray, np.ndarray]]] = [[] for _ in noses]
    everyone, counts, nobody, took = 0, [], 0, []
    for n, jpeg in enumerate(noisy_jpegs(photo, frames, noise, seed)):
        image = decode_image(jpeg, 40_000_000).image
        started = time.perf_counter()
        points, scores, _ = answered_in_stream(model, image, tracker, n * FRAME_S, carry)
        took.append(time.perf_counter() - started)
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
        "ms_per_frame_median": round(1000 * float(np.median(took)), 1),
        "_jitter": jitter,  # type: ignore[dict-item]
        "_took": np.asarray(took),  # type: ignore[dict-item]
    }


def moving(model: ServedModel, clip: Clip, carry: bool) -> dict[str, int]:
    """The figures of one clip as a stream of every `CLIP_STEP`th frame (see the module docstring)."""
    tracker = PoseTracker()
    tally = ClipTally(clip)
    took: list[float] = []
    for i in range(0, len(clip.frames), CLIP_STEP):
        frame = decode_image(page_jpeg(clip.frames[i]), 40_000_000).image
        started = time.perf_counter()
        points, scores, ids = answered_in_stream(model, frame, tracker, i / FRAME_RATE, carry)
        took.append(time.perf_counter() - started)
        tally.add(i, points, scores, ids.tolist())
    return {**tally.figures(), "_took": took}  # type: ignore[dict-item]


def still_groups(model: ServedModel, name: str, way: str, frames: int, noise: float) -> None:
    """The still-group figures of one artifact and way: a line per photograph and a total."""
    jitters, took, totals = [], [], {"people": 0, "frames_with_everyone": 0, "near_nobody": 0}
    for n, (photo_name, photo) in enumerate(sorted(group_photos().items())):
        scale, left, top = webcam_place(photo.size)
        noses = np.array([(left + x * scale, top + y * scale, REACH * scale) for x, y in NOSES[photo_name]])
        figures = steadiness(model, photo, noses, frames, noise, seed=n, carry=WAYS[way])
        jitters.append(figures.pop("_jitter"))
        took.append(figures.pop("_took"))
        for key in totals:
            totals[key] += int(figures[key])
        emit("photograph", benchmark=BENCHMARK, model=name, way=way, photograph=photo_name, noise=noise, **figures)
    jitter = np.concatenate(jitters)
    emit(
        "all",
        benchmark=BENCHMARK,
        model=name,
        way=way,
        noise=noise,
        frames=frames * len(jitters),
        **totals,
        jitter_px_median=round(float(np.median(jitter)), 2),
        jitter_px_p90=round(float(np.percentile(jitter, 90)), 2),
        ms_per_frame_median=round(1000 * float(np.median(np.concatenate(took))), 1),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("artifacts", nargs="*", type=Path, help="model folders; default: the pretrained two")
    parser.add_argument("--frames", type=int, default=20, help="frames a photograph (default 20)")
    parser.add_argument("--noise", type=float, default=4.0, help="the sensor's noise, grey levels (default 4)")
    parser.add_argument("--still", action="store_true", help="the still groups only, not the moving clips")
    args = parser.parse_args()
    clips = {} if args.still else {"crossing": crossing_clips(), "pan": pan_clips()}
    with tempfile.TemporaryDirectory() as tmp:
        for name, model in detector_models(args.artifacts, Path(tmp) / "models", BENCHMARK):
            for way, carry in WAYS.items():
                still_groups(model, name, way, args.frames, args.noise)
                for kind, kind_clips in clips.items():
                    tallies = [moving(model, clip, carry) for clip in kind_clips]
                    took = np.concatenate([t.pop("_took") for t in tallies])
                    totals = {key: sum(t[key] for t in tallies) for key in tallies[0]}
                    median = round(1000 * float(np.median(took)), 1)
                    emit(
                        "moving",
                        benchmark=BENCHMARK,
                        model=name,
                        way=way,
                        clips=kind,
                        **totals,
                        ms_per_frame_median=median,
                    )


if __name__ == "__main__":
    main()
