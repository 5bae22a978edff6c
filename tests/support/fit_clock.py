"""Seconds a training step takes when Lightning fits a model through its real data pipeline.

    seconds = seconds_a_step(PoseModel(config.to_dict()), datamodule, steps=20, warmup=5)

A CPU fit of `warmup + steps + 1` batches, no validation, logging or checkpoints; the clock starts
at the first timed step's start (after the warm-up: data workers started, allocations made).
"""

from __future__ import annotations

import time
from typing import Any


def seconds_a_step(model: Any, datamodule: Any, steps: int, warmup: int) -> float:
    """Mean seconds between the starts of `steps` consecutive training steps, after `warmup` untimed ones."""
    import lightning.pytorch as L

    class StepClock(L.Callback):
        def __init__(self) -> None:
            self.marks: list[float] = []

        def on_train_batch_start(self, *_: Any) -> None:
            self.marks.append(time.perf_counter())

    clock = StepClock()
    trainer = L.Trainer(
        max_steps=warmup + steps + 1,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        callbacks=[clock],
    )
    trainer.fit(model, datamodule=datamodule)
    marks = clock.marks[warmup:]
    return (marks[-1] - marks[0]) / (len(marks) - 1)
