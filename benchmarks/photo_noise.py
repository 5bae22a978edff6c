"""A photograph's noise: the people the served path finds in real group photographs with sensor noise added.

    .venv/bin/python benchmarks/photo_noise.py                       # the pretrained Lightning and Thunder
    .venv/bin/python benchmarks/photo_noise.py models/production --sigmas 0 8 --repeats 5

Pictures: the six group photographs `posewheel pretrained fetch` caches (1920 px wide, 22 people, each nose marked
by eye), each with Gaussian noise of standard deviation `sigma` grey levels added to every pixel and channel
(seeded by the photograph's name and `--seed`; 4 is barely visible, 8 a phone's photograph indoors, 16 a dim
room), then made into two sets (tests/support/moving_people.py): `upright`, the photographs, the crowds made of
them and each far away (97 people: benchmarks/people_found.py's), and `turned`, the photographs turned a quarter, a
half and three quarters beside the check set's photographs of one person and of nobody, clean (100 people:
benchmarks/turned_people.py's). A person is found when exactly one answer's nose lies within reach of theirs; an
answer near nobody's nose is "nobody".

Two ways, in one run: `served`, as served since session 54 (`posewheel.decoding.crop_images`: a window at least
twice the input cut from the picture shrunk by the whole number of times it holds the input, each pixel the mean of a
block of the picture's, `Image.reduce`, every pixel counted), and `sampled`, the baseline, as served until session 53
(`sampled_crops`: Pillow's `transform` alone, which reads the 2 x 2 picture pixels nearest each input pixel: of a
1920 px photograph fitted into the detector's 512 px, about a quarter of its pixels; of a 4032 px one, one in
sixteen). Prints one JSON line per artifact, set, sigma and way; and with `--repeats`, one per artifact and size with
the whole answer's time (detector, poses, one answer per person; 2 threads, median of the repeats, interleaved, mean
over the six photographs) at their own size and enlarged to 4032 px, both ways.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # as a script, sys.path[0] is benchmarks/

from serving.engine import ServedModel, load_model
from tests.support.benchmarks import artifacts_or_pretrained
from tests.support.crops import crops
from tests.support.figures import emit
from tests.support.moving_people import group_photo_set, group_photos, people_counts, turned_set
from tests.support.phone_pictures import noisy
from training.evaluate_persons import predict_without_boxes

BENCHMARK = "photo_noise"
SIGMAS = (0.0, 4.0, 8.0, 16.0)
SETS: dict[str, Callable[..., tuple[Path, dict[int, tuple[str, np.ndarray]]]]] = {
    "upright": group_photo_set,
    "turned": turned_set,
}
WAYS = ("served", "sampled")
PHONE_WIDTH = 4032


def found(artifact: Path, data: Path, marked: dict[int, tuple[str, np.ndarray]]) -> dict[str, int]:
    """People, found (exactly one answer near their nose), answers near nobody and repeats, answered as a picture sent
    without boxes is (`predict_without_boxes`), with the crops `crops` puts in place."""
    return people_counts(predict_without_boxes(artifact, data), marked)


def answer_ms(model: ServedModel, pictures: list[Image.Image], repeats: int) -> dict[str, float]:
    """The whole answer's time per picture (ms; median of `repeats`, interleaved; mean over `pictures`), each way."""
    spent: dict[str, list[float]] = {way: [] for way in WAYS}
    for picture in pictures:
        times: dict[str, list[float]] = {way: [] for way in WAYS}
        for _ in range(repeats):
            for way in WAYS:
                with crops(way):
                    started = time.perf_counter()
                    model.answer([model.find_people(picture)])
                    times[way].append(time.perf_counter() - started)
        for way in WAYS:
            spent[way].append(1000 * statistics.median(times[way]))
    return {f"{way}_ms": round(statistics.mean(v), 1) for way, v in spent.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("artifacts", nargs="*", type=Path, help="model folders; default: the pretrained two")
    parser.add_argument("--sigmas", nargs="+", type=float, default=SIGMAS, help="noise levels, grey levels")
    parser.add_argument("--sets", nargs="+", choices=tuple(SETS), default=tuple(SETS))
    parser.add_argument("--seed", type=int, default=0, help="the noise's seed (with each photograph's name)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per picture and way (0: no times)")
    args = parser.parse_args()
    clean = group_photos()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        artifacts = artifacts_or_pretrained(args.artifacts, folder / "models")
        for sigma in args.sigmas:
            photos = noisy(clean, sigma, args.seed)
            for set_name in args.sets:
                data, marked = SETS[set_name](folder / f"{set_name}_{sigma:g}", photos)
                for name, artifact in artifacts:
                    for way in WAYS:
                        with crops(way):
                            counts = found(artifact, data, marked)
                        emit("found", benchmark=BENCHMARK, model=name, set=set_name, sigma=sigma, seed=args.seed,
                             way=way, **counts)  # fmt: skip
        if args.repeats:
            photos = list(clean.values())
            phone = [p.resize((PHONE_WIDTH, round(p.height * PHONE_WIDTH / p.width)), Image.Resampling.BICUBIC)
                     for p in photos]  # fmt: skip
            for name, artifact in artifacts:
                model = load_model(artifact.resolve(), BENCHMARK, 2)
                emit("answer_ms", benchmark=BENCHMARK, model=name, pictures=len(photos), size="1920",
                     **answer_ms(model, photos, args.repeats))  # fmt: skip
                emit("answer_ms", benchmark=BENCHMARK, model=name, pictures=len(phone), size=str(PHONE_WIDTH),
                     **answer_ms(model, phone, args.repeats))  # fmt: skip


if __name__ == "__main__":
    main()
