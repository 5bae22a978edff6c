"""Which first model should the loop start from: today's from-scratch `cpu` network, or the pretrained MoveNet?

    .venv/bin/python benchmarks/first_model.py [--minutes 12] [--arms cpu,movenet-lightning] [--work DIR]
    .venv/bin/python benchmarks/first_model.py --arms "movenet-lightning;movenet-lightning:anchor_weight=0.05"

Trains each arm on the same studio seed set for the same wall-clock minutes, all arms at once, one
thread each (so a busy machine slows every arm alike), then evaluates each exported artifact on
held-out studio and street sets (OKS AP, the metric promotion uses) and on the real-photo check set
(agreement with the original MoveNet, training/realphotos.py). The baseline, measured in the same
run, is the pretrained MoveNet untrained (`posewheel pretrained promote`). One JSON line per figure.
Heavy: run it alone, in the background.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # as a script, sys.path[0] is benchmarks/

from tests.support.figures import emit as emit_figure

emit = partial(emit_figure, benchmark="first_model")
# Per-arm settings on top of params.yaml's `train` section (the pretrained network wants small steps).
ARM_OVERRIDES = {
    "cpu": {},
    "movenet-lightning": {"lr": 0.0002},
    "movenet-thunder": {"lr": 0.0002},
}


def slug(arm: str) -> str:
    """An arm as a file and version name: `movenet-lightning:anchor_weight=0.05` -> `...-anchor_weight-0.05`."""
    return arm.replace(":", "-").replace("=", "-")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=12.0, help="training budget of each arm")
    parser.add_argument(
        "--arms",
        default="cpu,movenet-lightning",
        help="train.config names, separated by ',' or ';'; CONFIG:key=value:key=value overrides train keys",
    )
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--work", type=Path, default=Path("var/bench/first_model"), help="data and models go here")
    args = parser.parse_args()

    from posewheel.params import load_params
    from posewheel.synth import generate
    from training.evaluate import evaluate_artifact
    from training.pretrained import export_pretrained
    from training.realphotos import agreement

    params = load_params(args.params)
    synth = params.get("synth", {})
    sets = {
        "studio_train": ("studio", int(synth.get("seed_count", 1500)), 0),
        "studio_holdout": ("studio", int(synth.get("holdout_count", 300)), 1001),
        "street_holdout": ("street", int(synth.get("holdout_count", 300)), 1002),
    }
    for name, (domain, count, seed) in sets.items():
        if not (args.work / name / "annotations.json").is_file():
            generate(domain, count, seed, args.work / name, workers=2, truth_dir=args.work / "truth")

    models = args.work / "models"
    arms = [a.strip() for a in args.arms.replace(";", ",").split(",") if a.strip()]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "WANDB_MODE": "offline"}
    procs = {}
    for arm in arms:
        config, *pairs = arm.split(":")
        overrides = {k: yaml.safe_load(v) for k, _, v in (p.partition("=") for p in pairs)}
        section = {**params["train"], "config": config, **ARM_OVERRIDES.get(config, {}), **overrides}
        section.update({"max_minutes": args.minutes, "num_workers": 1, "warm_start": False, "wandb": False})
        arm_params = args.work / f"params-{slug(arm)}.yaml"
        arm_params.write_text(yaml.safe_dump({**params, "train": section}), encoding="utf-8")
        log = (args.work / f"train-{slug(arm)}.log").open("w")
        root = args.work / f"root-{slug(arm)}"  # each run its own metrics/ and var/: two CSV logs in one file clash
        root.mkdir(exist_ok=True)
        data, version = str(args.work / "studio_train"), f"first-{slug(arm)}"
        cmd = [sys.executable, "-m", "posewheel.cli", "train", "--data", data, "--params", str(arm_params)]
        cmd += ["--models-dir", str(models), "--version", version]
        arm_env = {**env, "POSEWHEEL_ROOT": str(root.resolve())}
        procs[arm] = (subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=arm_env), time.monotonic(), log)
    baseline = export_pretrained("movenet-lightning", models)
    for arm, (proc, start, log) in procs.items():
        code = proc.wait()
        log.close()
        if code != 0:
            raise SystemExit(f"training arm {arm} failed ({code}); see {args.work / f'train-{slug(arm)}.log'}")
        emit(f"{arm}_train_minutes", value=round((time.monotonic() - start) / 60, 2), budget=args.minutes)

    results = {arm: models / f"first-{slug(arm)}" for arm in arms}
    for holdout in ("studio_holdout", "street_holdout"):
        base = evaluate_artifact(baseline, args.work / holdout)
        for arm, artifact in results.items():
            got = evaluate_artifact(artifact, args.work / holdout)
            rest = {k: round(v, 4) for k, v in got.items() if k != "oks_ap"}
            base_ap = round(base["oks_ap"], 4)
            emit(
                f"{arm}_{holdout}_oks_ap", value=round(got["oks_ap"], 4), baseline_pretrained_untrained=base_ap, **rest
            )
    base_real = agreement(baseline)
    for arm, artifact in results.items():
        real = agreement(artifact)
        base_agreement = round(base_real["agreement@0.05"], 4)
        emit(
            f"{arm}_real_photo_agreement",
            value=round(real["agreement@0.05"], 4),
            baseline_pretrained_untrained=base_agreement,
            median_error=round(real["median_error"], 4),
        )


if __name__ == "__main__":
    main()
