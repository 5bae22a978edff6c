"""Where a model's real-photo agreement goes: per photograph and per keypoint of the check set.

    .venv/bin/python benchmarks/real_photo_breakdown.py [ARTIFACT...]    # default: models/production
    .venv/bin/python benchmarks/real_photo_breakdown.py A B --picture out.jpg --photos astronaut,grace_hopper

`training.realphotos.agreement` is one figure over every confident keypoint of the check set
(tests/fixtures/real_photos). It can fall for two different reasons: the model drifts from the
original MoveNet on every person (forgetting), or it answers the *other* person of a photograph with
two (ascent: two people seen from behind), which costs that photograph's keypoints at once. This
script tells them apart. The baseline is the pretrained MoveNet Lightning itself (exported from the
pinned weights in the same run), which agrees on every keypoint by construction up to the port's
rounding.

`ascent_in_boxes` asks the question without the choice: each climber of ascent (and of its mirror image)
given a box drawn by hand around them (`ASCENT_BOXES`), read as the server reads the boxes a caller sends
(`serving.engine.ServedModel.read_boxes`), against what the baseline answers in the same boxes; a keypoint
agrees within 5% of the side of its crop window (the model's input side, as in the check set). The boxes
are not in the check set: the original graph's own answer in them was never recorded, so the port stands in.

Prints one JSON line per artifact and photograph (agreement, median and max error as fractions of
the input side, keypoints counted), one per artifact and keypoint name, and one summary per artifact; then
one line of its small-people figures, the pictures read whole and, where the artifact has a person detector,
as served (`training.evaluate_persons.small_people_figures`).
`--picture` draws the chosen photographs (rows) as each model answers them (columns, the pretrained
network first).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # as a script, sys.path[0] is benchmarks/

from posewheel.decoding import Box
from posewheel.schema import KEYPOINT_NAMES
from tests.support.figures import emit
from training.evaluate_persons import small_people_figures
from training.realphotos import (
    confident,
    drawn_answer,
    errors_by_photo,
    predict_photos,
    summarize,
)

BENCHMARK = "real_photo_breakdown"
# Ascent's two climbers (tests/fixtures/real_photos/ascent_512.png), boxes x, y, w, h drawn by hand on the
# 512 px photograph: the near one on the right (backpack, cut off by the edge and the railing) and the far one
# further down the stairs. Mirrored: x -> 512 - x - w.
ASCENT_BOXES: dict[str, Box] = {"near": (395.0, 240.0, 117.0, 260.0), "far": (145.0, 283.0, 70.0, 152.0)}
ASCENT_SIDE = 512


def breakdown(name: str, artifact: Path) -> None:
    by_keypoint: dict[str, list[float]] = {}
    errors = errors_by_photo(artifact)
    for photo, err in errors.items():
        emit("photo", benchmark=BENCHMARK, model=name, photo=photo, **summarize(err), max_error=float(err.max()))
        for keypoint, e in zip(np.asarray(KEYPOINT_NAMES)[confident(photo)], err, strict=True):
            by_keypoint.setdefault(str(keypoint), []).append(float(e))
    for keypoint, values in by_keypoint.items():
        emit("keypoint", benchmark=BENCHMARK, model=name, keypoint=keypoint, **summarize(np.asarray(values)))
    emit("model", benchmark=BENCHMARK, model=name, **summarize(np.concatenate(list(errors.values()))))
    emit("small_people", benchmark=BENCHMARK, model=name, **small_people_figures(artifact))


def ascent_answers(artifact: Path) -> dict[str, tuple[np.ndarray, np.ndarray, float, Box]]:
    """Per "climber" and "climber_mirrored": keypoints (17, 2) photo px, scores (17,), the crop window's side and
    the box, read in the hand-drawn box as the server reads a caller's boxes."""
    from PIL import Image, ImageOps

    from serving.engine import load_model
    from training.realphotos import CHECK_SET

    model = load_model(artifact, fingerprint="breakdown", threads=2)
    with Image.open(CHECK_SET / f"ascent_{ASCENT_SIDE}.png") as raw:
        photo = raw.convert("RGB")
    out = {}
    for suffix, image in (("", photo), ("_mirrored", ImageOps.mirror(photo))):
        boxes = [(ASCENT_SIDE - x - w, y, w, h) if suffix else (x, y, w, h) for x, y, w, h in ASCENT_BOXES.values()]
        prepared = model.read_boxes(image, boxes)
        answer = model.answer([prepared])[0]
        for i, climber in enumerate(ASCENT_BOXES):
            out[climber + suffix] = (answer.points[i], answer.scores[i], float(prepared.windows[i][2]), boxes[i])
    return out


