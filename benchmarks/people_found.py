"""Everyone in a group photograph answered, once: the people the served path finds on real photographs.

    .venv/bin/python benchmarks/people_found.py                       # pretrained Lightning and Thunder
    .venv/bin/python benchmarks/people_found.py models/production --data data/holdout/street_scenes
    .venv/bin/python benchmarks/people_found.py --picture benchmarks/results/people_found.jpg
    .venv/bin/python benchmarks/people_found.py --repeats 1           # timed once a picture (default 5; 3 a scene)

Photographs: the six group photographs `posewheel pretrained fetch` caches (22 people, each nose marked by
eye: tests/support/moving_people.py NOSES), each at its own size; three crowds made of them: two side
by side (9 people), all six in three columns (22) and all six in one row (22); and each of the six far away:
900 px wide on a 3000 x 2000 grey picture (22 people, 60-150 px tall). A person is found when
exactly one answer's nose (`head`) lies within reach (150 px at the photograph's scale) of theirs; an
answer near nobody's nose is "nobody", two answers near one person a "repeat".

Sixteen ways, in one run (the detector is deterministic):
- `session32`: as served before session 33: at most 10 persons per image (the CenterNet card's cap then),
  a pose repeating a better one's dropped (`distinct_detections`).
- `cap20`: the same with the cap at 20, COCO's own limit for keypoint evaluation (maxDets 20).
- `reread`: as served in session 33 (`posewheel.detection.answer_once`): the card's cap (20 until session 42,
  64 since: the same answers on these pictures, benchmarks/big_groups.py), and a box whose pose
  repeats a better one's is read again with everything outside it blanked.
- `tiles`: as served in session 34: the same, and a picture at least twice the detector's input where a person
  found stands under 64 input pixels tall is looked at again in tiles (`posewheel.detection.with_tiles`).
- `confirmed`: as served in session 35: the same, and a box the detector scored under its threshold, down to
  half of it, answered where the pose network reads a confident pose in it (`posewheel.detection.confirmed`).
- `alone`: as served in sessions 36-42: the same, and a person whose crop holds more than a tenth of another
  person's box read with everything outside their own box blanked (`posewheel.detection.read_alone`).
- `shared`: the same, and two poses compared on the joints both are sure of (`posewheel.detection.pose_oks`,
  `CONFIDENT_JOINT`), not on all 17, when one answer per person is chosen.
- `unsure_tiles`: the same, and where the detector is sure of nobody, a small person it is unsure of whom the pose
  network reads calls for tiles (`FindOptions.unsure_call_tiles`).
- `parts`: as served in session 43: the same, and the side of an answered box its pose leaves empty read for a
  person of its own (`posewheel.detection.answer_parts`: a person inside a box drawn around two).
- `head`: as served in session 44: the same, and a weak box confirmed by its face and shoulders too
  (`posewheel.detection.CONFIDENT_HEAD`), two poses one person from 0.58 alike instead of 0.63 (`DUPLICATE_OKS`).
- `turns`: the same, and a person the pose network reads unsure read turned too (`posewheel.detection.read_upright`:
  one lying down or upside down; benchmarks/turned_people.py).
- `face`: as served in session 45: the same, and two poses whose faces coincide one person however their bodies
  differ (`posewheel.detection.same_person`).
- `picture`: as served in session 46: the same, and a picture whose unsure reads say it is stored sideways or upside
  down looked at again turned upright (`posewheel.detection.picture_turn`).
- `probe`: as served in sessions 47-56: the same, and a picture in doubt (the detector's best box weak, nobody sure
  upright) looked at small, turned each way, for the turn where the detector is sure of more people
  (`posewheel.detection.probed_turn`);
- `inside`: as served in sessions 57-59: the same, and an answer whose box lies inside another's, its face and
  shoulders unsure, taken for a part of that person (`posewheel.detection.parts_inside`).
- `arms`: as served now (`predict_without_boxes`): the same, and the side of a box its pose leaves empty measured
  beside the pose's head, body and legs, an arm reaching into it leaving it empty
  (`posewheel.detection.FindOptions.parts_past_arms`).

Times per photograph, in the same run, interleaved: the served detector's, the whole picture only against tiled
where it needs them (`detector_ms`); and the whole answer's (detector, poses, one answer per person), as served
in sessions 35 and 46 against now (`answer_ms`; for a `--data` set its mean over the images, `scenes_answer_ms`).

COCO datasets given with `--data` are scored without boxes (OKS AP, box AP, persons matched, phantoms),
fifteen ways: repeats dropped only, as served in sessions 34, 35 and 36-42, with shared joints, with the unsure
calling for tiles, as served in sessions 43 and 44, with the turned reads, as served in sessions 45, 46, 47-56 and
57-59, and now.
Prints one JSON line per artifact, way and photograph, one per artifact and way with the totals and the wall
time, one per artifact, dataset and way.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageChops

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # as a script, sys.path[0] is benchmarks/

from posewheel import dataset as coco
from posewheel.detection import FindOptions
from serving.engine import ServedModel, load_model
from tests.support.benchmarks import photographs_and_scenes
from tests.support.figures import emit
from tests.support.moving_people import GREY, group_photo_set, who
from training.evaluate_persons import DetectedPersons, distinct_detections, predict_without_boxes, score_without_boxes

BENCHMARK = "people_found"
SESSION32_CAP = 10  # training/detectors.py's CenterNet card before session 33
SESSION43_DUPLICATE_OKS = 0.63  # posewheel.detection.DUPLICATE_OKS from session 31 to 43
BEFORE_60 = {"parts_past_arms": False}  # session 60's step, off
BEFORE_57 = {"inside_parts": False, **BEFORE_60}  # session 57's step, off
BEFORE_47 = {"probe_turn": False, **BEFORE_57}  # session 47's step, off
BEFORE_46 = {"turn_picture": False, **BEFORE_47}  # session 46's step, off
BEFORE_45 = {"turns": False, "same_face": False, **BEFORE_46}  # session 45's steps, off
BEFORE_44 = {"head_confirms": False, "duplicate_oks": SESSION43_DUPLICATE_OKS, **BEFORE_45}  # session 44's, off
BEFORE_43 = {"unsure_call_tiles": False, "read_parts": False, **BEFORE_44}  # session 43's two steps, off
WHOLE = FindOptions(tiles=False, pose_confirms=False, read_alone=False, **BEFORE_43)  # the whole picture alone
TILED = FindOptions(pose_confirms=False, read_alone=False, **BEFORE_43)  # as served in session 34
CONFIRMED = FindOptions(read_alone=False, **BEFORE_43)  # as served in session 35
ALONE = FindOptions(**BEFORE_43)  # as served in sessions 36-42
NO_PARTS = FindOptions(read_parts=False, **BEFORE_44)  # as served in session 43's first commit
PARTS = FindOptions(**BEFORE_44)  # as served in session 43
HEAD = FindOptions(**BEFORE_45)  # as served in session 44
TURNS = FindOptions(same_face=False, **BEFORE_46)  # session 45's first step
FACE = FindOptions(**BEFORE_46)  # as served in session 45
PICTURE = FindOptions(**BEFORE_47)  # as served in session 46
PROBE = FindOptions(**BEFORE_57)  # as served in sessions 47-56
INSIDE = FindOptions(**BEFORE_60)  # as served in sessions 57-59
WAYS = (
    "session32",
    "cap20",
    "reread",
    "tiles",
    "confirmed",
    "alone",
    "shared",
    "unsure_tiles",
    "parts",
    "head",
    "turns",
    "face",
    "picture",
    "probe",
    "inside",
    "arms",
)
ALL_JOINTS = 0.0  # `confident_joint` of sessions 31-42: two poses compared on all 17 joints


def ways(
    artifact: Path,
    data: Path,
    names: tuple[str, ...] = WAYS,
) -> dict[str, tuple[DetectedPersons, float]]:
    """The ways (module docstring) named on `data`, each with its wall time in seconds."""
    runs = {
        "session32": lambda: distinct_detections(
            predict_without_boxes(artifact, data, max_persons=SESSION32_CAP, distinct=False, find_options=WHOLE),
            duplicate_oks=SESSION43_DUPLICATE_OKS,
        ),
        "cap20": lambda: distinct_detections(
            predict_without_boxes(artifact, data, max_persons=20, distinct=False, find_options=WHOLE),
            duplicate_oks=SESSION43_DUPLICATE_OKS,
        ),
        "reread": lambda: predict_without_boxes(artifact, data, find_options=WHOLE),
        "tiles": lambda: predict_without_boxes(artifact, data, find_options=TILED),
        "confirmed": lambda: predict_without_boxes(artifact, data, find_options=CONFIRMED),
        "alone": lambda: predict_without_boxes(artifact, data, find_options=ALONE, confident_joint=ALL_JOINTS),
        "shared": lambda: predict_without_boxes(artifact, data, find_options=ALONE),
        "unsure_tiles": lambda: predict_without_boxes(artifact, data, find_options=NO_PARTS),
        "parts": lambda: predict_without_boxes(artifact, data, find_options=PARTS),
        "head": lambda: predict_without_boxes(artifact, data, find_options=HEAD),
        "turns": lambda: predict_without_boxes(artifact, data, find_options=TURNS),
        "face": lambda: predict_without_boxes(artifact, data, find_options=FACE),
        "picture": lambda: predict_without_boxes(artifact, data, find_options=PICTURE),
        "probe": lambda: predict_without_boxes(artifact, data, find_options=PROBE),
        "inside": lambda: predict_without_boxes(artifact, data, find_options=INSIDE),
        "arms": lambda: predict_without_boxes(artifact, data),
    }
    out = {}
    for way in names:
        started = time.perf_counter()
        out[way] = (runs[way](), time.perf_counter() - started)
    return out


def photographs(
    name: str, artifact: Path, data: Path, marked: dict[int, tuple[str, np.ndarray]], timed_runs: int = 5
) -> None:
    for way, (pred, seconds) in ways(artifact, data).items():
        totals = {"people": 0, "found": 0, "answers": 0, "nobody": 0, "repeats": 0}
        for image_id, (photo, noses) in marked.items():
            answered = who(pred, image_id, noses)
            found = sum(1 for i in range(len(noses)) if answered.count(i) == 1)
            repeats = sum(1 for i in range(len(noses)) if answered.count(i) > 1)
            counts = {"people": len(noses), "found": found, "answers": len(answered),
                      "nobody": answered.count(None), "repeats": repeats}  # fmt: skip
            emit("photo", benchmark=BENCHMARK, model=name, way=way, photo=photo, **counts)
            for key, value in counts.items():
                totals[key] += value
        emit("photographs", benchmark=BENCHMARK, model=name, way=way, photos=len(marked), **totals,
             seconds=round(seconds, 2))  # fmt: skip
    detector_cost(name, artifact, data, timed_runs)


def detector_cost(name: str, artifact: Path, data: Path, repeats: int = 5) -> None:
    """Per photograph (2 threads, median of `repeats`, interleaved): the served detector's time
    (`PersonDetector.detect`), the whole picture only against tiled where `needs_tiles`; and the whole answer's
    as served (`answer`), in session 35 against now."""
    model = load_model(artifact.resolve(), "people_found", 2)
    detector = model.detector
    assert detector is not None, f"{artifact}: no person detector"
    ds = coco.load(data)
    for record in ds.images:
        with Image.open(ds.image_path(record)) as raw:
            image = raw.convert("RGB")
        photo, size = record.file_name.rsplit(".", 1)[0], f"{image.width}x{image.height}"
        detect: dict[FindOptions, list[float]] = {WHOLE: [], TILED: []}
        for _ in range(repeats):
            for how, times in detect.items():
                started = time.perf_counter()
                detector.detect(image, options=how)
                times.append(time.perf_counter() - started)
        whole_ms, tiled_ms = (round(1000 * float(np.median(detect[h])), 1) for h in (WHOLE, TILED))
        emit("detector_ms", benchmark=BENCHMARK, model=name, photo=photo, size=size, whole_ms=whole_ms,
             served_ms=tiled_ms, ratio=round(tiled_ms / whole_ms, 2))  # fmt: skip
        before_ms, session46_ms, now_ms = answer_ms(model, image, repeats)
        emit("answer_ms", benchmark=BENCHMARK, model=name, photo=photo, size=size, session35_ms=before_ms,
             session46_ms=session46_ms, now_ms=now_ms, ratio=round(now_ms / before_ms, 2),
             ratio46=round(now_ms / session46_ms, 2))  # fmt: skip


def answer_ms(model: ServedModel, image: Image.Image, repeats: int) -> tuple[float, float, float]:
    """The whole answer's time for `image` (median of `repeats`, interleaved, ms): as served in session 35, in
    session 46 (before a picture in doubt was looked at small, turned each way), then now."""
    assert model.detector is not None
    times: dict[FindOptions, list[float]] = {CONFIRMED: [], PICTURE: [], FindOptions(): []}
    for _ in range(repeats):
        for how, spent in times.items():
            model.find_options = how
            started = time.perf_counter()
            answer(model, image)
            spent.append(time.perf_counter() - started)
    before, session46, now = (round(1000 * float(np.median(times[h])), 1) for h in (CONFIRMED, PICTURE, FindOptions()))
    return before, session46, now


def answer(model: ServedModel, image: Image.Image) -> int:
    """What the server does for a request without boxes, on this thread: find the people, read every box in one
    batch, one answer per confirmed person; returns how many were answered."""
    kept = model.answer([model.find_people(image)])[0].kept
    assert kept is not None
    return len(kept)


def scenes(name: str, artifact: Path, data: Path, timed_runs: int = 3) -> None:
    for way, pred in (("drop", distinct_detections(predict_without_boxes(artifact, data, distinct=False,
                                                                         find_options=TILED),
                                                   duplicate_oks=SESSION43_DUPLICATE_OKS)),
                      ("tiles", predict_without_boxes(artifact, data, find_options=TILED)),
                      ("confirmed", predict_without_boxes(artifact, data, find_options=CONFIRMED)),
                      ("alone", predict_without_boxes(artifact, data, find_options=ALONE,
                                                      confident_joint=ALL_JOINTS)),
                      ("shared", predict_without_boxes(artifact, data, find_options=ALONE)),
                      ("unsure_tiles", predict_without_boxes(artifact, data, find_options=NO_PARTS)),
                      ("parts", predict_without_boxes(artifact, data, find_options=PARTS)),
                      ("head", predict_without_boxes(artifact, data, find_options=HEAD)),
                      ("turns", predict_without_boxes(artifact, data, find_options=TURNS)),
                      ("face", predict_without_boxes(artifact, data, find_options=FACE)),
                      ("picture", predict_without_boxes(artifact, data, find_options=PICTURE)),
                      ("probe", predict_without_boxes(artifact, data, find_options=PROBE)),
                      ("inside", predict_without_boxes(artifact, data, find_options=INSIDE)),
                      ("arms", predict_without_boxes(artifact, data))):  # fmt: skip
        values = score_without_boxes(pred)
        keys = ("oks_ap", "box_ap", "persons_true", "persons_found", "persons_matched", "phantoms")
        emit("scenes", benchmark=BENCHMARK, model=name, data=str(data), way=way,
             **{k: round(float(values[k]), 4) for k in keys})  # fmt: skip
    model = load_model(artifact.resolve(), "people_found", 2)
    ds = coco.load(data)
    costs = []
    for record in ds.images:
        with Image.open(ds.image_path(record)) as raw:
            costs.append(answer_ms(model, raw.convert("RGB"), timed_runs))
    before, session46, now = np.asarray(costs).T
    emit("scenes_answer_ms", benchmark=BENCHMARK, model=name, data=str(data), images=len(costs),
         session35_ms=round(float(before.mean()), 1), session46_ms=round(float(session46.mean()), 1),
         now_ms=round(float(now.mean()), 1), ratio=round(float(now.mean() / before.mean()), 3),
         median_ratio=round(float(np.median(now / before)), 3), ratio46=round(float(now.mean() / session46.mean()), 3),
         median_ratio46=round(float(np.median(now / session46)), 3))  # fmt: skip


def picture(artifact: Path, data: Path, marked: dict[int, tuple[str, np.ndarray]], out: Path) -> None:
    """A group photograph, the six in three columns and one far away (shown without the grey around it): as
    served in session 32 (top), now (bottom)."""
    from posewheel.draw import draw_poses, image_grid

    ds = coco.load(data)
    shown = [r for r in ds.images if marked[r.id][0] in ("sample4", "six_in_three_columns", "sample5_far_away")]
    tiles = []
    for pred, _ in ways(artifact, data, ("session32", "parts")).values():
        for record in shown:
            rows = pred.image_ids == record.id
            with Image.open(ds.image_path(record)) as raw:
                image = raw.convert("RGB")
            drawn = draw_poses(image, pred.keypoints[rows], pred.joint_scores[rows], pred.boxes[rows])
            if marked[record.id][0].endswith("_far_away"):  # only the photograph, not the grey around it
                drawn = drawn.crop(ImageChops.difference(image, Image.new("RGB", image.size, GREY)).getbbox())
            tiles.append(drawn)
    out.parent.mkdir(parents=True, exist_ok=True)
    image_grid(tiles, columns=len(shown), cell=640).save(out, quality=88)
    emit("picture", benchmark=BENCHMARK, model=str(artifact), path=str(out))


def main() -> None:
    photographs_and_scenes(
        __doc__ or "", "session 32 against now, three photos", group_photo_set, photographs, scenes, picture, timed=True
    )


if __name__ == "__main__":
    main()
