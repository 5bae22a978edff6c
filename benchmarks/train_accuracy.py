"""Accuracy bar of the default `cpu` configuration: OKS AP on held-out studio (>= 0.85) and street.

    .venv/bin/python benchmarks/train_accuracy.py [--minutes 20] [--work var/bench/train_accuracy]

Generates the studio training set (train.seed_count images) and held-out studio and street sets
(synth.holdout_count each, other seeds), trains with params.yaml's `train` section for at most
`--minutes` of wall clock, and evaluates the exported ONNX artifact the way `posewheel evaluate`
does. The baseline, measured in the same run, is the same network untrained. One JSON line per
figure. Heavy: run it alone, in the background, on a quiet machine if there is one.
"""

from __future__ import annotations

import argparse
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

import training  # noqa: F401  (passive OpenMP waits, before torch loads)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # as a script, sys.path[0] is benchmarks/

from tests.support.figures import emit as emit_figure

STUDIO_BAR = 0.85


emit = partial(emit_figure, benchmark="train_accuracy")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=20.0, help="training budget (the bar's 20 minutes)")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--work", type=Path, default=Path("var/bench/train_accuracy"), help="data and models go here")
    args = parser.parse_args()

    import os

    from posewheel.params import load_params
    from posewheel.synth import generate
    from training.artifact_export import write_artifact
    from training.config import TrainConfig
    from training.evaluate import evaluate_artifact
    from training.model import NetConfig, PoseNet
    from training.train import train

    params = load_params(args.params)
    synth = params.get("synth", {})
    overrides: dict[str, Any] = {"wandb": os.environ.get("WANDB_MODE") != "disabled"}
    overrides["max_minutes"] = args.minutes
    config = TrainConfig.from_params(params, **overrides)
    sets = {
        "studio_train": ("studio", int(synth.get("seed_count", 1500)), 0),
        "studio_holdout": ("studio", int(synth.get("holdout_count", 300)), 1001),
        "street_holdout": ("street", int(synth.get("holdout_count", 300)), 1002),
    }
    for name, (domain, count, seed) in sets.items():
        if not (args.work / name / "annotations.json").is_file():
            generate(domain, count, seed, args.work / name, workers=2)

    untrained_net = PoseNet(NetConfig(config.backbone, config.head_channels))
    baseline = args.work / "models" / "m-untrained"
    write_artifact(baseline, untrained_net, config.input_spec, "m-untrained", {}, config.to_dict())
    start = time.monotonic()
    artifact = train(config, [(args.work / "studio_train", 1.0)], args.work / "models", log_dir=args.work / "logs")
    minutes = (time.monotonic() - start) / 60
    emit(
        "train_minutes",
        value=round(minutes, 2),
        budget=config.max_minutes,
        backbone=config.backbone,
        input=f"{config.input_height}x{config.input_width}",
        artifact=str(artifact),
    )
    for holdout in ("studio_holdout", "street_holdout"):
        trained = evaluate_artifact(artifact, args.work / holdout)
        untrained = evaluate_artifact(baseline, args.work / holdout)
        bar = STUDIO_BAR if holdout == "studio_holdout" else None
        emit(
            f"{holdout}_oks_ap",
            value=round(trained["oks_ap"], 4),
            baseline_untrained=round(untrained["oks_ap"], 4),
            bar=bar,
            passed=None if bar is None else trained["oks_ap"] >= bar,
            **{k: round(v, 4) for k, v in trained.items() if k != "oks_ap"},
        )


if __name__ == "__main__":
    main()
