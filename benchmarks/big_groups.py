"""A big group in one picture: how many people the served path answers when there are more than 20.

    .venv/bin/python benchmarks/big_groups.py                        # the pretrained Lightning and Thunder
    .venv/bin/python benchmarks/big_groups.py models/production

Pictures (tests/support/moving_people.py BIG_GROUPS): the six group photographs `posewheel pretrained fetch`
caches (22 people, each nose marked by eye: NOSES) put side by side on grey, once (22 people, three to a row,
600 px tall), twice (44, four to a row, 500 px) and three times (66, six to a row, 450 px): a class photo's
crowd, each person smaller the bigger the group. A person is found when exactly one answer's nose lies within
reach of theirs (benchmarks/people_found.py).

Five ways, as served without boxes (`training.evaluate_persons.predict_without_boxes`, the server's steps), each
setting the cap, the tiles' trigger (`posewheel.detection.SMALL_PERSON`) and the tiles' side
(`posewheel.detection.TILE_FRACTION`):
- `session41`: as served in sessions 34-41: at most 20 persons a picture (the CenterNet card's cap then, COCO's
  maxDets); tiles where a person found stands under 64 input pixels, 0.625 of the picture's long side;
- `cap64`: the same with the cap at 64;
- `small96`: the same with tiles where a person found stands under 96 input pixels;
- `card`: as served now: the card's own cap (64 for a CenterNet card written since session 42, 20 in older ones),
  tiles under 96 pixels, 0.4 of the long side;
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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # as a script, sys.path[0] is benchmarks/

from posewheel import detection
from tests.support.benchmarks import artifacts_or_pretrained
from tests.support.figures import emit
from tests.support.moving_people import big_group_set, who
from training.evaluate_persons import DetectedPersons, predict_without_boxes

BENCHMARK = "big_groups"
SERVED = (detection.SMALL_PERSON, detection.TILE_FRACTION)
WAYS = {  # way -> (max_persons, tiles' trigger in input pixels, tiles' side of the long side)
    "session41": (20, 64.0, 0.625),
    "cap64": (64, 64.0, 0.625),
    "small96": (64, 96.0, 0.625),
    "card": (None, *SERVED),
    "asked64": (64, *SERVED),
}


def run(artifact: Path, data: Path, way: str) -> DetectedPersons:
    """The persons found in `data` as `way` finds them."""
    cap, detection.SMALL_PERSON, detection.TILE_FRACTION = WAYS[way]  # read by the tiles' code at each call
    try:
        return predict_without_boxes(artifact, data, max_persons=cap)
    finally:
        detection.SMALL_PERSON, detection.TILE_FRACTION = SERVED


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("artifacts", nargs="*", type=Path, help="model folders; default: the pretrained two")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per way")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        data, marked = big_group_set(folder)
        for name, artifact in artifacts_or_pretrained(args.artifacts, folder / "models"):
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


if __name__ == "__main__":
    main()
