"""Training targets: one Gaussian heatmap per joint at 1/stride of the input, and per-joint weights.

The peak sits where `posewheel.decoding.decode_heatmaps` will read it back (`input_to_heatmap_cells`
is its inverse), so a perfect heatmap decodes to the true point within the quarter-cell rounding.
MoveNet's heads get `movenet_targets` (one person per crop) and the person detector's
`multipose_targets` (every person of a whole image), CenterNet's `centernet_targets` (every person's
box), each read back by its decoding.
"""

from __future__ import annotations

import numpy as np

from posewheel.decoding import InputSpec, input_to_heatmap_cells
from posewheel.schema import KEYPOINT_INDEX, KEYPOINT_NAMES, V_OCCLUDED, V_VISIBLE

NUM_KEYPOINTS = len(KEYPOINT_NAMES)


def joint_weights(visibility: np.ndarray, occluded_weight: float = 1.0) -> np.ndarray:
    """Loss weight per joint from COCO visibility: v=2 -> 1, v=1 -> `occluded_weight`, v=0 -> 0.

    visibility: (..., K) in {0, 1, 2}; returns (..., K) float32.
    """
    weights = np.zeros(visibility.shape, dtype=np.float32)
    weights[visibility == V_VISIBLE] = 1.0
    weights[visibility == V_OCCLUDED] = occluded_weight
    return weights


def gaussian_heatmaps(points: np.ndarray, weights: np.ndarray, spec: InputSpec, sigma: float) -> np.ndarray:
    """Heatmaps (K, h, w) float32 with a unit-peak Gaussian at each weighted joint, zeros elsewhere.

    points: (K, 2) input pixels (continuous; x right, y down); weights: (K,), 0 means no target;
    sigma: standard deviation in heatmap cells. (h, w) = spec.heatmap_size.
    """
    h, w = spec.heatmap_size
    cells = input_to_heatmap_cells(np.asarray(points, dtype=np.float64), spec)
    xs = np.arange(w, dtype=np.float64)[None, None, :]
    ys = np.arange(h, dtype=np.float64)[None, :, None]
    dx2 = (xs - cells[:, 0, None, None]) ** 2
    dy2 = (ys - cells[:, 1, None, None]) ** 2
    maps = np.exp(-(dx2 + dy2) / (2.0 * sigma**2))
    maps *= (np.asarray(weights) > 0)[:, None, None]
    return maps.astype(np.float32)


def inside_input(points: np.ndarray, spec: InputSpec) -> np.ndarray:
    """(K,) bool: which input-pixel points (K, 2) lie inside the input window [0, W) x [0, H)."""
    x, y = points[:, 0], points[:, 1]
    return (x >= 0) & (x < spec.width) & (y >= 0) & (y < spec.height)


FRONT, BACK, UNKNOWN = 1.0, -1.0, 0.0


def facing(points: np.ndarray, visibility: np.ndarray, min_sine: float = 0.1) -> float:
    """FRONT, BACK or UNKNOWN: whether the person faces the camera, from the torso's labeled joints.

    A front-facing person's left shoulder (and hip) lies on their torso's image-right: with
    up = mid-shoulders - mid-hips and across = (left - right) of shoulders plus of hips, the sign of the
    2D cross product up x across (image axes, y down) is the facing, whatever the in-plane rotation;
    a horizontal flip with its left/right swap keeps it. UNKNOWN when a joint it needs is not labeled
    or the person is seen edge-on (|sine| of the angle between up and across below `min_sine`).
    points: (K, 2) pixels; visibility: (K,) COCO v.
    """

    def pair(name: str) -> tuple[np.ndarray, np.ndarray] | None:
        left, right = KEYPOINT_INDEX[f"left_{name}"], KEYPOINT_INDEX[f"right_{name}"]
        if visibility[left] > 0 and visibility[right] > 0:
            return points[left], points[right]
        return None

    shoulders, hips = pair("shoulder"), pair("hip")
    if shoulders is None or hips is None:
        return UNKNOWN
    up = (shoulders[0] + shoulders[1]) / 2 - (hips[0] + hips[1]) / 2
    across = (shoulders[0] - shoulders[1]) + (hips[0] - hips[1])
    cross = float(up[0] * across[1] - up[1] * across[0])
    norm = float(np.linalg.norm(up) * np.linalg.norm(across))
    if norm == 0.0 or abs(cross) < min_sine * norm:
        return UNKNOWN
    return FRONT if cross > 0 else BACK


