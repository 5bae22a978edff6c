"""Pose metrics: COCO OKS AP (pycocotools), PCK normalised by box size, pixel error per joint.

Shapes: predictions (N, 17, 2) image pixels; ground truth (N, 17, 3) image pixels with v in
{0,1,2}; boxes (N, 4) [x, y, w, h] pixels. Only labeled joints (v > 0) are scored.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from posewheel import dataset as coco
from posewheel.schema import OKS_SIGMAS, PERSON_CATEGORY_ID

PCK_THRESHOLDS: tuple[float, ...] = tuple(round(t, 3) for t in np.linspace(0.0, 0.3, 31))


def joint_errors(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Euclidean error per joint in pixels, (N, 17); NaN where the joint is not labeled."""
    err = np.linalg.norm(pred[..., :2] - gt[..., :2], axis=-1)
    return np.where(gt[..., 2] > 0, err, np.nan)


def pck(pred: np.ndarray, gt: np.ndarray, boxes: np.ndarray, threshold: float) -> float:
    """Share of labeled joints within `threshold` x max(box w, box h) of the truth; NaN if none labeled."""
    err = joint_errors(pred, gt)
    scale = np.maximum(boxes[:, 2], boxes[:, 3])[:, None]
    labeled = ~np.isnan(err)
    if not labeled.any():
        return float("nan")
    return float((err[labeled] <= threshold * np.broadcast_to(scale, err.shape)[labeled]).mean())


def pck_curve(
    pred: np.ndarray, gt: np.ndarray, boxes: np.ndarray, thresholds: Sequence[float] = PCK_THRESHOLDS
) -> list[float]:
    """PCK at each threshold (fractions of box size)."""
    return [pck(pred, gt, boxes, t) for t in thresholds]


def per_joint_error(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Mean pixel error of each joint over the persons where it is labeled, (17,); NaN if never labeled."""
    err = joint_errors(pred, gt)
    counts = (~np.isnan(err)).sum(axis=0)
    sums = np.nansum(err, axis=0)
    return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def mean_px_error(pred: np.ndarray, gt: np.ndarray) -> float:
    """Mean pixel error over all labeled joints."""
    err = joint_errors(pred, gt)
    return float(np.nanmean(err)) if (~np.isnan(err)).any() else float("nan")


def oks_ap(
    ds: coco.Dataset,
    annotation_ids: Sequence[int],
    pred: np.ndarray,
    joint_scores: np.ndarray,
    person_scores: np.ndarray,
) -> dict[str, float]:
    """COCO keypoint AP, AP50, AP75 with COCOeval (COCO sigmas) of one prediction per annotation.

    annotation_ids: (N,) ids in `ds` the rows of `pred` (N, 17, 2) belong to; joint_scores (N, 17);
    person_scores (N,). Predictions are top-down from ground-truth boxes, so each image's
    predictions are the rows of its annotations.
    """
    gt_dict = ds.to_coco()
    gt = COCO()
    gt.dataset = gt_dict
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
    by_id = {a.id: a for a in ds.annotations}
    results = []
    for row, ann_id in enumerate(annotation_ids):
        flat = np.concatenate([pred[row], joint_scores[row][:, None]], axis=1).reshape(-1)
        results.append(
            {
                "image_id": by_id[ann_id].image_id,
                "category_id": PERSON_CATEGORY_ID,
                "keypoints": [float(v) for v in flat],
                "score": float(person_scores[row]),
            }
        )
    if not results or not any(a.num_keypoints > 0 for a in ds.annotations):
        return {"oks_ap": float("nan"), "ap50": float("nan"), "ap75": float("nan")}
    with contextlib.redirect_stdout(io.StringIO()):
        dt = gt.loadRes(results)
        ev = COCOeval(gt, dt, iouType="keypoints")
        ev.params.kpt_oks_sigmas = np.asarray(OKS_SIGMAS, dtype=np.float64)
        ev.params.imgIds = sorted({by_id[i].image_id for i in annotation_ids})
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {"oks_ap": float(ev.stats[0]), "ap50": float(ev.stats[1]), "ap75": float(ev.stats[2])}
