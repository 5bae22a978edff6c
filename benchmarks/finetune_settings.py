"""Which fine-tune settings turn corrected street labels into the most street AP per CPU-minute?

    .venv/bin/python benchmarks/finetune_settings.py --base models/production        # ~5 min a variant
    .venv/bin/python benchmarks/finetune_settings.py --variant lr4=lr=0.004 --variant b64=batch_size=64
    .venv/bin/python benchmarks/finetune_settings.py --base <first model> --feedback <a loop's labels> --minutes 10.5 \
        --variant lr2=lr=0.0002     # session 13's replay of a real turn (docs/flywheel.md)

One studio-only model (`--base`, or trained here for `--base-minutes`) is fine-tuned, as the `train`
stage does it (seed set plus the labels at the feedback weight, warm start), on the same N random
street labels (or a loop's own corrected labels, `--feedback DIR`) for the same wall-clock minutes,
once per variant; then both holdouts and the real-photo check set are scored (and `--scenes`, a set of several
people a picture, with its true boxes and without boxes).
The baseline is the first variant, `baseline` (the train stage's fine-tune settings, unchanged),
measured in the same run. A variant is `name=key=value[,key=value]` over params.yaml's `train`
keys. The defaults replay the comparison behind `channels_last` and `finetune_lr`
(docs/flywheel.md): NCHW and lr 0.002 against today's settings. One JSON line per variant, then
each variant's street and studio AP change against the baseline.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from functools import partial
from pathlib import Path

import training  # noqa: F401  (passive OpenMP waits, before torch loads)
from flywheel.experiment import base_model, generate_missing, pipeline_sets, steps_logged, street_pool, subset
from flywheel.experiment import measure as experiment_measure
from flywheel.pipeline import ONE_PERSON_AGREEMENT, REAL_PHOTOS, SMALL_PEOPLE_AGREEMENT, SMALL_PEOPLE_SERVED_AGREEMENT
from flywheel.promotion import decide, real_tolerance
from flywheel.stages.promote import served_floor
from posewheel.artifact import load_card

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # as a script, sys.path[0] is benchmarks/

from tests.support.figures import emit as emit_figure
from tests.support.variants import parse_variant

DEFAULT_VARIANTS = ("nchw_lr2=channels_last=false,lr=0.002", "nhwc_lr2=lr=0.002")


emit = partial(emit_figure, benchmark="finetune_settings")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", action="append", default=None, help="name=key=value[,key=value]; repeatable")
    parser.add_argument("--labels", type=int, default=287, help="random street labels (the demo corrects 287)")
    parser.add_argument(
        "--feedback", type=Path, default=None, help="a COCO folder of corrected labels (a loop's) instead of --labels"
    )
    parser.add_argument("--minutes", type=float, default=4.0, help="fine-tune wall clock per variant")
    parser.add_argument("--base", type=Path, default=None, help="start from this artifact instead of training one")
    parser.add_argument("--base-minutes", type=float, default=None, help="training budget of the base model")
    parser.add_argument(
        "--scenes",
        type=Path,
        default=None,
        help="a COCO set of several people a picture, also scored with and without boxes",
    )
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--work", type=Path, default=Path("var/bench/finetune_settings"), help="data and models")
    args = parser.parse_args()
    variants = [("baseline", {}), *(parse_variant(v) for v in (args.variant or DEFAULT_VARIANTS))]

    from posewheel import dataset as coco
    from posewheel.params import load_params
    from training.config import TrainConfig
    from training.train import train

    params = load_params(args.params)
    synth = params.get("synth", {})
    work = args.work
    sets = pipeline_sets(synth)
    if args.feedback is None:
        sets["pool"] = street_pool(synth, args.labels, index=99)
    generate_missing(sets, work, size=int(synth.get("image_size", 256)))
    if args.feedback is None:
        pool = coco.load(work / "pool")
        feedback = subset(pool, [a.id for a in pool.annotations][: args.labels], work / "feedback")
    else:
        feedback = args.feedback
        emit("feedback", path=str(feedback), labels=len(coco.load(feedback).annotations))

    base = base_model(args.base, args.base_minutes, params, work)

    measure = partial(experiment_measure, work=work, scenes=args.scenes)

    base_figures = measure(base)
    emit("base", **base_figures, base=str(base))
    tune = dataclasses.replace(
        TrainConfig.from_params(params, fine_tune=True), wandb=False, max_minutes=args.minutes, epochs=10_000
    )
    weight = tune.feedback_weight
    results: dict[str, dict[str, float]] = {}
    for name, values in variants:
        config = dataclasses.replace(tune, **values)
        config.check()
        start = time.monotonic()
        version = f"m-{name.replace('_', '-')}"
        sources = [(work / "seed", 1.0), (feedback, weight)]
        log_dir = work / "logs" / name
        artifact = train(config, sources, work / "models", warm_start=base, version=version, log_dir=log_dir)
        steps = steps_logged(log_dir / "metrics.csv")
        results[name] = measure(artifact)
        img_per_s = round(steps * config.batch_size / (args.minutes * 60), 1)
        wall_minutes = round((time.monotonic() - start) / 60, 2)
        emit(
            "variant", name=name, **values, **results[name], steps=steps, img_per_s=img_per_s, wall_minutes=wall_minutes
        )
    ref = results["baseline"]
    for name, got in results.items():
        if name != "baseline":
            street_change = round(got["street_oks_ap"] - ref["street_oks_ap"], 4)
            studio_change = round(got["studio_oks_ap"] - ref["studio_oks_ap"], 4)
            emit("against_baseline", name=name, street_change=street_change, studio_change=studio_change)
    rule = params.get("promote", {})
    margin, tolerance = float(rule["street_margin"]), float(rule["studio_tolerance"])
    real = real_tolerance(rule.get("real_tolerance"), base)  # the base stands for production
    # the variants share the base's lineage and detector: one floor, the pretrained start scored once
    floor = served_floor(rule.get("served_floor"), load_card(base))
    for name, got in results.items():  # each as the promote stage would judge it against the base as production
        candidate, production = _as_metrics(got), _as_metrics(base_figures)
        decision = decide(candidate, production, margin, tolerance, real, floor)
        without = decide(candidate, production, margin, tolerance)
        emit("promotion", name=name, promoted=decision.promote, reason=decision.reason, without_real=without.promote)


def _as_metrics(figures: dict[str, float]) -> dict[str, dict[str, float]]:
    """A variant's figures as the promotion rule reads a model's metrics."""
    served = "small_people_served_agreement"  # measured where the model has a person detector
    return {
        "street": {"oks_ap": figures["street_oks_ap"]},
        "studio": {"oks_ap": figures["studio_oks_ap"]},
        REAL_PHOTOS: {
            ONE_PERSON_AGREEMENT: figures["one_person_agreement"],
            SMALL_PEOPLE_AGREEMENT: figures["small_people_agreement"],
        }
        | ({SMALL_PEOPLE_SERVED_AGREEMENT: figures[served]} if served in figures else {}),
    }


if __name__ == "__main__":
    main()
