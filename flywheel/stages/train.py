"""DVC stage `train`: seed + feedback into a candidate model at `models/candidate`.

    python -m flywheel.stages.train         # reads params.yaml:train; run by `dvc repro`

Warm start: when `train.warm_start` is on and a production model exists, the candidate fine-tunes it.
Production is an input that is recorded (its version becomes the card's `parent_version` and goes to
W&B), not declared: `promote` writes it, and a DVC pipeline cannot have a cycle.

Person detector: with `detector.fine_tune: true` (the default) the candidate's detector is fine-tuned too,
on whole images: the studio scenes of several people (`data/seed_scenes`) and the feedback set (corrected
persons, added and deleted ones, and images confirmed empty) at `train.feedback_weight`, continuing from the
parent's fine-tuned detector when it has one (training/detector_training.py, docs/detector.md). The rest
of the `detector` section configures it; a loop's candidate takes its `finetune_<key>` values, as the
pose network's fine-tune does. A network without a detector (the from-scratch `cpu` and `gpu` configs)
skips it.
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path

from flywheel.pipeline import PipelinePaths
from posewheel import artifact, atomic
from posewheel.dataset import ANNOTATIONS_FILE
from posewheel.params import load_params

log = logging.getLogger("flywheel.train")


def training_sets(paths: PipelinePaths, feedback_weight: float, seed: Path | None = None) -> list[tuple[Path, float]]:
    """The seed set (`paths.seed` unless `seed`), plus the feedback set with its sampling weight when it
    holds any labels."""
    sets = [(seed or paths.seed, 1.0)]
    ann = paths.feedback / ANNOTATIONS_FILE
    if ann.is_file() and json.loads(ann.read_text(encoding="utf-8"))["annotations"]:
        sets.append((paths.feedback, feedback_weight))
    return sets


def run(paths: PipelinePaths) -> Path:
    from training.config import TrainConfig
    from training.train import train

    params = load_params(paths.root)
    production = artifact.production_dir(paths.models)
    warm = production.resolve() if TrainConfig.from_params(params).warm_start and production.exists() else None
    config = TrainConfig.from_params(params, fine_tune=warm is not None)  # as `posewheel train` builds it
    sets = training_sets(paths, config.feedback_weight)
    log.info("training on %s, warm start from %s", [(str(p), w) for p, w in sets], warm)
    paths.models.mkdir(parents=True, exist_ok=True)
    fine_tune_detector = bool(dict(params.get("detector") or {}).get("fine_tune", False))
    with tempfile.TemporaryDirectory(dir=paths.models, prefix=".train-") as scratch:
        built = train(config, sets, Path(scratch), warm_start=warm)
        section = artifact.load_card(built).detector
        if fine_tune_detector and section is not None:
            from training.detector_training import train_detector

            scenes = training_sets(paths, config.feedback_weight, seed=paths.seed_scenes)
            log.info("fine-tuning the person detector on %s", [(str(p), w) for p, w in scenes])
            detector_config = TrainConfig.for_detector(params, kind=section.kind, fine_tune=warm is not None)
            train_detector(detector_config, scenes, built, log_dir=paths.root / "metrics" / "train_detector")
        atomic.replace_dir(built, paths.candidate)
    log.info("candidate %s at %s", artifact.load_card(paths.candidate).version, paths.candidate)
    return paths.candidate


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run(PipelinePaths.from_settings())


if __name__ == "__main__":
    main()
