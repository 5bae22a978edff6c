"""Videos of real people whose identities are known in every frame, to measure track ids without labels.

    clip = crossing_clips()[0]                      # frames (PIL), each person's nose per frame
    write_video(clip.frames, Path("clip.mp4"))
    identities(results, clip, frame_index)          # which known person each answered person is
    switches, idf1 = identity_scores(pairs, frames)

Used by benchmarks/pose_tracking.py and tests/test_tracks.py (see the benchmark's docstring for how the
clips are made and why identities come from noses). Still pictures of many people made from the same
group photographs, noses known (`crowd`, `far_away`, all of them as one dataset: `group_photo_set`; who an
answer is: `who`): benchmarks/people_found.py, benchmarks/detector_input_size.py and tests/test_serving_persons.py.
The same photographs and the check set's, turned a quarter, a half and three quarters (`turned_set`):
benchmarks/turned_people.py.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from posewheel import dataset as coco
from posewheel.detection import turned_picture

if TYPE_CHECKING:
    from training.evaluate_persons import DetectedPersons

CHECK_SET = Path(__file__).resolve().parents[1] / "fixtures" / "real_photos"
FRAME_RATE = 25

# Each group photograph's people by the tip of their nose, in photograph pixels (1920 wide), marked by eye.
NOSES = {
    "sample1": ((490, 490), (940, 560), (1560, 340)),
    "sample2": ((380, 300), (980, 370), (1550, 310)),
    "sample3": ((670, 500), (1150, 390), (1600, 450)),
    "sample4": ((320, 350), (690, 220), (1020, 320), (1300, 280)),
    "sample5": ((860, 250), (1180, 340), (710, 570), (1490, 550), (470, 1040)),
    "sample6": ((370, 650), (750, 500), (1270, 470), (1610, 420)),
}
REACH = 150  # photograph pixels: an answered nose this close to a marked one is that person's
FAR_AWAY = (3000, 2000), 900  # `far_away`: a grey picture's size, and each group photograph's width on it
GREY = (128, 128, 128)


@dataclass
class Clip:
    """A video made here and where each known person's nose is in each frame: name -> (frames, 2) pixels, NaN
    while out of the picture; `reach` (frames,) pixels: how near an answered nose must be to count as theirs."""

    name: str
    kind: str
    frames: list[Image.Image]
    noses: dict[str, np.ndarray]
    reach: np.ndarray


def pan_clips() -> list[Clip]:
    """A 3 s camera pan with a slow zoom across each group photograph, its people's noses mapped through the crop."""
    from posewheel.pretrained import real_frames

    clips = []
    for path in real_frames():
        with Image.open(path) as raw:
            photo = raw.convert("RGB")
        marked = np.asarray(NOSES[path.stem], dtype=np.float64)
        frames, reach = [], np.zeros(75)
        noses = {f"{path.stem}#{n}": np.full((75, 2), np.nan) for n in range(len(marked))}
        for i in range(75):
            t = i / 74
            scale = 0.75 - 0.15 * t  # the crop's share of the photograph: zooming in as it pans
            w, h = photo.width * scale, photo.height * scale
            x0, y0 = (photo.width - w) * t, (photo.height - h) * (0.3 + 0.4 * t)
            frames.append(photo.resize((960, 720), Image.Resampling.BILINEAR, box=(x0, y0, x0 + w, y0 + h)))
            reach[i] = REACH / w * 960
            for n, (x, y) in enumerate(marked):
                if x0 <= x <= x0 + w and y0 <= y <= y0 + h:
                    noses[f"{path.stem}#{n}"][i] = ((x - x0) / w * 960, (y - y0) / h * 720)
        clips.append(Clip(path.stem, "pan", frames, noses, reach))
    return clips


