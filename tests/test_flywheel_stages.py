"""The `train` stage's configuration: the first model from `train`, each fine-tune from `train.finetune_*`."""

from __future__ import annotations

from flywheel.stages.train import train_config
from training.config import load_params


def test_a_fine_tune_takes_its_own_minutes_and_learning_rate_from_params_yaml() -> None:
    params = load_params("params.yaml")
    section = params["train"]
    first, fine = train_config(params, fine_tune=False), train_config(params, fine_tune=True)
    assert (first.max_minutes, first.lr) == (section["max_minutes"], section["lr"])
    assert (fine.max_minutes, fine.lr) == (section["finetune_max_minutes"], section["finetune_lr"])
    assert first.lr != fine.lr  # the defaults do differ, so the test can tell them apart
    plain = {"train": {k: v for k, v in section.items() if not k.startswith("finetune_")}}
    assert train_config(plain, fine_tune=True).lr == section["lr"]  # no finetune_* key: the section's own
