"""One answer per person: `distinct_persons` drops a pose that repeats a better one's, and `answer_once` reads
the repeat's box again blanked outside it (hand-made poses, then the served path on real photographs); a
large picture with a small person in it is looked at again in tiles (`tile_windows`, `needs_tiles`); a box the
detector scored under its threshold is read when it is not a part of a sure one (`boxes_to_read`) and answered
where its pose is confident (`confirmed`, `answer_once` with the threshold).

The real-photograph side (a tight group where two boxes crop one person) is in tests/test_serving_persons.py
and tests/test_evaluate_persons.py.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from posewheel.decoding import InputSpec, crop_box
from posewheel.detection import (
    CARRY_HEAD,
    CARRY_JOINTS,
    CARRY_OKS,
    CARRY_REPEAT,
    CLOSER_SIDE,
    CONFIDENT_HEAD,
    CONFIDENT_POSE,
    DUPLICATE_OKS,
    FACE_JOINTS,
    HEAD_AND_SHOULDERS,
    PART_HEAD,
    PART_OF,
    PROBE_DOUBT,
    PROBE_PERSONS,
    QUARTER_TURNS,
    SMALL_PERSON,
    TILE_OVERLAP,
    TURN_BELOW,
    WEAK_SHARE,
    FindOptions,
    answer_once,
    answer_parts,
    blanked_reread,
    boxes_to_read,
    carried_boxes,
    carried_persons,
    confirmed,
    crowded,
    detect_persons,
    detector_spec,
    distinct_persons,
    empty_part,
    joined_upright,
    joint_oks,
    looks_closer,
    needs_tiles,
    outside_box_blanked,
    parts_inside,
    person_cap,
    picture_boxes_back,
    picture_points_back,
    picture_turn,
    pose_oks,
    probed_turn,
    read_alone,
    read_turned,
    read_upright,
    same_person,
    sure_pose,
    tile_windows,
    turned_picture,
)
from tests.support.benchmarks import run_benchmark

K = 17


def standing(x: float, rng: np.random.Generator) -> np.ndarray:
    """A person's 17 joints inside the 100 x 200 px box at (x, 0)."""
    return np.stack([x + rng.uniform(10, 90, K), rng.uniform(10, 190, K)], 1)


def test_pose_oks_is_one_for_the_same_pose_and_falls_with_distance() -> None:
    rng = np.random.default_rng(0)
    a = standing(0.0, rng)
    poses = np.stack([a, a + 3.0, a + 40.0])
    boxes = np.array([[0, 0, 100, 200]] * 3, dtype=float)
    oks = pose_oks(poses, boxes)
    assert np.allclose(np.diag(oks), 1.0) and np.allclose(oks, oks.T)
    assert oks[0, 1] > DUPLICATE_OKS > oks[0, 2] > 0.0


def test_a_repeated_pose_is_answered_once_keeping_the_better_person() -> None:
    rng = np.random.default_rng(1)
    same = standing(50.0, rng)
    other = standing(200.0, rng)
    keypoints = np.stack([same, other, same + 2.0])  # person 2 is person 0 again, seen through a wider box
    boxes = np.array([[40, 0, 120, 200], [190, 0, 110, 200], [0, 0, 170, 210]], dtype=float)
    joint_scores = np.full((3, K), 0.5)
    # the detector ranks the wide box first, but box score x pose score decides which of the two stays
    kept = distinct_persons(boxes, keypoints, joint_scores, np.array([0.4, 0.6, 0.7]))
    assert kept.tolist() == [1, 2]
    joint_scores[0] = 0.9
    assert distinct_persons(boxes, keypoints, joint_scores, np.array([0.4, 0.6, 0.7])).tolist() == [0, 1]


def test_a_box_around_a_persons_head_and_shoulders_repeats_them_and_is_answered_once() -> None:
    """As in the six group photographs in a row (benchmarks/duplicate_persons.py): the detector's boxes around a
    whole person and around their head and shoulders; the pose network reads the same head and shoulders in both
    (here 2 px apart) and, in the small box, guesses the rest elsewhere at low scores. Over all 17 joints the two
    are 0.3 alike and both were answered (sessions 31-42); over the joints both are sure of, one person."""
    rng = np.random.default_rng(3)
    whole = standing(0.0, rng)
    upper = whole + 2.0
    upper[7:] = whole[7:] + rng.uniform(-60, 60, (K - 7, 2))  # elbows down: guesses
    keypoints = np.stack([whole, upper])
    boxes = np.array([[0, 0, 100, 200], [20, 0, 60, 80]], dtype=float)
    joint_scores = np.stack([np.full(K, 0.8), np.r_[np.full(7, 0.7), np.full(K - 7, 0.1)]])
    assert pose_oks(keypoints, boxes)[0, 1] < 0.5 < DUPLICATE_OKS  # all 17 joints: two people
    assert pose_oks(keypoints, boxes, joint_scores)[0, 1] > 0.9  # the 7 both are sure of
    assert distinct_persons(boxes, keypoints, joint_scores, np.array([0.6, 0.5])).tolist() == [0]
    all_17 = {"confident_joint": 0.0, "same_face": False}  # as served until session 42: one face not yet one person
    assert distinct_persons(boxes, keypoints, joint_scores, np.array([0.6, 0.5]), **all_17).tolist() == [
        0,
        1,
    ]
    # sharing fewer than SHARED_JOINTS sure joints, two poses are compared on all 17
    few = joint_scores.copy()
    few[1, 2:] = 0.1
    assert pose_oks(keypoints, boxes, few)[0, 1] == pose_oks(keypoints, boxes)[0, 1]


def test_two_poses_with_one_face_are_one_person_however_their_bodies_differ() -> None:
    """A second box over a person and what stands beside them, read alone, answers the person's face again within a
    few pixels but guesses the body elsewhere (the check set's cameraman and his tripod with a fine-tuned detector):
    under DUPLICATE_OKS over the sure joints, yet one face, so one person. A neighbour a head's width away is
    somebody else; faces sure of fewer than SHARED_JOINTS joints in common are not compared."""
    rng = np.random.default_rng(7)
    person = standing(0.0, rng) * [3.0, 2.0]  # 300 x 400 px
    person[:FACE_JOINTS] = [[150, 40], [140, 35], [160, 35], [130, 40], [170, 40]]
    again = person + np.array([140.0, 60.0])  # the body guessed elsewhere
    again[:FACE_JOINTS] = person[:FACE_JOINTS] + 4.0
    beside = person.copy()
    beside[:, 0] += 70.0  # a head's width to the right
    keypoints = np.stack([person, again, beside])
    boxes = np.array([[0, 0, 300, 400], [120, 20, 180, 380], [70, 0, 300, 400]], dtype=float)
    scores = np.full((3, K), 0.8)
    assert pose_oks(keypoints, boxes, scores)[0, 1] < DUPLICATE_OKS
    one = same_person(keypoints, boxes, scores)
    assert one[0, 1] and one[1, 0] and not one[0, 2] and not one[1, 2]
    assert not same_person(keypoints, boxes, scores, same_face=False)[0, 1]
    box_scores = np.array([0.7, 0.3, 0.6])
    assert distinct_persons(boxes, keypoints, scores, box_scores).tolist() == [0, 2]
    assert distinct_persons(boxes, keypoints, scores, box_scores, same_face=False).tolist() == [0, 1, 2]
    unsure_face = scores.copy()
    unsure_face[1, : FACE_JOINTS - 2] = 0.1  # two face joints sure: too few to call it the same face
    assert not same_person(keypoints, boxes, unsure_face)[0, 1]


def test_people_standing_close_are_all_kept() -> None:
    rng = np.random.default_rng(2)
    keypoints = np.stack([standing(0.0, rng), standing(30.0, rng), standing(60.0, rng)])  # boxes overlap 70%
    boxes = np.array([[0, 0, 100, 200], [30, 0, 100, 200], [60, 0, 100, 200]], dtype=float)
    kept = distinct_persons(boxes, keypoints, np.full((3, K), 0.5), np.array([0.9, 0.8, 0.7]))
    assert kept.tolist() == [0, 1, 2]


