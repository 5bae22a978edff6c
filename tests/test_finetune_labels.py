"""benchmarks/finetune_labels.py: the label sets it compares, and its check of exported labels against the truth."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from posewheel import dataset as coco
from posewheel.synth import generate
from posewheel.truth import TruthStore
from tests.support.benchmarks import load_benchmark


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return load_benchmark("finetune_labels")


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> tuple[coco.Dataset, TruthStore]:
    root = tmp_path_factory.mktemp("scenes")
    generate("street", 24, 7, root / "traffic", truth_dir=root / "truth", persons=(0, 4))
    return coco.load(root / "traffic"), TruthStore(root / "truth")


def test_random_scenes_take_whole_pictures_of_people_up_to_the_budget(
    bench: ModuleType, scenes: tuple[coco.Dataset, TruthStore], tmp_path: Path
) -> None:
    traffic, _ = scenes
    picked = coco.load(bench.random_scenes(traffic, 20, 1.5, 0, tmp_path / "picked"))
    assert 16 < len(picked.annotations) <= 20  # stops before the picture that would pass the budget (at most 4 each)
    every = traffic.annotations_by_image()
    names = {image.file_name: image.id for image in traffic.images}
    for image in picked.images:  # every person of a picked picture, nobody's pictures skipped
        people = picked.annotations_by_image()[image.id]
        assert people and len(people) == len(every[names[image.file_name]])
    again = coco.load(bench.random_scenes(traffic, 20, 1.5, 0, tmp_path / "again"))
    assert [i.file_name for i in again.images] == [i.file_name for i in picked.images]  # seeded


def test_fidelity_finds_the_truth_in_jittered_labels_and_counts_what_a_bad_export_loses(
    bench: ModuleType, scenes: tuple[coco.Dataset, TruthStore], tmp_path: Path
) -> None:
    traffic, truth = scenes
    persons = len(traffic.annotations)
    exact = bench.fidelity(traffic, truth)
    assert (exact["matched"], exact["missing"], exact["extra"], exact["without_truth"]) == (persons, 0, 0, 0)
    assert exact["joint_error_median_px"] == 0.0
    jittered = coco.load(bench.random_scenes(traffic, persons, 1.5, 0, tmp_path / "jittered"))
    assert 1.3 < bench.fidelity(jittered, truth)["joint_error_median_px"] < 2.3  # 1.77 px for a 1.5 px jitter

    # an export that drops a person, invents one, and hides one person's joints
    first, second = traffic.annotations[0], traffic.annotations[1]
    hidden = first.keypoints.copy()
    hidden[:, 2] = 0
    phantom = dataclasses.replace(second, id=10_000, bbox=(0.0, 0.0, 3.0, 3.0))
    bent = [dataclasses.replace(first, keypoints=hidden), *traffic.annotations[2:], phantom]
    broken = coco.save(coco.Dataset(traffic.images, bent, traffic.root, dict(traffic.info)), tmp_path / "broken")
    found = bench.fidelity(broken, truth)
    assert (found["matched"], found["missing"], found["extra"]) == (persons - 1, 1, 1)
    visibility = np.asarray(found["visibility_truth_by_label"])
    assert visibility[1:, 0].sum() == int((first.keypoints[:, 2] > 0).sum())  # visible in truth, exported unlabeled


def test_describe_tells_scenes_from_single_people(bench: ModuleType, scenes: tuple[coco.Dataset, TruthStore]) -> None:
    traffic, _ = scenes
    held = bench.describe(traffic)
    assert held["persons"] == sum(1 for a in traffic.annotations if a.num_keypoints > 0)
    assert held["persons_a_picture"] > 1.0
    assert 0.0 <= held["cut_by_edge"] <= 1.0 and held["box_side_px"] > 0
