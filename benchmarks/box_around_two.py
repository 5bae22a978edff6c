"""A person inside a box drawn around two: what reading the part of a box its answer leaves empty would find.

    .venv/bin/python benchmarks/box_around_two.py                         # pretrained Lightning and Thunder
    .venv/bin/python benchmarks/box_around_two.py models/production --data data/holdout/street_scenes

A candidate, not served (session 43). On the real group pictures nearly every person still missed as served
stands inside a box the detector drew around them and a neighbour: the pose network answers the neighbour,
and nobody reads the other. Here, after the served answer (`ServedModel.find_people`, then `answer`), each
answered box whose pose (its joints scored at least `CONFIDENT_JOINT`) leaves at least `EMPTY_SIDE` of the box's
width empty on one side gets that side read again as a box of its own (from the far edge of the pose, less
`OVERLAP` of the width, to the box's edge), blanked outside it, as a caller's boxes in a group are read
(`ServedModel.read_boxes` with the answered boxes beside it). Its pose is answered where it is confident
(`posewheel.detection.CONFIDENT_POSE`) and repeats no answered pose (`pose_oks` over the joints both are sure
of, at most `DUPLICATE_OKS`).

Pictures: the group photographs, their crowds and far-away copies (`benchmarks/people_found.py`, 97 people) and the
big groups (`benchmarks/big_groups.py`, 22, 44 and 66 people), noses marked by eye: people found (answered once at
a marked nose) as served and with the parts read, and of the parts' answers how many are near nobody's nose or
answer a person twice. COCO datasets given with `--data`: the parts' answers that match a labeled person no answer
matched (box IoU at least 0.5) and the phantoms (matching nobody). Prints one JSON line per artifact and picture
set or dataset, with the extra time per picture (mean, ms).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # as a script, sys.path[0] is benchmarks/

from posewheel import dataset as coco
from posewheel.boxes import iou_matrix
from posewheel.decoding import Box, pose_score
from posewheel.detection import CONFIDENT_JOINT, CONFIDENT_POSE, DUPLICATE_OKS, pose_oks
from posewheel.imagestore import read_rgb
from serving.engine import ServedModel, load_model
from tests.support.benchmarks import artifacts_or_pretrained
from tests.support.figures import emit
from tests.support.moving_people import big_group_set, group_photo_set, head

BENCHMARK = "box_around_two"
EMPTY_SIDE = 0.4  # of the box's width, left empty by the answered pose on one side
OVERLAP = 0.1  # of the box's width: the part reaches this far back over the pose's edge


def empty_part(box: np.ndarray, joint_scores: np.ndarray, keypoints: np.ndarray) -> Box | None:
    """The side of `box` (x, y, w, h) its answered pose leaves empty, as a box; None where none is."""
    sure = joint_scores >= CONFIDENT_JOINT
    if sure.sum() < 3:
        return None
    x, y, w, h = (float(v) for v in box)
    left, right = float(keypoints[sure, 0].min()) - x, x + w - float(keypoints[sure, 0].max())
    if max(left, right) < EMPTY_SIDE * w:
        return None
    if left >= right:
        return (x, y, left + OVERLAP * w, h)
    start = x + w - right - OVERLAP * w
    return (start, y, x + w - start, h)


def answers(model: ServedModel, image: Image.Image) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
    """As served, boxes (P, 4); keypoints (P + Q, 17, 2) and joint scores (P + Q, 17), the Q parts' answers after
    the served ones; the parts' boxes (Q, 4); and the parts' cost in seconds."""
    prepared = model.find_people(image)
    assert prepared.detected is not None
    answer = model.answer([prepared])[0]
    assert answer.kept is not None
    boxes = prepared.detected.boxes[answer.kept]
    points, scores = answer.points[answer.kept], answer.scores[answer.kept]
    started = time.perf_counter()
    parts = [p for p in (empty_part(b, s, k) for b, s, k in zip(boxes, scores, points, strict=True)) if p]
    new_points: list[np.ndarray] = []
    new_scores: list[np.ndarray] = []
    new_boxes: list[Box] = []
    if parts:
        read = model.answer([model.read_boxes(image, parts + [tuple(b) for b in boxes.tolist()])])[0]
        for j in np.flatnonzero(pose_score(read.scores[: len(parts)]) >= CONFIDENT_POSE):
            poses = np.concatenate([points, np.asarray(new_points).reshape(-1, 17, 2), read.points[j][None]])
            joint = np.concatenate([scores, np.asarray(new_scores).reshape(-1, 17), read.scores[j][None]])
            held = np.concatenate([boxes, np.asarray(new_boxes).reshape(-1, 4), np.asarray(parts[j])[None]])
            if pose_oks(poses, held, joint)[-1, :-1].max() <= DUPLICATE_OKS:
                new_points.append(read.points[j])
                new_scores.append(read.scores[j])
                new_boxes.append(parts[j])
    cost = time.perf_counter() - started
    return (
        boxes,
        np.concatenate([points, np.asarray(new_points).reshape(-1, 17, 2)]),
        np.concatenate([scores, np.asarray(new_scores).reshape(-1, 17)]),
        np.asarray(new_boxes).reshape(-1, 4),
        cost,
    )


def at_noses(points: np.ndarray, scores: np.ndarray, noses: np.ndarray) -> list[int | None]:
    """Each answer's marked person: the nose within reach of its own (`tests/support/moving_people.py` `who`)."""
    out: list[int | None] = []
    for p, s in zip(points, scores, strict=True):
        point = head(np.concatenate([p, s[:, None]], axis=1).ravel().tolist())
        if point is None:
            out.append(None)
            continue
        distances = np.hypot(noses[:, 0] - point[0], noses[:, 1] - point[1])
        nearest = int(distances.argmin())
        out.append(nearest if distances[nearest] < noses[nearest, 2] else None)
    return out


