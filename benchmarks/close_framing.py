"""A person framed close, as a video call or a selfie frames them: answered as served, as in the whole photograph.

    .venv/bin/python benchmarks/close_framing.py                    # the pretrained Lightning and Thunder
    .venv/bin/python benchmarks/close_framing.py models/production

Pictures: each person of the six group photographs `posewheel pretrained fetch` caches (22 people, each nose marked
by eye: tests/support/moving_people.py NOSES) whom the artifact answers in the whole photograph with both shoulders
sure, cut out three ways around their nose, in units of `u`, how far their shoulders' middle lies below their nose
in that answer (about a fifth of a standing adult's head-to-hip height):
- `call`: head and shoulders, 1.6u above the nose to 2.6u below, 4:3 landscape (a video call);
- `upper_body`: to the chest and arms, 5u below, 3:4 portrait (a selfie);
- `waist`: to the hips, 7u below, 3:4 portrait.
A crop that would leave the photograph is moved inside it, as a camera frames what is there; neighbours come in
part, as they do in a group's selfie. Each crop is answered as served without boxes (`find_people`, `answer`).

The person is found when exactly one answer's nose (`tests.support.moving_people.head`) lies within 0.8u of their
marked nose (`twice` where more than one answer is); another answer whose nose is near a neighbour's marked nose in
the crop is a `neighbour`, any other answer `other` (a neighbour cut off by the frame, or nobody). Keypoints: how
far the found answer's lie from the whole photograph's answer of the person, over the joints both score at least
0.3, in u (median and 90th percentile). Prints one JSON line per artifact and framing.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # as a script, sys.path[0] is benchmarks/

from serving.engine import ServedModel
from tests.support.benchmarks import answered_without_boxes, detector_models
from tests.support.figures import emit
from tests.support.moving_people import NOSES, REACH, group_photos, whose

BENCHMARK = "close_framing"
# name -> (u above the nose, u below it, width / height)
FRAMINGS = {"call": (1.6, 2.6, 4 / 3), "upper_body": (1.6, 5.0, 3 / 4), "waist": (1.8, 7.0, 3 / 4)}
FOUND_WITHIN = 0.8  # u: an answer's nose this near the marked one is the person's
SURE = 0.3
LEFT_SHOULDER, RIGHT_SHOULDER = 5, 6


def framed(photo: Image.Image, nose: tuple[float, float], u: float, framing: str) -> tuple[int, int, int, int]:
    """The crop (left, top, right, bottom) of `framing` around `nose`, moved inside the photograph."""
    above, below, aspect = FRAMINGS[framing]
    height = min((above + below) * u, photo.height)
    width = min(height * aspect, photo.width)
    left = min(max(nose[0] - width / 2, 0.0), photo.width - width)
    top = min(max(nose[1] - above * u, 0.0), photo.height - height)
    return round(left), round(top), round(left + width), round(top + height)


def framing_counts(model: ServedModel, photos: dict[str, Image.Image]) -> dict[str, dict[str, float]]:
    """Per framing: people framed, found, answered more than once (`twice`), answers, neighbours, other answers, and
    the keypoints' distance to the whole photograph's answer (median and p90, in u)."""
    counts = {f: {"people": 0, "found": 0, "twice": 0, "answers": 0, "neighbours": 0, "other": 0} for f in FRAMINGS}
    moved: dict[str, list[np.ndarray]] = {f: [] for f in FRAMINGS}
    sizes: dict[str, list[int]] = {f: [] for f in FRAMINGS}
    for name, photo in photos.items():
        noses = np.array([(x, y, REACH) for x, y in NOSES[name]], dtype=np.float64)
        points, scores = answered_without_boxes(model, photo)
        owner = whose(points, scores, noses)
        for person, nose in enumerate(NOSES[name]):
            if owner.count(person) != 1:
                continue
            reference, sure = points[owner.index(person)], scores[owner.index(person)] >= SURE
            if not (sure[LEFT_SHOULDER] and sure[RIGHT_SHOULDER]):
                continue
            u = abs(float(reference[[LEFT_SHOULDER, RIGHT_SHOULDER], 1].mean()) - nose[1])
            for framing in FRAMINGS:
                box = framed(photo, nose, u, framing)
                crop = photo.crop(box)
                crop_points, crop_scores = answered_without_boxes(model, crop)
                crop_points = crop_points + np.array(box[:2], dtype=np.float64)  # back in the photograph's pixels
                # the marked noses in the crop: the person's within FOUND_WITHIN u, a neighbour's within REACH
                shown = [i for i, (x, y, _) in enumerate(noses) if box[0] <= x < box[2] and box[1] <= y < box[3]]
                reach = np.array([(*noses[i, :2], FOUND_WITHIN * u if i == person else REACH) for i in shown])
                near = [None if k is None else shown[k] for k in whose(crop_points, crop_scores, reach)]
                c = counts[framing]
                c["people"] += 1
                c["answers"] += len(near)
                c["twice"] += near.count(person) > 1
                c["other"] += near.count(None)
                c["neighbours"] += sum(1 for k in near if k is not None and k != person)
                sizes[framing].append(crop.width * crop.height)
                if near.count(person) == 1:
                    c["found"] += 1
                    mine = near.index(person)
                    both = sure & (crop_scores[mine] >= SURE)
                    moved[framing].append(np.hypot(*(crop_points[mine] - reference).T)[both] / u)
    out: dict[str, dict[str, float]] = {}
    for framing, c in counts.items():
        distance = np.concatenate(moved[framing]) if moved[framing] else np.zeros(0)
        out[framing] = {
            **c,
            "keypoints": len(distance),
            "median_u": round(float(np.median(distance)), 3) if len(distance) else float("nan"),
            "p90_u": round(float(np.percentile(distance, 90)), 3) if len(distance) else float("nan"),
            "median_megapixels": round(float(np.median(sizes[framing])) / 1e6, 2) if sizes[framing] else 0.0,
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("artifacts", nargs="*", type=Path, help="model folders; default: the pretrained two")
    args = parser.parse_args()
    photos = group_photos()
    with tempfile.TemporaryDirectory() as tmp:
        for name, model in detector_models(args.artifacts, Path(tmp) / "models", BENCHMARK):
            for framing, figures in framing_counts(model, photos).items():
                emit("framing", benchmark=BENCHMARK, model=name, framing=framing, **figures)


if __name__ == "__main__":
    main()
