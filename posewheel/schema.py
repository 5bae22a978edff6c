"""COCO-17 keypoint schema: the single source of truth for names, skeleton, flips and OKS sigmas.

Everything in the project imports these; nothing keeps a second copy.
"""

from __future__ import annotations

import numpy as np

KEYPOINT_NAMES: tuple[str, ...] = (
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
)
NUM_KEYPOINTS = len(KEYPOINT_NAMES)
KEYPOINT_INDEX: dict[str, int] = {name: i for i, name in enumerate(KEYPOINT_NAMES)}

# The COCO skeleton, 1-based as written in COCO annotation files.
COCO_SKELETON_1BASED: tuple[tuple[int, int], ...] = (
    (16, 14), (14, 12), (17, 15), (15, 13), (12, 13), (6, 12), (7, 13), (6, 7), (6, 8), (7, 9),
    (8, 10), (9, 11), (2, 3), (1, 2), (1, 3), (2, 4), (3, 5), (4, 6), (5, 7),
)  # fmt: skip
# The same edges 0-based, for drawing and code.
SKELETON: tuple[tuple[int, int], ...] = tuple((a - 1, b - 1) for a, b in COCO_SKELETON_1BASED)

# Left/right pairs (0-based): swapped when an image is mirrored.
FLIP_PAIRS: tuple[tuple[int, int], ...] = tuple(
    (i, KEYPOINT_INDEX["right_" + name[len("left_") :]])
    for i, name in enumerate(KEYPOINT_NAMES)
    if name.startswith("left_")
)
# FLIP_INDEX[i] is the joint that i becomes after a horizontal flip.
FLIP_INDEX: tuple[int, ...] = tuple(
    next((b for a, b in FLIP_PAIRS if a == i), next((a for a, b in FLIP_PAIRS if b == i), i))
    for i in range(NUM_KEYPOINTS)
)

# Per-keypoint OKS sigmas from the COCO keypoint evaluation (cocoeval.py).
OKS_SIGMAS: np.ndarray = (
    np.array(
        [0.26, 0.25, 0.25, 0.35, 0.35, 0.79, 0.79, 0.72, 0.72, 0.62, 0.62, 1.07, 1.07, 0.87, 0.87,
         0.89, 0.89],
        dtype=np.float64,
    )
    / 10.0
)  # fmt: skip
OKS_SIGMAS.setflags(write=False)


def oks_terms(d2: np.ndarray, areas: np.ndarray) -> np.ndarray:
    """COCO's similarity of each joint (cocoeval.py), exp(-d² / (2 area (2 sigma)²)): squared distances (..., 17)
    pixels² at object areas pixels² that broadcast against them (..., 1) -> (..., 17) in (0, 1]."""
    return np.asarray(np.exp(-d2 / (2.0 * areas * (2.0 * OKS_SIGMAS) ** 2)))


PERSON_CATEGORY_ID = 1
PERSON_CATEGORY: dict[str, object] = {
    "id": PERSON_CATEGORY_ID,
    "name": "person",
    "supercategory": "person",
    "keypoints": list(KEYPOINT_NAMES),
    "skeleton": [list(edge) for edge in COCO_SKELETON_1BASED],
}

# Visibility flags of COCO keypoints.
V_NOT_LABELED, V_OCCLUDED, V_VISIBLE = 0, 1, 2


def flip_keypoints(keypoints: np.ndarray, image_width: float) -> np.ndarray:
    """Mirror keypoints horizontally and swap left/right joints.

    keypoints: (..., 17, 3) float, pixels, v in {0,1,2}; returns a new array of the same shape.
    Unlabeled joints (v=0) keep x=y=0, as COCO writes them.
    """
    out = keypoints[..., list(FLIP_INDEX), :].copy()
    labeled = out[..., 2] > 0
    out[..., 0] = np.where(labeled, image_width - out[..., 0], 0.0)
    return out
