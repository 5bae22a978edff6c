"""A phone's JPEG read at half its size: the people the served path finds, and its time, decoded whole or at half.

    .venv/bin/python benchmarks/phone_jpeg.py                      # the pretrained Lightning and Thunder
    .venv/bin/python benchmarks/phone_jpeg.py models/production --repeats 5

The server decodes a JPEG at least `serving.images.HALVE_FROM` pixels on its long side at half its size (the JPEG
decoder's DCT scaling) and reads the people from that, decoding the picture whole only for a window that needs it
(`posewheel.picture.Picture`, since session 56). This measures both ways in one run, as a request is answered
(`decode_image`, `find_people`, `answer`), on JPEGs of quality 90 as a phone writes them:
- `groups`: the six group photographs (22 people, each nose marked) enlarged to 4032 px wide;
- `groups_noise8`: the same with noise of 8 grey levels (a phone's photograph indoors), the fine detail a half
  decode averages away;
- `groups_sideways`: the same stored sideways with EXIF orientation 6, as a phone stores a portrait photograph;
- `far`: benchmarks/far_people.py's 36 pictures (`tests.support.phone_pictures`) of one person 500-1200 px tall
  on 4032 x 3024 (found as far_people.py counts it: an answer near the original MoveNet's keypoints on that
  photograph, placed where it is pasted; the answer nearest the person is measured against them too), and its six
  large pictures of nobody.
Prints one JSON line per artifact, set and way (people found, answers near nobody, pictures decoded whole); per
artifact and group set how far the half decode moves the sure keypoints from the whole decode's, beside the same
pictures at JPEG quality 95 decoded whole (the baseline: how far another encoding of the picture moves them); and per
artifact the whole answer's time both ways (median of `--repeats`, the ways interleaved, mean over the pictures).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # as a script, sys.path[0] is benchmarks/

from posewheel.picture import Picture
from serving.engine import ServedModel, load_model
from serving.images import decode_image
from tests.support.benchmarks import artifacts_or_pretrained
from tests.support.figures import emit
from tests.support.moving_people import NOSES, REACH, group_photos, whose
from tests.support.phone_pictures import far_people, far_reference, jpeg, nobody, noisy, on_far_person

BENCHMARK = "phone_jpeg"
PHONE_WIDTH = 4032
BASELINE_QUALITY = 95
SURE = 0.3  # keypoints scored at least this in both answers are compared
WAYS = {"whole": False, "half": True}
MAX_PIXELS = 40_000_000
SIDEWAYS = 6  # EXIF: the stored picture is turned a quarter counter-clockwise; a viewer turns it clockwise


# JPEG, the same at quality 95 (agreement's baseline), the people's noses (n, 3) in the upright picture: x, y, reach
Marked = tuple[bytes, bytes, np.ndarray]


def group_sets() -> dict[str, list[Marked]]:
    """The group photographs at a phone's size: clean, noisy and stored sideways."""
    clean = group_photos()
    sets: dict[str, list[Marked]] = {"groups": [], "groups_noise8": [], "groups_sideways": []}
    for noise, names in ((0.0, ("groups", "groups_sideways")), (8.0, ("groups_noise8",))):
        for name, photo in noisy(clean, noise).items():
            scale = PHONE_WIDTH / photo.width
            big = photo.resize((PHONE_WIDTH, round(photo.height * scale)), Image.Resampling.BICUBIC)
            noses = np.array([(x * scale, y * scale, REACH * scale) for x, y in NOSES[name]])
            for set_name in names:
                stored, orientation = (
                    (big.transpose(Image.Transpose.ROTATE_90), SIDEWAYS)
                    if set_name == "groups_sideways"
                    else (big, None)
                )
                data, finer = jpeg(stored, orientation), jpeg(stored, orientation, BASELINE_QUALITY)
                sets[set_name].append((data, finer, noses))
    return sets


def answered(model: ServedModel, data: bytes, small: bool) -> tuple[np.ndarray, np.ndarray, bool]:
    """A request's answer, sent without boxes: keypoints (P, 17, 2), scores (P, 17), and whether the picture was
    decoded whole."""
    decoded = decode_image(data, MAX_PIXELS, small=small)
    answer = model.answer([model.find_people(decoded.pixels)])[0]
    assert answer.kept is not None
    rows = answer.kept.tolist()
    whole = not isinstance(decoded.pixels, Picture) or decoded.pixels.whole_decoded
    return answer.points[rows], answer.scores[rows], whole


def group_counts(model: ServedModel, pictures: list[Marked], small: bool) -> dict[str, int]:
    """People found (exactly one answer's nose within reach), answers near nobody, pictures decoded whole."""
    counts = {"people": 0, "found": 0, "nobody": 0, "decoded_whole": 0}
    for data, _, noses in pictures:
        points, scores, whole = answered(model, data, small)
        nearest = whose(points, scores, noses)
        counts["people"] += len(noses)
        counts["found"] += sum(nearest.count(i) == 1 for i in range(len(noses)))
        counts["nobody"] += nearest.count(None)
        counts["decoded_whole"] += whole
    return counts


