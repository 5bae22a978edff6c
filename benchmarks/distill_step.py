"""What distillation costs a training step: the real crops in the drawn batch's pass, or a pass of their own.

    .venv/bin/python benchmarks/distill_step.py [--steps 20] [--rounds 2] [--distill-batch 2]

Lightning fits a loop's fine-tune (params.yaml's, distillation on) through the real data pipeline (PoseDataModule on a
fresh synthetic studio set, train.num_workers workers, batches of train.batch_size) three ways, in
rounds (A B C, A B C, ...: the load on a shared machine drifts):

- `none`: no distillation (distill_weight 0), the baseline;
- `two_passes`: the distilling step as it was until session 24, the drawn batch's pass, then the real
  crops through the network again (PoseModel.distill_penalty);
- `one_pass`: the distilling step as training runs it, both in one pass (movenet_distilled_loss).

One JSON line per mode (median seconds a step over the rounds, steps per 9 minutes, the ratio to
`none`), then the one-pass step against the two-pass one. The network's weights are random: the
cost of a step does not depend on them.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from functools import partial
from pathlib import Path

import training  # noqa: F401  passive OpenMP waits and glibc's kept memory, before torch loads

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # as a script, sys.path[0] is benchmarks/

from tests.support.figures import emit as emit_figure
from tests.support.fit_clock import seconds_a_step

emit = partial(emit_figure, benchmark="distill_step")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="timed steps of each fit")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps before them")
    parser.add_argument("--rounds", type=int, default=2, help="fits of each mode, interleaved")
    parser.add_argument("--distill-batch", type=int, default=None, help="real crops a step (default: the fine-tune's)")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args()

    import torch

    from posewheel.params import load_params
    from posewheel.synth import generate
    from training.config import TrainConfig
    from training.data import PoseDataModule
    from training.lightning_module import PoseModel, step_loss

    params = load_params(args.params)
    tune = TrainConfig.from_params(params, fine_tune=True)  # a loop's fine-tune: its frozen stages, its crops
    crops = args.distill_batch or tune.distill_batch
    weight = tune.distill_weight or 0.3
    config = TrainConfig.from_params(
        params, fine_tune=True, wandb=False, val_fraction=0.0, distill_weight=weight, distill_batch=crops
    )

    class TwoPasses(PoseModel):
        """The distilling step before session 24: the drawn batch, then the real crops in a pass of their own."""

        def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
            loss = step_loss(self.net, batch, self.config)[0]
            distill = self.distill_penalty()
            assert distill is not None
            return loss + distill

    modes = {
        "none": lambda: PoseModel({**config.to_dict(), "distill_weight": 0.0}),
        "two_passes": lambda: TwoPasses(config.to_dict()),
        "one_pass": lambda: PoseModel(config.to_dict()),
    }
    times: dict[str, list[float]] = {name: [] for name in modes}
    with tempfile.TemporaryDirectory(prefix="pw-distill-step-") as tmp:
        data = Path(tmp) / "studio"
        generate("studio", (args.steps + args.warmup + 2) * config.batch_size, 0, data)
        datamodule = PoseDataModule(config, [(data, 1.0)])
        datamodule.setup("fit")
        for _ in range(args.rounds):
            for name, build in modes.items():
                times[name].append(seconds_a_step(build(), datamodule, args.steps, args.warmup))
    none = statistics.median(times["none"])
    for name, seconds in times.items():
        step = statistics.median(seconds)
        emit(
            "seconds_a_step",
            mode=name,
            value=round(step, 3),
            each=[round(s, 3) for s in seconds],
            steps_in_9_min=int(9 * 60 / step),
            against_none=round(step / none, 3),
            batch_size=config.batch_size,
            distill_batch=0 if name == "none" else crops,
        )
    one, two = statistics.median(times["one_pass"]), statistics.median(times["two_passes"])
    emit(
        "one_pass_against_two",
        value=round(one / two, 3),
        extra_one=round(one - none, 3),
        extra_two=round(two - none, 3),
    )


if __name__ == "__main__":
    main()
