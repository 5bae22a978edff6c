"""Does mixing a fine-tune's weights with its parent's keep real people without giving back the street gain?

    .venv/bin/python benchmarks/finetune_interpolate.py --parent <first model> --tuned <its fine-tune> \
        --alphas 0 0.25 0.5 0.75 1 [--anchor pretrained] [--work var/bench/finetune_interpolate]

Weight-space ensembling of a fine-tune (WiSE-FT, Wortsman et al. 2022): the network whose weights are
anchor + alpha x (tuned - anchor), alpha 1 being the fine-tune and 0 the anchor. The anchor is the
fine-tune's parent (its warm start) or Google's pretrained MoveNet (`--anchor pretrained`). For each
alpha the mixed network is exported as an artifact (the fine-tune's card and detector) and scored as
the loop scores a candidate: street and studio holdout OKS AP, and real-photo agreement with the
original MoveNet (training/realphotos.py), on the check set and on its small-people pictures. No
training: each alpha costs an export and the scoring.
One JSON line per alpha.
"""

from __future__ import annotations

import argparse
import sys
import time
from functools import partial
from pathlib import Path

import training  # noqa: F401  (passive OpenMP waits, before torch loads)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # as a script, sys.path[0] is benchmarks/

from tests.support.figures import emit as emit_figure

emit = partial(emit_figure, benchmark="finetune_interpolate")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parent", type=Path, required=True, help="the fine-tune's warm start (an artifact)")
    parser.add_argument("--tuned", type=Path, required=True, help="the fine-tuned artifact")
    parser.add_argument("--anchor", choices=("parent", "pretrained"), default="parent")
    parser.add_argument("--alphas", type=float, nargs="+", default=[0.0, 0.25, 0.5, 0.75, 1.0])
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--work", type=Path, default=Path("var/bench/finetune_interpolate"), help="holdouts, models")
    args = parser.parse_args()

    from flywheel.experiment import generate_missing, pipeline_sets
    from posewheel.artifact import load_card
    from posewheel.params import load_params
    from training.artifact_export import inherited_detector, load_weights, write_artifact
    from training.config import TrainConfig
    from training.evaluate import evaluate_artifact
    from training.lightning_module import build_network
    from training.movenet import load_pretrained
    from training.realphotos import agreement, small_people_agreement
    from training.train import interpolate_towards

    synth = load_params(args.params).get("synth", {})
    sets = {name: spec for name, spec in pipeline_sets(synth).items() if name.startswith("holdout")}
    generate_missing(sets, args.work, size=int(synth.get("image_size", 256)))
    card = load_card(args.tuned)
    config = TrainConfig.from_section({**card.params, "wandb": False})
    tuned = load_weights(args.tuned)
    if args.anchor == "parent":
        anchor = load_weights(args.parent)
    else:
        anchor = load_pretrained(str(config.pretrained)).state_dict()
    net = build_network(config)
    for alpha in args.alphas:
        start = time.monotonic()
        net.load_state_dict(tuned)
        interpolate_towards(net, anchor, alpha)  # what the train stage does with train.interpolation
        version = f"m-mix-{args.anchor}-{round(alpha * 100):03d}"
        folder = write_artifact(
            args.work / "models" / version,
            net,
            config.input_spec,
            version,
            card.data,
            {**card.params, "interpolation": {"anchor": args.anchor, "alpha": alpha}},
            parent_version=card.parent_version,
            kind=card.output.kind,
            pretrained=card.pretrained.model_dump() if card.pretrained else None,
            detector=inherited_detector(args.tuned),
        )
        emit(
            "mix",
            anchor=args.anchor,
            alpha=alpha,
            street_oks_ap=round(evaluate_artifact(folder, args.work / "holdout_street")["oks_ap"], 4),
            studio_oks_ap=round(evaluate_artifact(folder, args.work / "holdout_studio")["oks_ap"], 4),
            real_agreement=round(agreement(folder)["agreement@0.05"], 3),
            small_people_agreement=round(small_people_agreement(folder)["small_people_agreement@0.05"], 3),
            seconds=round(time.monotonic() - start, 1),
            parent=str(args.parent),
            tuned=str(args.tuned),
        )


if __name__ == "__main__":
    main()
