"""Evaluation without boxes: the detector's misses and phantoms cost AP, and what serves is what is scored.

The scoring tests use hand-made predictions, so the metric cannot pass vacuously: perfect
detections reach AP 1.0, and one phantom or one missed person lowers it. The end-to-end test runs
the pretrained MoveNet pair (weights from the set-up step, `posewheel pretrained fetch`) on a tiny
synthetic multi-person set that includes empty images.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from posewheel import dataset as coco
from posewheel.artifact import load_card
from posewheel.decoding import pose_score
from posewheel.detection import CONFIDENT_POSE, WEAK_SHARE
from training.evaluate_persons import (
    PERSON_SCORES,
    DetectedPersons,
    evaluate_without_boxes,
    predict_without_boxes,
    score_without_boxes,
)

K = 17


def person(ann_id: int, image_id: int, box: tuple[float, float, float, float], seed: int) -> coco.PersonAnnotation:
    """A labeled person whose 17 visible joints lie inside `box`."""
    rng = np.random.default_rng(seed)
    x, y, w, h = box
    keypoints = np.stack([x + rng.uniform(0.1, 0.9, K) * w, y + rng.uniform(0.1, 0.9, K) * h, np.full(K, 2.0)], 1)
    return coco.PersonAnnotation(id=ann_id, image_id=image_id, keypoints=keypoints, bbox=box)


@pytest.fixture
def scene() -> coco.Dataset:
    """Three 200x200 images: two persons, one person, nobody."""
    images = [coco.ImageRecord(id=i, file_name=f"{i}.png", width=200, height=200) for i in (1, 2, 3)]
    annotations = [
        person(1, 1, (10.0, 20.0, 60.0, 150.0), seed=1),
        person(2, 1, (110.0, 30.0, 70.0, 140.0), seed=2),
        person(3, 2, (50.0, 40.0, 80.0, 150.0), seed=3),
    ]
    return coco.Dataset(images=images, annotations=annotations)


Row = tuple[int, tuple[float, float, float, float], np.ndarray, float]  # image id, box, keypoints (17, 2), score


def detections(ds: coco.Dataset, rows: list[Row]) -> DetectedPersons:
    return DetectedPersons(
        dataset=ds,
        image_ids=np.array([r[0] for r in rows], dtype=np.int64),
        boxes=np.array([r[1] for r in rows], dtype=np.float64).reshape(-1, 4),
        box_scores=np.array([r[3] for r in rows], dtype=np.float64),
        keypoints=np.array([r[2] for r in rows], dtype=np.float64).reshape(-1, K, 2),
        joint_scores=np.full((len(rows), K), 0.9),
    )


def perfect(ds: coco.Dataset, score: float = 0.8) -> list[Row]:
    return [(a.image_id, a.bbox, a.keypoints[:, :2].copy(), score) for a in ds.annotations]


def test_perfect_detections_score_ap_one(scene: coco.Dataset) -> None:
    values = score_without_boxes(detections(scene, perfect(scene)))
    assert values["oks_ap"] == pytest.approx(1.0)
    assert values["box_ap"] == pytest.approx(1.0)
    assert values["images"] == 3 and values["empty_images"] == 1
    assert values["persons_true"] == 3 and values["persons_found"] == 3 and values["persons_matched"] == 3
    assert values["persons_missed"] == 0 and values["phantoms"] == 0 and values["empty_images_with_phantom"] == 0


def test_a_confident_phantom_on_an_empty_image_lowers_ap(scene: coco.Dataset) -> None:
    ghost = person(99, 3, (60.0, 30.0, 70.0, 150.0), seed=9)
    rows = [*perfect(scene), (3, ghost.bbox, ghost.keypoints[:, :2], 0.95)]
    values = score_without_boxes(detections(scene, rows))
    assert values["oks_ap"] < 0.9 and values["box_ap"] < 0.9
    assert values["phantoms"] == 1 and values["empty_images_with_phantom"] == 1 and values["persons_found"] == 4


def test_a_missed_person_lowers_ap(scene: coco.Dataset) -> None:
    values = score_without_boxes(detections(scene, perfect(scene)[:2]))
    assert values["oks_ap"] < 0.9 and values["box_ap"] < 0.9
    assert values["persons_missed"] == 1 and values["persons_matched"] == 2 and values["phantoms"] == 0


def test_a_box_in_the_wrong_place_is_a_miss_and_a_phantom(scene: coco.Dataset) -> None:
    rows = perfect(scene)
    image_id, _, keypoints, score = rows[2]
    rows[2] = (image_id, (150.0, 150.0, 40.0, 40.0), keypoints, score)
    values = score_without_boxes(detections(scene, rows))
    assert values["box_ap"] < 0.9
    assert values["persons_missed"] == 1 and values["phantoms"] == 1 and values["empty_images_with_phantom"] == 0


def test_finding_nobody_scores_zero_not_nan(scene: coco.Dataset) -> None:
    values = score_without_boxes(detections(scene, []))
    assert values["oks_ap"] == 0.0 and values["box_ap"] == 0.0
    assert values["persons_missed"] == 3 and values["persons_found"] == 0


@pytest.fixture(scope="module")
def groups(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 studio images with 0-3 persons each, some of them empty."""
    from posewheel.synth import generate

    out = tmp_path_factory.mktemp("groups") / "studio_groups"
    ds = generate("studio", 12, 7, out, persons=(0, 3))
    assert {r.id for r in ds.images} - {a.image_id for a in ds.annotations}, "the set must include empty images"
    return out


