"""Which settings of a loop's detector fine-tune find the most street people in its minutes?

    .venv/bin/python benchmarks/detector_loop.py --base <first model> --data <a loop's data/> \
        --variant crops2=distill_batch=2 [--rounds 2] [--work var/bench/detector_loop]
    .venv/bin/python benchmarks/detector_loop.py --first --base <pretrained artifact> --data <data/> ...

Replays the detector half of a loop's train stage (flywheel/stages/train.py): the base artifact's
detector is fine-tuned as `TrainConfig.for_detector(params, fine_tune=True)` builds it (a variant's
`key=value` pairs go over params.yaml's `detector` section, `finetune_*` keys included), on the sets
the stage gives it (`<data>/seed_scenes` and the loop's corrected labels, `<data>/feedback`, at the
feedback weight), into a copy of the base; the pose network is the base's in every copy. `--first`
replays the first model's instead: `fine_tune=False` (the section's own keys, not its `finetune_*`),
on the seed scenes only, from the base's detector (the pretrained one for a pretrained artifact).
Each copy is then scored on `<data>/holdout/street_scenes` as served without boxes, at the threshold
its fine-tune calibrated (training/evaluate_persons.py: OKS AP, box AP, persons found and invented),
and on the real-photo check (tests/support/real_photos.py: persons counted right per photograph).
`baseline` is params.yaml unchanged. Variants run in rounds (A B, A B, ...: the load on a shared
machine drifts); one JSON line per fine-tune, then each variant's medians against the baseline's.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # as a script, sys.path[0] is benchmarks/

from tests.support.figures import emit as emit_figure
from tests.support.variants import parse_variant

emit = partial(emit_figure, benchmark="detector_loop")
FIGURES = ("oks_ap", "box_ap", "recall", "phantoms", "real_photos_right", "steps")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, required=True, help="the artifact whose detector a loop continues from")
    parser.add_argument("--data", type=Path, required=True, help="a loop's data/: seed_scenes, feedback, holdout")
    parser.add_argument("--variant", action="append", default=[], help="name=key=value[,key=value]; repeatable")
    parser.add_argument("--rounds", type=int, default=2, help="fine-tunes of each variant, interleaved")
    parser.add_argument("--first", action="store_true", help="replay the first model's detector fine-tune")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--work", type=Path, default=Path("var/bench/detector_loop"), help="the fine-tuned copies")
    args = parser.parse_args()
    variants = [("baseline", {}), *(parse_variant(v) for v in args.variant)]

    from flywheel.pipeline import PipelinePaths
    from flywheel.stages.train import training_sets
    from posewheel.artifact import load_card
    from posewheel.params import load_params
    from tests.support.real_photos import count_persons
    from training.config import TrainConfig
    from training.detector_training import train_detector
    from training.evaluate_persons import evaluate_without_boxes

    params = load_params(args.params)
    detector = dict(params.get("detector") or {})
    paths = PipelinePaths(args.data.resolve().parent)  # the loop's project: its data/ is args.data
    if args.first:
        scenes = [(paths.seed_scenes, 1.0)]  # a first model has no feedback yet
    else:
        weight = TrainConfig.from_params(params, fine_tune=True).feedback_weight
        scenes = training_sets(paths, weight, seed=paths.seed_scenes)
    holdout = paths.holdout_scenes
    base_detector = load_card(args.base).detector
    assert base_detector is not None, f"{args.base} carries no person detector"
    results: dict[str, list[dict[str, float]]] = {name: [] for name, _ in variants}
    for round_ in range(1, args.rounds + 1):
        for name, values in variants:
            config = TrainConfig.for_detector(
                {**params, "detector": {**detector, **values}},
                kind=base_detector.kind,
                fine_tune=not args.first,
                wandb=False,
            )
            out = args.work / f"m-{name.replace('_', '-')}-r{round_}"
            shutil.rmtree(out, ignore_errors=True)
            train_detector(config, scenes, args.base, out=out, log_dir=args.work / "logs" / out.name)
            card = load_card(out)
            assert card.detector is not None
            scored = evaluate_without_boxes(out, holdout, 32, true_boxes=False)
            photos = count_persons(out)
            figures = {
                "oks_ap": round(scored["oks_ap"], 4),
                "box_ap": round(scored["box_ap"], 4),
                "recall": round(scored["persons_matched"] / scored["persons_true"], 4),
                "phantoms": scored["phantoms"],
                "real_photos_right": sum(bool(row["ok"]) for row in photos),
                "steps": card.params["detector"]["steps"],  # train_detector's record of the run
            }
            results[name].append(figures)
            emit("fine_tune", name=name, round=round_, first=args.first, **values, photos=len(photos),
                 threshold=card.detector.score_threshold, persons_true=scored["persons_true"], **figures)  # fmt: skip
    base = {k: round(statistics.median(r[k] for r in results["baseline"]), 4) for k in FIGURES}
    for name, runs in results.items():
        median = {k: round(statistics.median(r[k] for r in runs), 4) for k in FIGURES}
        emit("median", name=name, **median, **{f"{k}_change": round(median[k] - base[k], 4) for k in FIGURES})


if __name__ == "__main__":
    main()
