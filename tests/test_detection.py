"""One answer per person: `distinct_persons` drops a pose that repeats a better one's (hand-made poses).

The real-photograph side (a tight group where two boxes crop one person) is in tests/test_serving_persons.py
and tests/test_evaluate_persons.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from posewheel.detection import DUPLICATE_OKS, distinct_persons, pose_oks

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


def test_the_benchmark_counts_repeats_both_ways_on_real_photographs_and_scenes(
    pretrained_artifact: Path, tmp_path: Path
) -> None:
    """benchmarks/duplicate_persons.py on the pretrained artifact: the group photographs hold repeats as
    served before, none now; a labeled scene set is scored both ways and its pairs are classified."""
    from posewheel.synth import generate

    generate("studio", 4, 21, tmp_path / "scenes", persons=(2, 3))
    script = str(Path(__file__).resolve().parents[1] / "benchmarks" / "duplicate_persons.py")
    run = subprocess.run(
        [sys.executable, script, str(pretrained_artifact), "--data", str(tmp_path / "scenes")],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    lines = [json.loads(line) for line in run.stdout.splitlines()]
    assert len([x for x in lines if x["figure"] == "photo"]) == 20  # six group photographs, 14 of the check set
    (summary,) = [x for x in lines if x["figure"] == "photographs"]
    assert summary["repeats_every"] > 0 == summary["repeats_distinct"]
    assert summary["distinct"] < summary["every"] and summary["least_similar_dropped"] > DUPLICATE_OKS
    assert summary["most_similar_kept"] <= DUPLICATE_OKS
    assert sorted(x["answers"] for x in lines if x["figure"] == "scenes") == ["distinct", "every"]
    (pairs,) = [x for x in lines if x["figure"] == "pairs"]
    assert pairs["duplicate_oks"] == DUPLICATE_OKS
