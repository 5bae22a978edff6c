"""Does the served model find the people as well as it reads them? OKS AP without boxes vs. with true boxes.

    .venv/bin/python benchmarks/multi_person.py [--model models/production] [--count 300] [--work DIR]

Generates two multi-person holdouts (0-4 persons per image, empty images included, fixed seeds):
studio (seed 2001) and street (seed 2002). Evaluates the artifact on each as served without boxes
(its detector finds the persons, training/evaluate_persons.py: OKS AP, box AP, persons found, missed
and invented) and with the true boxes (training/evaluate.py), and under each of the three detection
scores, so the choice of `PERSON_SCORE` stays measured. The bar: OKS AP without boxes >= 0.9 x OKS
AP with true boxes on the studio holdout. Then the real-photo check: persons found on every
photograph of tests/fixtures/real_photos/ at 512 px, mirrored too, and the 256-px composites
(tests/support/real_photos.py), against the number of people in it (bar: every photograph of 0 to 3
people; four_people is reported outside the bar). Without --model, the pretrained MoveNet Lightning
artifact (with params' default detector, CenterNet) is promoted into the work folder. One JSON line
per figure.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # as a script, sys.path[0] is benchmarks/

from tests.support.figures import emit as emit_figure


def emit(figure: str, **fields: Any) -> None:
    emit_figure(figure, benchmark="multi_person", **fields)


BAR = 0.9  # OKS AP without boxes / OKS AP with true boxes, studio multi-person holdout
HOLDOUTS = {"studio_groups": ("studio", 2001), "street_groups": ("street", 2002)}


# The bar counts photographs of 1 to 3 people; four_people (a 256-px composite) is reported beside it.
OUTSIDE_BAR = {"four_people"}


def real_photo_counts(artifact: Path) -> None:
    """Emit the persons the artifact's detector finds on each real photograph, and whether that is right."""
    from tests.support.real_photos import count_persons

    rows = count_persons(artifact)
    for row in rows:
        emit("real_photo_persons", **row, in_bar=row["photo"] not in OUTSIDE_BAR)
    wrong = [str(row["photo"]) for row in rows if not row["ok"]]
    emit("real_photos_counted_right", value=len(rows) - len(wrong), photos=len(rows), wrong=wrong,
         passed=not set(wrong) - OUTSIDE_BAR)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="artifact folder; default: pretrained MoveNet")
    parser.add_argument("--count", type=int, default=300, help="images per holdout")
    parser.add_argument("--work", type=Path, default=Path("var/bench/multi_person"), help="data and models go here")
    args = parser.parse_args()

    from posewheel.synth import generate
    from training.evaluate import evaluate_artifact
    from training.evaluate_persons import PERSON_SCORE, PERSON_SCORES, predict_without_boxes, score_without_boxes

    model = args.model
    if model is None:
        from training.pretrained import export_pretrained

        model = export_pretrained("movenet-lightning", args.work / "models")
    emit("model", path=str(model))

    ratios = {}
    for name, (domain, seed) in HOLDOUTS.items():
        data = args.work / f"{name}_{args.count}"
        if not (data / "annotations.json").is_file():
            generate(domain, args.count, seed, data, persons=(0, 4), workers=2)
        start = time.monotonic()
        pred = predict_without_boxes(model, data)
        seconds = time.monotonic() - start
        by_score = {kind: score_without_boxes(pred, kind) for kind in PERSON_SCORES}
        for kind, values in by_score.items():
            emit("person_score", holdout=name, score=kind, chosen=kind == PERSON_SCORE,
                 oks_ap=round(values["oks_ap"], 4), box_ap=round(values["box_ap"], 4))  # fmt: skip
        values = by_score[PERSON_SCORE]
        emit("without_boxes", holdout=name, seed=seed, seconds=round(seconds, 1),
             **{k: round(v, 4) for k, v in values.items()})  # fmt: skip
        given = evaluate_artifact(model, data)
        emit("true_boxes", holdout=name, seed=seed, **{k: round(v, 4) for k, v in given.items()})
        ratios[name] = (values["oks_ap"], given["oks_ap"])
        ratio = values["oks_ap"] / given["oks_ap"] if given["oks_ap"] > 0 else float("nan")
        emit("oks_ap_ratio", holdout=name, value=round(ratio, 4), without_boxes=round(values["oks_ap"], 4),
             true_boxes=round(given["oks_ap"], 4))  # fmt: skip
    without, given_ap = ratios["studio_groups"]
    emit("bar_studio_without_boxes", without_boxes=round(without, 4), true_boxes=round(given_ap, 4),
         ratio=round(without / given_ap, 4) if given_ap > 0 else None, required=BAR,
         passed=bool(given_ap > 0 and without >= BAR * given_ap))  # fmt: skip
    real_photo_counts(model)


if __name__ == "__main__":
    main()