def movenet_targets(points: np.ndarray, weights: np.ndarray, spec: InputSpec, sigma: float) -> dict[str, np.ndarray]:
    """MoveNet's targets for one person (training/movenet.py), read back by `decode_movenet`.

    points: (K, 2) input pixels; weights: (K,), 0 means no target. A joint at input pixel p lies at
    u = p / stride in cells: its heatmap peaks in cell floor(u) and the offset there is u - floor(u);
    the person's centre (the middle of its labeled joints' extent) peaks in cell c = floor(centre /
    stride), and the regression there is u - c for every joint. Returns center_heatmap (1, h, w),
    center_cell (2,) int64 (x, y), regress (K, 2) and offsets (K, 2) as (dy, dx) cells, joint_cells
    (K, 2) int64 (x, y), clipped into the map; a person with no labeled joint gets a zero centre map.
    """
    h, w = spec.heatmap_size
    labeled = np.asarray(weights) > 0
    u = np.asarray(points, dtype=np.float64) / spec.stride
    if labeled.any():
        lo, hi = u[labeled].min(axis=0), u[labeled].max(axis=0)
        centre = (lo + hi) / 2.0
    else:
        centre = np.array([w / 2.0, h / 2.0])
    limit = np.array([w - 1, h - 1])
    center_cell = np.clip(np.floor(centre), 0, limit).astype(np.int64)
    joint_cells = np.clip(np.floor(u), 0, limit).astype(np.int64)
    centre_px = (center_cell + 0.5) * spec.stride
    center_heatmap = gaussian_heatmaps(centre_px[None], np.array([float(labeled.any())]), spec, sigma)
    return {
        "center_heatmap": center_heatmap,
        "center_cell": center_cell,
        "regress": (u - center_cell)[:, ::-1].astype(np.float32),
        "offsets": (u - joint_cells)[:, ::-1].astype(np.float32),
        "joint_cells": joint_cells,
    }


MAX_SCENE_PERSONS = 24  # persons per image a detector batch carries targets for (synthetic scenes: at most 16)


def multipose_targets(
    points: np.ndarray, weights: np.ndarray, boxes: np.ndarray, spec: InputSpec, sigma: float
) -> dict[str, np.ndarray]:
    """MoveNet MultiPose's targets for the persons of one whole image, read back by `decode_multipose`.

    points: (P, K, 2) input pixels; weights: (P, K), 0 means no target; boxes: (P, 4) x, y, w, h input
    pixels, inside the input. The cell convention is the graph's (what its pretrained offsets show): a
    point at input pixel p lies at u = p / stride in cells, cell floor(u), offset u - floor(u). A
    person's centre is its box's centre c: it peaks in cell floor(c), where box_offset = c - floor(c),
    box_scale = (box height, box width) and regress = u - floor(c) for every joint. Heatmaps peak
    (1.0) at every labeled joint's cell, centres at every person's centre cell; several persons take
    the max. Returns heatmaps (K, h, w), centers (1, h, w), and per person, padded to
    MAX_SCENE_PERSONS (the first P rows; extra persons are dropped): person_mask (M,), center_cell
    (M, 2) int64 (x, y), box_scale (M, 2) (h, w), box_offset (M, 2) (dy, dx), regress (M, K, 2) and
    offsets (M, K, 2) (dy, dx), joint_cells (M, K, 2) int64 (x, y), joint_weights (M, K). An image
    without persons is a negative: all maps zero.
    """
    h, w = spec.heatmap_size
    points = np.asarray(points, dtype=np.float64).reshape(-1, NUM_KEYPOINTS, 2)[:MAX_SCENE_PERSONS]
    weights = np.asarray(weights, dtype=np.float32).reshape(-1, NUM_KEYPOINTS)[: len(points)]
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)[: len(points)]
    m, k = MAX_SCENE_PERSONS, NUM_KEYPOINTS
    limit = np.array([w - 1, h - 1])
    out: dict[str, np.ndarray] = {
        "heatmaps": np.zeros((k, h, w), np.float32),
        "centers": np.zeros((1, h, w), np.float32),
        "person_mask": np.zeros(m, np.float32),
        "center_cell": np.zeros((m, 2), np.int64),
        "box_scale": np.zeros((m, 2), np.float32),
        "box_offset": np.zeros((m, 2), np.float32),
        "regress": np.zeros((m, k, 2), np.float32),
        "offsets": np.zeros((m, k, 2), np.float32),
        "joint_cells": np.zeros((m, k, 2), np.int64),
        "joint_weights": np.zeros((m, k), np.float32),
    }
    for p, (u, weight, box) in enumerate(zip(points / spec.stride, weights, boxes / spec.stride, strict=True)):
        centre = box[:2] + box[2:] / 2.0  # (x, y) cells
        cell = np.clip(np.floor(centre), 0, limit).astype(np.int64)
        joint_cells = np.clip(np.floor(u), 0, limit).astype(np.int64)
        labeled = weight > 0
        peaks = (joint_cells + 0.5) * spec.stride  # the Gaussians peak on the cells the decoding reads
        out["heatmaps"] = np.maximum(out["heatmaps"], gaussian_heatmaps(peaks, labeled.astype(np.float32), spec, sigma))
        centre_map = gaussian_heatmaps(((cell + 0.5) * spec.stride)[None], np.ones(1, np.float32), spec, sigma)
        out["centers"] = np.maximum(out["centers"], centre_map)
        out["person_mask"][p] = 1.0
        out["center_cell"][p] = cell
        out["box_scale"][p] = box[3], box[2]
        out["box_offset"][p] = (centre - cell)[::-1]
        out["regress"][p] = (u - cell)[:, ::-1]
        out["offsets"][p] = (u - joint_cells)[:, ::-1]
        out["joint_cells"][p] = joint_cells
        out["joint_weights"][p] = weight * labeled
    return out


