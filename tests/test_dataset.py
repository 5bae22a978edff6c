"""Dataset validation names the file, the id and the field of every problem; saving is lossless."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from posewheel.dataset import ANNOTATIONS_FILE, Dataset, DatasetError, load, merge, save
from posewheel.schema import PERSON_CATEGORY


def _person(ann_id: int, image_id: int) -> dict[str, Any]:
    kps = []
    for j in range(17):
        kps += [10 + 3 * j, 20 + 2 * j, 2 if j % 4 else 1]
    return {"id": ann_id, "image_id": image_id, "category_id": 1, "keypoints": kps, "num_keypoints": 17,
            "bbox": [5, 10, 60, 50], "area": 3000, "iscrowd": 0}  # fmt: skip


def _write(root: Path, coco: dict[str, Any], with_images: bool = True) -> Path:
    (root / "images").mkdir(parents=True, exist_ok=True)
    if with_images:
        for img in coco["images"]:
            Image.new("RGB", (img["width"], img["height"])).save(root / "images" / img["file_name"])
    (root / ANNOTATIONS_FILE).write_text(json.dumps(coco))
    return root


@pytest.fixture
def good() -> dict[str, Any]:
    """A valid two-image COCO keypoint dict (80x80 images)."""
    return {
        "images": [{"id": 1, "file_name": "a.png", "width": 80, "height": 80},
                   {"id": 2, "file_name": "b.png", "width": 80, "height": 80}],
        "annotations": [_person(10, 1), _person(11, 2)],
        "categories": [PERSON_CATEGORY],
    }  # fmt: skip


def _problems(tmp_path: Path, coco: dict[str, Any], with_images: bool = True) -> list[str]:
    root = _write(tmp_path / "ds", coco, with_images)
    with pytest.raises(DatasetError) as caught:
        load(root)
    file = str(root / ANNOTATIONS_FILE)
    assert all(p.startswith(file) for p in caught.value.problems), caught.value.problems
    assert file in str(caught.value)
    return caught.value.problems


def test_a_valid_dataset_loads_with_its_keypoints(tmp_path: Path, good: dict[str, Any]) -> None:
    ds = load(_write(tmp_path / "ds", good))
    assert len(ds.images) == 2 and ds.annotations[0].keypoints.shape == (17, 3)
    assert ds.annotations[0].keypoints[1].tolist() == [13, 22, 2]


def test_wrong_keypoint_count_names_annotation_and_field(tmp_path: Path, good: dict[str, Any]) -> None:
    good["annotations"][1]["keypoints"] = good["annotations"][1]["keypoints"][:48]
    [problem] = _problems(tmp_path, good)
    assert "annotation id=11" in problem and "'keypoints'" in problem and "48" in problem


def test_visibility_outside_0_1_2_is_rejected(tmp_path: Path, good: dict[str, Any]) -> None:
    good["annotations"][0]["keypoints"][3 * 4 + 2] = 3
    [problem] = _problems(tmp_path, good)
    assert "annotation id=10" in problem and "'keypoints'" in problem and "joint(s) [4]" in problem


def test_labeled_keypoints_outside_the_image_are_rejected(tmp_path: Path, good: dict[str, Any]) -> None:
    good["annotations"][0]["keypoints"][3 * 6 : 3 * 6 + 3] = [95, 30, 2]
    good["annotations"][0]["keypoints"][3 * 7 : 3 * 7 + 3] = [-4, 30, 1]
    good["annotations"][0]["keypoints"][3 * 8 : 3 * 8 + 3] = [500, 500, 0]  # unlabeled: fine
    problems = _problems(tmp_path, good)
    assert len(problems) == 2 and all("annotation id=10" in p and "'keypoints'" in p for p in problems)
    assert "joint 6 at (95, 30)" in problems[0] and "image 1 (80x80)" in problems[0]


def test_missing_image_files_are_named(tmp_path: Path, good: dict[str, Any]) -> None:
    root = _write(tmp_path / "ds", good)
    (root / "images" / "b.png").unlink()
    with pytest.raises(DatasetError) as caught:
        load(root)
    [problem] = caught.value.problems
    assert "image id=2" in problem and "'file_name'" in problem and "b.png" in problem


def test_duplicate_image_and_annotation_ids_are_rejected(tmp_path: Path, good: dict[str, Any]) -> None:
    good["images"].append(dict(good["images"][0], file_name="c.png"))
    good["annotations"].append(_person(10, 2))
    problems = _problems(tmp_path, good)
    assert any("image id=1" in p and "'id'" in p and "duplicate" in p for p in problems)
    assert any("annotation id=10" in p and "'id'" in p and "duplicate" in p for p in problems)


def test_a_bbox_outside_the_image_is_rejected(tmp_path: Path, good: dict[str, Any]) -> None:
    good["annotations"][1]["bbox"] = [50, 10, 60, 50]
    good["annotations"][0]["bbox"] = [5, 10, 0, 50]
    problems = _problems(tmp_path, good)
    assert any("annotation id=11" in p and "'bbox'" in p and "outside image 2" in p for p in problems)
    assert any("annotation id=10" in p and "'bbox'" in p and "positive size" in p for p in problems)


def test_an_unknown_category_is_rejected(tmp_path: Path, good: dict[str, Any]) -> None:
    good["annotations"][0]["category_id"] = 7
    [problem] = _problems(tmp_path, good)
    assert "annotation id=10" in problem and "'category_id'" in problem and "7" in problem


def test_an_annotation_pointing_at_no_image_is_rejected(tmp_path: Path, good: dict[str, Any]) -> None:
    good["annotations"][0]["image_id"] = 99
    [problem] = _problems(tmp_path, good)
    assert "annotation id=10" in problem and "'image_id'" in problem and "99" in problem


def test_malformed_values_are_reported_not_raised(tmp_path: Path, good: dict[str, Any]) -> None:
    root = _write(tmp_path / "ds", good)
    good["images"][0]["width"] = "wide"
    good["annotations"][1]["keypoints"][0] = "x"
    good["annotations"][0]["bbox"] = [1, 2, "w", 4]
    (root / ANNOTATIONS_FILE).write_text(json.dumps(good))
    with pytest.raises(DatasetError) as caught:
        load(root)
    problems = caught.value.problems
    assert any("image id=1" in p and "'width'" in p for p in problems)
    assert any("annotation id=11" in p and "'keypoints'" in p for p in problems)
    assert any("annotation id=10" in p and "'bbox'" in p for p in problems)


def test_a_malformed_top_level_is_reported(tmp_path: Path, good: dict[str, Any]) -> None:
    good["annotations"] = {"10": good["annotations"][0]}
    [problem] = _problems(tmp_path, good)
    assert "field 'annotations' must be a list" in problem


def test_every_problem_is_listed_at_once(tmp_path: Path, good: dict[str, Any]) -> None:
    good["annotations"][0]["category_id"] = 7
    good["annotations"][1]["bbox"] = [70, 70, 30, 30]
    good["images"][1]["file_name"] = "missing.png"
    problems = _problems(tmp_path, copy.deepcopy(good), with_images=True)
    assert len(problems) >= 2


def test_not_json_and_missing_file_are_dataset_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="file not found"):
        load(tmp_path / "nowhere")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / ANNOTATIONS_FILE).write_text("{not json")
    with pytest.raises(DatasetError, match="not valid JSON"):
        load(tmp_path / "bad")


def test_save_then_load_keeps_everything_and_bytes_are_stable(tmp_path: Path, good: dict[str, Any]) -> None:
    ds = load(_write(tmp_path / "ds", good))
    saved = save(ds, tmp_path / "copy")
    again = load(tmp_path / "copy")
    assert [a.bbox for a in again.annotations] == [a.bbox for a in ds.annotations]
    assert np.array_equal(again.annotations[1].keypoints, ds.annotations[1].keypoints)
    first = (tmp_path / "copy" / ANNOTATIONS_FILE).read_bytes()
    save(again, tmp_path / "copy2")
    assert (tmp_path / "copy2" / ANNOTATIONS_FILE).read_bytes() == first and saved.root == tmp_path / "copy"


def test_save_refuses_an_invalid_dataset_and_keeps_the_old_folder(tmp_path: Path, good: dict[str, Any]) -> None:
    ds = load(_write(tmp_path / "ds", good))
    save(ds, tmp_path / "out")
    ds.annotations[0].keypoints[0, 2] = 5
    with pytest.raises(DatasetError, match="must be 0, 1 or 2"):
        save(ds, tmp_path / "out")
    assert load(tmp_path / "out").annotations[0].keypoints[0, 2] == 1


def test_merge_gives_fresh_ids_and_keeps_images(tmp_path: Path, studio_set: Dataset, good: dict[str, Any]) -> None:
    small = load(_write(tmp_path / "ds", good))
    merged, sources = merge([small, studio_set], info={"description": "merged"})
    out = load(save(merged, tmp_path / "merged", image_sources=sources).root or tmp_path)
    assert len(out.images) == 2 + len(studio_set.images)
    assert len({a.id for a in out.annotations}) == len(out.annotations)
    assert out.images[2].file_name.startswith("01/")
