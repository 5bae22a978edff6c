"""Draw a posed figure into an RGB image and a per-pixel part-label map in one painter's pass.

Both canvases get the same polygons in the same order, so the label map says which part (or
occluder) owns each visible pixel, and visibility is read from the very rendering a model sees.
Coordinates are continuous pixels (pixel i covers [i, i+1)); PIL puts pixel centres at integers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from posewheel.schema import NUM_KEYPOINTS, V_NOT_LABELED, V_OCCLUDED, V_VISIBLE
from posewheel.synth.figure import BACKGROUND, JOINT_OWNERS, Figure


@dataclass(frozen=True)
class Placement:
    """Body units to pixels: rotate by `roll` radians, scale by `height` px, then shift by `offset` px."""

    roll: float
    height: float
    offset: tuple[float, float]

    def apply(self, points: np.ndarray) -> np.ndarray:
        """points (..., 2) body units -> (..., 2) pixels."""
        c, s = np.cos(self.roll), np.sin(self.roll)
        rotated = points @ np.array([[c, s], [-s, c]])
        return rotated * self.height + np.asarray(self.offset)


def place(figure: Figure, size: int, fill: float, centre: tuple[float, float], roll: float) -> Placement:
    """The placement making the figure's longer side `fill` x `size` px with its box centred at `centre`."""
    outline = np.concatenate([p.polygon for p in figure.parts])
    unit = Placement(roll, 1.0, (0.0, 0.0)).apply(outline)
    lo, hi = unit.min(axis=0), unit.max(axis=0)
    height = fill * size / float(max(hi - lo))
    mid = (lo + hi) / 2 * height
    return Placement(roll, height, (centre[0] - mid[0], centre[1] - mid[1]))


def draw_figure(rgb: ImageDraw.ImageDraw, labels: ImageDraw.ImageDraw, figure: Figure, placement: Placement) -> None:
    """Paint the figure's parts back to front on both canvases."""
    for part in sorted(figure.parts, key=lambda p: p.depth):
        xy = (placement.apply(part.polygon) - 0.5).ravel().tolist()
        rgb.polygon(xy, fill=part.color)
        labels.polygon(xy, fill=part.part_id)


def silhouette(figure: Figure, placement: Placement, size: int) -> np.ndarray:
    """(size, size) bool: the pixels the figure covers, drawn exactly as `draw_figure` draws its parts."""
    mask = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(mask)
    for part in figure.parts:
        draw.polygon((placement.apply(part.polygon) - 0.5).ravel().tolist(), fill=1)
    return np.asarray(mask) > 0


def visibility(joints_px: np.ndarray, label_map: np.ndarray, face_hidden: np.ndarray) -> np.ndarray:
    """COCO flags (17,) for joints (17, 2) px: 0 outside the image, 1 covered, 2 visible.

    A joint is visible when the pixel under it shows its own part (or the adjacent one at the
    joint) or nothing at all; covered when an occluder or another body part is painted there, or
    when it faces away from the camera (`face_hidden`, e.g. the nose of a person seen from behind).
    """
    height, width = label_map.shape
    flags = np.full(NUM_KEYPOINTS, V_NOT_LABELED, dtype=np.int64)
    for j, (x, y) in enumerate(joints_px):
        if not (0 <= x < width and 0 <= y < height):
            continue
        owner = int(label_map[int(y), int(x)])
        shown = owner == BACKGROUND or owner in JOINT_OWNERS[j]
        flags[j] = V_VISIBLE if shown and not face_hidden[j] else V_OCCLUDED
    return flags
