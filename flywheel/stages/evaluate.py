"""DVC stage `evaluate`: score the candidate on both holdouts into `metrics/candidate`.

    python -m flywheel.stages.evaluate      # reads params.yaml:evaluate; run by `dvc repro`

Writes `metrics/candidate/{studio,street}.json` (DVC metrics) and `metrics/candidate/plots/*.csv`
(PCK curve, pixel error per joint), scored with ONNX Runtime on ground-truth boxes exactly as
`posewheel evaluate` does; and `metrics/candidate/street_scenes.json`: the street scenes scored as
served without boxes (the candidate's detector finds the people; OKS AP, box AP, persons missed and
invented) beside the same network given the true boxes. A candidate without a detector gets an
empty file there. And `metrics/candidate/real_photos.json`: how close the candidate stays to the pretrained
MoveNet on real photographs (the check set and the same people pasted smaller, read whole and as served: the
candidate's detector finds them; training/realphotos.py),
so a loop that trades real people for synthetic AP says so (and `promote` refuses it: `promote.real_tolerance`).
"""

from __future__ import annotations

import logging
from pathlib import Path

from flywheel.pipeline import REAL_PHOTOS, SCENES_HOLDOUT, PipelinePaths
from posewheel import atomic
from posewheel.artifact import load_card
from posewheel.params import load_params, section

log = logging.getLogger("flywheel.evaluate")


def run(paths: PipelinePaths) -> dict[str, dict[str, float]]:
    """Evaluate `models/candidate` on every holdout; returns the metrics per holdout name."""
    from training.evaluate import write_evaluation

    batch_size = int(section(load_params(paths.root), "evaluate").get("batch_size", 64))
    results = write_evaluation(paths.candidate, list(paths.holdouts().values()), paths.candidate_metrics, batch_size)
    results[SCENES_HOLDOUT] = scenes = evaluate_scenes(paths, batch_size)
    results[REAL_PHOTOS] = real = real_photo_agreement(paths.candidate)
    for name, values in ((SCENES_HOLDOUT, scenes), (REAL_PHOTOS, real)):
        atomic.write_json(paths.candidate_metrics / f"{name}.json", {k: round(v, 6) for k, v in values.items()})
    for name, values in results.items():
        log.info("%s: %s", name, " ".join(f"{k}={v:.4g}" for k, v in values.items()))
    return results


def evaluate_scenes(paths: PipelinePaths, batch_size: int) -> dict[str, float]:
    """The candidate on the street scenes without boxes, and with the true boxes; {} without a detector."""
    from training.evaluate_persons import evaluate_without_boxes

    if load_card(paths.candidate).detector is None:
        log.info("%s: the candidate has no person detector; nothing to score without boxes", SCENES_HOLDOUT)
        return {}
    return evaluate_without_boxes(paths.candidate, paths.holdout_scenes, batch_size, true_boxes=True)


def real_photo_agreement(artifact: Path) -> dict[str, float]:
    """An artifact's agreement with the pretrained MoveNet on the real-photo check set and on its small-people
    pictures, read whole and, where the artifact has a person detector, as served (training/realphotos.py; under a
    second for the first two, a few seconds for the third: 30 detector and pose reads)."""
    from training.evaluate_persons import small_people_figures
    from training.realphotos import agreement

    return agreement(artifact) | small_people_figures(artifact)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run(PipelinePaths.from_settings())


if __name__ == "__main__":
    main()