def agreement(model: ServedModel, pictures: list[Marked]) -> dict[str, float]:
    """How far the half decode's answer moves each sure keypoint from the whole decode's (pixels of the phone's
    picture, and as a share of the person's height), against the baseline: the same pictures at JPEG quality 95,
    decoded whole. Answers are paired by their keypoints' median."""
    moved: dict[str, list[np.ndarray]] = {"half": [], "quality95": []}
    shares: dict[str, list[np.ndarray]] = {"half": [], "quality95": []}
    for data, finer, _ in pictures:
        points, scores, _ = answered(model, data, False)
        heights = np.ptp(points[..., 1], axis=1)
        for other, (data_other, small) in {"half": (data, True), "quality95": (finer, False)}.items():
            for p, s in zip(*answered(model, data_other, small)[:2], strict=True):
                j = int(np.argmin(np.hypot(*(np.median(points, axis=1) - np.median(p, axis=0)).T)))
                sure = (s >= SURE) & (scores[j] >= SURE)
                distance = np.hypot(*(p - points[j]).T)[sure]
                moved[other].append(distance)
                shares[other].append(distance / max(heights[j], 1.0))
    out: dict[str, float] = {}
    for other in moved:
        px, share = np.concatenate(moved[other]), np.concatenate(shares[other])
        out |= {f"{other}_keypoints": len(px), f"{other}_median_px": round(float(np.median(px)), 1),
                f"{other}_p95_px": round(float(np.percentile(px, 95)), 1),
                f"{other}_median_share": round(float(np.median(share)), 4)}  # fmt: skip
    return out


Far = tuple[bytes, tuple[float, float, float], np.ndarray]  # JPEG, (centre x, y, side) of the person, reference


def far_pictures() -> list[Far]:
    """far_people.py's 36 pictures as JPEGs, each with the original MoveNet's keypoints there (`far_reference`)."""
    return [(jpeg(picture), where, far_reference(name, where)) for name, picture, where in far_people()]


def far_counts(model: ServedModel, pictures: list[Far], empty: list[bytes], small: bool) -> dict[str, float]:
    """far_people.py's count: pictures whose person is answered, other answers, answers on nobody's pictures; and
    how far the answer nearest the person lies from the original MoveNet's keypoints there (its sure ones, score at
    least 0.3; the median in the phone picture's pixels and as a share of the person's side)."""
    counts = {"pictures": len(pictures), "found": 0, "other_answers": 0, "answers_on_nobody": 0, "decoded_whole": 0}
    moved, shares = [], []
    for data, (cx, cy, side), reference in pictures:
        points, _, whole = answered(model, data, small)
        near = on_far_person(points, reference, side)
        counts["found"] += bool(near.any())
        counts["other_answers"] += int((~near).sum())
        counts["decoded_whole"] += whole
        if len(points):
            nearest = points[int(np.argmin(np.hypot(*(np.median(points, axis=1) - (cx, cy)).T)))]
            distance = np.hypot(*(nearest - reference[:, :2]).T)[reference[:, 2] >= SURE]
            moved.append(distance)
            shares.append(distance / side)
    for data in empty:
        points, _, whole = answered(model, data, small)
        counts["answers_on_nobody"] += len(points)
        counts["decoded_whole"] += whole
    px, share = np.concatenate(moved), np.concatenate(shares)
    return counts | {"reference_keypoints": len(px), "reference_median_px": round(float(np.median(px)), 1),
                     "reference_median_share": round(float(np.median(share)), 4)}  # fmt: skip


def answer_ms(model: ServedModel, pictures: list[bytes], repeats: int) -> dict[str, float]:
    """The whole answer's time (decode, detector, poses) per picture, each way: ms, median of `repeats` with the
    ways interleaved, mean over the pictures."""
    spent: dict[str, list[float]] = {way: [] for way in WAYS}
    for data in pictures:
        times: dict[str, list[float]] = {way: [] for way in WAYS}
        for _ in range(repeats):
            for way, small in WAYS.items():
                started = time.perf_counter()
                answered(model, data, small)
                times[way].append(time.perf_counter() - started)
        for way in WAYS:
            spent[way].append(1000 * statistics.median(times[way]))
    return {way: statistics.mean(v) for way, v in spent.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("artifacts", nargs="*", type=Path, help="model folders; default: the pretrained two")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per picture and way (0: no times)")
    args = parser.parse_args()
    groups = group_sets()
    far = far_pictures()
    empty = [jpeg(picture) for _, picture in nobody()]
    with tempfile.TemporaryDirectory() as tmp:
        for name, artifact in artifacts_or_pretrained(args.artifacts, Path(tmp) / "models"):
            model = load_model(artifact.resolve(), BENCHMARK, 2)
            assert model.detector is not None, f"{artifact}: no person detector"
            for way, small in WAYS.items():
                for set_name, pictures in groups.items():
                    emit("found", benchmark=BENCHMARK, model=name, set=set_name, way=way,
                         **group_counts(model, pictures, small))  # fmt: skip
                emit("found", benchmark=BENCHMARK, model=name, set="far", way=way,
                     **far_counts(model, far, empty, small))  # fmt: skip
            for set_name, pictures in groups.items():
                emit("agreement", benchmark=BENCHMARK, model=name, set=set_name, **agreement(model, pictures))
            if args.repeats:
                for set_name, data in (("groups", [m[0] for m in groups["groups"]]), ("far", [f[0] for f in far])):
                    ms = answer_ms(model, data, args.repeats)
                    emit("answer_ms", benchmark=BENCHMARK, model=name, set=set_name, pictures=len(data),
                         whole_ms=round(ms["whole"], 1), half_ms=round(ms["half"], 1),
                         half_vs_whole=round(ms["half"] / ms["whole"], 3))  # fmt: skip


if __name__ == "__main__":
    main()
