"""A real trained artifact for the whole session: `trained_artifact` (models/<version> folder).

    def test_something(trained_artifact: Path) -> None:
        card = load_card(trained_artifact)   # model.onnx, card.json, weights.pt

Trained by `training.train.train` on the `studio_set` fixture for about 25 s of wall clock (no W&B),
so it is a real, exported, warm-startable model, but not an accurate one: tests that need accuracy
train their own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import training  # noqa: F401  (sets OMP_WAIT_POLICY=PASSIVE before any test loads torch)
from posewheel.dataset import Dataset

TRAINED_VERSION = "m-test-trained"


def quick_config(**overrides: Any) -> Any:
    """A cpu TrainConfig sized for tests: small batches, no W&B, data loading in-process."""
    from training.config import TrainConfig

    values: dict[str, Any] = {
        "config": "cpu",  # the small from-scratch network: seconds per test, no pretrained cache
        "batch_size": 16,
        "num_workers": 0,
        "wandb": False,
        "val_fraction": 0.1,
        "max_val": 8,
        "warmup_steps": 10,
        "epochs": 1000,
        "max_minutes": 0.4,
        "lr": 3e-3,
    }
    values.update(overrides)
    return TrainConfig.from_section(values)


@pytest.fixture(scope="session")
def trained_artifact(tmp_path_factory: pytest.TempPathFactory, studio_set: Dataset) -> Path:
    """An artifact folder trained on `studio_set` (25 s cap); version `m-test-trained`."""
    from training.train import train

    assert studio_set.root is not None
    models = tmp_path_factory.mktemp("trained") / "models"
    return train(
        quick_config(), [(studio_set.root, 1.0)], models, version=TRAINED_VERSION, log_dir=models.parent / "logs"
    )


@pytest.fixture(scope="session")
def pretrained_artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The artifact a fresh install serves (`posewheel pretrained promote movenet-lightning --production`):
    MoveNet Lightning with its CenterNet detector, production of its own models folder. Tests only read it."""
    from posewheel import artifact
    from training.pretrained import export_pretrained

    models = tmp_path_factory.mktemp("pretrained-models")
    folder = export_pretrained("movenet-lightning", models)
    artifact.promote(models, folder.name)
    return folder
