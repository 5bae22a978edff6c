"""One person far away on a phone-sized picture: answered as served, with and without the closer look.

    .venv/bin/python benchmarks/far_people.py                       # the pretrained Lightning and Thunder
    .venv/bin/python benchmarks/far_people.py models/production --repeats 5

Pictures: each of the check set's three photographs of one person (astronaut, Grace Hopper, cameraman; 512 px,
tests/fixtures/real_photos) resized to 500, 700, 900 and 1200 px and pasted near the bottom right of a 4032 x 3024
picture (a phone's 12 MP) on three backgrounds: grey, a mosaic of the check set's people-free photographs, and that
mosaic blurred (a background out of focus): 36 pictures. Beside them, six large pictures of nobody: the three
backgrounds and the three people-free photographs enlarged to 3000 x 3000. The person is answered when an answer's
keypoints lie within a tenth of the pasted photograph's side of the original MoveNet's keypoints on that photograph
(their median over its sure ones, `tests.support.phone_pictures.on_far_person`; until session 56 the median of all
17 within half the side of its centre, which counted Grace Hopper's bust out by her guessed legs); any other answer
counts as "other".

Two ways, in one run: `session51`, as served until session 51 (`FindOptions(closer_look=False)`): a picture whose
512 px look finds no box at all is answered with nobody; and `served`, as served now: such a large picture is looked
at once more, whole, at `posewheel.detection.CLOSER_SIDE` (`closer_look`). Prints one JSON line per artifact and
way with the totals, and one per artifact with the whole answer's time on the pictures of nobody and on the
pictures the closer look was taken on (median of `--repeats`, interleaved, mean over the pictures, 2 threads).
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

from posewheel.detection import FindOptions
from serving.engine import ServedModel, load_model
from tests.support.benchmarks import artifacts_or_pretrained
from tests.support.figures import emit
from tests.support.phone_pictures import far_people, far_reference, nobody, on_far_person

BENCHMARK = "far_people"
WAYS = {"session51": FindOptions(closer_look=False), "served": FindOptions()}


def answer(model: ServedModel, image: Image.Image, how: FindOptions) -> tuple[np.ndarray, list[int]]:
    """What the server answers for `image` sent without boxes, read `how`: keypoints (P, 17, 2) and the answered
    rows."""
    model.find_options = how
    answered = model.answer([model.find_people(image)])[0]
    assert answered.kept is not None
    return answered.points, [int(i) for i in answered.kept]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("artifacts", nargs="*", type=Path, help="model folders; default: the pretrained two")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per picture and way (0: no times)")
    args = parser.parse_args()
    pictures, empty = far_people(), nobody()
    with tempfile.TemporaryDirectory() as tmp:
        for name, artifact in artifacts_or_pretrained(args.artifacts, Path(tmp) / "models"):
            model = load_model(artifact.resolve(), BENCHMARK, 2)
            assert model.detector is not None, f"{artifact}: no person detector"
            detector = model.detector
            # the pictures whose 512 px look finds no box at all: those the closer look is taken on
            closer = [p for _, p, _ in pictures if not len(detector.find(p, options=WAYS["session51"]).scores)]
            for way, how in WAYS.items():
                found = other = 0
                for picture_name, picture, where in pictures:
                    points, kept = answer(model, picture, how)
                    near = on_far_person(points[kept], far_reference(picture_name, where), where[2])
                    found += bool(near.any())
                    other += int((~near).sum())
                on_nobody = sum(len(answer(model, picture, how)[1]) for _, picture in empty)
                emit("way", benchmark=BENCHMARK, model=name, way=way, pictures=len(pictures), found=found,
                     other_answers=other, nobody_pictures=len(empty), answers_on_nobody=on_nobody)  # fmt: skip
            if args.repeats:
                emit("answer_ms", benchmark=BENCHMARK, model=name, **timed(model, [p for _, p in empty], args.repeats,
                                                                            "nobody"),
                     **timed(model, closer, args.repeats, "answered_closer"))  # fmt: skip


def timed(model: ServedModel, images: list[Image.Image], repeats: int, label: str) -> dict[str, float]:
    """The whole answer's time on `images`, each way (median of `repeats`, the ways interleaved; mean over the
    images, ms)."""
    if not images:
        return {f"{label}_pictures": 0}
    per_image: dict[str, list[float]] = {way: [] for way in WAYS}
    for image in images:
        spent: dict[str, list[float]] = {way: [] for way in WAYS}
        for _ in range(repeats):
            for way, how in WAYS.items():
                started = time.perf_counter()
                answer(model, image, how)
                spent[way].append(time.perf_counter() - started)
        for way in WAYS:
            per_image[way].append(statistics.median(spent[way]))
    means = {way: 1000 * statistics.mean(values) for way, values in per_image.items()}
    return {f"{label}_pictures": len(images), f"{label}_session51_ms": round(means["session51"], 1),
            f"{label}_served_ms": round(means["served"], 1),
            f"{label}_ratio": round(means["served"] / means["session51"], 2)}  # fmt: skip


if __name__ == "__main__":
    main()