def test_the_detector_and_pose_network_score_a_multi_person_set(pretrained_artifact: Path, groups: Path) -> None:
    pred = predict_without_boxes(pretrained_artifact, groups)
    ds = coco.load(groups)
    assert pred.keypoints.shape == (len(pred.image_ids), K, 2) and pred.boxes.shape == (len(pred.image_ids), 4)
    assert set(pred.image_ids.tolist()) <= {r.id for r in ds.images}
    threshold = load_card(pretrained_artifact).detector.score_threshold  # type: ignore[union-attr]
    assert np.all(pred.box_scores >= WEAK_SHARE * threshold)  # down to half the card's threshold, and there
    assert np.all(pose_score(pred.joint_scores[pred.box_scores < threshold]) >= CONFIDENT_POSE)  # only if confirmed
    sure = predict_without_boxes(pretrained_artifact, groups, score_threshold=threshold)  # the caller's: exactly
    assert np.all(sure.box_scores >= threshold) and len(sure.box_scores) < len(pred.box_scores)
    values = evaluate_without_boxes(pretrained_artifact, groups)
    assert values["images"] == len(ds.images) and values["persons_true"] == len(ds.annotations)
    assert values["persons_found"] == len(pred.image_ids) > 0
    assert values["persons_matched"] + values["persons_missed"] == values["persons_true"]
    assert values["persons_matched"] + values["phantoms"] == values["persons_found"]
    assert values["empty_images_with_phantom"] <= values["empty_images"]
    assert 0.0 < values["oks_ap"] <= 1.0 and 0.0 < values["box_ap"] <= 1.0
    assert values["oks_ap_ratio"] == pytest.approx(values["oks_ap"] / values["true_boxes_oks_ap"])
    for kind in PERSON_SCORES:
        assert 0.0 < score_without_boxes(pred, kind)["oks_ap"] <= 1.0


