"""The learning-curve experiment's shared parts: the pipeline's own data sets, street traffic pools,
a studio-only starting model and subsets of corrected labels.

    sets = {**pipeline_sets(params["synth"]), "pool": street_pool(params["synth"], 800, index=0)}
    generate_missing(sets, work, size=256)
    start = base_model(None, 12.0, params, work)           # trained once into work/models/m-base
    feedback = subset(coco.load(work / "pool"), ids, work / "feedback")

Used by benchmarks/flywheel_curve.py (street AP against labels), benchmarks/finetune_settings.py
(fine-tune settings at a fixed label count) and benchmarks/finetune_labels.py (which labels at a fixed
count), so they measure from the same start on the same data as `dvc repro` (the same seeds as
flywheel/stages/synth.py), and score a fine-tune alike (`measure`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from flywheel.stages.synth import HOLDOUT_STREET_SEED_OFFSET, HOLDOUT_STUDIO_SEED_OFFSET
from posewheel import dataset as coco

POOL_SEED_OFFSET = 5000  # street traffic pools, away from every set the pipeline generates
BASE_VERSION = "m-base"

# A data set to generate: (domain, image count, seed).
SetSpec = tuple[str, int, int]


def pipeline_sets(synth: dict[str, Any]) -> dict[str, SetSpec]:
    """The seed set and both holdouts exactly as the `synth` stage makes them from params.yaml's `synth`."""
    seed, holdout = int(synth.get("seed", 0)), int(synth["holdout_count"])
    return {
        "seed": ("studio", int(synth.get("seed_count", 1500)), seed),
        "holdout_studio": ("studio", holdout, seed + HOLDOUT_STUDIO_SEED_OFFSET),
        "holdout_street": ("street", holdout, seed + HOLDOUT_STREET_SEED_OFFSET),
    }


def street_pool(synth: dict[str, Any], count: int, index: int) -> SetSpec:
    """Street traffic pool number `index` (its own seed, overlapping no pipeline set)."""
    return ("street", count, int(synth.get("seed", 0)) + POOL_SEED_OFFSET + index)


def generate_missing(sets: dict[str, SetSpec], work: Path, size: int) -> None:
    """Generate each set into `work/<name>` unless it is already there (the experiment reruns cheaply)."""
    from posewheel.synth import generate

    for name, (domain, count, seed) in sets.items():
        if not (work / name / coco.ANNOTATIONS_FILE).is_file():
            generate(domain, count, seed, work / name, size=size, workers=2)


def subset(pool: coco.Dataset, annotation_ids: list[int], out: Path) -> Path:
    """Save the persons `annotation_ids` of `pool` (and their images) as a COCO folder `out`."""
    wanted = set(annotation_ids)
    chosen = [a for a in pool.annotations if a.id in wanted]
    image_ids = {a.image_id for a in chosen}
    coco.save(coco.Dataset([i for i in pool.images if i.id in image_ids], chosen, pool.root, dict(pool.info)), out)
    return out


def base_model(base: Path | None, minutes: float | None, params: dict[str, Any], work: Path) -> Path:
    """`base`, or a studio-only model trained once on `work/seed` into `work/models/m-base` (reused after)."""
    from training.config import TrainConfig
    from training.train import train

    if base is not None:
        return base
    base = work / "models" / BASE_VERSION
    if not (base / "card.json").is_file():
        config = TrainConfig.from_params(params, wandb=False)
        config = dataclasses.replace(config, max_minutes=minutes or config.max_minutes)
        train(config, [(work / "seed", 1.0)], work / "models", version=BASE_VERSION, log_dir=work / "logs" / "base")
    return base


def measure(artifact: Path, work: Path, scenes: Path | None = None) -> dict[str, float]:
    """A fine-tuned artifact's figures: street and studio OKS AP on `work`'s holdouts, its agreement with the
    pretrained MoveNet on real photographs (whole check set, one person, small people read whole and, with a person
    detector, as served) and, with `scenes` (a set of several people a picture), OKS AP given the true boxes
    (crowded persons read alone, as served) and without."""
    from training.evaluate import evaluate_artifact
    from training.evaluate_persons import evaluate_without_boxes, small_people_figures
    from training.realphotos import agreement

    real = agreement(artifact)
    small = small_people_figures(artifact)
    figures = {
        "street_oks_ap": round(evaluate_artifact(artifact, work / "holdout_street")["oks_ap"], 4),
        "studio_oks_ap": round(evaluate_artifact(artifact, work / "holdout_studio")["oks_ap"], 4),
        "real_agreement": round(real["agreement@0.05"], 3),
        "one_person_agreement": round(real["one_person_agreement@0.05"], 3),
        "small_people_agreement": round(small["small_people_agreement@0.05"], 3),
    }
    if "small_people_served_agreement@0.05" in small:  # an artifact with a person detector
        figures["small_people_served_agreement"] = round(small["small_people_served_agreement@0.05"], 3)
    if scenes is not None:
        found = evaluate_without_boxes(artifact, scenes)
        figures |= {
            "scenes_true_boxes_oks_ap": round(found["true_boxes_oks_ap"], 4),
            "scenes_oks_ap": round(found["oks_ap"], 4),
            "scenes_matched": found["persons_matched"],
        }
    return figures


def steps_logged(metrics_csv: Path) -> int:
    """The last optimiser step a training run's CSV log recorded (Lightning's `step` column), plus one."""
    import csv

    with metrics_csv.open(encoding="utf-8") as f:
        steps = [int(row["step"]) for row in csv.DictReader(f) if row.get("step")]
    return max(steps) + 1 if steps else 0
