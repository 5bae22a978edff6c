"""Skeleton overlays for /v1/render, drawn by the core's `posewheel.draw.draw_poses`."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from PIL import Image

from posewheel.draw import draw_poses


def render_png(image: Image.Image, poses: Sequence[Mapping[str, Any]]) -> bytes:
    """PNG bytes of the RGB `image` with each pose's box, skeleton and keypoints drawn (on a copy).

    poses: `PredictedPose`-shaped mappings (box [x, y, w, h], keypoints [{name, x, y, score}]), pixels.
    """
    if poses:
        keypoints = np.array([[(k["x"], k["y"]) for k in p["keypoints"]] for p in poses], dtype=np.float64)
        scores = np.array([[k["score"] for k in p["keypoints"]] for p in poses], dtype=np.float64)
        boxes = np.array([p["box"] for p in poses], dtype=np.float64)
        image = draw_poses(image, keypoints, scores=scores, boxes=boxes)
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=1)
    return out.getvalue()
