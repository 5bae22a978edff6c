"""Boxes a caller gives, in a group: each crop read as cropped against crowded persons read alone.

    .venv/bin/python benchmarks/given_boxes.py MODEL [MODEL ...] --data data/holdout/street_scenes [--data ...]

The server reads a box it is sent the way it reads the detector's (`serving.engine.ServedModel.read_boxes`): a
person whose crop holds more than a tenth of another person's box is read with everything outside their own box
blanked (`posewheel.detection.read_alone`), so the pose network reads them and not a neighbour. Before, only the
detector's boxes were; a caller's were read as cropped. Evaluation given the true boxes reads them as the server
does (`training.evaluate.predict`). This scores each model on each COCO dataset both ways, with the true boxes,
in one run: OKS AP, AP50, PCK@0.1, mean pixel error, and how many persons were read alone. Datasets of one person
a picture (the studio and street holdouts that decide a promotion) score the same both ways.

Prints one JSON line per model and dataset.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # as a script, sys.path[0] is benchmarks/

from posewheel import dataset as coco
from posewheel.artifact import load_card
from posewheel.decoding import crop_box
from posewheel.detection import crowded
from tests.support.figures import emit
from training.evaluate import predict, score

BENCHMARK = "given_boxes"
KEYS = ("oks_ap", "ap50", "pck@0.1", "mean_px_error")


def persons_read_alone(artifact: Path, dataset: Path) -> int:
    """How many labeled persons of `dataset` the server would read alone given their true boxes."""
    spec = load_card(artifact).input_spec()
    ds = coco.load(dataset)
    by_image: dict[int, list[coco.PersonAnnotation]] = {}
    for ann in ds.annotations:
        if ann.num_keypoints > 0 and not ann.iscrowd:
            by_image.setdefault(ann.image_id, []).append(ann)
    total = 0
    for people in by_image.values():
        boxes = np.array([a.bbox for a in people], dtype=np.float64)
        total += int(crowded(boxes, [crop_box(a.bbox, spec) for a in people]).sum())
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("models", nargs="+", type=Path, help="artifact folders")
    parser.add_argument("--data", type=Path, action="append", required=True, help="COCO keypoint dataset folder")
    args = parser.parse_args()
    for artifact in args.models:
        for dataset in args.data:
            figures: dict[str, dict[str, float]] = {}
            for way, alone in (("cropped", False), ("alone", True)):
                started = time.perf_counter()
                values = score(predict(artifact, dataset, read_alone=alone))
                figures[way] = {k: round(values[k], 4) for k in KEYS} | {"s": round(time.perf_counter() - started, 1)}
                persons = int(values["count"])
            emit(
                "given_boxes",
                benchmark=BENCHMARK,
                model=artifact.name,
                dataset=dataset.name,
                persons=persons,
                read_alone=persons_read_alone(artifact, dataset),
                cropped=figures["cropped"],
                alone=figures["alone"],
                oks_ap_gain=round(figures["alone"]["oks_ap"] - figures["cropped"]["oks_ap"], 4),
            )


if __name__ == "__main__":
    main()