def crossing_clips() -> list[Clip]:
    """The three single people on two people-free photographs: two walk past each other, one nearly stands."""
    clips = []
    walkers = {  # name -> (start x, end x, y) of the pasted 300 px photograph on a 960 x 640 frame; later in front
        "astronaut": (0.0, 560.0, 200.0),
        "cameraman": (560.0, 0.0, 160.0),
        "grace_hopper": (640.0, 660.0, 220.0),
    }
    side = 300
    recorded = json.loads((CHECK_SET / "reference.json").read_text(encoding="utf-8"))["models"]["movenet-lightning"]
    # the original MoveNet's nose on each photograph's square, where NAME_512.png has it: (x, y) as a share of the side
    nose_at = {name: (recorded["keypoints"][name][0][1], recorded["keypoints"][name][0][0]) for name in walkers}
    for background in ("nobody_coffee", "nobody_rocket"):
        with Image.open(CHECK_SET / f"{background}_512.png") as raw:
            square = raw.convert("RGB")
            back = square.crop(square.getbbox()).resize((960, 640), Image.Resampling.BILINEAR)  # without its padding
        pictures = {}
        for name in walkers:
            with Image.open(CHECK_SET / f"{name}_512.png") as raw:
                pictures[name] = raw.convert("RGB").resize((side, side), Image.Resampling.BILINEAR)
        frames, noses = [], {f"{name}@{background}": np.full((100, 2), np.nan) for name in walkers}
        for i in range(100):
            t = i / 99
            frame = back.copy()
            for name, (x_start, x_end, y) in walkers.items():  # later names in front
                x = x_start + (x_end - x_start) * t
                frame.paste(pictures[name], (round(x), round(y)))
                nose = (x + nose_at[name][0] * side, y + nose_at[name][1] * side)
                if 0 <= nose[0] < 960:
                    noses[f"{name}@{background}"][i] = nose
            frames.append(frame)
        clips.append(Clip(background, "crossing", frames, noses, np.full(100, REACH * side / 512)))
    return clips


def write_video(frames: list[Image.Image], target: Path) -> None:
    """H.264 at FRAME_RATE, as a phone or camera would hand it over."""
    import av

    with av.open(str(target), mode="w") as container:
        stream = container.add_stream("libx264", rate=FRAME_RATE)
        stream.width, stream.height = frames[0].size
        stream.pix_fmt = "yuv420p"
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_image(frame)):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def head(keypoints: list[float]) -> np.ndarray | None:
    """Where an answered person's nose is (pixels): the nose, else the middle of the confident eyes and ears."""
    face = np.asarray(keypoints, dtype=np.float64).reshape(17, 3)[:5]
    if face[0, 2] >= 0.3:
        return face[0, :2]
    sure = face[face[:, 2] >= 0.3]
    return sure[:, :2].mean(axis=0) if len(sure) else None


def identities(results: list[dict], clip: Clip, index: int) -> list[str | None]:
    """The known person each answered person is (the marked nose nearest theirs, within the clip's reach), or None.

    A person two answers claim in one frame (a box around two people read as one of them, as well as her own
    box) counts for neither: which of those answers is her is a question for the detector, not the tracker."""
    names = [n for n, noses in clip.noses.items() if not np.isnan(noses[index]).any()]
    out: list[str | None] = []
    for result in results:
        point = head(result["keypoints"])
        distances = [np.hypot(*(clip.noses[n][index] - point)) for n in names] if point is not None else []
        nearest = int(np.argmin(distances)) if distances else -1
        out.append(names[nearest] if nearest >= 0 and distances[nearest] < clip.reach[index] else None)
    return [None if out.count(name) > 1 else name for name in out]


def identity_scores(pairs: list[tuple[str, str]], order: list[list[tuple[str, str]]]) -> tuple[int, float]:
    """Identity switches over frames in order (lists of (person, id)) and IDF1 over all matched persons."""
    from scipy.optimize import linear_sum_assignment

    last: dict[str, str] = {}
    switches = 0
    for frame in order:
        for person, track in frame:
            if person in last and last[person] != track:
                switches += 1
            last[person] = track
    people = sorted({p for p, _ in pairs})
    tracks = sorted({t for _, t in pairs})
    counts = np.zeros((len(people), len(tracks)))
    for p, t in pairs:
        counts[people.index(p), tracks.index(t)] += 1
    rows, cols = linear_sum_assignment(-counts)
    return switches, float(counts[rows, cols].sum() / max(1, len(pairs)))