def test_a_person_inside_two_boxes_is_scored_once(pretrained_artifact: Path, tmp_path: Path) -> None:
    """What serves is what is scored: on the tight group photographs where the detector's boxes crop one
    woman twice (tests/test_serving_persons.py), evaluation reads the repeat's box again blanked outside it
    and answers the woman it holds, as the server does; and reads the side of a box around two its answer leaves
    empty (`posewheel.detection.answer_parts`), as the server does: 4 and 4 different women (3 and 4 until session
    43)."""
    from PIL import Image

    from posewheel.detection import DUPLICATE_OKS, pose_oks
    from posewheel.pretrained import real_frames

    photos = {p.name: p for p in real_frames()}
    images, sources = [], {}
    for i, name in enumerate(("sample4.jpg", "sample6.jpg"), start=1):
        with Image.open(photos[name]) as im:
            images.append(coco.ImageRecord(id=i, file_name=name, width=im.width, height=im.height))
        sources[i] = photos[name]
    coco.save(coco.Dataset(images=images, annotations=[]), tmp_path / "groups", image_sources=sources)
    pred = predict_without_boxes(pretrained_artifact, tmp_path / "groups")
    assert np.bincount(pred.image_ids).tolist() == [0, 4, 4]  # 2 and 3 when the repeat was only dropped
    for image_id in (1, 2):
        rows = pred.image_ids == image_id
        oks = pose_oks(pred.keypoints[rows], pred.boxes[rows], pred.joint_scores[rows])  # as served
        assert (oks[~np.eye(rows.sum(), dtype=bool)] < DUPLICATE_OKS).all(), oks.round(2)


def test_an_image_without_persons_is_scored_without_a_crash(pretrained_artifact: Path, tmp_path: Path) -> None:
    from posewheel.synth import generate

    generate("studio", 3, 11, tmp_path / "empty", persons=(0, 0))
    values = evaluate_without_boxes(pretrained_artifact, tmp_path / "empty", true_boxes=False)
    assert values["images"] == 3 and values["persons_true"] == 0 and np.isnan(values["oks_ap"])
    assert values["phantoms"] == values["persons_found"]


def test_given_the_true_boxes_a_group_is_read_as_the_server_reads_a_callers_boxes(
    pretrained_artifact: Path, groups: Path
) -> None:
    """Evaluation with the true boxes (training.evaluate.predict) answers what the server answers for the same boxes
    sent by a caller (ServedModel.read_boxes): a crowded person read alone; read as cropped, the crowded differ."""
    from PIL import Image

    from posewheel.decoding import crop_box
    from posewheel.detection import crowded
    from serving.engine import load_model
    from training.evaluate import predict

    ds = coco.load(groups)
    spec = load_card(pretrained_artifact).input_spec()
    pred = predict(pretrained_artifact, groups)
    row = {ann_id: n for n, ann_id in enumerate(pred.annotation_ids)}
    model = load_model(pretrained_artifact.resolve(), "test", threads=1)
    was_crowded = []
    for record in ds.images:
        people = [a for a in ds.annotations if a.image_id == record.id]
        if not people:
            continue
        boxes = [a.bbox for a in people]
        with Image.open(ds.image_path(record)) as raw:
            (served,) = model.answer([model.read_boxes(raw.convert("RGB"), boxes)])
        rows = [row[a.id] for a in people]
        np.testing.assert_allclose(pred.keypoints[rows], served.points, atol=0.01)
        np.testing.assert_allclose(pred.joint_scores[rows], served.scores, atol=1e-4)
        was_crowded += [
            row[a.id]
            for a, c in zip(people, crowded(np.array(boxes), [crop_box(b, spec) for b in boxes]), strict=True)
            if c
        ]
    assert was_crowded, "the set must hold people in each other's crops"
    cropped = predict(pretrained_artifact, groups, read_alone=False)
    lone = np.setdiff1d(np.arange(len(pred.annotation_ids)), was_crowded)
    np.testing.assert_allclose(cropped.keypoints[lone], pred.keypoints[lone], atol=0.01)
    assert np.abs(cropped.keypoints[was_crowded] - pred.keypoints[was_crowded]).max() > 1.0


def test_an_artifact_without_a_detector_is_refused(make_artifact: Callable[..., Path], groups: Path) -> None:
    with pytest.raises(ValueError, match="no detector"):
        predict_without_boxes(make_artifact("v1"), groups)
