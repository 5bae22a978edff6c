"""Which corrected labels buy the most: the loop's, random scene persons, or random single people?

    .venv/bin/python benchmarks/finetune_labels.py --base <a demo's first model> --feedback <its loop's data/feedback> \
        --traffic <the street scenes the loop was sent: var/traffic/street-...> --scenes <street scenes holdout> \
        --minutes 9

The loop labels the persons of the street scenes its review policy queued (low confidence and a random
slice). Session 48 replayed one fine-tune on 287 random single-person street pictures for +0.116 street
OKS AP, where the demo's loop bought +0.064 to +0.067 with about 300 labels. This benchmark fine-tunes one
base as the `train` stage does (seed set plus the labels at the feedback weight, warm start, params.yaml's
fine-tune settings) for the same wall-clock minutes on three sets of as many persons:

- `loop`: the loop's own corrected labels (`--feedback`), the baseline;
- `scenes`: whole pictures drawn at random from the loop's traffic (`--traffic`, the scenes with their
  true persons), each person jittered as the simulated annotator jitters (`--noise-px`): the same kind of
  picture without the review policy's choice;
- `single`: random single-person street pictures (finetune_settings.py's labels): neither.

With `--truth` (the demo's var/truth), the loop's labels are first held against the truth the simulated
annotator read, person by person: persons matched, missing or extra, joint error in pixels, visibility
agreement; a loop that loses or bends labels between Label Studio and the COCO export shows it there.
Each set's line says what it holds (persons, pictures, visible keypoints a person, box side, persons at the
picture's edge); each fine-tune's line its figures (flywheel.experiment.measure: both holdouts, the
real-photo check set and, with `--scenes`, the street scenes given their true boxes and without); then
each against `loop`. About 11 minutes a set at `--minutes 9`: run it alone.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np

import training  # noqa: F401  (passive OpenMP waits, before torch loads)
from flywheel.experiment import generate_missing, measure, pipeline_sets, steps_logged, street_pool, subset
from labeling.annotator import noisy_persons
from posewheel import dataset as coco
from posewheel.boxes import best_pairs, iou_matrix
from posewheel.truth import TruthStore

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # as a script, sys.path[0] is benchmarks/

from tests.support.figures import emit as emit_figure

emit = partial(emit_figure, benchmark="finetune_labels")
EDGE_PX = 1.0  # a box this close to the picture's border is cut by it


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, required=True, help="the model the loop fine-tuned (its production)")
    parser.add_argument("--feedback", type=Path, required=True, help="the loop's corrected labels (COCO folder)")
    parser.add_argument("--traffic", type=Path, required=True, help="the street scenes the loop was sent (COCO)")
    parser.add_argument("--scenes", type=Path, default=None, help="street scenes holdout, scored with/without boxes")
    parser.add_argument("--minutes", type=float, default=9.0, help="fine-tune wall clock per set")
    parser.add_argument("--truth", type=Path, default=None, help="the truth store the annotator read (var/truth)")
    parser.add_argument("--noise-px", type=float, default=1.5, help="the simulated annotator's hand jitter")
    parser.add_argument("--sets", default="loop,scenes,single", help="which sets, in order (loop is the baseline)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--work", type=Path, default=Path("var/bench/finetune_labels"), help="data and models")
    args = parser.parse_args()

    from posewheel.params import load_params
    from training.config import TrainConfig
    from training.train import train

    params = load_params(args.params)
    synth = params.get("synth", {})
    work = args.work
    loop = coco.load(args.feedback)
    wanted = len(loop.annotations)
    sets = pipeline_sets(synth) | {"pool": street_pool(synth, wanted, index=99)}
    generate_missing(sets, work, size=int(synth.get("image_size", 256)))
    pool = coco.load(work / "pool")
    sources = {
        "loop": args.feedback,
        "scenes": random_scenes(coco.load(args.traffic), wanted, args.noise_px, args.seed, work / "scenes"),
        "single": subset(pool, [a.id for a in pool.annotations][:wanted], work / "single"),
    }
    chosen = [name.strip() for name in args.sets.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(sources))
    if unknown or not chosen:
        raise SystemExit(f"--sets: choose from {sorted(sources)}, not {unknown or args.sets!r}")
    if args.truth is not None:
        emit("fidelity", **fidelity(loop, TruthStore(args.truth)))
    for name in chosen:
        emit("set", name=name, path=str(sources[name]), **describe(coco.load(sources[name])))

    base = args.base
    emit("base", **measure(base, work, args.scenes), base=str(base))
    tune = dataclasses.replace(
        TrainConfig.from_params(params, fine_tune=True), wandb=False, max_minutes=args.minutes, epochs=10_000
    )
    results: dict[str, dict[str, float]] = {}
    for name in chosen:
        started = time.monotonic()
        log_dir = work / "logs" / name
        artifact = train(
            tune,
            [(work / "seed", 1.0), (sources[name], tune.feedback_weight)],
            work / "models",
            warm_start=base,
            version=f"m-{name}",
            log_dir=log_dir,
        )
        results[name] = measure(artifact, work, args.scenes)
        steps = steps_logged(log_dir / "metrics.csv")
        emit(
            "fine_tune",
            name=name,
            **results[name],
            steps=steps,
            wall_minutes=round((time.monotonic() - started) / 60, 2),
        )
    reference = results.get("loop")
    for name, got in results.items():
        if reference is not None and name != "loop":
            emit("against_loop", name=name, **{k: round(v - reference[k], 4) for k, v in got.items()})


def random_scenes(traffic: coco.Dataset, persons: int, noise_px: float, seed: int, out: Path) -> Path:
    """Whole pictures of `traffic` in a seeded random order until the next would pass `persons` (as the annotator's
    person budget stops), every true person jittered by `noise_px` (labeling.annotator.noisy_persons), saved to
    `out`. Pictures of nobody are skipped: the loop's labels hold people."""
    rng = np.random.default_rng(seed)
    by_image = traffic.annotations_by_image()
    images, labels = [], []
    for index in rng.permutation(len(traffic.images)):
        image = traffic.images[int(index)]
        people = by_image.get(image.id, [])
        if not people:
            continue
        if len(labels) + len(people) > persons:
            break
        truth = [{"keypoints": a.keypoints, "bbox": a.bbox} for a in people]
        for ann, (kps, box) in zip(people, noisy_persons(truth, image.width, image.height, noise_px, rng), strict=True):
            if box is not None:
                labels.append(dataclasses.replace(ann, id=len(labels) + 1, keypoints=kps, bbox=box, area=None))
        images.append(image)
    coco.save(coco.Dataset(images, labels, traffic.root, dict(traffic.info)), out)
    return out