NOWHERE = (1e9, 1e9, 1.0)  # a marked person out of the picture: no answer is near them


@dataclass
class ClipTally:
    """Who of a clip's marked people a run answered, frame after frame (`add` each answered frame in order): people
    present in the frames, those answered exactly once, twice or more, answers near nobody (on a pan, a person whose
    head has left the picture counts there too), and identity switches (`figures`: a person's track id changing
    between frames answering them once). benchmarks/live_steadiness.py and benchmarks/pose_tracking.py."""

    clip: Clip
    present: int = 0
    found: int = 0
    twice: int = 0
    near_nobody: int = 0
    order: list[list[tuple[str, str]]] = field(default_factory=list)

    def add(self, index: int, points: np.ndarray, scores: np.ndarray, ids: Sequence[int]) -> None:
        """Frame `index`'s answers: keypoints (P, 17, 2) pixels, scores (P, 17), track ids (P,)."""
        names = list(self.clip.noses)
        marked = np.array([[*self.clip.noses[name][index], self.clip.reach[index]] for name in names])
        present = ~np.isnan(marked[:, 0])
        who = whose(points, scores, np.where(present[:, None], marked, NOWHERE))
        self.present += int(present.sum())
        self.found += sum(who.count(p) == 1 for p in np.flatnonzero(present))
        self.twice += sum(who.count(p) > 1 for p in np.flatnonzero(present))
        self.near_nobody += who.count(None)
        once = [(names[p], str(t)) for p, t in zip(who, ids, strict=True) if p is not None and who.count(p) == 1]
        self.order.append(once)

    def figures(self) -> dict[str, int]:
        switches, _ = identity_scores([pair for frame in self.order for pair in frame], self.order)
        return {
            "present": self.present,
            "found": self.found,
            "twice": self.twice,
            "near_nobody": self.near_nobody,
            "switches": switches,
        }


def crowd(
    photos: dict[str, Image.Image], names: tuple[str, ...], height: int, columns: int
) -> tuple[Image.Image, np.ndarray]:
    """The photographs scaled to `height`, `columns` to a row on grey; their marked noses (n, 3): x, y, reach."""
    tiles, noses = [], []
    for name in names:
        scale = height / photos[name].height
        tiles.append(photos[name].resize((round(photos[name].width * scale), height), Image.Resampling.BILINEAR))
        noses.append([(x * scale, y * scale, REACH * scale) for x, y in NOSES[name]])
    rows = [list(range(i, min(i + columns, len(tiles)))) for i in range(0, len(tiles), columns)]
    canvas = Image.new("RGB", (max(sum(tiles[i].width for i in r) for r in rows), height * len(rows)), GREY)
    marked = []
    for r, row in enumerate(rows):
        x = 0
        for i in row:
            canvas.paste(tiles[i], (x, r * height))
            marked += [(nx + x, ny + r * height, reach) for nx, ny, reach in noses[i]]
            x += tiles[i].width
    return canvas, np.asarray(marked)


def far_away(photo: Image.Image, noses: Sequence[tuple[float, float]]) -> tuple[Image.Image, np.ndarray]:
    """A group photograph small on a large grey picture (`FAR_AWAY`), a little below its middle; the noses
    (n, 3): x, y, reach."""
    size, width = FAR_AWAY
    scale = width / photo.width
    small = photo.resize((width, round(photo.height * scale)), Image.Resampling.BILINEAR)
    x, y = round(size[0] / 2 - width / 2), round(size[1] * 0.6 - small.height / 2)
    canvas = Image.new("RGB", size, GREY)
    canvas.paste(small, (x, y))
    return canvas, np.asarray([(nx * scale + x, ny * scale + y, REACH * scale) for nx, ny in noses])


