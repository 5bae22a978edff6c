"""Which input size should the served person detector read at? People found and the detector's time, per size.

    .venv/bin/python benchmarks/detector_input_size.py                                  # pretrained Lightning, Thunder
    .venv/bin/python benchmarks/detector_input_size.py models/production --data data/holdout/street_scenes \
        --sizes 320,384,448,512,576,640,768

CenterNet is fully convolutional and its exported graph takes any height and width, so the size the whole picture
is fitted into is the card's `detector.input_size` alone (512, the pretrained graph's). Each artifact is read at
each size by a copy of its folder whose card says that size (the graphs linked, not copied), everything else as
served (`predict_without_boxes`: tiles, weak boxes confirmed by the pose network, crowded persons read alone):

- the real group photographs of benchmarks/people_found.py (tests/support/moving_people.py `group_photo_set`: the
  six cached ones, three crowds made of them and each far away, 97 people marked by the nose): people found once,
  answers near nobody, people answered twice;
- each `--data` COCO set scored without boxes (OKS AP, box AP, persons matched, phantoms);
- the served detector's time (`PersonDetector.detect`, 2 threads): the median over the six photographs, 5 reads
  each, and over the first 20 images of the first `--data` set, each size against 512 in the same run.

One JSON line per artifact and size.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # as a script, sys.path[0] is benchmarks/

from posewheel import dataset as coco
from serving.engine import PersonDetector, load_model
from tests.support.benchmarks import artifacts_or_pretrained
from tests.support.figures import emit
from tests.support.moving_people import group_photo_set, people_counts
from training.evaluate_persons import predict_without_boxes, score_without_boxes

BENCHMARK = "detector_input_size"
SERVED = 512  # the card's size today, the baseline of the times


def at_size(artifact: Path, size: int, folder: Path) -> Path:
    """A copy of `artifact` whose card reads the detector at `size` (every other file linked)."""
    out = folder / f"{artifact.name}-detector{size}"
    out.mkdir(parents=True)
    for path in artifact.iterdir():
        if path.name != "card.json":
            (out / path.name).symlink_to(path.resolve())
    card = json.loads((artifact / "card.json").read_text())
    card["detector"]["input_size"] = size
    (out / "card.json").write_text(json.dumps(card, indent=1))
    return out


def detector_ms(detector: PersonDetector, images: list[Image.Image], repeats: int) -> float:
    """The served detector's median time over `images`, `repeats` reads each, ms."""
    times = []
    for image in images:
        for _ in range(repeats):
            started = time.perf_counter()
            detector.detect(image)
            times.append(time.perf_counter() - started)
    return 1000.0 * float(np.median(times))


def pictures(data: Path, count: int) -> list[Image.Image]:
    ds = coco.load(data)
    out = []
    for record in ds.images[:count]:
        with Image.open(ds.image_path(record)) as raw:
            out.append(raw.convert("RGB"))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("artifacts", nargs="*", type=Path, help="model folders; default: the pretrained two")
    parser.add_argument("--data", type=Path, action="append", default=[], help="a COCO dataset to score without boxes")
    parser.add_argument(
        "--sizes", default="384,448,512,576,640", help="detector input sizes, comma-separated (512 is always read)"
    )
    args = parser.parse_args()
    sizes = sorted({int(s) for s in args.sizes.split(",")} | {SERVED}, key=lambda s: (s != SERVED, s))  # 512 first
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        photos, marked = group_photo_set(folder)
        timed = {"photos": (pictures(photos, 6), 5)}
        if args.data:
            timed["scenes"] = (pictures(args.data[0], 20), 1)
        for i, (name, artifact) in enumerate(artifacts_or_pretrained(args.artifacts, folder / "models")):
            served = {}  # the times at 512, the baseline of each size's
            for size in sizes:
                sized = at_size(artifact, size, folder / "sized" / str(i))
                pred = predict_without_boxes(sized, photos)
                counts = people_counts(pred, marked)
                scenes = {}
                for data in args.data:
                    values = score_without_boxes(predict_without_boxes(sized, data))
                    keys = ("oks_ap", "box_ap", "persons_true", "persons_matched", "phantoms")
                    scenes[data.name] = {k: round(float(values[k]), 4) for k in keys}
                detector = load_model(sized.resolve(), BENCHMARK, 2).detector
                assert detector is not None, f"{artifact}: no person detector"
                times = {}
                for what, (images, repeats) in timed.items():
                    ms = detector_ms(detector, images, repeats)
                    served.setdefault(what, ms)
                    times[f"{what}_ms"] = round(ms, 1)
                    times[f"{what}_ratio"] = round(ms / served[what], 3)
                emit("size", benchmark=BENCHMARK, model=name, input_size=size, **counts, **times, scenes=scenes)


if __name__ == "__main__":
    main()
