"""Box overlap, one implementation for the whole project: boxes are (x, y, w, h) in pixels, as in COCO.

from posewheel.boxes import intersection_matrix, iou, iou_matrix
iou_matrix(found, truth)     # (A, 4), (B, 4) -> (A, B)
intersection_matrix(a, b)    # the overlap areas, pixels^2 (A, B)
inside_share(a, b)           # the share of each box of a lying inside each box of b (A, B)
iou((0, 0, 10, 10), (5, 0, 10, 10))   # 1/3
best_pairs(iou_matrix(a, b), 0.3)     # {row of a: column of b}, the best-overlapping pairs first
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike


def intersection_matrix(a: ArrayLike, b: ArrayLike) -> np.ndarray:
    """The area every box of `a` (A, 4) shares with every box of `b` (B, 4), x, y, w, h -> (A, B) pixels^2."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    lo = np.maximum(a[:, None, :2], b[None, :, :2])
    hi = np.minimum(a[:, None, :2] + a[:, None, 2:], b[None, :, :2] + b[None, :, 2:])
    return np.asarray(np.prod(np.clip(hi - lo, 0.0, None), axis=2))


def iou_matrix(a: ArrayLike, b: ArrayLike) -> np.ndarray:
    """Intersection over union of every box of `a` (A, 4) with every box of `b` (B, 4), x, y, w, h -> (A, B).

    A box without area overlaps nothing (IoU 0)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    inter = intersection_matrix(a, b)
    areas_a = np.prod(np.clip(a[:, 2:], 0.0, None), axis=1)
    areas_b = np.prod(np.clip(b[:, 2:], 0.0, None), axis=1)
    union = areas_a[:, None] + areas_b[None, :] - inter
    return np.asarray(np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0))


def inside_share(a: ArrayLike, b: ArrayLike) -> np.ndarray:
    """The share of every box of `a` (A, 4) that lies inside every box of `b` (B, 4), x, y, w, h -> (A, B) in [0, 1]:
    their overlap over the area of `a`'s box (a box without area counts as 1e-9 pixels^2)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    return np.asarray(intersection_matrix(a, b) / np.clip(a[:, 2:3] * a[:, 3:4], 1e-9, None))


def iou(a: ArrayLike, b: ArrayLike) -> float:
    """Intersection over union of two (x, y, w, h) boxes."""
    return float(iou_matrix(a, b)[0, 0])


def best_pairs(overlaps: ArrayLike, at_least: float) -> dict[int, int]:
    """Pairs {row: column} of an overlap matrix (A, B), greedily: the best-overlapping pair first, each row and
    column in at most one pair, none under `at_least`. Ties go to the later row, then the later column."""
    matrix = np.asarray(overlaps, dtype=np.float64)
    rows, cols = matrix.shape if matrix.ndim == 2 else (0, 0)
    ranked = sorted(((float(matrix[r, c]), r, c) for r in range(rows) for c in range(cols)), reverse=True)
    pairs: dict[int, int] = {}
    for overlap, r, c in ranked:
        if overlap >= at_least and r not in pairs and c not in pairs.values():
            pairs[r] = c
    return pairs
