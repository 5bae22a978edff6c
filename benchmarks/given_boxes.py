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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # as a script, sys.path[0] is benchmarks/

from tests.support.figures import emit
from training.evaluate import predict, score

BENCHMARK = "given_boxes"
KEYS = ("oks_ap", "ap50", "pck@0.1", "mean_px_error")


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
                pred = predict(artifact, dataset, read_alone=alone)
                values = score(pred)
                figures[way] = {k: round(values[k], 4) for k in KEYS} | {"s": round(time.perf_counter() - started, 1)}
                persons = int(values["count"])
            emit(
                "given_boxes",
                benchmark=BENCHMARK,
                model=artifact.name,
                dataset=dataset.name,
                persons=persons,
                read_alone=int(pred.alone.sum()),  # the "alone" run's
                cropped=figures["cropped"],
                alone=figures["alone"],
                oks_ap_gain=round(figures["alone"]["oks_ap"] - figures["cropped"]["oks_ap"], 4),
            )


if __name__ == "__main__":
    main()
