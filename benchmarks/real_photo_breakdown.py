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

Prints one JSON line per artifact and photograph (agreement, median and max error as fractions of
the input side, keypoints counted), one per artifact and keypoint name, and one summary per artifact.
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

from posewheel.schema import KEYPOINT_NAMES
from tests.support.figures import emit
from training.realphotos import confident, drawn_answer, errors_by_photo, predict_photos, summarize

BENCHMARK = "real_photo_breakdown"


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "artifacts", nargs="*", type=Path, help="model folders (model.onnx + card.json); default: models/production"
    )
    parser.add_argument(
        "--picture", type=Path, default=None, help="PNG or JPEG (by suffix): the photos as each model answers"
    )
    parser.add_argument("--photos", default="astronaut,cameraman,grace_hopper", help="photographs in the picture")
    args = parser.parse_args()
    production = Path(__file__).resolve().parents[1] / "models" / "production"
    artifacts = args.artifacts or ([production] if production.exists() else [])  # `make bench` passes none
    from training.pretrained import export_pretrained

    with tempfile.TemporaryDirectory() as tmp:
        baseline = export_pretrained("movenet-lightning", Path(tmp))
        breakdown("pretrained movenet-lightning (baseline)", baseline)
        for artifact in artifacts:
            breakdown(str(artifact), artifact)
        if args.picture:
            picture([baseline, *artifacts], args.photos.split(","), args.picture)


def picture(artifacts: list[Path], photos: list[str], out: Path) -> None:
    """One row per photograph, one column per model: its keypoints above CONFIDENT drawn on the photo."""
    from posewheel.draw import image_grid

    answers = [predict_photos(artifact) for artifact in artifacts]
    tiles = [drawn_answer(photo, *answer[photo]) for photo in photos for answer in answers]
    out.parent.mkdir(parents=True, exist_ok=True)
    image_grid(tiles, columns=len(artifacts), cell=tiles[0].width).save(out)
    emit("picture", benchmark=BENCHMARK, path=str(out), photos=photos, models=[str(a) for a in artifacts])


if __name__ == "__main__":
    main()
