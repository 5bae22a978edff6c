"""One answer per person: what dropping a pose that repeats a better one's does, on real photographs and scenes.

    .venv/bin/python benchmarks/duplicate_persons.py                            # pretrained Lightning and Thunder
    .venv/bin/python benchmarks/duplicate_persons.py models/production --data data/holdout/street_scenes
    .venv/bin/python benchmarks/duplicate_persons.py --picture var/duplicate_persons.jpg

In a tight group the person detector's box around two people and its box around one of them both crop
that one, and the top-down pose network draws the same skeleton twice. `posewheel.detection.
distinct_persons` (served since session 31) keeps one pose per person: a pose within OKS DUPLICATE_OKS
of a better one's is dropped. The baseline is every detection, as served before, in the same run and on
the same detections (`predict_without_boxes(distinct=False)`, then `distinct_detections`: only the drop
differs). Both read each crop as it is (`AS_CROPPED`): since session 36 a person whose crop holds another's
box is read alone, blanked outside their own box, which leaves the group photographs no repeat to drop.
Two poses are compared over the joints both are sure of (`pose_oks`, `CONFIDENT_JOINT`; since session 43).

Which measure tells one person read twice from two people (`marked_pairs`): every two answers of the group
photographs, their crowds and big groups (tests/support/moving_people.py, each nose marked by eye), crops read
as they are and as served, are one person when both answers' noses are at the same marked nose and two people
when at two; counted over all 17 joints (sessions 31-42) and over the joints both are sure of; and by their faces
alone (`face_oks`, since session 45: one face, one person above SAME_FACE_OKS).

Photographs: the six group photographs `posewheel pretrained fetch` caches (training/distill.py's, 22
people counted by eye: 3, 3, 3, 4, 5, 4) and the check set at the detector's size, mirror images included
(tests/support/real_photos.py, counts from its README). COCO datasets given with `--data` are scored
without boxes (OKS AP, persons found, phantoms) both ways.

Prints one JSON line per artifact and photograph (persons answered both ways, people in it, the highest
OKS between two answered poses both ways); one per artifact with the totals (repeats: pairs of answered
poses above DUPLICATE_OKS) and the gap between the least similar pair dropped and the most similar pair
kept; per artifact and dataset its scores both ways and, of the pairs above the threshold, how many are
one labeled person read twice (both poses nearest the same labeled pose) and how many two people; per
artifact and way of reading the crops, the marked pairs both ways (one person kept twice, the most similar two
people). How
many answers match a photograph's count is not a figure here: where a repeat stood in for a missed
person, the count came out right by chance.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # as a script, sys.path[0] is benchmarks/

from posewheel import dataset as coco
from posewheel.detection import CONFIDENT_JOINT, DUPLICATE_OKS, SAME_FACE_OKS, FindOptions, face_oks, pose_oks
from tests.support.benchmarks import photographs_and_scenes
from tests.support.figures import emit
from tests.support.moving_people import big_group_set, group_photo_set, who
from tests.support.real_photos import detector_photos, persons_in_photo
from training.evaluate_persons import DetectedPersons, distinct_detections, predict_without_boxes, score_without_boxes

BENCHMARK = "duplicate_persons"
GROUPS = {"sample1": 3, "sample2": 3, "sample3": 3, "sample4": 4, "sample5": 5, "sample6": 4}  # counted by eye
AS_CROPPED = FindOptions(read_alone=False)  # every crop read as it is, as served before session 36
ALL_JOINTS = 0.0  # `confident_joint` of sessions 31-42: two poses compared on all 17 joints


def photo_set(folder: Path) -> tuple[Path, dict[int, tuple[str, int]]]:
    """The group photographs and the check set as one COCO dataset without labels; image id -> (name, people)."""
    from posewheel.pretrained import real_frames

    images, sources, people = [], {}, {}
    pictures: list[tuple[str, int, Image.Image | Path]] = [(p.stem, GROUPS[p.stem], p) for p in real_frames()]
    pictures += [(name, persons_in_photo(name), image) for name, image in detector_photos()]
    for image_id, (name, count, picture) in enumerate(pictures, start=1):
        if isinstance(picture, Path):
            sources[image_id] = picture
            with Image.open(picture) as opened:
                width, height = opened.size
            file_name = picture.name
        else:
            file_name = f"{name}.png"
            sources[image_id] = folder / file_name
            picture.save(sources[image_id])
            width, height = picture.size
        images.append(coco.ImageRecord(id=image_id, file_name=file_name, width=width, height=height))
        people[image_id] = (name, count)
    coco.save(coco.Dataset(images=images, annotations=[]), folder / "photos", image_sources=sources)
    return folder / "photos", people


def pair_oks(pred: DetectedPersons, image_id: int, confident_joint: float = CONFIDENT_JOINT) -> np.ndarray:
    """OKS of every two answered poses of one image (upper triangle, flattened), over the joints both are sure of
    (`pose_oks`; `confident_joint` 0: over all 17)."""
    rows = pred.image_ids == image_id
    oks = pose_oks(pred.keypoints[rows], pred.boxes[rows], pred.joint_scores[rows], confident_joint)
    return oks[np.triu_indices(int(rows.sum()), k=1)]


def marked_pairs(name: str, artifact: Path, folder: Path) -> None:
    """Every two answers of the group photographs, their crowds and big groups (noses marked, every detection as it
    is and as served) told apart by whose nose each is at: one person read twice, or two people; how many of each
    lie beyond DUPLICATE_OKS over all 17 joints (as until session 42) and over the joints both are sure of."""
    marked = [group_photo_set(folder / "groups"), big_group_set(folder / "big")]
    for how, options in (("as_cropped", AS_CROPPED), ("as_served", FindOptions())):
        one: dict[str, list[float]] = {"all": [], "shared": [], "face": []}
        two: dict[str, list[float]] = {"all": [], "shared": [], "face": []}
        for data, noses in marked:
            every = predict_without_boxes(artifact, data, distinct=False, find_options=options)
            for image_id, (_, marks) in noses.items():
                whose = who(every, image_id, marks)
                pairs = [(a, b) for a, b in zip(*np.triu_indices(len(whose), k=1), strict=True)
                         if whose[a] is not None and whose[b] is not None]  # fmt: skip
                for key, joint in (("all", ALL_JOINTS), ("shared", CONFIDENT_JOINT)):
                    rows = every.image_ids == image_id
                    oks = pose_oks(every.keypoints[rows], every.boxes[rows], every.joint_scores[rows], joint)
                    for a, b in pairs:
                        (one if whose[a] == whose[b] else two)[key].append(float(oks[a, b]))
                faces = face_oks(every.keypoints[rows], every.boxes[rows], every.joint_scores[rows])
                for a, b in pairs:
                    (one if whose[a] == whose[b] else two)["face"].append(float(faces[a, b]))
        emit("marked_pairs", benchmark=BENCHMARK, model=name, crops=how, duplicate_oks=DUPLICATE_OKS,
             one_person=len(one["all"]), one_person_kept_all=sum(v <= DUPLICATE_OKS for v in one["all"]),
             one_person_kept_shared=sum(v <= DUPLICATE_OKS for v in one["shared"]), two_people=len(two["all"]),
             most_similar_two_all=round(max(two["all"], default=0.0), 3),
             most_similar_two_shared=round(max(two["shared"], default=0.0), 3), same_face_oks=SAME_FACE_OKS,
             one_person_kept_shared_and_face=sum(v <= DUPLICATE_OKS and f <= SAME_FACE_OKS
                                                 for v, f in zip(one["shared"], one["face"], strict=True)),
             two_people_one_face=sum(f > SAME_FACE_OKS for f in two["face"]),
             most_alike_two_faces=round(max(two["face"], default=0.0), 3))  # fmt: skip


def photographs(name: str, artifact: Path, data: Path, people: dict[int, tuple[str, int]]) -> None:
    every = predict_without_boxes(artifact, data, distinct=False, find_options=AS_CROPPED)
    distinct = distinct_detections(every)
    totals = {"people": 0, "every": 0, "distinct": 0, "repeats_every": 0, "repeats_distinct": 0}
    dropped_oks, kept_oks = [], []
    for image_id, (photo, count) in people.items():
        found = {how: int((p.image_ids == image_id).sum()) for how, p in (("every", every), ("distinct", distinct))}
        before, after = pair_oks(every, image_id), pair_oks(distinct, image_id)
        kept_oks += after.tolist()
        dropped_oks += [v for v in before.tolist() if v > DUPLICATE_OKS]
        emit("photo", benchmark=BENCHMARK, model=name, photo=photo, people=count, answered_every=found["every"],
             answered_distinct=found["distinct"], max_pair_oks_every=round(float(before.max(initial=0.0)), 3),
             max_pair_oks_distinct=round(float(after.max(initial=0.0)), 3))  # fmt: skip
        totals["people"] += count
        for how, pairs in (("every", before), ("distinct", after)):
            totals[how] += found[how]
            totals[f"repeats_{how}"] += int((pairs > DUPLICATE_OKS).sum())
    emit("photographs", benchmark=BENCHMARK, model=name, photos=len(people), **totals,
         least_similar_dropped=round(min(dropped_oks, default=float("nan")), 3),
         most_similar_kept=round(max(kept_oks, default=float("nan")), 3), duplicate_oks=DUPLICATE_OKS)  # fmt: skip
    marked_pairs(name, artifact, data.parent / "marked")


def nearest_labeled(pred: DetectedPersons, rows: np.ndarray, people: list[coco.PersonAnnotation]) -> np.ndarray:
    """For each of an image's detections (`rows`), the index of the labeled person whose pose its pose matches
    best (OKS); -1 each when nobody is labeled."""
    if not people:
        return np.full(len(rows), -1)
    poses = np.concatenate([pred.keypoints[rows], np.stack([p.keypoints[:, :2] for p in people])])
    boxes = np.concatenate([pred.boxes[rows], np.stack([p.bbox for p in people])])
    return np.asarray(pose_oks(poses, boxes)[: len(rows), len(rows) :].argmax(axis=1))


def scenes(name: str, artifact: Path, data: Path) -> None:
    every = predict_without_boxes(artifact, data, distinct=False, find_options=AS_CROPPED)
    for how, pred in (("every", every), ("distinct_all_joints", distinct_detections(every, ALL_JOINTS)),
                      ("distinct", distinct_detections(every))):  # fmt: skip
        values = score_without_boxes(pred)
        keys = ("oks_ap", "box_ap", "persons_true", "persons_found", "persons_matched", "phantoms")
        emit("scenes", benchmark=BENCHMARK, model=name, data=str(data), answers=how,
             **{k: round(float(values[k]), 4) for k in keys})  # fmt: skip
    # Is a pair above the threshold one labeled person read twice, or two people whose poses are alike?
    labeled = every.dataset.annotations_by_image()
    for joints, joint in (("all", ALL_JOINTS), ("shared", CONFIDENT_JOINT)):
        same, different, most_similar_different = 0, 0, 0.0
        for image_id in np.unique(every.image_ids):
            rows = np.flatnonzero(every.image_ids == image_id)
            oks = pose_oks(every.keypoints[rows], every.boxes[rows], every.joint_scores[rows], joint)
            people = [p for p in labeled.get(int(image_id), []) if p.num_keypoints > 0]
            nearest = nearest_labeled(every, rows, people)
            for a, b in zip(*np.triu_indices(len(rows), k=1), strict=True):
                one = bool(nearest[a] == nearest[b])
                if not one:
                    most_similar_different = max(most_similar_different, float(oks[a, b]))
                if oks[a, b] > DUPLICATE_OKS:
                    same, different = same + one, different + (not one)
        emit("pairs", benchmark=BENCHMARK, model=name, data=str(data), joints=joints, duplicate_oks=DUPLICATE_OKS,
             above_one_person=same, above_two_people=different,
             most_similar_two_people=round(most_similar_different, 3))  # fmt: skip


def picture(artifact: Path, data: Path, people: dict[int, tuple[str, int]], out: Path) -> None:
    """The group photographs as served before (top row) and now (bottom row)."""
    from posewheel.draw import draw_poses, image_grid

    ds = coco.load(data)
    tiles = []
    every = predict_without_boxes(artifact, data, distinct=False, find_options=AS_CROPPED)
    for pred in (every, distinct_detections(every)):
        for record in ds.images:
            if people[record.id][0] not in GROUPS:
                continue
            rows = pred.image_ids == record.id
            with Image.open(ds.image_path(record)) as raw:
                image = raw.convert("RGB")
            tiles.append(draw_poses(image, pred.keypoints[rows], pred.joint_scores[rows], pred.boxes[rows]))
    out.parent.mkdir(parents=True, exist_ok=True)
    image_grid(tiles, columns=len(GROUPS), cell=480).save(out)
    emit("picture", benchmark=BENCHMARK, model=str(artifact), path=str(out))


def main() -> None:
    photographs_and_scenes(__doc__ or "", "the group photos, before and after", photo_set, photographs, scenes, picture)


if __name__ == "__main__":
    main()