def test_nobody_and_one_person_pass_through() -> None:
    assert distinct_persons(np.zeros((0, 4)), np.zeros((0, K, 2)), np.zeros((0, K)), np.zeros(0)).tolist() == []
    one = distinct_persons(np.array([[0, 0, 10, 20.0]]), np.zeros((1, K, 2)), np.ones((1, K)), np.ones(1))
    assert one.tolist() == [0]


def test_blanking_keeps_only_what_lies_inside_the_box() -> None:
    """The crop of window (0, 0, 200, 200) at 100 x 100 input pixels: the box (50, 20, 60, 100) is input pixels
    25..55 across, 10..60 down; a box reaching out of the window is cut at its edge."""
    spec = InputSpec(width=100, height=100)
    inputs = np.random.default_rng(0).normal(size=(2, 3, 100, 100)).astype(np.float32)
    windows = [(0.0, 0.0, 200.0, 200.0), (100.0, 100.0, 200.0, 200.0)]
    boxes = np.array([[50, 20, 60, 100], [0, 0, 150, 150]], dtype=float)  # the second starts left of its window
    out = outside_box_blanked(inputs, boxes, windows, spec)
    inside = np.zeros((2, 100, 100), dtype=bool)
    inside[0, 10:60, 25:55] = True
    inside[1, 0:25, 0:25] = True
    assert np.array_equal(out[:, 0] != 0, inside) and np.array_equal(out[:, :, inside[0]][0], inputs[0][:, inside[0]])
    assert (out[:, :, ~inside[0]][0] == 0).all() and out.shape == inputs.shape and inputs.std() > 0.5  # a copy


def test_a_person_is_crowded_where_another_persons_box_reaches_into_their_crop() -> None:
    """Crop windows grown from 100 x 200 px boxes (x 1.25, square: 250 px around each box's centre): a neighbour
    standing 10 px away lies in the crop (65 of 100 px wide); one whose box reaches 7 px into it does not
    count (under CROWDED), 20 px does."""
    spec = InputSpec(width=100, height=100)

    def crowd(*xs: float) -> list[bool]:
        boxes = np.array([[x, 0, 100, 200] for x in xs], dtype=float)
        return crowded(boxes, [crop_box(tuple(b), spec) for b in boxes.tolist()]).tolist()

    assert crowd(0, 110, 500, 668) == [True, True, False, False]
    assert crowd(500, 655) == [True, True]
    assert crowd(0) == [False] and crowd() == []


def test_a_crowded_person_is_read_alone_and_a_lone_one_as_cropped() -> None:
    spec = InputSpec(width=100, height=100)
    inputs = np.random.default_rng(1).normal(size=(3, 3, 100, 100)).astype(np.float32)
    boxes = np.array([[0, 0, 100, 200], [110, 0, 100, 200], [500, 0, 100, 200]], dtype=float)
    windows = [crop_box(tuple(b), spec) for b in boxes.tolist()]
    out, alone = read_alone(inputs, boxes, windows, spec)
    assert np.array_equal(out[:2], outside_box_blanked(inputs[:2], boxes[:2], windows[:2], spec))
    assert np.array_equal(out[2], inputs[2]) and (out[:2] == 0).mean() > 0.5  # blanked beside the box
    assert alone.tolist() == [True, True, False]
    lone = inputs[2:]
    out, alone = read_alone(lone, boxes[2:], windows[2:], spec)
    assert out is lone and alone.tolist() == [False]  # nothing to blank: no copy


def test_an_answer_inside_another_with_an_unsure_face_is_a_part_of_that_person() -> None:
    """`parts_inside`: a box lying `PART_OF` inside another answer's box, whose read's face and shoulders score under
    `PART_HEAD` and under the other's, is a part of that person (a face alone in a video call, a sofa beside a woman);
    one showing its own head (a person in front or behind), one half inside, or one whose container reads its face
    no surer, is a person. `answer_once` leaves the part out unless `FindOptions.inside_parts` is off."""
    boxes = np.array([[0, 0, 200, 400], [50, 20, 60, 100], [150, 100, 100, 200], [400, 0, 100, 200]], dtype=float)
    scores = np.full((4, K), 0.6)
    scores[1, :HEAD_AND_SHOULDERS] = PART_HEAD - 0.1  # inside box 0, face and shoulders unsure: a part
    scores[2, :HEAD_AND_SHOULDERS] = 0.1  # half inside box 0 only: a person
    assert parts_inside(boxes, scores).tolist() == [False, True, False, False]
    sure_face = scores.copy()
    sure_face[1, :HEAD_AND_SHOULDERS] = PART_HEAD + 0.05  # a person behind shows their own head
    assert not parts_inside(boxes, sure_face).any()
    unsure_container = scores.copy()
    unsure_container[0, :HEAD_AND_SHOULDERS] = PART_HEAD - 0.2  # the container reads a face no surer
    assert not parts_inside(boxes, unsure_container).any()
    assert parts_inside(boxes[1:2], scores[1:2]).tolist() == [False]  # alone, nothing to be a part of
    rng = np.random.default_rng(5)
    keypoints = np.stack([standing(0.0, rng), standing(50.0, rng) * 0.5, standing(150.0, rng), standing(400.0, rng)])
    box_scores = np.array([0.9, 0.8, 0.7, 0.6])
    assert answer_once(boxes, keypoints, scores, box_scores)[0].tolist() == [0, 2, 3]
    kept = answer_once(boxes, keypoints, scores, box_scores, options=FindOptions(inside_parts=False))[0]
    assert kept.tolist() == [0, 1, 2, 3]