CROWDS = {  # name -> (photographs, height each is scaled to, photographs per row)
    "two_side_by_side": (("sample4", "sample5"), 900, 2),
    "six_in_three_columns": (tuple(NOSES), 600, 3),
    "six_in_a_row": (tuple(NOSES), 500, 6),
}


def group_photo_set(
    folder: Path, photos: dict[str, Image.Image] | None = None
) -> tuple[Path, dict[int, tuple[str, np.ndarray]]]:
    """The six group photographs (`photos`, default `group_photos()`), the crowds made of them and each far away,
    written into `folder` as one COCO dataset without labels (97 people marked by the nose); image id -> (name,
    noses (n, 3): x, y, reach)."""
    photos = group_photos() if photos is None else photos
    pictures = [(n, p, np.asarray([(x, y, REACH) for x, y in NOSES[n]], dtype=np.float64)) for n, p in photos.items()]
    pictures += [(name, *crowd(photos, *how)) for name, how in CROWDS.items()]
    pictures += [(f"{n}_far_away", *far_away(photos[n], NOSES[n])) for n in photos]
    return _unlabeled_set(folder / "photos", pictures)


BIG_GROUPS = {  # name -> (photographs, height each is scaled to, photographs per row): a class photo's crowd
    "22_people": (tuple(NOSES), 600, 3),
    "44_people": (tuple(NOSES) * 2, 500, 4),
    "66_people": (tuple(NOSES) * 3, 450, 6),
}


def big_group_set(
    folder: Path, names: Sequence[str] = tuple(BIG_GROUPS)
) -> tuple[Path, dict[int, tuple[str, np.ndarray]]]:
    """The BIG_GROUPS pictures `names` (the six group photographs side by side, once to three times), written into
    `folder` as one COCO dataset without labels; image id -> (name, noses (n, 3): x, y, reach)."""
    photos = group_photos()
    return _unlabeled_set(folder / "groups", [(name, *crowd(photos, *BIG_GROUPS[name])) for name in names])


ONE_PERSON = ("astronaut", "cameraman", "grace_hopper")  # the check set's photographs of one person
NOBODY = ("nobody_cat", "nobody_coffee", "nobody_rocket")  # and of nobody
ONE_PERSON_REACH = 50  # of 512 pixels: an answered nose this near the original's is that person's


def turned(picture: Image.Image, points: np.ndarray, quarters: int) -> tuple[Image.Image, np.ndarray]:
    """A picture turned `quarters` quarter turns counter-clockwise (exactly, no resampling) and points (n, 2 or
    more: x, y first) pixels turned with it."""
    points = np.array(points, dtype=np.float64)
    width, height = picture.size
    for _ in range(quarters):  # a quarter counter-clockwise: (x, y) -> (y, width - x)
        points[:, :2] = np.stack([points[:, 1], width - points[:, 0]], axis=1)
        width, height = height, width
    return turned_picture(picture, quarters), points


def one_person_keypoints(name: str) -> np.ndarray:
    """What the original MoveNet Lightning answered on check-set photograph `name`: (17, 3) x, y pixels of its
    512 px copy and score."""
    from training.realphotos import reference

    recorded = np.asarray(reference(CHECK_SET)["keypoints"][name], dtype=np.float64)
    return np.concatenate([recorded[:, [1, 0]] * 512, recorded[:, 2:]], axis=1)