def marked(name: str, model: ServedModel, folder: Path) -> None:
    for set_name, (data, people) in (("groups", group_photo_set(folder / "groups")),
                                     ("big_groups", big_group_set(folder / "big"))):  # fmt: skip
        ds = coco.load(data)
        totals = {"people": 0, "found_served": 0, "found_with_parts": 0, "parts_answered": 0, "parts_near_nobody": 0,
                  "parts_twice": 0}  # fmt: skip
        costs = []
        for record in ds.images:
            _, noses = people[record.id]
            boxes, points, scores, _, cost = answers(model, read_rgb(ds.image_path(record)))
            costs.append(cost)
            whose = at_noses(points, scores, noses)
            served, added = whose[: len(boxes)], whose[len(boxes) :]
            totals["people"] += len(noses)
            totals["found_served"] += sum(1 for i in range(len(noses)) if served.count(i) == 1)
            totals["found_with_parts"] += sum(1 for i in range(len(noses)) if whose.count(i) == 1)
            totals["parts_answered"] += len(added)
            totals["parts_near_nobody"] += added.count(None)
            totals["parts_twice"] += sum(1 for i in set(added) - {None} if whose.count(i) > 1)
        emit("marked", benchmark=BENCHMARK, model=name, pictures=set_name, images=len(ds.images), **totals,
             parts_ms=round(1000 * float(np.mean(costs)), 1))  # fmt: skip


def scenes(name: str, model: ServedModel, data: Path) -> None:
    ds = coco.load(data)
    labeled = ds.annotations_by_image()
    counts = {"people": 0, "parts_answered": 0, "parts_matched": 0, "parts_phantoms": 0}
    costs = []
    for record in ds.images:
        boxes, _, _, new_boxes, cost = answers(model, read_rgb(ds.image_path(record), (record.width, record.height)))
        costs.append(cost)
        truth = np.asarray([p.bbox for p in labeled.get(record.id, []) if not p.iscrowd], dtype=np.float64)
        counts["people"] += len(truth)
        counts["parts_answered"] += len(new_boxes)
        if not len(new_boxes):
            continue
        if not len(truth):
            counts["parts_phantoms"] += len(new_boxes)
            continue
        taken = np.zeros(len(truth), dtype=bool)
        if len(boxes):
            taken |= (iou_matrix(boxes, truth) >= 0.5).any(axis=0)
        for overlap in iou_matrix(new_boxes, truth):
            free = (overlap >= 0.5) & ~taken
            if free.any():
                taken[int(np.argmax(np.where(free, overlap, -1.0)))] = True
                counts["parts_matched"] += 1
            else:
                counts["parts_phantoms"] += 1
    emit("scenes", benchmark=BENCHMARK, model=name, data=str(data), images=len(ds.images), **counts,
         parts_ms=round(1000 * float(np.mean(costs)), 1))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("artifacts", nargs="*", type=Path, help="model folders; default: the pretrained two")
    parser.add_argument("--data", type=Path, action="append", default=[], help="a COCO dataset with labels")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name, artifact in artifacts_or_pretrained(args.artifacts, folder / "models"):
            model = load_model(artifact.resolve(), BENCHMARK, 2)
            marked(name, model, folder / name.replace(" ", "_"))
            for data in args.data:
                scenes(name, model, data)


if __name__ == "__main__":
    main()
