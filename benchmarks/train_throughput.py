"""Does the data pipeline starve the model? Training img/s through the real pipeline vs model-only.

    .venv/bin/python benchmarks/train_throughput.py [--steps 30] [--batch-size 32]

Same run, same batch size, same LightningModule: first forward+backward+AdamW on one fixed batch
already in memory (model-only), then Lightning fitting through PoseDataModule (decode, crop,
v2 augmentation, targets; train.num_workers workers) on a fresh synthetic studio set. Prints one
JSON line per figure; the bar is pipeline >= 80% of model-only. Then the same fit with
`channels_last` off (NCHW activations, the PyTorch default) as the baseline of the layout choice.
`--measure allocator` compares glibc's malloc at its defaults (freed activations go back to the
kernel) with `training.keep_freed_memory` (they stay for the next step): one fit per process
(`--measure pipeline`), ABBA.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import training  # passive OpenMP waits and glibc's kept memory, before torch loads

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # as a script, sys.path[0] is benchmarks/

from tests.support.figures import emit as emit_figure
from tests.support.fit_clock import seconds_a_step

BAR = 0.8


emit = partial(emit_figure, benchmark="train_throughput")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30, help="timed steps of each measurement")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps before each measurement")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--measure", choices=("all", "allocator", "pipeline"), default="all")
    args = parser.parse_args()
    if args.measure == "allocator":
        allocator(args)
        return
    keep_freed = os.environ.get(training.KEEP_FREED_MEMORY_VARIABLE, "1") != "0"

    import torch

    from posewheel.params import load_params
    from posewheel.synth import generate
    from training.config import TrainConfig
    from training.data import PoseDataModule
    from training.lightning_module import PoseModel, step_loss

    config = TrainConfig.from_params(
        load_params(args.params), batch_size=args.batch_size, wandb=False, val_fraction=0.0
    )
    with tempfile.TemporaryDirectory(prefix="pw-throughput-") as tmp:
        data = Path(tmp) / "studio"
        generate("studio", (args.steps + args.warmup + 2) * args.batch_size, 0, data)
        datamodule = PoseDataModule(config, [(data, 1.0)])
        datamodule.setup("fit")

        model = PoseModel(config.to_dict())
        layout = torch.channels_last if config.channels_last else torch.contiguous_format  # as the module holds it
        loader = torch.utils.data.DataLoader(
            torch.utils.data.Subset(datamodule.train_dataloader().dataset, range(args.batch_size)),
            batch_size=args.batch_size,
        )
        batch = next(iter(loader))
        batch["image"] = batch["image"].contiguous(memory_format=layout)
        optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr)

        def model_only() -> float:
            """img/s of forward + the network's losses + backward + AdamW on the in-memory batch."""
            model.train()
            times = []
            for step in range(args.warmup + args.steps):
                start = time.perf_counter()
                step_loss(model.net, batch, model.config)[0].backward()  # what training_step computes
                optimizer.step()
                optimizer.zero_grad()
                if step >= args.warmup:
                    times.append(time.perf_counter() - start)
            return args.batch_size * len(times) / sum(times)

        def fit(channels_last: bool) -> float:
            """img/s of Lightning fitting through the data pipeline, from the first timed step's start."""
            model = PoseModel({**config.to_dict(), "channels_last": channels_last})
            return args.batch_size / seconds_a_step(model, datamodule, args.steps, args.warmup)

        def model_and_layout() -> None:
            before = model_only()  # the load on a shared machine drifts: measure on both sides and average
            pipeline = fit(config.channels_last)
            after = model_only()
            baseline = (before + after) / 2
            emit(
                "model_only_img_per_s",
                value=round(baseline, 2),
                before=round(before, 2),
                after=round(after, 2),
                batch_size=args.batch_size,
                steps=args.steps,
                threads=torch.get_num_threads(),
            )
            emit(
                "pipeline_img_per_s",
                value=round(pipeline, 2),
                batch_size=args.batch_size,
                steps=args.steps,
                num_workers=config.num_workers,
                channels_last=config.channels_last,
            )
            ratio = pipeline / baseline
            emit("pipeline_over_model_only", value=round(ratio, 3), bar=BAR, passed=ratio >= BAR)
            # the layout: NCHW, then the configured layout again, so drift hits both sides alike
            nchw = fit(False)
            again = fit(config.channels_last)
            mine = (pipeline + again) / 2
            emit("pipeline_img_per_s_nchw", value=round(nchw, 2), batch_size=args.batch_size, steps=args.steps)
            emit(
                "channels_last_speedup",
                value=round(mine / nchw, 3),
                channels_last=round(mine, 2),
                nchw=round(nchw, 2),
                runs=[round(pipeline, 2), round(again, 2)],
            )

        if args.measure == "pipeline":
            faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            value = fit(config.channels_last)
            faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
            emit("pipeline_img_per_s", value=round(value, 2), page_faults=faults, keep_freed_memory=keep_freed)
        elif args.measure == "all":
            model_and_layout()


def allocator(args: argparse.Namespace) -> None:
    """Pipeline img/s with glibc's defaults and with freed memory kept, each fit in a process of its own.

    The setting holds for a whole process (it is made at import, and glibc's defaults cannot be set
    back), and a training run is one fit in a fresh process: this is that fit, in the order ABBA so
    that drift hits both sides.
    """
    runs: dict[bool, list[float]] = {False: [], True: []}
    for keep in (False, True, True, False):
        command = [sys.executable, __file__, "--measure", "pipeline", "--steps", str(args.steps)]
        command += ["--warmup", str(args.warmup), "--batch-size", str(args.batch_size), "--params", str(args.params)]
        env = {**os.environ, training.KEEP_FREED_MEMORY_VARIABLE: "1" if keep else "0"}
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
        figure = json.loads(done.stdout.strip().splitlines()[-1])
        runs[keep].append(figure["value"])
        emit("pipeline_img_per_s_allocator", keep_freed=keep, value=figure["value"], page_faults=figure["page_faults"])
    kept, default = statistics.median(runs[True]), statistics.median(runs[False])
    emit(
        "keep_freed_memory_speedup",
        value=round(kept / default, 3),
        kept=round(kept, 2),
        glibc_default=round(default, 2),
    )


if __name__ == "__main__":
    main()