def turned_set(
    folder: Path, photos: dict[str, Image.Image] | None = None
) -> tuple[Path, dict[int, tuple[str, np.ndarray]]]:
    """The six group photographs (22 people; `photos`, default `group_photos()`) and the check set's three
    photographs of one person and three of nobody (512 px), each upright and turned a quarter, a half and three
    quarters counter-clockwise, written into `folder` as one COCO dataset without labels; image id -> (NAME@DEGREES,
    noses (n, 3): x, y, reach). A photograph of one person's nose is where the original MoveNet answered it."""
    pictures = []
    for name, photo in (group_photos() if photos is None else photos).items():
        marked = np.asarray([(x, y, REACH) for x, y in NOSES[name]], dtype=np.float64)
        for quarters in range(4):
            pictures.append((f"{name}@{90 * quarters}", *turned(photo, marked, quarters)))
    for name in ONE_PERSON + NOBODY:
        with Image.open(CHECK_SET / f"{name}_512.png") as raw:
            photo = raw.convert("RGB")
        nose = one_person_keypoints(name)[:1, :2] if name in ONE_PERSON else np.zeros((0, 2))
        marked = np.concatenate([nose, np.full((len(nose), 1), ONE_PERSON_REACH)], axis=1)
        for quarters in range(4):
            pictures.append((f"{name}@{90 * quarters}", *turned(photo, marked, quarters)))
    return _unlabeled_set(folder / "turned", pictures)


def group_photos() -> dict[str, Image.Image]:
    """The six group photographs `posewheel pretrained fetch` caches, RGB, by name (`sample1` ... `sample6`)."""
    from posewheel.pretrained import real_frames

    photos = {}
    for path in real_frames():
        with Image.open(path) as raw:
            photos[path.stem] = raw.convert("RGB")
    return photos


def _unlabeled_set(
    root: Path, pictures: Sequence[tuple[str, Image.Image, np.ndarray]]
) -> tuple[Path, dict[int, tuple[str, np.ndarray]]]:
    """(name, picture, noses) each written as `NAME.jpg` (quality 95) beside `root`, then as one COCO dataset
    without labels at `root`; image id -> (name, noses)."""
    images, sources, marked = [], {}, {}
    root.parent.mkdir(parents=True, exist_ok=True)
    for image_id, (name, picture, noses) in enumerate(pictures, start=1):
        sources[image_id] = root.parent / f"{name}.jpg"
        picture.save(sources[image_id], quality=95)
        images.append(
            coco.ImageRecord(id=image_id, file_name=f"{name}.jpg", width=picture.width, height=picture.height)
        )
        marked[image_id] = (name, noses)
    coco.save(coco.Dataset(images=images, annotations=[]), root, image_sources=sources)
    return root, marked


def who(pred: DetectedPersons, image_id: int, noses: np.ndarray) -> list[int | None]:
    """For each answer of one image, the index of the marked person whose nose is nearest its own, within
    reach; None when nobody's is."""
    rows = np.flatnonzero(pred.image_ids == image_id)
    return whose(pred.keypoints[rows], pred.joint_scores[rows], noses)


def whose(keypoints: np.ndarray, joint_scores: np.ndarray, noses: np.ndarray) -> list[int | None]:
    """For each answer (keypoints (P, 17, 2) pixels, scores (P, 17)), the index of the marked person (noses (n, 3):
    x, y, reach) whose nose is nearest its own, within reach; None when nobody's is."""
    out: list[int | None] = []
    for points, scores in zip(keypoints, joint_scores, strict=True):
        point = head(np.concatenate([points, scores[:, None]], axis=1).ravel().tolist())
        if point is None:
            out.append(None)
            continue
        distances = [math.hypot(point[0] - x, point[1] - y) for x, y, _ in noses]
        nearest = int(np.argmin(distances))
        out.append(nearest if distances[nearest] < noses[nearest, 2] else None)
    return out


def people_counts(pred: DetectedPersons, marked: dict[int, tuple[str, np.ndarray]]) -> dict[str, int]:
    """Over the images `marked` (image id -> (name, noses)): the people, those found (exactly one answer near their
    nose, `who`), the answers near nobody's nose and the people answered more than once."""
    counts = {"people": 0, "found": 0, "nobody": 0, "repeats": 0}
    for image_id, (_, noses) in marked.items():
        answered = who(pred, image_id, noses)
        counts["people"] += len(noses)
        counts["found"] += sum(1 for i in range(len(noses)) if answered.count(i) == 1)
        counts["repeats"] += sum(1 for i in range(len(noses)) if answered.count(i) > 1)
        counts["nobody"] += answered.count(None)
    return counts
