"""COCO OKS AP, PCK and pixel errors score predictions the way the COCO protocol does."""

from __future__ import annotations

import numpy as np
import pytest

from posewheel.dataset import Dataset
from training import metrics


def truth_of(ds: Dataset) -> tuple[list[int], np.ndarray, np.ndarray]:
    anns = [a for a in ds.annotations if a.num_keypoints > 0]
    return [a.id for a in anns], np.stack([a.keypoints for a in anns]), np.array([a.bbox for a in anns])


def ap_of(ds: Dataset, shift: float) -> dict[str, float]:
    ids, truth, _ = truth_of(ds)
    pred = truth[..., :2] + shift
    scores = np.ones(truth.shape[:2])
    return metrics.oks_ap(ds, ids, pred, scores, scores.mean(axis=1))


def test_perfect_predictions_score_ap_one(studio_set: Dataset) -> None:
    ap = ap_of(studio_set, shift=0.0)
    assert ap == {"oks_ap": pytest.approx(1.0), "ap50": pytest.approx(1.0), "ap75": pytest.approx(1.0)}


def test_shifted_predictions_score_lower_ap_the_further_they_are(studio_set: Dataset) -> None:
    near, far = ap_of(studio_set, shift=3.0), ap_of(studio_set, shift=8.0)
    assert near["oks_ap"] < 1.0
    assert far["oks_ap"] < near["oks_ap"]
    assert far["ap50"] >= far["ap75"]


def test_pck_counts_joints_within_a_fraction_of_the_box_size() -> None:
    truth = np.zeros((1, 17, 3))
    truth[..., 2] = 2
    truth[0, 16, 2] = 0  # not labeled: not scored
    boxes = np.array([[0.0, 0.0, 50.0, 100.0]])  # max side 100 px
    pred = truth[..., :2].copy()
    pred[0, :8, 0] += 4.0  # within 0.05 * 100
    pred[0, 8:12, 0] += 8.0  # within 0.1 only
    pred[0, 12:16, 0] += 30.0  # outside both
    pred[0, 16, 0] += 500.0  # unlabeled, ignored
    assert metrics.pck(pred, truth, boxes, 0.05) == pytest.approx(8 / 16)
    assert metrics.pck(pred, truth, boxes, 0.1) == pytest.approx(12 / 16)
    curve = metrics.pck_curve(pred, truth, boxes)
    assert curve == sorted(curve), "PCK must not fall as the threshold grows"


def test_pixel_errors_ignore_unlabeled_joints() -> None:
    truth = np.zeros((2, 17, 3))
    truth[..., 2] = 2
    truth[1, 0, 2] = 0
    pred = truth[..., :2].copy()
    pred[0, 0] += (3.0, 4.0)  # 5 px
    pred[1, 0] += 100.0  # unlabeled
    per_joint = metrics.per_joint_error(pred, truth)
    assert per_joint[0] == pytest.approx(5.0)
    assert per_joint[1] == 0.0
    assert metrics.mean_px_error(pred, truth) == pytest.approx(5.0 / 33)
