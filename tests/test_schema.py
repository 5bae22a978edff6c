"""The keypoint schema is COCO's, and flips are involutions that swap the person's sides."""

from __future__ import annotations

import numpy as np

from posewheel.schema import FLIP_INDEX, FLIP_PAIRS, KEYPOINT_NAMES, OKS_SIGMAS, SKELETON, flip_keypoints


def test_schema_matches_coco_order_and_sizes() -> None:
    assert KEYPOINT_NAMES[0] == "nose" and KEYPOINT_NAMES[-1] == "right_ankle"
    assert len(KEYPOINT_NAMES) == 17 and len(OKS_SIGMAS) == 17 and len(SKELETON) == 19
    assert np.isclose(OKS_SIGMAS[0], 0.026) and np.isclose(OKS_SIGMAS[11], 0.107)


def test_flip_pairs_swap_left_and_right_names() -> None:
    assert len(FLIP_PAIRS) == 8
    for a, b in FLIP_PAIRS:
        assert KEYPOINT_NAMES[a].replace("left_", "") == KEYPOINT_NAMES[b].replace("right_", "")
    assert all(FLIP_INDEX[FLIP_INDEX[i]] == i for i in range(17))
    assert FLIP_INDEX[0] == 0


def test_flipping_twice_is_identity_and_keeps_unlabeled_at_zero() -> None:
    rng = np.random.default_rng(0)
    kps = np.concatenate([rng.uniform(0, 100, (17, 2)), rng.integers(0, 3, (17, 1))], axis=1)
    kps[kps[:, 2] == 0, :2] = 0
    once = flip_keypoints(kps, 100.0)
    assert np.allclose(once[5, 0], 100.0 - kps[6, 0]) or kps[6, 2] == 0
    assert np.allclose(flip_keypoints(once, 100.0), kps)
