"""GPU and multi-GPU (DDP) training paths: the same code, only parameters change.

These need CUDA and skip with the reason on a CPU-only machine.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from posewheel.artifact import load_card
from posewheel.dataset import Dataset
from tests.support.artifacts import quick_config
from training.evaluate import evaluate_artifact
from training.train import train

CUDA = torch.cuda.is_available()
GPUS = torch.cuda.device_count() if CUDA else 0


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason="needs a CUDA device; this machine has none (torch.cuda.is_available() is False)")
def test_gpu_configuration_trains_in_mixed_precision_and_exports(tmp_path: Path, studio_set: Dataset) -> None:
    assert studio_set.root is not None
    config = quick_config(
        config="gpu", accelerator="gpu", devices=1, precision="16-mixed", batch_size=32, max_minutes=0.5, num_workers=2
    )
    artifact = train(config, [(studio_set.root, 1.0)], tmp_path / "models", version="m-gpu", log_dir=tmp_path / "logs")
    card = load_card(artifact)
    assert (card.input.height, card.input.width) == (256, 192) and card.params["precision"] == "16-mixed"
    assert evaluate_artifact(artifact, studio_set.root)["count"] > 0  # the fp32 ONNX export runs on CPU


@pytest.mark.gpu
@pytest.mark.skipif(GPUS < 2, reason=f"DDP needs at least 2 CUDA devices; this machine has {GPUS}")
def test_ddp_on_two_gpus_trains_one_model(tmp_path: Path, studio_set: Dataset) -> None:
    assert studio_set.root is not None
    # ddp_spawn: pytest cannot be re-launched per rank the way `ddp` re-runs a script; same DDP all-reduce
    config = quick_config(accelerator="gpu", devices=2, strategy="ddp_spawn", max_minutes=0.5)
    artifact = train(config, [(studio_set.root, 1.0)], tmp_path / "models", version="m-ddp", log_dir=tmp_path / "logs")
    assert load_card(artifact).params["devices"] == 2
