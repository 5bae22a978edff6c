"""One training configuration for `posewheel train` and the DVC `train` stage: the first model from
params.yaml's `train` section, each fine-tune from `train.finetune_*`."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from posewheel.params import load_params
from training.config import ConfigError, TrainConfig


def test_a_fine_tune_takes_its_own_minutes_and_learning_rate_from_params_yaml() -> None:
    params = load_params("params.yaml")
    section = params["train"]
    first, fine = TrainConfig.from_params(params), TrainConfig.from_params(params, fine_tune=True)
    assert (first.max_minutes, first.lr) == (section["max_minutes"], section["lr"])
    assert (fine.max_minutes, fine.lr) == (section["finetune_max_minutes"], section["finetune_lr"])
    assert first.lr != fine.lr  # the defaults do differ, so the test can tell them apart
    # what a loop's fine-tune does against forgetting real people comes from params.yaml (docs/real-photos.md)
    custom = {"train": {**section, "finetune_distill_weight": 0.7, "finetune_interpolation": 0.5}}
    first, fine = TrainConfig.from_params(custom), TrainConfig.from_params(custom, fine_tune=True)
    assert (first.distill_weight, first.interpolation) == (section["distill_weight"], 1.0)
    assert (fine.distill_weight, fine.interpolation) == (0.7, 0.5)
    plain = {"train": {k: v for k, v in section.items() if not k.startswith("finetune_")}}
    assert TrainConfig.from_params(plain, fine_tune=True).lr == section["lr"]  # no finetune_* key: the section's own


def test_a_loops_detector_takes_its_own_minutes_from_params_yaml() -> None:
    params = load_params("params.yaml")
    section = params["detector"]
    first = TrainConfig.for_detector(params)
    fine = TrainConfig.for_detector(params, fine_tune=True)
    assert (first.max_minutes, fine.max_minutes) == (section["max_minutes"], section["finetune_max_minutes"])
    assert first.max_minutes != fine.max_minutes  # the defaults do differ, so the test can tell them apart
    assert first.distill_weight == fine.distill_weight == section["distill_weight"] > 0  # real photos kept
    assert section["fine_tune"] and "fine_tune" not in first.extra  # the stage's switch, not a training parameter


def test_a_finetune_key_must_name_a_training_parameter() -> None:
    with pytest.raises(ConfigError, match=r"train\.finetune_lrate"):
        TrainConfig.from_params({"train": {"finetune_lrate": 0.1}})
    with pytest.raises(ConfigError, match=r"detector\.finetune_minutes"):
        TrainConfig.for_detector({"detector": {"finetune_minutes": 1}})


def test_the_cli_and_the_stage_build_the_same_configuration(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """`posewheel train --warm-start DIR` fine-tunes with exactly the configuration `dvc repro` uses."""
    from training import train as train_module
    from training.cli import train_command

    seen: list[TrainConfig] = []

    def fake_train(config: TrainConfig, sources: object, models_dir: Path, **_: object) -> Path:
        seen.append(config)
        return models_dir

    monkeypatch.setattr(train_module, "train", fake_train)
    (tmp_path / "data").mkdir()
    (tmp_path / "production").mkdir()
    train_command(data=[str(tmp_path / "data")], warm_start=str(tmp_path / "production"), models_dir=tmp_path)
    expected = TrainConfig.from_params(load_params("params.yaml"), fine_tune=True)
    assert [dataclasses.asdict(c) for c in seen] == [dataclasses.asdict(expected)]


def test_the_train_stage_fine_tunes_the_detector_on_the_seed_scenes(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, pretrained_artifact: Path
) -> None:
    """detector.fine_tune: the candidate's detector is trained (for real, a few steps) on the studio scenes
    (+ feedback), not on the pose seed set of one centred person per image."""
    import shutil

    import yaml

    from flywheel.pipeline import PipelinePaths
    from flywheel.stages import train as stage
    from posewheel.artifact import load_card
    from posewheel.synth import generate
    from training import train as train_module

    params = load_params("params.yaml")
    params["detector"] = {"fine_tune": True, "max_minutes": 0.2, "epochs": 1, "batch_size": 2, "num_workers": 0}
    params["train"]["wandb"] = False
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    paths = PipelinePaths(tmp_path)
    generate("studio", 2, 4, paths.seed, workers=1)  # the pose seed: one person each, not the detector's
    generate("street", 6, 5, paths.seed_scenes, persons=(0, 3), workers=1)

    def pose_training(config: TrainConfig, sources: object, models_dir: Path, **_: object) -> Path:
        return Path(shutil.copytree(pretrained_artifact, models_dir / "built"))  # the pose net is not the subject

    monkeypatch.setattr(train_module, "train", pose_training)
    stage.run(paths)
    record = load_card(paths.candidate).params["detector"]
    assert record["steps"] >= 1, record
    assert str(paths.seed_scenes) in json.dumps(record) and f'"{paths.seed}"' not in json.dumps(record)
    assert (paths.candidate / "detector.pt").is_file()  # the next fine-tune continues from it


def test_the_evaluate_stage_scores_the_street_scenes_without_boxes(tmp_path: Path, pretrained_artifact: Path) -> None:
    """metrics/candidate/street_scenes.json: the candidate's detector finds the people (OKS AP, box AP, misses
    and phantoms counted) beside the same network given the true boxes; promote carries it into the card.
    metrics/candidate/real_photos.json: its agreement with the pretrained MoveNet on real photographs."""
    import shutil

    import yaml

    from flywheel.pipeline import REAL_PHOTOS, SCENES_HOLDOUT, PipelinePaths
    from flywheel.stages import evaluate, synth
    from posewheel import dataset as coco

    params = load_params("params.yaml")
    params["synth"].update(
        {"seed_count": 2, "holdout_count": 4, "scenes_count": 12, "seed_scenes_count": 5, "scene_persons": [0, 3]}
    )
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    paths = PipelinePaths(tmp_path)
    synth.run(paths)
    assert len(coco.load(paths.seed_scenes).images) == 5  # the detector's seed set, several people per image
    shutil.copytree(pretrained_artifact, paths.candidate)
    results = evaluate.run(paths)
    written = json.loads((paths.candidate_metrics / f"{SCENES_HOLDOUT}.json").read_text())
    assert written == pytest.approx({k: round(v, 6) for k, v in results[SCENES_HOLDOUT].items()}, nan_ok=True)
    assert {"oks_ap", "box_ap", "true_boxes_oks_ap", "persons_missed", "phantoms"} <= written.keys()
    assert 0.0 <= written["oks_ap"] <= 1.0 and 0.0 < written["true_boxes_oks_ap"] <= 1.0
    assert written["images"] == 12
    real = json.loads((paths.candidate_metrics / f"{REAL_PHOTOS}.json").read_text())
    assert real["agreement@0.05"] == 1.0 and real["keypoints"] >= 60  # the pretrained network agrees with itself
    assert real["one_person_agreement@0.05"] == 1.0 and real["one_person_keypoints"] < real["keypoints"]
    assert real["small_people_agreement@0.05"] == 1.0 and real["small_people_keypoints"] >= 300  # pasted smaller too


def test_scene_persons_must_be_a_pair_of_counts() -> None:
    from flywheel.stages.synth import scene_persons

    assert scene_persons({"scene_persons": [0, 4]}) == (0, 4)
    with pytest.raises(ValueError, match=r"synth\.scene_persons"):
        scene_persons({"scene_persons": "0-4"})