def fidelity(labels: coco.Dataset, truth: TruthStore, match_iou: float = 0.3) -> dict[str, object]:
    """`labels` against the true persons of each picture (found by its content hash): persons matched (box IoU at
    least `match_iou`, the best-overlapping pairs first), missing and extra; joint error (px) where both say
    visible; visibility, truth x label."""
    by_image = labels.annotations_by_image()
    errors: list[float] = []
    matched = missing = extra = untrue = 0
    visibility = np.zeros((3, 3), dtype=int)
    for image in labels.images:
        people = truth.get(hashlib.sha256(labels.image_path(image).read_bytes()).hexdigest())
        if people is None:
            untrue += 1
            continue
        labeled = by_image.get(image.id, [])
        overlaps = iou_matrix([person["bbox"] for person in people], [a.bbox for a in labeled])
        taken = best_pairs(overlaps, match_iou)
        missing += len(people) - len(taken)
        for t, j in taken.items():
            true_kps, kps = np.asarray(people[t]["keypoints"], dtype=float).reshape(-1, 3), labeled[j].keypoints
            np.add.at(visibility, (true_kps[:, 2].astype(int), kps[:, 2].astype(int)), 1)
            both = (true_kps[:, 2] > 0) & (kps[:, 2] > 0)
            errors.extend(np.linalg.norm(true_kps[both, :2] - kps[both, :2], axis=1).tolist())
        matched += len(taken)
        extra += len(labeled) - len(taken)
    spread = np.asarray(errors) if errors else np.zeros(1)
    return {
        "pictures": len(labels.images),
        "without_truth": untrue,
        "matched": matched,
        "missing": missing,
        "extra": extra,
        "joint_error_median_px": round(float(np.median(spread)), 2),
        "joint_error_p95_px": round(float(np.percentile(spread, 95)), 2),
        "visibility_truth_by_label": visibility.tolist(),
    }


def describe(data: coco.Dataset) -> dict[str, float]:
    """What a label set holds: persons, pictures with people, visible keypoints a person, median box side (px),
    persons a picture, and the share of persons whose box the picture's border cuts."""
    sizes = {image.id: (image.width, image.height) for image in data.images}
    people = [a for a in data.annotations if a.num_keypoints > 0]
    visible = [a.num_keypoints for a in people]
    sides = [float(np.sqrt(max(a.bbox[2], 0.0) * max(a.bbox[3], 0.0))) for a in people]
    cut = 0
    for a in people:
        width, height = sizes[a.image_id]
        x, y, w, h = a.bbox
        cut += int(x <= EDGE_PX or y <= EDGE_PX or x + w >= width - EDGE_PX or y + h >= height - EDGE_PX)
    pictures = len({a.image_id for a in people})
    return {
        "persons": len(people),
        "pictures": pictures,
        "visible_keypoints": round(float(np.mean(visible)), 2) if visible else 0.0,
        "box_side_px": round(float(np.median(sides)), 1) if sides else 0.0,
        "persons_a_picture": round(len(people) / pictures, 2) if pictures else 0.0,
        "cut_by_edge": round(cut / len(people), 3) if people else 0.0,
    }


if __name__ == "__main__":
    main()
