"""People lying down or upside down: real photographs turned a quarter, a half and three quarters, as served.

    .venv/bin/python benchmarks/turned_people.py                      # pretrained Lightning and Thunder
    .venv/bin/python benchmarks/turned_people.py models/production --repeats 5
    .venv/bin/python benchmarks/turned_people.py --picture benchmarks/results/turned_people.jpg
    .venv/bin/python benchmarks/turned_people.py models/production --data data/holdout/street_scenes

The pose network learnt people upright; a person lying down or upside down it reads unsure and mostly wrong.
Pictures (tests/support/moving_people.py `turned_set`): the six group photographs `posewheel pretrained fetch`
caches (22 people, each nose marked by eye) and the check set's three photographs of one person and three of nobody
(512 px, tests/fixtures/real_photos), each upright and turned 90, 180 and 270 degrees counter-clockwise (exactly,
no resampling; the marks turned with it). A person is found when exactly one answer's nose lies within reach of
theirs (benchmarks/people_found.py); an answer near nobody's nose is "nobody", two near one person a "repeat". On
the photographs of one person, `keypoints`: the share of the original MoveNet's confident keypoints (score above
0.3, turned alike) within 5% of the side of their answer's (training/realphotos.py's agreement, on the turned
picture as served).

Four ways, in one run: `session44`, as served until session 44 (`FindOptions(turns=False, same_face=False,
turn_picture=False)`); `session45`, as served in session 45 (`posewheel.detection.read_upright`: a pose read under
0.35 is read again with its crop turned a quarter, a half and three quarters, the best kept where it is confident
and 0.1 more sure; two poses with one face one person); `session46`, as served in session 46 (a picture whose
unsure reads say it lies turned looked at again turned upright, `posewheel.detection.picture_turn`); and `served`,
as served now (a picture in doubt, the detector's best box weak and at most one person sure upright, looked at small
turned each way for the turn where the detector is sure of more people, `posewheel.detection.probed_turn`).
Prints one JSON line per artifact, way, turn and kind of picture (groups, one person, nobody) with the totals, one
per artifact and way with all of them, and one per artifact and turn with the whole answer's time (median of
`--repeats`, interleaved, mean over the pictures), session 46 against now. `--picture`: the first artifact's
answers on the three photographs of one person and three group photographs turned, one row per way (until session
44 at the top, now at the bottom). `--data`: COCO datasets scored without boxes (OKS AP, box AP, persons matched,
phantoms) as served in session 46 and now, with the whole answer's time per image: what pictures in doubt cost
where they are stored upright.
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
from posewheel.detection import FindOptions
from serving.engine import ServedModel, load_model
from tests.support.benchmarks import artifacts_or_pretrained
from tests.support.figures import emit
from tests.support.moving_people import CHECK_SET, ONE_PERSON, one_person_keypoints, turned, turned_set, who
from training.evaluate_persons import DetectedPersons, predict_without_boxes, score_without_boxes
from training.realphotos import CONFIDENT, TOLERANCE

BENCHMARK = "turned_people"
WAYS = {
    "session44": FindOptions(turns=False, same_face=False, turn_picture=False),
    "session45": FindOptions(turn_picture=False),
    "session46": FindOptions(probe_turn=False),
    "served": FindOptions(),
}
TIMED = ("session46", "served")  # the whole answer's time: session 46 against now
SIDE = 512  # the check set's photographs, as turned_set writes them
SHOWN_GROUPS = ("sample2@90", "sample3@270", "sample6@270")  # `--picture`'s group photographs


def kind(name: str) -> str:
    photo = name.split("@")[0]
    return "one_person" if photo in ONE_PERSON else "nobody" if photo.startswith("nobody") else "groups"


def keypoints_agreeing(pred: DetectedPersons, image_id: int, name: str, noses: np.ndarray) -> tuple[int, int]:
    """On a picture of one person: how many of the original's confident keypoints (turned as the picture) lie within
    `TOLERANCE` of the side of the answer whose nose is theirs, and how many there are (0 agreeing where nobody
    answered them)."""
    photo, degrees = name.split("@")
    original = one_person_keypoints(photo)
    with Image.open(CHECK_SET / f"{photo}_{SIDE}.png") as raw:
        _, want = turned(raw, original, int(degrees) // 90)
    sure = want[:, 2] > CONFIDENT
    rows = np.flatnonzero(pred.image_ids == image_id)
    mine = [row for row, person in zip(rows, who(pred, image_id, noses), strict=True) if person == 0]
    if not mine:
        return 0, int(sure.sum())
    distances = np.linalg.norm(pred.keypoints[mine[0]] - want[:, :2], axis=1)[sure]
    return int((distances < TOLERANCE * SIDE).sum()), int(sure.sum())


def people(name: str, artifact: Path, data: Path, marked: dict[int, tuple[str, np.ndarray]]) -> None:
    for way, options in WAYS.items():
        pred = predict_without_boxes(artifact, data, find_options=options)
        totals: dict[tuple[int, str], dict[str, int]] = {}
        for image_id, (picture, noses) in marked.items():
            answered = who(pred, image_id, noses)
            counts = {"people": len(noses), "found": sum(1 for i in range(len(noses)) if answered.count(i) == 1),
                      "answers": len(answered), "nobody": answered.count(None),
                      "repeats": sum(1 for i in range(len(noses)) if answered.count(i) > 1)}  # fmt: skip
            if kind(picture) == "one_person":
                counts["keypoints_agreeing"], counts["keypoints"] = keypoints_agreeing(pred, image_id, picture, noses)
            emit("picture", benchmark=BENCHMARK, model=name, way=way, picture=picture, **counts)
            for key in ((int(picture.split("@")[1]), kind(picture)), (-1, "all")):
                total = totals.setdefault(key, {})
                for field, value in counts.items():
                    total[field] = total.get(field, 0) + value
        for (degrees, pictures), total in totals.items():
            if pictures == "all":
                emit("way", benchmark=BENCHMARK, model=name, way=way, pictures=len(marked), **total)
                continue
            if "keypoints" in total:
                total["agreement"] = round(total["keypoints_agreeing"] / max(1, total["keypoints"]), 3)
            emit("turn", benchmark=BENCHMARK, model=name, way=way, degrees=degrees, pictures=pictures, **total)


def answer_ms(name: str, artifact: Path, data: Path, marked: dict[int, tuple[str, np.ndarray]], repeats: int) -> None:
    ds = coco.load(data)
    by_turn: dict[int, list[tuple[float, ...]]] = {}
    for record, times in zip(ds.images, timed(artifact, data, repeats), strict=True):
        by_turn.setdefault(int(marked[record.id][0].split("@")[1]), []).append(times)
    for degrees, times in sorted(by_turn.items()):
        before, now = np.asarray(times).T * 1000
        emit("answer_ms", benchmark=BENCHMARK, model=name, degrees=degrees, pictures=len(times),
             session46_ms=round(float(before.mean()), 1), now_ms=round(float(now.mean()), 1),
             ratio=round(float(now.mean() / before.mean()), 3),
             median_ratio=round(float(np.median(now / before)), 3))  # fmt: skip


def scenes(name: str, artifact: Path, data: Path, repeats: int) -> None:
    """A COCO dataset scored without boxes (OKS AP, box AP, persons matched, phantoms) as served in session 46 and
    now, and the whole answer's time per image (median of `repeats`, interleaved): what the pictures in doubt cost
    where they are not turned (the drawn street scenes, stored upright)."""
    for way in TIMED:
        values = score_without_boxes(predict_without_boxes(artifact, data, find_options=WAYS[way]))
        keys = ("oks_ap", "box_ap", "persons_true", "persons_found", "persons_matched", "phantoms")
        emit("scenes", benchmark=BENCHMARK, model=name, data=str(data), way=way,
             **{k: round(float(values[k]), 4) for k in keys})  # fmt: skip
    if not repeats:
        return
    times = timed(artifact, data, repeats)
    before, now = np.asarray(times).T * 1000
    emit("scenes_answer_ms", benchmark=BENCHMARK, model=name, data=str(data), images=len(times),
         session46_ms=round(float(before.mean()), 1), now_ms=round(float(now.mean()), 1),
         ratio=round(float(now.mean() / before.mean()), 3),
         median_ratio=round(float(np.median(now / before)), 3))  # fmt: skip


def picture(artifact: Path, data: Path, marked: dict[int, tuple[str, np.ndarray]], out: Path) -> None:
    """The photographs of one person turned a quarter, a half and three quarters, and three group photographs turned
    (`SHOWN_GROUPS`): each answer's skeleton and box, one row per way (`WAYS`: until session 44 at the top, now at
    the bottom)."""
    from posewheel.draw import draw_poses, image_grid

    ds = coco.load(data)
    shown = [r for r in ds.images if kind(marked[r.id][0]) == "one_person" and not marked[r.id][0].endswith("@0")]
    shown += [r for r in ds.images if marked[r.id][0] in SHOWN_GROUPS]
    tiles = []
    for options in WAYS.values():
        pred = predict_without_boxes(artifact, data, find_options=options)
        for record in shown:
            rows = pred.image_ids == record.id
            with Image.open(ds.image_path(record)) as raw:
                image = raw.convert("RGB")
            tiles.append(draw_poses(image, pred.keypoints[rows], pred.joint_scores[rows], pred.boxes[rows]))
    out.parent.mkdir(parents=True, exist_ok=True)
    image_grid(tiles, columns=len(shown), cell=240).save(out, quality=88)
    emit("picture", benchmark=BENCHMARK, model=str(artifact), path=str(out))


def timed(artifact: Path, data: Path, repeats: int) -> list[tuple[float, ...]]:
    """Each image's whole answer without boxes, in seconds, each `TIMED` way (median of `repeats`, interleaved)."""
    model = load_model(artifact.resolve(), BENCHMARK, 2)
    ds, times = coco.load(data), []
    for record in ds.images:
        with Image.open(ds.image_path(record)) as raw:
            image = raw.convert("RGB")
        spent: dict[str, list[float]] = {way: [] for way in TIMED}
        for _ in range(repeats):
            for way in TIMED:
                spent[way].append(answer_seconds(model, image, WAYS[way]))
        times.append(tuple(float(np.median(spent[way])) for way in TIMED))
    return times


def answer_seconds(model: ServedModel, image: Image.Image, options: FindOptions) -> float:
    """What the server does for a request without boxes, on this thread, found and read as `options` say."""
    model.find_options = options
    started = time.perf_counter()
    model.answer([model.find_people(image)])
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("artifacts", nargs="*", type=Path, help="model folders; default: the pretrained two")
    parser.add_argument("--repeats", type=int, default=3, help="timed answers per picture and way")
    parser.add_argument("--picture", type=Path, default=None, help="JPEG: the turned people, each way")
    parser.add_argument("--data", type=Path, action="append", default=[], help="COCO dataset scored without boxes")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        data, marked = turned_set(folder)
        artifacts = artifacts_or_pretrained(args.artifacts, folder / "models")
        for name, artifact in artifacts:
            people(name, artifact, data, marked)
            if args.repeats:
                answer_ms(name, artifact, data, marked, args.repeats)
            for scenes_data in args.data:
                scenes(name, artifact, scenes_data, args.repeats)
        if args.picture:
            picture(artifacts[0][1], data, marked, args.picture)


if __name__ == "__main__":
    main()