def test_a_repeats_box_read_again_answers_the_person_it_holds() -> None:
    """Person 2's box holds someone the network did not read (it drew person 0 again); read blanked, it gives
    her own pose, which is answered in the box's row. A re-read that still repeats somebody is dropped."""
    rng = np.random.default_rng(3)
    first, second, hidden = standing(0.0, rng), standing(200.0, rng), standing(100.0, rng)
    keypoints = np.stack([first, second, first + 2.0, second - 1.0])
    boxes = np.array([[0, 0, 100, 200], [200, 0, 100, 200], [95, 0, 110, 200], [190, 0, 120, 210]], dtype=float)
    scores = np.full((4, K), 0.5)
    box_scores = np.array([0.9, 0.8, 0.7, 0.6])
    asked: list[list[int]] = []

    def reread(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        asked.append(rows.tolist())
        return np.stack([hidden, second + 1.0]), np.full((2, K), 0.6)  # row 2: the hidden person; row 3: still 1

    def reread_hidden(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        asked.append(rows.tolist())
        return np.stack([hidden]), np.full((1, K), 0.6)

    kept, points, joint_scores = answer_once(boxes, keypoints, scores, box_scores, reread)
    assert asked == [[2, 3]] and kept.tolist() == [0, 1, 2]
    assert np.array_equal(points[2], hidden) and (joint_scores[2] == 0.6).all()
    assert np.array_equal(points[[0, 1, 3]], keypoints[[0, 1, 3]]) and (scores[2] == 0.5).all()  # inputs untouched
    assert answer_once(boxes, keypoints, scores, box_scores)[0].tolist() == [0, 1]  # without re-reading: the drop
    # two repeats read again as the same new person: she is answered once, in the better box's row
    kept, _, _ = answer_once(
        boxes, keypoints, scores, box_scores, lambda rows: (np.stack([hidden, hidden]), scores[:2])
    )
    assert kept.tolist() == [0, 1, 2]

    def never(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise AssertionError(f"nothing was dropped, yet rows {rows} were read again")

    assert answer_once(boxes[:2], keypoints[:2], scores[:2], box_scores[:2], never)[0].tolist() == [0, 1]
    # a repeat already read alone would read the same again: only the others are re-read, and it stays dropped
    asked.clear()
    kept, _, _ = answer_once(boxes, keypoints, scores, box_scores, reread_hidden, alone=np.array([0, 0, 0, 1], bool))
    assert asked == [[2]] and kept.tolist() == [0, 1, 2]
    assert answer_once(boxes, keypoints, scores, box_scores, never, alone=np.array([0, 0, 1, 1], bool))[0].tolist() == [
        0, 1,
    ]  # fmt: skip


def test_weak_boxes_are_read_down_to_half_the_threshold_unless_a_part_of_a_sure_one() -> None:
    boxes = np.array([[0, 0, 100, 200], [300, 0, 100, 200], [10, 10, 50, 60], [60, 0, 100, 200], [500, 0, 50, 90]])
    scores = np.array([0.8, 0.2, 0.25, 0.2, 0.1])
    # 1: weak, beside; 2: weak, wholly inside 0 (a head); 3: weak, 40% inside 0; 4: under the floor of 0.15
    assert boxes_to_read(boxes, scores, 0.3, 0.15).tolist() == [True, True, False, True, False]
    assert boxes_to_read(boxes, scores, 0.3, 0.3).tolist() == [True, False, False, False, False]
    assert boxes_to_read(boxes[1:2], scores[1:2], 0.3, 0.15).tolist() == [True]  # no sure box to be a part of
    assert boxes_to_read(np.zeros((0, 4)), np.zeros(0), 0.3, 0.15).tolist() == []
    inside = np.array([[0, 0, 100, 200], [0, 0, 100, 100 * PART_OF - 1]])  # just under PART_OF inside: read
    assert boxes_to_read(np.vstack([inside, [[0, 0, 100, 100]]]), np.array([0.8, 0.2, 0.2]), 0.3, 0.15).tolist() == [
        True, False, False,
    ]  # fmt: skip
    assert FindOptions().floor(0.3) == WEAK_SHARE * 0.3 and FindOptions(pose_confirms=False).floor(0.3) == 0.3


def test_a_weak_box_is_answered_only_where_its_pose_is_confident() -> None:
    """Under the threshold the pose network decides: a confident pose is a person, a doubtful one is not; a
    sure box needs no confidence. A weak box repeating a sure person is dropped, and its blanked re-read must be
    confident too."""
    rng = np.random.default_rng(4)
    a, b, c = standing(0.0, rng), standing(200.0, rng), standing(400.0, rng)
    keypoints = np.stack([a, b, c, a + 1.0])
    boxes = np.array([[0, 0, 100, 200], [200, 0, 100, 200], [400, 0, 100, 200], [-20, 0, 140, 200]], dtype=float)
    box_scores = np.array([0.5, 0.2, 0.2, 0.2])
    joint_scores = np.stack([np.full(K, 0.3), np.full(K, CONFIDENT_POSE + 0.05), np.full(K, 0.3), np.full(K, 0.6)])
    joint_scores[0, :HEAD_AND_SHOULDERS] = PART_HEAD + 0.05  # row 0 lies in row 3's box: its face is its own
    assert confirmed(box_scores, joint_scores, 0.3).tolist() == [True, True, False, True]
    asked: list[list[int]] = []

    def reread(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        asked.append(rows.tolist())
        return np.stack([c + 300.0]), np.full((1, K), CONFIDENT_POSE - 0.1)  # another person, read doubtfully

    kept, _, _ = answer_once(boxes, keypoints, joint_scores, box_scores, reread, threshold=0.3)
    assert kept.tolist() == [0, 1] and asked == [[3]]  # row 3 repeated row 0; its doubtful re-read is no person
    kept, _, _ = answer_once(boxes, keypoints, joint_scores, box_scores, lambda r: (np.stack([c + 300.0]),
                             np.full((1, K), 0.5)), threshold=0.3)  # fmt: skip
    assert kept.tolist() == [0, 1, 3]  # read confidently, and nobody's repeat: a person
    assert answer_once(boxes, keypoints, joint_scores, box_scores)[0].tolist() == [0, 1, 2]  # no threshold: all boxes


def test_a_weak_box_whose_face_and_shoulders_read_confidently_is_a_person() -> None:
    """A person seated behind another: face and shoulders read confidently, the hidden rest doubtfully, so the mean
    of the 17 joint scores stays under CONFIDENT_POSE. Their face and shoulders confirm them, unless a benchmark's
    baseline switches that off; a doubtful face does not."""
    behind = np.full(K, 0.2)
    behind[:HEAD_AND_SHOULDERS] = CONFIDENT_HEAD + 0.05
    doubtful = np.full(K, 0.2)
    doubtful[:HEAD_AND_SHOULDERS] = CONFIDENT_HEAD - 0.1
    joint_scores = np.stack([behind, doubtful])
    assert (joint_scores.mean(axis=1) < CONFIDENT_POSE).all()
    assert confirmed(np.array([0.2, 0.2]), joint_scores, 0.3).tolist() == [True, False]
    assert confirmed(np.array([0.2, 0.2]), joint_scores, 0.3, head_confirms=False).tolist() == [False, False]
    rng = np.random.default_rng(5)
    keypoints = np.stack([standing(0.0, rng), standing(200.0, rng)])
    boxes = np.array([[0, 0, 100, 200], [200, 0, 100, 200]], dtype=float)
    assert answer_once(boxes, keypoints, joint_scores, np.array([0.2, 0.2]), threshold=0.3)[0].tolist() == [0]
    off = FindOptions(head_confirms=False)
    assert answer_once(boxes, keypoints, joint_scores, np.array([0.2, 0.2]), threshold=0.3, options=off)[0].size == 0


def marker_read(inputs: np.ndarray, windows: list[tuple[float, float, float, float]]) -> tuple[np.ndarray, np.ndarray]:
    """A stand-in pose network: all 17 joints where each crop's brightest pixel of its first channel is (a marker),
    in image pixels of its window; scored 0.9 where the marker lies in the crop's top half (read upright), 0.2 in
    its bottom half."""
    n, _, height, width = inputs.shape
    flat = inputs[:, 0].reshape(n, -1).argmax(axis=1)
    rows, cols = flat // width, flat % width
    w = np.asarray(windows, dtype=np.float64).reshape(-1, 4)
    x = w[:, 0] + (cols + 0.5) * w[:, 2] / width
    y = w[:, 1] + (rows + 0.5) * w[:, 3] / height
    points = np.repeat(np.stack([x, y], axis=1)[:, None, :], K, axis=1)
    return points, np.repeat(np.where(rows < height / 2, 0.9, 0.2)[:, None], K, axis=1)


def test_a_crop_read_turned_answers_where_things_lie_in_the_picture() -> None:
    """`read_turned`: a crop turned a quarter, a half or three quarters before it is read, its answer turned back
    about the window's centre, finds the marker where it lies in the picture every way."""
    inputs = np.zeros((1, 3, 8, 8), np.float32)
    inputs[0, 0, 1, 6] = 1.0  # x 6.5, y 1.5 input pixels
    window = (100.0, 200.0, 80.0, 80.0)
    for quarters in range(4):
        points, scores = read_turned(marker_read, inputs, [window], np.array([quarters]))
        assert np.allclose(points[0], [165.0, 215.0]), (quarters, points[0, 0])
        assert scores[0, 0] == (0.9 if quarters in (0, 1) else 0.2)  # a quarter turn takes top right to top left


def test_a_person_read_unsure_upright_is_read_turned_and_answered_the_way_they_lie() -> None:
    """`read_upright`: a crop whose marker lies low (a person upside down, read unsure) is read turned and the
    half turn's confident answer replaces the upright one, turned back into the picture; a confident upright read
    is kept as it is; a turned read no surer than TURN_MARGIN more, or not confident, replaces nothing; an input
    that is not square is not turned. `blanked_reread` reads such a crop at its turn again."""
    inputs = np.zeros((2, 3, 8, 8), np.float32)
    inputs[0, 0, 6, 3] = 1.0  # low in the crop: read upright at 0.2
    inputs[1, 0, 1, 3] = 1.0  # high: read upright at 0.9
    windows = [(0.0, 0.0, 80.0, 80.0), (100.0, 0.0, 80.0, 80.0)]
    points, scores = marker_read(inputs, windows)
    assert scores[0, 0] < TURN_BELOW <= scores[1, 0]
    turned_points, turned_scores, quarters, votes = read_upright(inputs, windows, points, scores, marker_read)
    assert quarters.tolist() == [2, 0]
    assert votes.tolist() == [0, 0, 1, 0]  # the unsure read was surest at a half turn
    assert np.allclose(turned_scores[:, 0], [0.9, 0.9]) and np.allclose(turned_points, points)  # where it lies
    assert scores[0, 0] == 0.2  # what was given is not changed

    def unsure(inputs: np.ndarray, windows: list) -> tuple[np.ndarray, np.ndarray]:
        found, _ = marker_read(inputs, windows)
        return found, np.full((len(inputs), K), 0.35)  # turned or not, as unsure

    kept = read_upright(inputs[:1], windows[:1], points[:1], np.full((1, K), 0.3), unsure)
    assert kept[2].tolist() == [0] and np.allclose(kept[1], 0.3)
    assert kept[3].tolist() == [0, 0, 0, 0]  # 0.05 surer turned: no vote

    def portrait(inputs: np.ndarray, windows: list) -> tuple[np.ndarray, np.ndarray]:
        """Face and shoulders read surely the right way up, the rest never: pose score under CONFIDENT_POSE."""
        found, upright = marker_read(inputs, windows)
        scores = np.full((len(inputs), K), 0.1)
        scores[:, :HEAD_AND_SHOULDERS] = np.where(upright[:, :1] > 0.5, CONFIDENT_HEAD + 0.15, 0.3)
        return found, scores

    upside_down = portrait(inputs[:1], windows[:1])
    face_up = read_upright(inputs[:1], windows[:1], *upside_down, portrait)
    assert face_up[2].tolist() == [2] and face_up[1][0, 0] == CONFIDENT_HEAD + 0.15 > CONFIDENT_POSE > face_up[1].mean()
    wide = np.zeros((1, 3, 8, 6), np.float32)
    assert read_upright(wide, windows[:1], points[:1], scores[:1], marker_read)[2].tolist() == [0]
    spec = InputSpec(width=8, height=8, stride=1)
    reread = blanked_reread(inputs, np.asarray(windows), windows, spec, marker_read, quarters)
    again, again_scores = reread(np.array([0]))
    assert np.allclose(again, points[:1]) and again_scores[0, 0] == 0.9


def test_a_picture_is_turned_where_its_unsure_reads_outnumber_the_people_read_upright() -> None:
    """`picture_turn`: the quarter most unsure reads were surest at, where those votes outnumber the answered
    persons read upright and confident; a person read turned or unsure, or one not answered, is not counted."""
    quarters = np.array([0, 0, 2])
    sure, unsure = np.full(K, CONFIDENT_POSE), np.full(K, CONFIDENT_POSE - 0.01)
    joint_scores = np.stack([sure, unsure, sure])
    assert picture_turn(np.array([0, 0, 2, 1]), quarters, joint_scores, np.array([0, 1, 2])) == 2  # 2 votes > 1
    assert picture_turn(np.array([0, 0, 1, 0]), quarters, joint_scores, np.array([0, 1, 2])) == 0  # 1 vote, 1 sure
    assert picture_turn(np.array([0, 0, 1, 0]), quarters, joint_scores, np.array([1, 2])) == 2  # the sure one dropped
    assert picture_turn(np.array([0, 3, 0, 0]), quarters, joint_scores, np.array([], dtype=np.int64)) == 1
    assert picture_turn(np.zeros(4, dtype=np.int64), quarters, joint_scores, np.array([1])) == 0  # no vote


def test_a_picture_in_doubt_is_turned_where_the_detector_is_sure_of_more_people_looked_at_small() -> None:
    """`probed_turn`: only a picture in doubt (a box, the best under `PROBE_DOUBT`, and nobody answered upright and
    sure, or one against a vote for a turn or beside at least `PROBE_PERSONS` boxes) is probed; it is turned where
    the probe is sure of at least `PROBE_PERSONS`, more than the detector was sure of upright and more than were
    answered upright and sure; the most, ties to the best score. A picture with no box at all is a picture of nobody:
    not probed."""
    calls = []

    def probe(sure: list[int], best: list[float]) -> Callable[[], tuple[np.ndarray, np.ndarray]]:
        def run() -> tuple[np.ndarray, np.ndarray]:
            calls.append(1)
            return np.asarray(sure), np.asarray(best)

        return run

    no_vote, a_vote = np.zeros(4, dtype=np.int64), np.array([0, 0, 1, 0])
    nobody = (np.zeros(0, dtype=np.int64), np.zeros((0, K)), np.zeros(0, dtype=np.int64))
    weak, weakest = np.array([PROBE_DOUBT - 0.05, 0.2]), np.array([0.16])
    assert probed_turn(probe([0, 3, 1], [0.2, 0.5, 0.3]), weakest, 0.3, no_vote, *nobody) == 2
    assert probed_turn(probe([2, 0, 2], [0.4, 0.0, 0.6]), weakest, 0.3, no_vote, *nobody) == 3  # a tie: the best
    assert probed_turn(probe([1, 1, 0], [0.4, 0.4, 0.0]), weakest, 0.3, no_vote, *nobody) == 0  # one: no turn
    assert probed_turn(probe([0, 2, 0], [0.0, 0.5, 0.0]), weak, 0.3, no_vote, *nobody) == 2
    assert probed_turn(probe([0, 2, 0], [0.0, 0.5, 0.0]), weak, 0.2, no_vote, *nobody) == 0  # two sure upright already
    sure, unsure = np.full(K, CONFIDENT_POSE), np.full(K, CONFIDENT_POSE - 0.01)
    one_sure = (np.zeros(2, dtype=np.int64), np.stack([sure, unsure]), np.arange(2))
    assert probed_turn(probe([0, 2, 0], [0.0, 0.5, 0.0]), weak, 0.3, a_vote, *one_sure) == 2  # one against a vote
    assert len(calls) == 6
    two_sure = (np.zeros(2, dtype=np.int64), np.stack([sure, sure]), np.arange(2))
    # one, no vote, beside a second box (sample1 turned a quarter, session 55): in doubt
    assert probed_turn(probe([0, 4, 0], [0.0, 0.5, 0.0]), weak, 0.3, no_vote, *one_sure) == 2
    assert len(calls) == 7
    one_box = np.array([PROBE_DOUBT - 0.05])
    assert probed_turn(probe([0, 4, 0], [0.0, 0.5, 0.0]), one_box, 0.3, no_vote, *one_sure) == 0  # one, no vote, a box
    assert probed_turn(probe([0, 4, 0], [0.0, 0.5, 0.0]), weak, 0.3, a_vote, *two_sure) == 0  # two sure
    assert probed_turn(probe([0, 4, 0], [0.0, 0.5, 0.0]), np.array([PROBE_DOUBT]), 0.3, no_vote, *nobody) == 0
    assert probed_turn(probe([0, 4, 0], [0.0, 0.5, 0.0]), np.zeros(0), 0.3, no_vote, *nobody) == 0  # no box at all
    assert len(calls) == 7  # none of the last four is in doubt: not probed


def test_the_detector_looked_at_small_tells_which_way_up_a_group_photograph_is(pretrained_artifact: Path) -> None:
    """`sure_when_turned` with the pretrained detector on a real group photograph of three turned each way: it is
    sure of at least two people at the turn that shows them upright and of at most one at the other two (measured
    3 and 0-1 at 256 px; `probed_turn` needs two)."""
    from serving.engine import load_model
    from tests.support.moving_people import group_photos

    model = load_model(pretrained_artifact.resolve(), "test", 2)
    assert model.detector is not None
    photo, threshold = group_photos()["sample1"], model.detector.card.score_threshold
    for quarters in QUARTER_TURNS:
        sure, _ = model.detector.sure_when_turned(turned_picture(photo, quarters), threshold)
        upright = QUARTER_TURNS.index(4 - quarters)  # quarters more, counter-clockwise, make a whole turn
        assert sure[upright] >= PROBE_PERSONS and np.delete(sure, upright).max() <= 1, (quarters, sure)


def test_what_is_found_in_a_turned_picture_lies_where_it_is_in_the_picture() -> None:
    """`turned_picture` moves a pixel where the benchmarks' turned points go (tests/support/moving_people.py `turned`:
    a quarter counter-clockwise takes (x, y) to (y, width - x)), and `picture_points_back` / `picture_boxes_back`
    bring points and boxes found in it back, every quarter, on a picture that is not square: a marked pixel is
    found again where it was."""
    from PIL import Image

    from tests.support.moving_people import turned

    picture = Image.new("RGB", (300, 200))
    picture.putpixel((40, 150), (255, 255, 255))
    points = np.array([[40.5, 150.5], [0.0, 0.0], [300.0, 200.0], [120.0, 30.0]])
    box = np.array([[40.0, 150.0, 1.0, 1.0]])
    for quarters in range(4):
        image = turned_picture(picture, quarters)
        _, where = turned(picture, points, quarters)
        y, x = np.argwhere(np.asarray(image)[..., 0] == 255)[0]
        assert np.allclose([x + 0.5, y + 0.5], where[0]), quarters  # the pixel's centre, where the point went
        assert np.allclose(picture_points_back(where, picture.size, quarters), points), quarters
        assert np.allclose(picture_boxes_back(np.array([[x, y, 1.0, 1.0]]), picture.size, quarters), box), quarters


def test_people_found_in_the_picture_turned_upright_join_those_answered_they_do_not_repeat() -> None:
    """`joined_upright`: a turned picture's persons found upright, all of them where the pose network is sure of one
    at least (a read unsure there is answered as in the picture sent upright); of those answered before, the sure
    ones none of them repeats; where nobody upright is sure, the answers as they were."""
    rng = np.random.default_rng(3)
    ours = np.stack([standing(0.0, rng), standing(200.0, rng), standing(600.0, rng)])
    theirs = np.stack([ours[1] + 1.0, standing(400.0, rng), standing(800.0, rng)])  # the second again, two others
    boxes = np.array([[0, 0, 100, 200], [200, 0, 100, 200], [600, 0, 100, 200]], dtype=float)
    their_boxes = np.array([[201, 1, 100, 200], [400, 0, 100, 200], [800, 0, 100, 200]], dtype=float)
    sure, unsure = np.full(K, CONFIDENT_POSE + 0.1), np.full(K, CONFIDENT_POSE - 0.1)
    our_scores = np.stack([sure, sure, unsure])  # the third was read unsure: the wrong way up
    their_scores = np.stack([sure, sure, unsure])
    kept, found = joined_upright((boxes, ours, our_scores), (their_boxes, theirs, their_scores))
    assert kept.tolist() == [True, False, False] and found.tolist() == [True, True, True]
    nobody_sure = np.stack([unsure] * 3)
    kept, found = joined_upright((boxes, ours, our_scores), (their_boxes, theirs, nobody_sure))
    assert kept.all() and not found.any()
    around = np.array([[150, -20, 700, 260], [0, 0, 100, 200], [600, 0, 100, 200]], dtype=float)  # one around several
    kept, found = joined_upright((around, ours, np.stack([sure, sure, sure])), (their_boxes, theirs, their_scores))
    assert kept.tolist() == [False, False, True] and found.tolist() == [True, True, True]  # around them, a repeat
    assert sure_pose(np.stack([sure, unsure])).tolist() == [True, False]


def test_people_lying_down_or_upside_down_are_answered_on_real_photographs(pretrained_artifact: Path) -> None:
    """benchmarks/turned_people.py on the pretrained artifact: the check set's three people turned a quarter, a half
    and three quarters are found more often and their keypoints agree with the original's far more, as served
    since session 45 than until session 44 (measured found 1, 0, 1 of 3 -> 2, 3, 3; keypoints 5, 0, 5 of 30 -> 17,
    29, 29); the group photographs turned, looked at again upright, find far more of their people than in session
    45 (measured 7, 9, 3 of 22 -> 14, 19, 10), and more again where a picture in doubt is looked at small turned
    each way (-> 18, 19, 20), with no more answers near nobody and nobody twice; upright pictures answer the same
    every way, and nobody's pictures stay nobody's."""
    lines = run_benchmark("turned_people", str(pretrained_artifact), "--repeats", "0")
    turns = {(x["way"], x["degrees"], x["pictures"]): x for x in lines if x["figure"] == "turn"}
    assert len(turns) == 48 and turns["served", 0, "groups"]["people"] == 22
    for degrees in (90, 180, 270):
        before, now = turns["session44", degrees, "one_person"], turns["served", degrees, "one_person"]
        assert now["found"] > before["found"] and now["keypoints_agreeing"] >= before["keypoints_agreeing"] + 9, now
        assert now["repeats"] == 0
        found = [turns[way, degrees, "groups"]["found"] for way in ("session44", "session45", "session46", "served")]
        assert found == sorted(found) and found[-1] >= 17, (degrees, found)  # measured 18, 19, 20 of 22
    groups = {way: sum(turns[way, d, "groups"]["found"] for d in (90, 180, 270)) for way in ("session45", "served")}
    assert groups["served"] - groups["session45"] >= 30, groups  # measured 19 -> 57 of 66 (43 in session 46)
    for way in ("session44", "session45", "session46"):
        for pictures in ("groups", "one_person", "nobody"):
            before, now = turns[way, 0, pictures], turns["served", 0, pictures]
            assert {**before, "way": "served"} == now, (before, now)  # upright: the same answers
    for degrees in (0, 90, 180, 270):
        assert turns["served", degrees, "nobody"]["answers"] == 0
    ways = {x["way"]: x for x in lines if x["figure"] == "way"}
    assert ways["served"]["nobody"] <= ways["session45"]["nobody"] <= ways["session44"]["nobody"], ways
    assert ways["served"]["repeats"] == 0


def test_the_benchmark_counts_repeats_both_ways_on_real_photographs_and_scenes(
    pretrained_artifact: Path, tmp_path: Path
) -> None:
    """benchmarks/duplicate_persons.py on the pretrained artifact: the group photographs hold repeats as
    served before, none now; a labeled scene set is scored both ways and its pairs are classified."""
    from posewheel.synth import generate

    generate("studio", 4, 21, tmp_path / "scenes", persons=(2, 3))
    lines = run_benchmark("duplicate_persons", str(pretrained_artifact), "--data", str(tmp_path / "scenes"))
    assert len([x for x in lines if x["figure"] == "photo"]) == 20  # six group photographs, 14 of the check set
    (summary,) = [x for x in lines if x["figure"] == "photographs"]
    assert summary["repeats_every"] > 0 == summary["repeats_distinct"]
    assert summary["distinct"] < summary["every"] and summary["least_similar_dropped"] > DUPLICATE_OKS
    assert summary["most_similar_kept"] <= DUPLICATE_OKS
    assert sorted(x["answers"] for x in lines if x["figure"] == "scenes") == [
        "distinct",
        "distinct_all_joints",
        "every",
    ]
    pairs = {x["joints"]: x for x in lines if x["figure"] == "pairs"}
    assert sorted(pairs) == ["all", "shared"] and pairs["shared"]["duplicate_oks"] == DUPLICATE_OKS
    # people marked by eye: over the joints both poses are sure of, one person read twice is told from two people
    marked = {x["crops"]: x for x in lines if x["figure"] == "marked_pairs"}
    assert sorted(marked) == ["as_cropped", "as_served"]
    for x in marked.values():
        assert x["one_person_kept_shared"] <= x["one_person_kept_all"] and x["most_similar_two_shared"] < 0.5, x
    # measured 20 pairs one person twice as cropped, 4 of them under the threshold over all joints, none over shared
    assert marked["as_cropped"]["one_person_kept_all"] > marked["as_cropped"]["one_person_kept_shared"], marked


def test_people_found_on_group_photographs_as_served_before_and_now(pretrained_artifact: Path, tmp_path: Path) -> None:
    """benchmarks/people_found.py on the pretrained artifact: on the six group photographs (22 people, noses
    marked), the crowds made of them and each far away, the cap of 20, the re-read repeats and the tiles each
    find people the way before missed, with no person answered twice and no more answers that are nobody's;
    the group photographs themselves are not tiled. Boxes the pose network confirms add nobody's answer there,
    and on drawn street scenes they match a person the threshold alone left out. Reading each crowded person
    alone, blanked outside their box, finds more people again with no more answers that are nobody's."""
    from posewheel.synth import generate

    generate("street", 9, 5, tmp_path / "scenes", persons=(2, 3))  # image 9: a person the detector is unsure of
    lines = run_benchmark(
        "people_found", str(pretrained_artifact), "--data", str(tmp_path / "scenes"), "--repeats", "1"
    )
    totals = {x["way"]: x for x in lines if x["figure"] == "photographs"}
    assert totals["session32"]["people"] == 97 and totals["session32"]["photos"] == 15
    found = [totals[way]["found"] for way in ("session32", "cap20", "reread", "tiles")]
    assert found == sorted(set(found)), found  # each way finds more: measured 60, 67, 70, 80 (77: session 34's tiles)
    assert found[3] - found[2] >= 5, found  # the tiles: 10 more in the crowds and far away
    assert totals["confirmed"]["found"] >= found[3] - 1  # measured 79 against 80: Lightning confirms nobody new here
    assert all(totals[way]["repeats"] <= 2 for way in totals)  # measured 0 before the tiles, then 1, 2, 1
    assert totals["alone"]["repeats"] <= 1
    # 1 each until session 53; with crops that count every pixel the tiles find a person on the sofa beside sample3's
    # woman far away, weak (mean joint score 0.13), whom the detector is sure of: 2 from the tiles on
    assert totals["confirmed"]["nobody"] <= totals["tiles"]["nobody"] <= totals["reread"]["nobody"] + 1 <= 2
    assert totals["alone"]["found"] - totals["confirmed"]["found"] >= 5, totals  # measured 88 against 79
    assert totals["alone"]["nobody"] <= totals["confirmed"]["nobody"]
    # one answer per person on the joints both poses are sure of: the six in a row's head-and-shoulders box repeated
    # a person over all 17 joints (measured 88 found, 1 twice; now 89, none twice)
    assert totals["shared"]["repeats"] == 0 and totals["shared"]["found"] >= totals["alone"]["found"], totals
    # a picture the detector is sure of somebody in tiles as before, whatever it is unsure of (measured the same)
    assert {k: v for k, v in totals["unsure_tiles"].items() if k not in ("way", "seconds")} == {
        k: v for k, v in totals["shared"].items() if k not in ("way", "seconds")
    }
    # the side of a box around two its answer leaves empty, read: measured 93 found, none twice, 1 near nobody
    assert totals["parts"]["found"] - totals["unsure_tiles"]["found"] >= 3, totals
    assert totals["parts"]["repeats"] == 0 and totals["parts"]["nobody"] <= totals["unsure_tiles"]["nobody"]
    # a weak box confirmed by its face and shoulders, two poses one person from 0.58: measured 95 found, none twice
    assert totals["head"]["found"] - totals["parts"]["found"] >= 2, totals
    assert totals["head"]["repeats"] == 0 and totals["head"]["nobody"] <= totals["parts"]["nobody"]
    # a person read unsure read turned too: upright people are read as before (measured the same 95)
    assert totals["turns"]["found"] >= totals["head"]["found"] and totals["turns"]["repeats"] == 0, totals
    assert totals["turns"]["nobody"] <= totals["head"]["nobody"]
    # two poses with one face one person: no fewer found, nobody twice (measured the same 95)
    assert totals["face"]["found"] >= totals["turns"]["found"] and totals["face"]["repeats"] == 0, totals
    assert totals["face"]["nobody"] <= totals["turns"]["nobody"]
    # a picture stored turned looked at again upright: none of these is, so the same answers (measured the same 95)
    assert {**totals["picture"], "way": "face", "seconds": 0} == {**totals["face"], "seconds": 0}, totals
    # a picture in doubt looked at small, turned each way: none of these is in doubt, so the same (measured the same)
    assert {**totals["probe"], "way": "picture", "seconds": 0} == {**totals["picture"], "seconds": 0}, totals
    # an answer inside another, its face and shoulders unsure, a part of that person: the same people, one answer near
    # nobody fewer (measured 95 found, nobody 2 -> 1: a sofa beside sample3's woman far away)
    assert totals["inside"]["found"] >= totals["probe"]["found"] and totals["inside"]["repeats"] == 0, totals
    assert totals["inside"]["nobody"] < totals["probe"]["nobody"], totals
    # the empty side of a box around two measured past the answer's arms: no fewer found, none twice, no more near
    # nobody (measured the same 95 with Lightning; Thunder, in the benchmark, 93 -> 96)
    assert totals["arms"]["found"] >= totals["inside"]["found"] and totals["arms"]["repeats"] == 0, totals
    assert totals["arms"]["nobody"] <= totals["inside"]["nobody"], totals
    photos = {(x["way"], x["photo"]): x for x in lines if x["figure"] == "photo"}
    groups = {name for _, name in photos if name in {f"sample{i}" for i in range(1, 7)}}
    assert len(groups) == 6 and sum(photos["tiles", name]["found"] for name in groups) >= 20  # 20 of 22
    assert all(photos["tiles", name] == {**photos["reread", name], "way": "tiles"} for name in groups)
    scenes = {x["way"]: x for x in lines if x["figure"] == "scenes"}
    assert sorted(scenes) == [
        "alone", "arms", "confirmed", "drop", "face", "head", "inside", "parts", "picture", "probe", "shared",
        "tiles", "turns", "unsure_tiles",
    ]  # fmt: skip
    assert scenes["confirmed"]["persons_matched"] > scenes["tiles"]["persons_matched"], scenes  # measured 3 and 2
    assert scenes["confirmed"]["phantoms"] == scenes["tiles"]["phantoms"] == 0
    costs = [x for x in lines if x["figure"] == "answer_ms"]
    assert len(costs) == 15 and all(x["session35_ms"] > 0 and x["now_ms"] > 0 for x in costs)


def test_the_detector_reads_at_the_size_its_card_says(pretrained_artifact: Path, tmp_path: Path) -> None:
    """benchmarks/detector_input_size.py on the pretrained artifact: at the card's own 512 it finds the people that
    benchmarks/people_found.py finds as served (95 of 97; 93 in session 43, 88 in session 42, 85 before its
    tiles); at 384, a copy whose card says 384, the same graph reads smaller pictures and finds fewer of them
    (measured 65 before session 42, 82 with session 43's tiles). Times are reported, not judged (a benchmark's)."""
    from posewheel.synth import generate

    generate("street", 9, 3, tmp_path / "scenes", persons=(1, 2))
    lines = run_benchmark(
        "detector_input_size", str(pretrained_artifact), "--data", str(tmp_path / "scenes"), "--sizes", "384,512"
    )
    sizes = {x["input_size"]: x for x in lines if x["figure"] == "size"}
    assert sorted(sizes) == [384, 512]
    assert sizes[512]["people"] == 97 and sizes[512]["found"] == 95 and sizes[512]["repeats"] == 0
    assert sizes[384]["found"] < sizes[512]["found"], sizes  # measured 82 with session 43's tiles, before its parts
    assert sizes[512]["photos_ratio"] == 1.0 and sizes[384]["photos_ms"] > 0 and sizes[384]["scenes_ms"] > 0
    assert sizes[512]["scenes"]["scenes"]["persons_true"] > 0


def test_a_caller_may_ask_for_more_persons_than_an_older_card_up_to_what_the_detector_finds() -> None:
    assert person_cap("centernet", 64, None) == 64  # the card's own
    assert person_cap("centernet", 20, None) == 20  # a card written before session 42
    assert person_cap("centernet", 20, 40) == 40  # ... answers a caller who asks for more
    assert person_cap("centernet", 64, 5) == 5
    assert person_cap("centernet", 20, 100) == 64  # no more than CenterNet's cap
    assert person_cap("movenet-multipose", 6, 20) == 6  # MultiPose's graph finds 6 at most


def test_tiles_cover_the_picture_overlapping_evenly() -> None:
    windows = tile_windows(3000, 2000, 1875.0)
    assert [w[:2] for w in windows] == [(0.0, 0.0), (1125.0, 0.0), (0.0, 125.0), (1125.0, 125.0)]
    assert all(w[2:] == (1875.0, 1875.0) for w in windows)
    # a panorama: two tiles along it, each centred on its height (the picture's own black padding above and below)
    (left, right) = tile_windows(4138, 500, 2586.25)
    assert left[:2] == (0.0, -1043.125) and right[0] + right[2] == 4138.0 and right[1] == left[1]
    assert (left[0] + left[2] - right[0]) / 2586.25 >= TILE_OVERLAP
    for width, height, side in ((5000, 1200, 1200.0), (2048, 2048, 1280.0)):
        windows = tile_windows(width, height, side)
        xs = sorted({w[0] for w in windows})
        assert xs[0] == 0 and xs[-1] + side == width and np.diff(xs).max() <= side * (1 - TILE_OVERLAP) + 1e-9


def test_a_large_picture_the_whole_look_finds_no_box_in_is_looked_at_once_more_closer() -> None:
    """`detect_persons`: where a picture at least twice the detector's input leaves its whole look no box at all, the
    whole picture is read once more at `CLOSER_SIDE` and what it finds is the answer, not tiled after; a smaller
    picture, one with a box, a MultiPose detector or `closer=False` are looked at once. A fake CenterNet run: nobody
    at 512, one person at 768 (a peak and its four distances, 40 input pixels each way)."""
    from PIL import Image

    spec = detector_spec(512, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    looked: list[int] = []

    def run(batch: np.ndarray) -> dict[str, np.ndarray]:
        n, _, side, _ = batch.shape
        looked.append(side)
        person, wh = np.zeros((n, 1, side // 4, side // 4)), np.full((n, 4, side // 4, side // 4), 40.0)
        if side == CLOSER_SIDE:
            person[:, 0, 100, 120] = 0.9
        return {"person": person, "wh": wh}

    large, small = Image.new("RGB", (2048, 1536)), Image.new("RGB", (1000, 750))
    boxes, scores = detect_persons(large, spec, run, 0.3, 20, "centernet")
    assert looked == [512, CLOSER_SIDE] and scores.tolist() == [0.9]
    # the box in the picture's pixels: 768 input pixels across its 2048, the picture centred vertically
    scale, top = 2048 / CLOSER_SIDE, (CLOSER_SIDE - 1536 * CLOSER_SIDE / 2048) / 2
    expected = ((120 * 4 - 40) * scale, (100 * 4 - 40 - top) * scale, 80 * scale, 80 * scale)
    assert np.allclose(boxes[0], expected), (boxes, expected)
    for image, kwargs in ((small, {}), (large, {"closer": False})):
        looked.clear()
        assert detect_persons(image, spec, run, 0.3, 20, "centernet", **kwargs)[0] == [] and looked == [512]

    def run_with_a_box(batch: np.ndarray) -> dict[str, np.ndarray]:  # a weak box at 512, a large person
        maps = run(batch)
        maps["person"][:, 0, 64, 64] = 0.2
        maps["wh"][:] = 200.0
        return maps

    looked.clear()
    boxes, scores = detect_persons(large, spec, run_with_a_box, 0.15, 20, "centernet")
    assert looked == [512] and scores.tolist() == [0.2]  # a box: no closer look, and too tall to call for tiles
    assert not looks_closer(2048, 1536, spec, "movenet-multipose") and looks_closer(2048, 1536, spec, "centernet")
    assert not looks_closer(1023, 700, spec, "centernet")
    assert FindOptions().closer_look and not FindOptions(closer_look=False).closer_look


def test_a_person_far_away_on_a_phone_sized_picture_is_found_by_the_closer_look(pretrained_artifact: Path) -> None:
    """benchmarks/far_people.py on the pretrained artifact: the check set's three people 500-1200 px tall on a 4032 x
    3024 picture (grey, a mosaic of people-free photographs, that mosaic blurred). As served until session 51 a
    picture whose 512 px look finds no box is answered with nobody (measured 26 of 36 answered, counted against the
    original MoveNet's keypoints on each photograph since session 56); with the closer look more are (34), with no
    answer elsewhere (measured 0) and none on six large pictures of nobody."""
    lines = run_benchmark("far_people", str(pretrained_artifact), "--repeats", "0")
    ways = {x["way"]: x for x in lines if x["figure"] == "way"}
    before, now = ways["session51"], ways["served"]
    assert before["pictures"] == now["pictures"] == 36 and before["nobody_pictures"] == 6
    assert now["found"] >= before["found"] + 2, (before, now)
    # until session 56 the benchmark counted 1-3 answers "other": Grace Hopper herself, her bust's guessed legs taking
    # the median of her keypoints out of her photograph; counted against the original's keypoints, none are
    assert now["other_answers"] <= 1 and now["answers_on_nobody"] == 0, now
    assert before["answers_on_nobody"] == 0


def test_a_person_framed_close_as_a_video_call_or_a_selfie_is_answered_as_in_the_whole_photograph(
    pretrained_artifact: Path,
) -> None:
    """benchmarks/close_framing.py on the pretrained artifact: each person of the group photographs answered with
    both shoulders sure, cut out as a video call (head and shoulders), a selfie (to the chest) and to the waist,
    neighbours in part. Measured (session 57): 20, 21 and 20 of 21 found, their sure keypoints a median 0.06-0.08u
    from the whole photograph's answer (u: nose to the shoulders' middle); the misses are a weak box whose face and
    shoulders read 0.48 (under CONFIDENT_HEAD) and a woman seated behind two others at the top of a waist crop.
    Until `parts_inside` a face was answered twice in a video call, through a sure box around it alone."""
    lines = run_benchmark("close_framing", str(pretrained_artifact))
    framings = {x["framing"]: x for x in lines if x["figure"] == "framing"}
    assert sorted(framings) == ["call", "upper_body", "waist"]
    for framing, x in framings.items():
        assert x["people"] >= 18 and x["found"] >= x["people"] - 3, (framing, x)
        assert x["keypoints"] >= 100 and x["median_u"] < 0.15, (framing, x)
        assert x["twice"] == 0, (framing, x)  # 1 in the video calls before `parts_inside`


def test_a_photographs_noise_no_longer_costs_the_turned_pictures_their_people(pretrained_artifact: Path) -> None:
    """benchmarks/photo_noise.py on the pretrained artifact, the turned set with noise of 8 grey levels (a phone's
    photograph indoors) on its group photographs: crops cut by Pillow's transform alone, as served until session 53,
    read a few of a large window's pixels and lose people to the noise (measured 94 of 100 clean, 90 with it; 85
    with another seed); the served crops, averaging every pixel since session 54, keep them (measured 98 clean, 95
    with it; 94), nobody twice (docs/detector.md). Until the people found upright joined a turned picture's answers
    unsure too (session 54), the noise cost the sampled crops more (72; 65)."""
    lines = run_benchmark(
        "photo_noise", str(pretrained_artifact), "--sigmas", "8", "--sets", "turned", "--repeats", "0"
    )
    found = {x["way"]: x for x in lines if x["figure"] == "found"}
    sampled, served = found["sampled"], found["served"]
    assert sampled["people"] == served["people"] == 100 and served["sigma"] == 8
    assert served["found"] >= max(sampled["found"] + 3, 92), (sampled, served)
    assert served["nobody"] <= sampled["nobody"] + 1 and served["repeats"] == 0, served


def test_only_a_large_picture_with_a_small_person_is_tiled() -> None:
    spec = InputSpec(width=512, height=512)
    small = np.array([[100, 100, 100, 300.0]])  # 300 px tall in 3000: 51 input pixels
    assert needs_tiles(small, 3000, 2000, spec)
    assert needs_tiles(np.array([[100, 100, 100, 500.0]]), 3000, 2000, spec)  # 85 input pixels: under 96
    assert not needs_tiles(np.array([[100, 100, 100, 600.0]]), 3000, 2000, spec)  # 102 input pixels
    assert needs_tiles(np.concatenate([np.array([[0, 0, 900, 1900.0]]), small]), 3000, 2000, spec)
    assert not needs_tiles(np.zeros((0, 4)), 3000, 2000, spec)  # nobody seen: nothing says people are small
    assert not needs_tiles(np.array([[10, 10, 20, 40.0]]), 1000, 800, spec)  # under twice the input: as it is
    assert SMALL_PERSON == 96.0  # 64 until session 42: a picture of 44 people, found 67-89 px tall, went untiled


def test_the_side_of_a_box_its_answered_pose_leaves_empty() -> None:
    """A box around two people whose answered pose stands in its left half: its right side is the part to read,
    reaching back over the pose's edge by a tenth of the width; a pose filling its box, or too unsure to say where
    it stands, leaves nothing to read."""
    box = np.array([0.0, 0.0, 200.0, 200.0])
    left = np.stack([np.linspace(10, 90, K), np.linspace(10, 190, K)], 1)  # x 10-90 of 0-200
    sure = np.full(K, 0.8)
    assert empty_part(box, left, sure) == (70.0, 0.0, 130.0, 200.0)  # from 90 - 20 to the box's right edge
    assert empty_part(box, left + np.array([100.0, 0.0]), sure) == (0.0, 0.0, 130.0, 200.0)  # x 110-190
    assert empty_part(box, np.stack([np.linspace(10, 190, K), left[:, 1]], 1), sure) is None
    assert empty_part(box, left, np.full(K, 0.1)) is None


def test_an_arm_reaching_into_the_empty_side_leaves_it_empty() -> None:
    """The pose on the left of a box around two, its right elbow and wrist held out to x 150 (a hand on the
    neighbour's shoulder): its head, body and legs still leave the right side empty, and that side is read, reaching
    back over them (since session 60); measured beside every sure joint, as until then, the arm filled it."""
    box = np.array([0.0, 0.0, 200.0, 200.0])
    pose = np.stack([np.linspace(10, 90, K), np.linspace(10, 190, K)], 1)
    pose[[8, 10], 0] = (130.0, 150.0)  # right elbow, right wrist
    sure = np.full(K, 0.8)
    assert empty_part(box, pose, sure) == (70.0, 0.0, 130.0, 200.0)
    assert empty_part(box, pose, sure, past_arms=False) is None
    only_arms = np.where(np.isin(np.arange(K), [0, 7, 8, 9, 10]), 0.8, 0.1)  # a nose and two arms: not enough
    assert empty_part(box, pose, only_arms) is None  # one sure joint of the head, body and legs: it stands nowhere


def test_a_person_in_the_empty_side_of_a_box_around_two_is_answered_once() -> None:
    """Two answered persons: box 0 around two people, its pose on the left; box 1 a person alone. The empty side of
    box 0 is read (blanked outside it, in box 0's crop) and its confident pose answered; a part whose pose repeats
    an answered one, or is unsure, is not."""
    rng = np.random.default_rng(4)
    boxes = np.array([[0, 0, 200, 200], [300, 0, 100, 200]], dtype=float)
    keypoints = np.stack([standing(0.0, rng), standing(300.0, rng)])
    joint_scores = np.full((2, K), 0.8)
    neighbour = standing(100.0, rng)
    asked = []

    def read_parts(parents: np.ndarray, parts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        asked.append((parents.tolist(), parts.tolist()))
        return neighbour[None], np.full((1, K), 0.7)

    parents, parts, points, scores = answer_parts(boxes, keypoints, joint_scores, np.array([0.6, 0.5]),
                                                  np.array([0, 1]), read_parts)  # fmt: skip
    assert asked == [([0], [[keypoints[0][:, 0].max() - 20.0, 0.0, 220.0 - keypoints[0][:, 0].max(), 200.0]])]
    assert parents.tolist() == [0] and np.array_equal(points[0], neighbour) and scores.shape == (1, K)
    assert parts.shape == (1, 4)

    def again(parents: np.ndarray, parts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return keypoints[0][None] + 1.0, np.full((1, K), 0.7)  # the answered person read again

    assert len(answer_parts(boxes, keypoints, joint_scores, np.array([0.6, 0.5]), np.array([0, 1]), again)[0]) == 0

    def unsure(parents: np.ndarray, parts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return neighbour[None], np.full((1, K), CONFIDENT_POSE / 2)

    assert len(answer_parts(boxes, keypoints, joint_scores, np.array([0.6, 0.5]), np.array([0, 1]), unsure)[0]) == 0


SIZE = (640, 480)  # a webcam's frame


def test_a_lost_track_is_answered_where_its_box_reads_that_person_again_surely_enough() -> None:
    """`carried_persons`: a stream's person the detector missed, read at their track's box, is answered where the read
    agrees with the track's last pose over `CARRY_JOINTS` or more sure joints, `CARRY_OKS` alike, its face and
    shoulders at least `CARRY_HEAD` sure, repeating no answered pose; the box follows the joints. Each way of
    failing, on its own, leaves the person out."""
    rng = np.random.default_rng(7)
    held = (np.array([[0.0, 0.0, 100.0, 200.0]]), standing(0.0, rng)[None], np.full((1, K), 0.8))
    track_pose = standing(300.0, rng)
    tracks = (np.array([[300.0, 0.0, 100.0, 200.0]]), track_pose[None], np.full((1, K), 0.6))
    read_scores = np.full((1, K), 0.2)
    read_scores[0, :HEAD_AND_SHOULDERS] = CARRY_HEAD + 0.05  # face and shoulders sure: 7 sure joints
    moved = (track_pose + np.array([4.0, -2.0]))[None]  # the person shifted a little since
    rows, boxes = carried_persons(held, tracks, (moved, read_scores), SIZE)
    assert rows.tolist() == [0]
    assert boxes[0] == pytest.approx([304.0, 0.0, 100.0, 198.0])  # the track's box, moved as the sure joints moved,
    # cut to the picture as the detector's boxes are
    assert carried_persons(held, tracks, (moved, read_scores), (380, 480))[1][0] == pytest.approx([304, 0, 76, 198])

    unsure_face = read_scores.copy()
    unsure_face[0, :HEAD_AND_SHOULDERS] = CARRY_HEAD - 0.05
    unsure_face[0, HEAD_AND_SHOULDERS:] = 0.9  # the rest sure does not make up for an unsure face
    assert len(carried_persons(held, tracks, (moved, unsure_face), SIZE)[0]) == 0
    few = read_scores.copy()
    few[0, CARRY_JOINTS - 1 : HEAD_AND_SHOULDERS] = 0.1  # sure joints shared with the track: one short
    few[0, : CARRY_JOINTS - 1] = 0.9
    assert len(carried_persons(held, tracks, (moved, few), SIZE)[0]) == 0
    somebody_else = standing(300.0, np.random.default_rng(8))[None]  # other joints in the same box
    pair = np.stack([somebody_else[0], track_pose])
    assert joint_oks(pair, np.stack([tracks[0][0]] * 2))[0, 1, :HEAD_AND_SHOULDERS].mean() < CARRY_OKS
    assert len(carried_persons(held, tracks, (somebody_else, read_scores), SIZE)[0]) == 0
    again = (held[1][0] + 1.0)[None]  # the read is the person answered beside: a repeat
    near = (np.array([[0.0, 0.0, 100.0, 200.0]]), held[1], np.full((1, K), 0.6))
    assert len(carried_persons(held, near, (again, read_scores), SIZE)[0]) == 0
    # a read less alike to an answered pose than two detector answers must be to be one person, but more than
    # `CARRY_REPEAT` of that: a repeat all the same (nothing but a track vouches for it)
    sure = np.full((1, K), 0.8)
    for shift in np.arange(1.0, 60.0):
        pair = np.stack([held[1][0], held[1][0] + shift])
        alike = pose_oks(pair, np.stack([held[0][0]] * 2), np.concatenate([held[2], sure]))[0, 1]
        if alike < (1 + CARRY_REPEAT) / 2 * DUPLICATE_OKS:
            break
    assert CARRY_REPEAT * DUPLICATE_OKS < alike < DUPLICATE_OKS
    shifted = (held[1][0] + shift)[None]
    assert not same_person(
        np.concatenate([held[1], shifted]), np.concatenate([held[0]] * 2), np.concatenate([held[2], sure])
    )[0, 1]
    beside = (held[0] + [shift, 0, 0, 0], shifted, sure)  # its track, seen there a moment ago
    assert len(carried_persons(held, beside, (shifted, sure), SIZE)[0]) == 0
    looser = FindOptions(duplicate_oks=1.0, same_face=False)
    assert len(carried_persons(held, beside, (shifted, sure), SIZE, looser)[0]) == 1


def test_a_tracks_box_moved_mostly_out_of_the_picture_is_not_carried() -> None:
    inside, cut = carried_boxes(
        np.array([[10.0, 10.0, 100, 100], [600.0, 0, 100, 100], [580.0, 0, 100, 100]]), 640, 480
    )
    assert inside.tolist() == [True, False, True]  # 40 of 100 px inside, then 60
    assert cut[1].tolist() == [600.0, 0.0, 40.0, 100.0] and cut[0].tolist() == [10.0, 10.0, 100.0, 100.0]
