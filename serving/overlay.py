"""Skeleton overlays for /v1/render: `posewheel.draw.draw_poses` when the core has it, else a small fallback."""

from __future__ import annotations

import io
from collections.abc import Sequence

from PIL import Image, ImageDraw

from posewheel.review import PredictedPose
from posewheel.schema import SKELETON


def render_png(image: Image.Image, poses: Sequence[PredictedPose], min_score: float = 0.0) -> bytes:
    """PNG bytes of the RGB `image` with each pose's box, skeleton and keypoints drawn on a copy."""
    canvas = _draw(image.copy(), poses, min_score)
    out = io.BytesIO()
    canvas.save(out, format="PNG", compress_level=1)
    return out.getvalue()


def _draw(image: Image.Image, poses: Sequence[PredictedPose], min_score: float) -> Image.Image:
    try:
        from posewheel.draw import draw_poses  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return _draw_fallback(image, poses, min_score)
    import numpy as np

    keypoints = np.array([[[k.x, k.y, k.score] for k in p.keypoints] for p in poses], dtype=np.float64)
    drawn = draw_poses(image, keypoints)
    return drawn if isinstance(drawn, Image.Image) else image


def _draw_fallback(image: Image.Image, poses: Sequence[PredictedPose], min_score: float) -> Image.Image:
    draw = ImageDraw.Draw(image)
    radius = max(2, round(min(image.size) / 120))
    for pose in poses:
        x, y, w, h = pose.box
        draw.rectangle((x, y, x + w, y + h), outline=(255, 200, 0), width=max(1, radius // 2))
        pts = [(k.x, k.y, k.score) for k in pose.keypoints]
        for a, b in SKELETON:
            if pts[a][2] >= min_score and pts[b][2] >= min_score:
                draw.line((pts[a][0], pts[a][1], pts[b][0], pts[b][1]), fill=(0, 255, 128), width=radius)
        for px, py, score in pts:
            if score >= min_score:
                draw.ellipse((px - radius, py - radius, px + radius, py + radius), fill=(255, 40, 40))
    return image
