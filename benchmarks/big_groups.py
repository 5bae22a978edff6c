"""A big group in one picture: how many people the served path answers when there are more than 20.

    .venv/bin/python benchmarks/big_groups.py                        # the pretrained Lightning and Thunder
    .venv/bin/python benchmarks/big_groups.py models/production

Pictures (tests/support/moving_people.py BIG_GROUPS): the six group photographs `posewheel pretrained fetch`
caches (22 people, each nose marked by eye: NOSES) put side by side on grey, once (22 people, three to a row,
600 px tall), twice (44, four to a row, 500 px) and three times (66, six to a row, 450 px): a class photo's
crowd, each person smaller the bigger the group. A person is found when exactly one answer's nose lies within
reach of theirs (benchmarks/people_found.py).

Nine ways, as served without boxes (`training.evaluate_persons.predict_without_boxes`, the server's steps), each
setting the cap, the tiles' trigger (`posewheel.detection.SMALL_PERSON`) and the tiles' side
(`posewheel.detection.TILE_FRACTION`):
- `session41`: as served in sessions 34-41: at most 20 persons a picture (the CenterNet card's cap then, COCO's
  maxDets); tiles where a person found stands under 64 input pixels, 0.625 of the picture's long side;
- `cap64`: the same with the cap at 64;
- `small96`: the same with tiles where a person found stands under 96 input pixels;
- `session42`: as served in session 42: the card's own cap (64 for a CenterNet card written since session 42, 20
  in older ones), tiles under 96 pixels, 0.4 of the long side; only a person the detector is sure of (scored at
  its threshold) calls for tiles, and two poses are compared on all 17 joints (`posewheel.detection.pose_oks`);
- `session43`: as served in session 43: the same, and a person the detector is unsure of, if the pose network reads
  it (`posewheel.detection.boxes_to_read`), calls for tiles too (in the 66-person picture nobody scored the
  threshold and it was never tiled), two poses are compared on the joints both are sure of, and the side of a box
  its answer leaves empty is read (`posewheel.detection.answer_parts`);
- `session44`: as served in session 44: the same, and a weak box confirmed by its face and shoulders too
  (`posewheel.detection.CONFIDENT_HEAD`), two poses one person from 0.58 alike instead of 0.63;
- `session45`: as served in session 45: the same, and a person the pose network reads unsure read turned too
  (`posewheel.detection.read_upright`), two poses whose faces coincide one person (`posewheel.detection.same_person`);
- `card`: as served now: the same, and a picture whose unsure reads say it lies turned looked at again upright
  (`posewheel.detection.picture_turn`);
- `asked64`: the same with a caller asking for 64 (`max_persons=64`), which any CenterNet card answers since
  session 42 (`posewheel.detection.person_cap`).

Prints one JSON line per artifact, way and picture (people, found, answers, answers near nobody, repeats), and
one per artifact and way with the wall time of the three pictures (median of `--repeats`, interleaved) and its
ratio to `session41`'s.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # as a script, sys.path[0] is benchmarks/

from posewheel import detection
from tests.support.benchmarks import artifacts_or_pretrained
from tests.support.figures import emit
from tests.support.moving_people import big_group_set, who
from training.evaluate_persons import DetectedPersons, predict_without_boxes

BENCHMARK = "big_groups"
SERVED = (detection.SMALL_PERSON, detection.TILE_FRACTION)
WAYS = {  # way -> (max_persons, tiles' trigger in input pixels, tiles' side of the long side, as served in session)
    "session41": (20, 64.0, 0.625, 42),
    "cap64": (64, 64.0, 0.625, 42),
    "small96": (64, 96.0, 0.625, 42),
    "session42": (None, *SERVED, 42),
    "session43": (None, *SERVED, 43),
    "session44": (None, *SERVED, 44),
    "session45": (None, *SERVED, 45),
    "card": (None, *SERVED, 46),
    "asked64": (64, *SERVED, 46),
}
# Until session 42 only a person the detector was sure of called for tiles, two poses were compared on all 17
# joints when one answer per person was chosen, and the side of a box its answer left empty was not read. Until
# session 43 a weak box was confirmed by its pose score alone and two poses were one person from 0.63 alike. Until
# session 44 a pose read unsure was not read turned (`read_upright`) nor two poses with one face one person. Until
# session 45 a picture lying turned was not looked at again upright (`picture_turn`).
SESSION45 = detection.FindOptions(turn_picture=False)
SESSION44 = replace(SESSION45, turns=False, same_face=False)
SESSION43 = replace(SESSION44, head_confirms=False, duplicate_oks=0.63)
SURE_CALL_TILES = replace(SESSION43, unsure_call_tiles=False, read_parts=False)
ALL_JOINTS = 0.0


def run(artifact: Path, data: Path, way: str) -> DetectedPersons:
    """The persons found in `data` as `way` finds them."""
    cap, detection.SMALL_PERSON, detection.TILE_FRACTION, session = WAYS[way]  # read by the tiles' code at each call
    try:
        if session == 46:
            return predict_without_boxes(artifact, data, max_persons=cap)
        if session == 45:
            return predict_without_boxes(artifact, data, max_persons=cap, find_options=SESSION45)
        if session == 44:
            return predict_without_boxes(artifact, data, max_persons=cap, find_options=SESSION44)
        if session == 43:
            return predict_without_boxes(artifact, data, max_persons=cap, find_options=SESSION43)
        return predict_without_boxes(
            artifact, data, max_persons=cap, find_options=SURE_CALL_TILES, confident_joint=ALL_JOINTS
        )
    finally:
        detection.SMALL_PERSON, detection.TILE_FRACTION = SERVED


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("artifacts", nargs="*", type=Path, help="model folders; default: the pretrained two")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per way")
    parser.add_argument("--picture", type=Path, default=None, help="JPEG: the 66 people, session 42 against now")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        data, marked = big_group_set(folder)
        for n, (name, artifact) in enumerate(artifacts_or_pretrained(args.artifacts, folder / "models")):
            seconds: dict[str, list[float]] = {way: [] for way in WAYS}
            for _ in range(args.repeats):
                for way in WAYS:
                    started = time.perf_counter()
                    run(artifact, data, way)
                    seconds[way].append(time.perf_counter() - started)
            for way in WAYS:
                pred = run(artifact, data, way)
                for image_id, (picture, noses) in marked.items():
                    answered = who(pred, image_id, noses)
                    emit("picture", benchmark=BENCHMARK, model=name, way=way, picture=picture, people=len(noses),
                         found=sum(1 for i in range(len(noses)) if answered.count(i) == 1), answers=len(answered),
                         nobody=answered.count(None),
                         repeats=sum(1 for i in range(len(noses)) if answered.count(i) > 1))  # fmt: skip
                wall = statistics.median(seconds[way])
                emit("wall", benchmark=BENCHMARK, model=name, way=way, pictures=len(marked), seconds=round(wall, 2),
                     ratio=round(wall / statistics.median(seconds["session41"]), 2))  # fmt: skip
            if args.picture and n == 0:
                picture(artifact, data, args.picture)


def picture(artifact: Path, data: Path, out: Path) -> None:
    """The 66 people as served in session 42 (top) and now (bottom), each answer's skeleton and box drawn."""
    from posewheel import dataset as coco
    from posewheel.draw import draw_poses

    ds = coco.load(data)
    (record,) = [r for r in ds.images if r.file_name.startswith("66_people")]
    with Image.open(ds.image_path(record)) as raw:
        image = raw.convert("RGB")
    drawn = []
    for way in ("session42", "card"):
        pred = run(artifact, data, way)
        rows = pred.image_ids == record.id
        drawn.append(draw_poses(image, pred.keypoints[rows], pred.joint_scores[rows], pred.boxes[rows]))
    both = Image.new("RGB", (image.width, 2 * image.height))
    for i, half in enumerate(drawn):
        both.paste(half, (0, i * image.height))
    out.parent.mkdir(parents=True, exist_ok=True)
    both.resize((both.width // 2, both.height // 2)).save(out, quality=75)
    emit("picture", benchmark=BENCHMARK, model=str(artifact), path=str(out))


if __name__ == "__main__":
    main()