def ascent_in_boxes(name: str, artifact: Path, reference: dict[str, tuple[np.ndarray, np.ndarray, float, Box]]) -> None:
    """Each climber of ascent given their box: how many of the baseline's confident keypoints agree."""
    from training.realphotos import CONFIDENT, TOLERANCE

    answers = ascent_answers(artifact)
    for climber, (ref_points, ref_scores, side, box) in reference.items():
        sure = ref_scores > CONFIDENT
        errors = np.linalg.norm(answers[climber][0][sure] - ref_points[sure], axis=1) / side
        emit("ascent_in_box", benchmark=BENCHMARK, model=name, climber=climber, box=box,
             agree=int((errors < TOLERANCE).sum()), keypoints=int(sure.sum()),
             median_error=float(np.median(errors)) if len(errors) else None)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "artifacts", nargs="*", type=Path, help="model folders (model.onnx + card.json); default: models/production"
    )
    parser.add_argument(
        "--picture", type=Path, default=None, help="PNG or JPEG (by suffix): the photos as each model answers"
    )
    parser.add_argument("--photos", default="astronaut,cameraman,grace_hopper", help="photographs in the picture")
    parser.add_argument(
        "--ascent-picture", type=Path, default=None, help="PNG or JPEG: ascent's climbers in their boxes, per model"
    )
    args = parser.parse_args()
    production = Path(__file__).resolve().parents[1] / "models" / "production"
    artifacts = args.artifacts or ([production] if production.exists() else [])  # `make bench` passes none
    from training.pretrained import export_pretrained

    with tempfile.TemporaryDirectory() as tmp:
        baseline = export_pretrained("movenet-lightning", Path(tmp))
        breakdown("pretrained movenet-lightning (baseline)", baseline)
        reference = ascent_answers(baseline)
        ascent_in_boxes("pretrained movenet-lightning (baseline)", baseline, reference)
        for artifact in artifacts:
            breakdown(str(artifact), artifact)
            ascent_in_boxes(str(artifact), artifact, reference)
        if args.picture:
            picture([baseline, *artifacts], args.photos.split(","), args.picture)
        if args.ascent_picture:
            ascent_picture([baseline, *artifacts], args.ascent_picture)


def picture(artifacts: list[Path], photos: list[str], out: Path) -> None:
    """One row per photograph, one column per model: its keypoints above CONFIDENT drawn on the photo."""
    from posewheel.draw import image_grid

    answers = [predict_photos(artifact) for artifact in artifacts]
    tiles = [drawn_answer(photo, *answer[photo]) for photo in photos for answer in answers]
    out.parent.mkdir(parents=True, exist_ok=True)
    image_grid(tiles, columns=len(artifacts), cell=tiles[0].width).save(out)
    emit("picture", benchmark=BENCHMARK, path=str(out), photos=photos, models=[str(a) for a in artifacts])


def ascent_picture(artifacts: list[Path], out: Path) -> None:
    """One row per model (the pretrained network first), ascent and its mirror image side by side, each climber's
    box and the keypoints above CONFIDENT the model answers in it; the part of the photograph with the climbers."""
    from PIL import Image, ImageOps

    from posewheel.draw import draw_poses, image_grid
    from training.realphotos import CHECK_SET, CONFIDENT

    with Image.open(CHECK_SET / f"ascent_{ASCENT_SIDE}.png") as raw:
        photo = raw.convert("RGB")
    part = (120, 200, 512, 512)  # x0, y0, x1, y1: both climbers; mirrored: x -> 512 - x
    tiles = []
    for artifact in artifacts:
        answers = ascent_answers(artifact)
        for suffix, image in (("", photo), ("_mirrored", ImageOps.mirror(photo))):
            mine = [answers[climber + suffix] for climber in ASCENT_BOXES]
            drawn = draw_poses(
                image,
                np.stack([points for points, _, _, _ in mine]),
                np.stack([scores for _, scores, _, _ in mine]),
                boxes=np.array([box for _, _, _, box in mine]),
                threshold=CONFIDENT,
            )
            x0, y0, x1, y1 = part
            window = (ASCENT_SIDE - x1, y0, ASCENT_SIDE - x0, y1) if suffix else part
            tiles.append(drawn.crop(window))
    out.parent.mkdir(parents=True, exist_ok=True)
    image_grid(tiles, columns=2, cell=max(tiles[0].size)).save(out)
    emit("ascent_picture", benchmark=BENCHMARK, path=str(out), models=[str(a) for a in artifacts])


if __name__ == "__main__":
    main()