def centernet_radius(height: float, width: float, min_overlap: float = 0.7) -> float:
    """CenterNet's Gaussian radius for a box of `height` x `width` cells: how far its centre may move while
    a box of its size there still overlaps it by `min_overlap` (Law & Deng's CornerNet formula, as
    CenterNet trains with it, quirks included: the original divides by 2, not 2a)."""
    b1, c1 = height + width, width * height * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + np.sqrt(b1**2 - 4 * c1)) / 2
    b2, c2 = 2 * (height + width), (1 - min_overlap) * width * height
    r2 = (b2 + np.sqrt(b2**2 - 16 * c2)) / 2
    a3, b3, c3 = 4 * min_overlap, -2 * min_overlap * (height + width), (min_overlap - 1) * width * height
    r3 = (b3 + np.sqrt(b3**2 - 4 * a3 * c3)) / 2
    return float(min(r1, r2, r3))


def centernet_targets(boxes: np.ndarray, spec: InputSpec) -> dict[str, np.ndarray]:
    """CenterNet's targets for the persons of one whole image, read back by `posewheel.centernet`.

    boxes: (P, 4) x, y, w, h input pixels, inside the input. The decoding reads a peak at cell (x, y)
    as the point (stride x, stride y) of the input and the box as that point's distances to its left,
    top, right and bottom edges; so a person peaks at the cell nearest its box centre (rounded), with
    CenterNet's size-adaptive Gaussian around it (sigma = (2 radius + 1) / 6, centernet_radius), and
    ltrb holds the four distances in cells. Returns person (1, h, w) and, padded to MAX_SCENE_PERSONS,
    person_mask (M,), center_cell (M, 2) int64 (x, y) and ltrb (M, 4). No persons: all zero.
    """
    h, w = spec.heatmap_size
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)[:MAX_SCENE_PERSONS] / spec.stride
    m = MAX_SCENE_PERSONS
    out: dict[str, np.ndarray] = {
        "person": np.zeros((1, h, w), np.float32),
        "person_mask": np.zeros(m, np.float32),
        "center_cell": np.zeros((m, 2), np.int64),
        "ltrb": np.zeros((m, 4), np.float32),
    }
    limit = np.array([w - 1, h - 1])
    for p, (x, y, bw, bh) in enumerate(boxes):
        cell = np.clip(np.round([x + bw / 2.0, y + bh / 2.0]), 0, limit).astype(np.int64)
        sigma = (2.0 * max(0, int(centernet_radius(bh, bw))) + 1.0) / 6.0
        peak = ((cell + 0.5) * spec.stride)[None]  # gaussian_heatmaps' cell centres: exactly 1.0 on `cell`
        out["person"] = np.maximum(out["person"], gaussian_heatmaps(peak, np.ones(1, np.float32), spec, sigma))
        out["person_mask"][p] = 1.0
        out["center_cell"][p] = cell
        out["ltrb"][p] = cell[0] - x, cell[1] - y, x + bw - cell[0], y + bh - cell[1]
    return out
