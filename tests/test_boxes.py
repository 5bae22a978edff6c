"""posewheel.boxes: the one box-overlap implementation the detector, its calibration and the labeling use."""

from __future__ import annotations

import numpy as np

from posewheel.boxes import best_pairs, intersection_matrix, iou, iou_matrix


def test_iou_of_known_overlaps() -> None:
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (5, 0, 10, 10)) == 50 / 150
    assert iou((0, 0, 10, 10), (20, 20, 5, 5)) == 0.0
    assert iou((0, 0, 0, 10), (0, 0, 0, 10)) == 0.0  # no area, no overlap (and no division by zero)


def test_iou_matrix_is_every_pair() -> None:
    a = np.array([[0, 0, 10, 10], [5, 5, 10, 10]])
    b = np.array([[0, 0, 10, 10], [100, 100, 1, 1], [5, 0, 10, 10]])
    m = iou_matrix(a, b)
    assert m.shape == (2, 3)
    np.testing.assert_allclose(m, [[iou(x, y) for y in b] for x in a])
    assert iou_matrix(np.zeros((0, 4)), b).shape == (0, 3)


def test_intersection_matrix_is_the_shared_area_of_every_pair() -> None:
    a = np.array([[0, 0, 10, 10], [5, 5, 10, 10]])
    b = np.array([[0, 0, 10, 10], [100, 100, 1, 1], [5, 0, 10, 10]])
    np.testing.assert_allclose(intersection_matrix(a, b), [[100, 0, 50], [25, 0, 50]])
    assert intersection_matrix(np.zeros((0, 4)), b).shape == (0, 3)


def test_best_pairs_take_the_best_overlap_first_each_row_and_column_once() -> None:
    overlaps = np.array([[0.5, 0.9, 0.0], [0.6, 0.8, 0.2], [0.1, 0.0, 0.25]])
    # (0, 1) at 0.9 first, then row 1 takes column 0 (0.6: column 1 is taken), row 2 nothing at 0.3
    assert best_pairs(overlaps, 0.3) == {0: 1, 1: 0}
    assert best_pairs(overlaps, 0.2) == {0: 1, 1: 0, 2: 2}
    assert best_pairs(np.array([[0.4, 0.4]]), 0.3) == {0: 1}  # a tie: the later column
    assert best_pairs(np.array([[0.4], [0.4]]), 0.3) == {1: 0}  # a tie: the later row
    assert best_pairs(np.zeros((2, 0)), 0.3) == {} and best_pairs([], 0.3) == {}
