"""Does fine-tuning the person detector on the project's scenes find the people the pretrained one misses?

    .venv/bin/python benchmarks/detector_finetune.py [--minutes 9] [--train-count 1500] [--holdout-count 200] \
        [--anchor-weight 0.01] [--distill-weight 1] [--frozen-stages 4] [--work var/bench/detector_finetune] \
        | tee benchmarks/results/detector_finetune.jsonl

On ONE thread (torch and ONNX Runtime; the machine is shared), in one run:
1. Data (fixed seeds): a street training set of 0-4 persons per image (seed 3000) and a street holdout
   of 0-4 persons (seed 4002), people-free images in both.
2. The pretrained artifact (`posewheel pretrained promote movenet-lightning`: MoveNet Lightning + MultiPose).
3. The same artifact with its detector fine-tuned for `--minutes` by `training.detector_training.train_detector`
   (params.yaml-free defaults of the `movenet-multipose` configuration), the pose network untouched.
4. Both on the holdout as served without boxes (training/evaluate_persons.py): box AP, recall of
   persons (found at box IoU >= 0.5 / true), phantom persons on the people-free images, OKS AP without
   boxes of the same pose network; and on the real-photo check set (tests/fixtures/real_photos/):
   persons found per photograph against the number in it (nobody_* must stay empty). Each detector at
   its own card's person-score threshold (as served) and at the other's (the fine-tune re-chooses it).
One JSON line per figure.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # as a script, sys.path[0] is benchmarks/

from tests.support.figures import emit as emit_figure

TRAIN = ("street", 3000)
HOLDOUT = ("street", 4002)


def emit(figure: str, **fields: Any) -> None:
    emit_figure(figure, benchmark="detector_finetune", **fields)


def holdout_figures(name: str, artifact: Path, holdout: Path, threshold: float | None = None) -> dict[str, float]:
    """Emit and return the artifact's detection figures on the holdout, served without boxes (the card's
    person-score threshold unless `threshold`)."""
    import numpy as np

    from posewheel.artifact import load_card
    from training.evaluate_persons import predict_without_boxes, score_without_boxes

    detector = load_card(artifact).detector
    assert detector is not None
    threshold = detector.score_threshold if threshold is None else threshold
    start = time.monotonic()
    pred = predict_without_boxes(artifact, holdout, batch_size=32, score_threshold=threshold)
    values = score_without_boxes(pred)
    empty = {r.id for r in pred.dataset.images} - {a.image_id for a in pred.dataset.annotations}
    on_empty = int(np.isin(pred.image_ids, list(empty)).sum())
    figures = {
        "box_ap": values["box_ap"],
        "box_ap50": values["box_ap50"],
        "recall": values["persons_matched"] / values["persons_true"],
        "persons_true": values["persons_true"],
        "persons_found": values["persons_found"],
        "persons_matched": values["persons_matched"],
        "phantoms": values["phantoms"],
        "phantoms_on_people_free_images": float(on_empty),
        "people_free_images": values["empty_images"],
        "people_free_images_with_phantom": values["empty_images_with_phantom"],
        "oks_ap_without_boxes": values["oks_ap"],
    }
    emit("street_holdout", detector=name, threshold=threshold, seconds=round(time.monotonic() - start, 1),
         **{k: round(v, 4) for k, v in figures.items()})  # fmt: skip
    return figures


def real_photo_figures(name: str, artifact: Path, threshold: float | None = None) -> list[str]:
    """Emit the persons the detector finds on each real photograph (tests/support/real_photos.py, as served,
    the card's threshold unless `threshold`); returns the photographs counted wrong."""
    from posewheel.artifact import load_card
    from tests.support.real_photos import count_persons

    detector = load_card(artifact).detector
    assert detector is not None
    threshold = detector.score_threshold if threshold is None else threshold
    rows = count_persons(artifact, threshold)
    for row in rows:
        emit("real_photo_persons", detector=name, threshold=threshold, **row)
    wrong = [str(row["photo"]) for row in rows if not row["ok"]]
    emit("real_photos_counted_right", detector=name, value=len(rows) - len(wrong), photos=len(rows), wrong=wrong,
         threshold=threshold)  # fmt: skip
    return wrong


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--minutes", type=float, default=9.0, help="the detector's fine-tuning budget, wall clock")
    parser.add_argument("--train-count", type=int, default=1500, help="street training images (0-4 persons)")
    parser.add_argument("--holdout-count", type=int, default=200, help="street holdout images (0-4 persons)")
    parser.add_argument("--anchor-weight", type=float, default=0.0, help="train.anchor_weight: L2 pull to pretrained")
    parser.add_argument("--distill-weight", type=float, default=0.0, help="train.distill_weight: real photos")
    parser.add_argument("--frozen-stages", type=int, default=None, help="train.frozen_stages; default: the config's")
    parser.add_argument("--work", type=Path, default=Path("var/bench/detector_finetune"), help="data and models")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    from posewheel.synth import generate
    from training.config import TrainConfig
    from training.detector_training import train_detector
    from training.pretrained import export_pretrained

    sets = {}
    for name, (domain, seed), count in (("train", TRAIN, args.train_count), ("holdout", HOLDOUT, args.holdout_count)):
        sets[name] = args.work / f"{domain}_groups_{name}_{count}_seed{seed}"
        if not (sets[name] / "annotations.json").is_file():
            generate(domain, count, seed, sets[name], persons=(0, 4), workers=1)
        emit("data", set=name, domain=domain, seed=seed, images=count, persons="0-4", path=str(sets[name]))

    pretrained = export_pretrained("movenet-lightning", args.work / "models")
    from training.detector_training import detector_kind

    config = TrainConfig.for_detector(
        {},
        kind=detector_kind(pretrained),
        max_minutes=args.minutes,
        num_workers=0,
        wandb=False,
        anchor_weight=args.anchor_weight,
        distill_weight=args.distill_weight,
        **({"frozen_stages": args.frozen_stages} if args.frozen_stages is not None else {}),
    )
    emit("fine_tune_config", threads=torch.get_num_threads(), **{k: config.to_dict()[k] for k in (
        "max_minutes", "batch_size", "lr", "warmup_steps", "frozen_stages", "scale", "translate", "flip",
        "anchor_weight", "distill_weight", "distill_batch")})  # fmt: skip
    start = time.monotonic()
    name = "finetuned-detector" + (f"-anchor{args.anchor_weight:g}" if args.anchor_weight else "")
    name += f"-frozen{args.frozen_stages}" if args.frozen_stages is not None else ""
    name += f"-distill{args.distill_weight:g}" if args.distill_weight else ""
    tuned = train_detector(config, [(sets["train"], 1.0)], pretrained, out=args.work / "models" / name,
                           log_dir=args.work / "logs" / name)  # fmt: skip
    from posewheel.artifact import load_card

    record = load_card(tuned).params["detector"]
    emit("fine_tune", seconds=round(time.monotonic() - start, 1), steps=record["steps"], minutes=record["minutes"],
         train_images=record["images"], validation=record["validation"],
         threshold_calibration=record.get("threshold_calibration"))  # fmt: skip

    # Each detector at its card's threshold (as served), and each at the other's: fine-tuning also re-chose
    # the threshold, and the comparison at one threshold shows what the training itself changed.
    calibrated = load_card(tuned).detector.score_threshold  # type: ignore[union-attr]
    original = load_card(pretrained).detector.score_threshold  # type: ignore[union-attr]
    results = {}
    for name, artifact, threshold in (
        ("pretrained", pretrained, original),
        ("pretrained", pretrained, calibrated),
        ("fine_tuned", tuned, calibrated),
        ("fine_tuned", tuned, original),
    ):
        results[name, threshold] = holdout_figures(name, artifact, sets["holdout"], threshold)
        real_photo_figures(name, artifact, threshold)
    keys = ("box_ap", "recall", "oks_ap_without_boxes", "phantoms_on_people_free_images")
    served, same = (
        (results["pretrained", original], results["fine_tuned", calibrated]),
        results["pretrained", calibrated],
    )
    emit("change_as_served", **{k: round(served[1][k] - served[0][k], 4) for k in keys})
    emit("change_at_one_threshold", threshold=calibrated, **{k: round(served[1][k] - same[k], 4) for k in keys})


if __name__ == "__main__":
    main()
