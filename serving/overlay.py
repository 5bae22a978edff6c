"""Skeleton overlays for /v1/render and `posewheel predict --render`, drawn by `posewheel.draw.draw_poses`."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from PIL import Image

from posewheel.draw import draw_poses


def pose_arrays(poses: Sequence[Mapping[str, Any]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keypoints (P, 17, 2) pixels, their scores (P, 17) and boxes (P, 4) x, y, w, h of `PredictedPose`-shaped
    mappings (box [x, y, w, h], keypoints [{name, x, y, score}])."""
    keypoints = np.array([[(k["x"], k["y"]) for k in p["keypoints"]] for p in poses], dtype=np.float64)
    scores = np.array([[k["score"] for k in p["keypoints"]] for p in poses], dtype=np.float64)
    boxes = np.array([p["box"] for p in poses], dtype=np.float64)
    return keypoints.reshape(-1, 17, 2), scores.reshape(-1, 17), boxes.reshape(-1, 4)


def draw_overlay(
    image: Image.Image, poses: Sequence[Mapping[str, Any]], track_ids: Sequence[int] | None = None
) -> Image.Image:
    """The RGB `image` with each pose's box, skeleton and keypoints drawn (a copy; `image` itself without poses);
    with `track_ids` (one per pose), each box in its track's colour and labelled with its id."""
    if not poses:
        return image
    keypoints, scores, boxes = pose_arrays(poses)
    return draw_poses(image, keypoints, scores=scores, boxes=boxes, track_ids=track_ids)


def render_png(image: Image.Image, poses: Sequence[Mapping[str, Any]], track_ids: Sequence[int] | None = None) -> bytes:
    """PNG bytes of the RGB `image` with each pose's box, skeleton and keypoints drawn (`draw_overlay`)."""
    out = io.BytesIO()
    draw_overlay(image, poses, track_ids).save(out, format="PNG", compress_level=1)
    return out.getvalue()
