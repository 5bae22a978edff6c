"""Finding people: the artifact's person detector, run the same way by evaluation and by the server.

    from posewheel.detection import detect_persons
    boxes, scores = detect_persons(image, card.detector, run)   # run: batch -> {output name: maps}

An artifact may hold a detector beside its pose network (`detector.onnx`, the card's `detector`
section), of one of two kinds (`DetectorKind`): Google's MoveNet MultiPose (training/multipose.py),
decoded by `posewheel.multipose.decode_multipose`, or the COCO object detector CenterNet
(training/centernet.py) restricted to persons, decoded by `posewheel.centernet.decode_centernet`.
The whole image is fitted into the detector's square input
(centred, black around it), the people it finds come back as boxes in image pixels, best first; the
pose network then estimates each person top-down from its box, as for boxes a client sends.

A crowd in a large picture is small at that input: where a person found stands under `SMALL_PERSON`
input pixels tall in a picture at least twice the input, the detector looks again at overlapping tiles
of the picture (`with_tiles`), each at its full input, and their people join the whole picture's. A large picture
where the whole look finds no box at all is looked at once more, whole and closer (`closer_look`). Where the
detector is sure of nobody in the whole picture (a big group so small that it scores nobody at its threshold),
a person it is unsure of whom the pose network reads (`boxes_to_read`) calls for tiles instead
(`FindOptions.unsure_call_tiles`).

A person the detector is unsure of scores under its threshold. Down to `WEAK_SHARE` of the threshold
such a box is read too, and answered only where the pose network, which sees the person up close, reads
a confident pose in it (`confirmed`: pose score at least `CONFIDENT_POSE`); `answer_once` applies it.

In a group a person's crop holds their neighbours too, and the pose network, which answers for the person
nearest the crop's centre, reads limbs of theirs, or the neighbour instead. A person whose crop window holds
more than `CROWDED` of another person's box is read alone (`read_alone`): everything outside their own box is
blanked to the input's mean colour first (`outside_box_blanked`).

A person lying down or upside down is read unsure; such a read is read again with its crop turned a quarter, a
half and three quarters, and a turned read that is confident and surer by a margin is answered (`read_upright`).
Where those unsure reads were mostly surest at one turn and outnumber the people read upright and sure, the
picture itself lies turned (a phone photo whose orientation was lost, whose people the detector mostly misses): it
is looked at again turned upright (`picture_turn`), and the people found there join the answers
(`joined_upright`).

Two boxes can hold one person: in a tight group the detector's box around two people and the box
around one of them both crop that one, and the pose network, which answers for the person nearest a
crop's centre, draws the same skeleton twice. `distinct_persons` keeps one answer per person: a pose
that lies within OKS `DUPLICATE_OKS` of a better one's is dropped (OKS-NMS on poses, as top-down pose
pipelines do after their box NMS; docs/detector.md). The OKS is taken over the joints both poses are sure
of (`CONFIDENT_JOINT`), as HRNet's and MMPose's OKS-NMS do: a box around a person's head and shoulders
repeats the head and shoulders and guesses the rest.

The core runs no network itself: the caller passes `run`, its own ONNX Runtime session call, so
serving and evaluation share this code without the core importing a runtime.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal, overload

import numpy as np
from PIL import Image

from posewheel import centernet, multipose
from posewheel.boxes import inside_share
from posewheel.decoding import (
    Box,
    InputSpec,
    crop_box,
    crop_image,
    crop_images,
    input_to_image,
    normalize,
    pose_score,
    whole_image_box,
)
from posewheel.picture import Pixels
from posewheel.schema import oks_terms

# Two poses of one image this similar are one person seen through two boxes (benchmarks/duplicate_persons.py,
# docs/detector.md): on real group photographs the repeats measured 0.64-0.98 (pretrained and fine-tuned
# MoveNet) and different people 0.37 at most; on synthetic scenes every predicted pair above 0.60 was one
# labeled person twice, and the closest two labeled people of 500 studio scenes lie at 0.620. 0.63 until session 44;
# 0.58 since (below), which is still above every two people's 0.48 and lets a weak box be confirmed by its head.
DUPLICATE_OKS = 0.58
# Since session 43 that OKS is taken over the joints both poses score at least CONFIDENT_JOINT (where they share
# SHARED_JOINTS or more; all 17 otherwise). Over all 17 a box around one person's head and shoulders in a group
# repeated their head and shoulders to the pixel (OKS 0.97 over the 6 joints both were sure of) and guessed the
# rest elsewhere: 0.44 in all, answered twice. On the real group pictures with noses marked by eye (pretrained
# Lightning and Thunder, session 40's demo model; crops read as they are and as served), of 64 pairs one person
# read twice 9 lay under 0.63 over all joints and 1 over the shared ones; of 12,200 pairs of two people none lay
# above 0.48 either way; no two labeled people of 500 studio scenes lie above 0.62 over the joints both show
# (benchmarks/duplicate_persons.py, docs/detector.md).
CONFIDENT_JOINT = 0.3  # posewheel.draw.LOW_SCORE: a joint scored under it is drawn as a guess
SHARED_JOINTS = 3
# One face, one person (since session 45, `same_person`): two poses whose faces (nose, eyes, ears: FACE_JOINTS)
# coincide, OKS over the face joints both are sure of (SHARED_JOINTS of them at least) above SAME_FACE_OKS, are one
# person however their bodies differ. A fine-tuned detector drew a second box over the check set's cameraman and his
# tripod; read alone, it answered him again with his face within 12 px of his own answer's (face OKS 0.70-0.81) but
# his arms and legs guessed elsewhere (0.43-0.47 over all sure joints), so he was answered twice. Over the real
# pictures' reads of two different people (about 13,000 pairs, four artifacts) face OKS stayed under 0.16 but one
# pair at 0.55, in the 66-person picture; of one person read twice, 0.37-0.99.
FACE_JOINTS = 5
SAME_FACE_OKS = 0.65

# A second look at a large picture in tiles (`with_tiles`, docs/detector.md, benchmarks/people_found.py): the
# detector sees the whole picture at its input (512 px), where a crowd's people can be a few dozen pixels
# tall and many go unseen. Only where a person found stood under SMALL_PERSON input pixels tall, in a
# picture at least TILE_MIN_SCALE times the input: an ordinary photograph pays nothing.
# 64 from session 34 to 41: in a picture of 44 people the whole picture found 6, all 67-89 input pixels tall,
# and never looked again; at 96 tiles of 0.625 found 34 of them, not 23 (benchmarks/big_groups.py, docs/detector.md).
# Until session 42 the person had to be one scored at the threshold: in a picture of 66 people the whole picture
# scored all of them under it (0.15-0.30 against 0.3) and was never tiled.
SMALL_PERSON = 96.0
TILE_MIN_SCALE = 2.0
# Each tile's side, of the picture's long side: people look 2.5 times as tall. 0.625 (1.6 times) from session 34 to
# 42 found 8 fewer of 44 people in one picture and 2 fewer of the 97 (benchmarks/big_groups.py, docs/detector.md).
TILE_FRACTION = 0.4
TILE_OVERLAP = 0.25
# A large picture (at least TILE_MIN_SCALE times the input) where the whole look finds no box at all, not even a weak
# one, is looked at once more, whole, at CLOSER_SIDE input pixels (`closer_look`, since session 52), and not tiled
# after it. A person 500-1200 px tall on a 4032 x 3024 picture can leave the 512 px look nothing to call tiles with: of
# 36 such pictures (benchmarks/far_people.py, docs/detector.md) the pretrained Lightning answered 28, 31 with the
# closer look (Thunder 30 -> 34, the demo's models 27 -> 29 and 29 -> 31), no answer on six large pictures of nobody;
# a picture looked at closer pays 90-110 ms more at 2 threads. Tiles over every such picture (probe
# /tmp/s52/nobody_tiles.py) found about as many and cost a large picture of nobody 10-35x.
CLOSER_SIDE = 768
TILE_EDGE = 0.01  # of a tile's side: a person box this near an inner tile edge is cut by it

# Boxes under the detector's threshold confirmed by the pose network (`confirmed`, docs/detector.md,
# benchmarks/people_found.py): read down to WEAK_SHARE of the threshold, answered where the pose scores at
# least CONFIDENT_POSE. On session 33's street scenes without boxes the first model and the model after a
# turn matched 147 people instead of 115-116 (of 393) for 2-9 more phantoms; on real photographs people
# found rose and no answer near nobody was added, and no check-set photograph's weak box read this confidently.
WEAK_SHARE = 0.5
CONFIDENT_POSE = 0.4
# Or where its face and shoulders (the first 7 joints, HEAD_AND_SHOULDERS) score at least CONFIDENT_HEAD on average,
# since session 44: a person seated or standing behind another shows the pose network those, and the mean over 17
# counts their hidden legs against them (a woman of sample5: face and shoulders 0.59, pose score 0.34-0.36; in
# sample5 itself 0.548 and 0.39, where she stays unanswered).
# On the weak boxes of the real group pictures, those reading a person nobody had answered scored 0.52-0.72 there,
# those reading nobody 0.46 at most; the drawn street and studio scenes answer the same people. One such box, around
# a neighbour's head and shoulders, read the neighbour 0.588 alike to their own answer: hence DUPLICATE_OKS 0.58.
CONFIDENT_HEAD = 0.55
HEAD_AND_SHOULDERS = 7
# A person lying down or upside down (`read_upright`, docs/detector.md, benchmarks/turned_people.py): the pose network
# learnt people upright and reads one turned a quarter or more unsure and mostly wrong (the check set's astronaut
# turned a half: pose score 0.21, too unsure to confirm her weak box; a quarter: 0.33-0.39, 5 of her 11 sure
# keypoints in place). A read scoring under TURN_BELOW is read again with its crop turned a quarter, a half and
# three quarters (the pose turned back); a turned read replaces it where it is confident and surer by a margin:
# its pose score at least CONFIDENT_POSE and TURN_MARGIN more, or its face and shoulders at least CONFIDENT_HEAD and
# TURN_HEAD_MARGIN more with a pose score no lower (a portrait turned shows little more than those); the surest
# such (pose plus face-and-shoulder score) wins. On the drawn street scenes TURN_MARGIN 0.05 picked 4 turns that
# matched worse, 0.1 two (of 11); on the real group pictures upright, no turned read came within 0.1 of beating
# the pose score, and the face and shoulders of one came within 0.14 (hence 0.2). Read turned under 0.35 rather
# than under CONFIDENT_POSE (0.4): on the real group pictures upright 51 reads instead of 69 (none won either way),
# on the turned photographs the same 18 win, on the drawn street scenes 11 instead of 12 (a demo's first model).
TURN_BELOW = 0.35
TURN_MARGIN = 0.1
TURN_HEAD_MARGIN = 0.2
QUARTER_TURNS = (1, 2, 3)
# A weak box lying this much inside a sure one is a part of that person (a head, a torso): not read. On the
# real photographs more than half of the weak boxes are such parts, and not one of them was ever confirmed.
PART_OF = 0.7
# An answered box lying PART_OF inside another answered box is a part of that person too, whatever its score, where
# its read's face and shoulders (`head_score`) score under PART_HEAD and under the other's (`parts_inside`, since
# session 57): a person in front of or behind another shows the pose network their own head. On the real pictures
# (the 97 marked people, the group photographs turned, the big groups, the close framings; probe /tmp/s57/inside.py)
# such answers that were a marked person read from 0.375 (Thunder) and 0.405 (Lightning) up there, those that were
# nobody or a person answered twice 0.139-0.314: a sofa beside sample3's woman far away, a second answer in the
# 44-person picture, a face alone in a video call (docs/detector.md).
PART_HEAD = 0.35

# A person whose crop window holds more than this share of another person's box is read alone, blanked outside
# their own box (`read_alone`, docs/detector.md, benchmarks/people_found.py): on the real group photographs and
# crowds people found rose 77 -> 85 (pretrained Lightning) and 79 -> 86 (Thunder) of 97 with no answer near
# nobody added; on street scenes without boxes a demo's first model matched 146 people instead of 136 (of 393),
# as many phantoms. Any share from 0 to 0.5 found the same people.
CROWDED = 0.1


@dataclass(frozen=True)
class FindOptions:
    """How the server, `posewheel predict` and evaluation find people (each on unless switched off).

    `tiles`: a large picture with a small person in it is looked at again in tiles (`with_tiles`).
    `pose_confirms`: a box scored under the threshold, down to `WEAK_SHARE` of it, is answered where the pose
    network reads a confident pose in it (`confirmed`).
    `read_alone`: a person whose crop holds another person's box is read blanked outside their own (`read_alone`).
    `closer_look`: a large picture where the whole look finds no box at all is looked at once more, whole, closer
    (`CLOSER_SIDE`); off: as until session 51 (a benchmark's baseline; the server has no setting for it).
    `unsure_call_tiles`: in a picture whose persons the detector scored all under its threshold, a small one the
    pose network reads (`boxes_to_read`) calls for tiles; off: nobody does, as until session 42 (a benchmark's
    baseline; the server has no setting for it). Where it is sure of somebody, only those it is sure of call.
    `read_parts`: the side of an answered box its pose leaves empty is read for a person of its own
    (`answer_parts`; a benchmark's baseline switches it off, the server has no setting for it).
    `head_confirms`: a weak box is confirmed by its face and shoulders too (`CONFIDENT_HEAD`); `duplicate_oks`: how
    alike two poses are when they are one person (`DUPLICATE_OKS`). A benchmark's baseline sets them as in session
    43 (off, 0.63); the server has no setting for them.
    `turns`: a person the pose network reads unsure is read turned too, for one lying down or upside down
    (`read_upright`; off: upright only, as until session 44). `same_face`: two poses whose faces coincide are one
    person (`same_person`; a benchmark's baseline switches it off, the server has no setting for it).
    `turn_picture`: where `turns` and the unsure reads say the picture is stored sideways or upside down
    (`picture_turn`), the detector looks again at the picture turned upright and its people join (`joined_upright`);
    off: as until session 45 (a benchmark's baseline; the server's setting for `turns` switches both).
    `inside_parts`: an answer whose box lies inside another answer's and whose face and shoulders are unsure is a part
    of that person (`parts_inside`); off: as until session 56 (a benchmark's baseline; the server has no setting).
    `parts_past_arms`: with `read_parts`, the side of a box its pose leaves empty is measured beside the pose's head,
    body and legs, an arm reaching into it leaving it empty (`empty_part`, `ARMS`); off: beside every sure joint, as
    until session 59 (a benchmark's baseline; the server has no setting).
    `probe_turn`: with `turn_picture`, a picture in doubt (the detector's best box weak, nobody read upright and sure,
    or one against a vote or beside a second box) is looked at small, turned each way, for the turn where the
    detector is sure of more people (`probed_turn`); off: as until session 46 (a benchmark's baseline; the server's
    `detector_probe_turns`).
    """

    tiles: bool = True
    closer_look: bool = True
    pose_confirms: bool = True
    read_alone: bool = True
    unsure_call_tiles: bool = True
    read_parts: bool = True
    head_confirms: bool = True
    duplicate_oks: float = DUPLICATE_OKS
    turns: bool = True
    same_face: bool = True
    turn_picture: bool = True
    probe_turn: bool = True
    inside_parts: bool = True
    parts_past_arms: bool = True

    def floor(self, threshold: float) -> float:
        """The least detector score of a box worth reading at this threshold."""
        return WEAK_SHARE * threshold if self.pose_confirms else threshold


Run = Callable[[np.ndarray], Mapping[str, np.ndarray]]
DetectorKind = Literal["movenet-multipose", "centernet"]


def person_cap(kind: DetectorKind, default: int, asked: int | None) -> int:
    """How many persons to answer at most in a picture: the card's `default`, or what a caller asked for, up to what
    the detector kind finds (CenterNet: `centernet.MAX_PERSONS`; MultiPose: its graph's `multipose.CANDIDATES`).
    A caller may ask for more than an older card says (CenterNet cards said 20 before session 42, 10 before 33)."""
    if asked is None:
        return default
    return min(asked, multipose.CANDIDATES if kind == "movenet-multipose" else centernet.MAX_PERSONS)


OUTPUT_NAMES: dict[DetectorKind, tuple[str, ...]] = {
    "movenet-multipose": multipose.OUTPUT_NAMES,
    "centernet": centernet.OUTPUT_NAMES,
}


def detector_spec(input_size: int, mean: tuple[float, float, float], std: tuple[float, float, float]) -> InputSpec:
    """The detector's input as an InputSpec: a square that the whole image is fitted into."""
    return InputSpec(width=input_size, height=input_size, mean=mean, std=std, padding=1.0, whole_image_padding=1.0)


def detector_input(image: Pixels, spec: InputSpec) -> tuple[np.ndarray, Box]:
    """The network input (1, 3, S, S) float32 for the whole image, and its window in image pixels."""
    window = crop_box(whole_image_box(image.width, image.height, spec), spec)
    return normalize(crop_image(image, window, spec)[None], spec), window


def persons_from_maps(
    maps: Mapping[str, np.ndarray],
    window: Box,
    spec: InputSpec,
    score_threshold: float,
    max_persons: int,
    kind: DetectorKind,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The detector's maps of one image (batch of 1) -> boxes (P, 4) x, y, w, h in image pixels, scores (P,),
    and its own keypoints (P, 17, 2) image pixels with their scores (P, 17), zero for a detector that
    reads no joints (CenterNet); best first, at most `max_persons`."""
    if kind == "centernet":
        person, wh = (maps[name][0] for name in centernet.OUTPUT_NAMES)
        boxes, scores = centernet.decode_centernet(person, wh, spec.stride, max_persons, score_threshold)
        keypoints, keypoint_scores = np.zeros((len(boxes), 17, 2)), np.zeros((len(boxes), 17))
    else:
        heatmaps, centers, regress, offsets, box_scale, box_offset = (maps[name][0] for name in multipose.OUTPUT_NAMES)
        boxes, scores, keypoints, keypoint_scores = multipose.decode_multipose(
            heatmaps, centers, regress, offsets, box_scale, box_offset, spec.stride, max_persons, score_threshold
        )
    corners = boxes.reshape(-1, 2, 2).copy()
    corners[:, 1] += corners[:, 0]  # (x, y, w, h) -> two corners, mapped as points
    corners = input_to_image(corners, window, spec)
    image_boxes = np.concatenate([corners[:, 0], corners[:, 1] - corners[:, 0]], axis=1).reshape(-1, 4)
    return image_boxes, scores, input_to_image(keypoints, window, spec), keypoint_scores


def clip_box(box: np.ndarray, width: int, height: int) -> Box:
    """A box (x, y, w, h) cut to the image; at least one pixel wide and high."""
    x0, y0 = np.clip(box[:2], 0.0, [width - 1.0, height - 1.0])
    x1, y1 = np.clip(box[:2] + box[2:], [x0 + 1.0, y0 + 1.0], [float(width), float(height)])
    return (float(x0), float(y0), float(x1 - x0), float(y1 - y0))


def detect_persons(
    image: Pixels,
    spec: InputSpec,
    run: Run,
    score_threshold: float,
    max_persons: int,
    kind: DetectorKind,
    tiles: bool = True,
    seen: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
    closer: bool = True,
) -> tuple[list[Box], np.ndarray]:
    """Every person the detector finds in an RGB image: boxes in image pixels (clipped to it) and scores, best first.

    `closer`: where a large picture shows the whole look no box at all, look at it once more, closer
    (`closer_look`), and not in tiles. `tiles`: where the whole picture shows a small person (`needs_tiles`), look
    again at overlapping tiles of it (`with_tiles`). `seen(boxes (P, 4), scores (P,)) -> (P,) bool`: which of the
    whole picture's persons count for that (default: all those found). The server asks for persons below the boxes
    it reads too, to count the unsure, so it and evaluation both pass the boxes they read (`persons_to_read`): they
    tile alike.
    """
    boxes, scores = whole_look(image, spec, run, score_threshold, max_persons, kind)
    if closer and not len(boxes) and looks_closer(image.width, image.height, spec, kind):
        boxes, scores = closer_look(image, spec, run, score_threshold, max_persons, kind)
        return [clip_box(b, image.width, image.height) for b in boxes], scores
    counted = np.ones(len(scores), dtype=bool) if seen is None else seen(boxes, scores)
    if tiles and needs_tiles(boxes[counted], image.width, image.height, spec):
        boxes, scores = with_tiles(image, spec, run, boxes, scores, score_threshold, max_persons, kind)
    return [clip_box(b, image.width, image.height) for b in boxes], scores


def persons_to_read(
    image: Pixels,
    spec: InputSpec,
    run: Run,
    threshold: float,
    max_persons: int,
    kind: DetectorKind,
    options: FindOptions,
    exact: bool = False,
    look_down_to: float | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The detector's persons in an RGB image as the server and evaluation read them: boxes (P, 4) x, y, w, h
    image pixels and scores (P,), best first, and which of them the pose network reads (P,) bool (`boxes_to_read`:
    at `threshold`, and where `options` lets the pose network confirm them, down to `FindOptions.floor` of it).
    `exact`: the caller gave the threshold; no box under it is read. `look_down_to`: also return the boxes down
    to this score, unread (the server counts the persons it was unsure of among them)."""
    floor = threshold if exact else options.floor(threshold)
    least = floor if look_down_to is None else min(floor, look_down_to)

    def seen(boxes: np.ndarray, scores: np.ndarray) -> np.ndarray:  # who calls for tiles: `FindOptions`
        sure = np.asarray(scores >= threshold)
        return sure if sure.any() or not options.unsure_call_tiles else boxes_to_read(boxes, scores, threshold, floor)

    boxes, scores = detect_persons(
        image, spec, run, max(0.0, least), max_persons, kind, options.tiles, seen, options.closer_look
    )
    found = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return found, scores, boxes_to_read(found, scores, threshold, floor)


def whole_look(
    image: Pixels, spec: InputSpec, run: Run, score_threshold: float, max_persons: int, kind: DetectorKind
) -> tuple[np.ndarray, np.ndarray]:
    """The persons the detector finds in the whole picture fitted into `spec`'s input: boxes (P, 4) image pixels
    (not clipped) and scores (P,), best first."""
    batch, window = detector_input(image, spec)
    boxes, scores, _, _ = persons_from_maps(run(batch), window, spec, score_threshold, max_persons, kind)
    return boxes, scores


def large_picture(width: int, height: int, spec: InputSpec) -> bool:
    """At least `TILE_MIN_SCALE` times the detector's input on its long side: a picture worth a second look."""
    return max(width, height) >= TILE_MIN_SCALE * spec.width


def looks_closer(width: int, height: int, spec: InputSpec, kind: DetectorKind) -> bool:
    """Whether a picture the whole look found no box in deserves a closer look (`closer_look`): a `large_picture`,
    for a CenterNet (whose graph reads any input size; MultiPose's reads its own)."""
    return kind == "centernet" and large_picture(width, height, spec)


def closer_look(
    image: Pixels, spec: InputSpec, run: Run, score_threshold: float, max_persons: int, kind: DetectorKind
) -> tuple[np.ndarray, np.ndarray]:
    """`whole_look` at `CLOSER_SIDE` input pixels instead of `spec`'s."""
    closer = replace(spec, width=CLOSER_SIDE, height=CLOSER_SIDE)
    return whole_look(image, closer, run, score_threshold, max_persons, kind)


def needs_tiles(boxes: np.ndarray, width: int, height: int, spec: InputSpec) -> bool:
    """Whether a picture deserves a second look in tiles: it is at least `TILE_MIN_SCALE` times the detector's
    input on its long side, and a person found in it (boxes (P, 4) x, y, w, h image pixels) stood under
    `SMALL_PERSON` input pixels tall, so that others smaller still went unseen."""
    if not large_picture(width, height, spec) or not len(boxes):
        return False
    return bool((np.asarray(boxes)[:, 3] * spec.width / max(width, height) < SMALL_PERSON).any())


def tile_windows(width: int, height: int, side: float, overlap: float = TILE_OVERLAP) -> list[Box]:
    """Square windows (x, y, side, side) image pixels covering the picture, neighbours overlapping by at least
    `overlap` of the side, spread evenly from edge to edge; centred on an axis the side already covers."""

    def starts(length: int) -> list[float]:
        if length <= side:
            return [(length - side) / 2.0]
        n = max(2, math.ceil((length - side * overlap) / (side * (1.0 - overlap))))
        return [i * (length - side) / (n - 1) for i in range(n)]

    return [(x, y, side, side) for y in starts(height) for x in starts(width)]


def with_tiles(
    image: Pixels,
    spec: InputSpec,
    run: Run,
    boxes: np.ndarray,
    scores: np.ndarray,
    score_threshold: float,
    max_persons: int,
    kind: DetectorKind,
) -> tuple[np.ndarray, np.ndarray]:
    """The whole picture's persons (boxes (P, 4) image pixels, scores (P,)) joined by those the detector finds
    in `tile_windows` of `TILE_FRACTION` of the long side, each at its full input (one batch): a tile's person
    touching an edge of the tile that lies inside the picture goes on in the next tile and is left out; then
    overlaps are suppressed as the detector's own decoding does (`centernet.NMS_IOU`), best first, at most
    `max_persons`."""
    side = TILE_FRACTION * max(image.width, image.height)
    windows = tile_windows(image.width, image.height, side)
    maps = run(normalize(crop_images(image, windows, spec), spec))
    margin = TILE_EDGE * side
    all_boxes, all_scores = [np.asarray(boxes, dtype=np.float64).reshape(-1, 4)], [np.asarray(scores)]
    for i, (x, y, w, h) in enumerate(windows):
        found, found_scores, _, _ = persons_from_maps(
            {name: m[i : i + 1] for name, m in maps.items()}, (x, y, w, h), spec, score_threshold, max_persons, kind
        )
        x0, y0, x1, y1 = found[:, 0], found[:, 1], found[:, 0] + found[:, 2], found[:, 1] + found[:, 3]
        cut = (
            ((x0 < x + margin) & (x > 0))
            | ((y0 < y + margin) & (y > 0))
            | ((x1 > x + w - margin) & (x + w < image.width))
            | ((y1 > y + h - margin) & (y + h < image.height))
        )
        all_boxes.append(found[~cut])
        all_scores.append(found_scores[~cut])
    joined, joined_scores = np.concatenate(all_boxes), np.concatenate(all_scores)
    corners = np.concatenate([joined[:, :2], joined[:, :2] + joined[:, 2:]], axis=1)
    keep = centernet.suppress_overlaps(corners, joined_scores, centernet.NMS_IOU, max_persons)
    return joined[keep], joined_scores[keep]


def joint_oks(keypoints: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Each joint's OKS term between every two poses of one image (P, 17, 2) pixels, scaled by the mean area of the
    two persons' boxes (P, 4) x, y, w, h, COCO's per-keypoint sigmas -> (P, P, 17)."""
    areas = np.prod(np.clip(np.asarray(boxes, dtype=np.float64).reshape(-1, 4)[:, 2:], 1.0, None), axis=1)
    scale = (areas[:, None] + areas[None, :]) / 2.0
    d2 = ((keypoints[:, None] - keypoints[None, :]) ** 2).sum(-1)  # (P, P, 17)
    return oks_terms(d2, scale[..., None])


def pose_oks(
    keypoints: np.ndarray,
    boxes: np.ndarray,
    joint_scores: np.ndarray | None = None,
    confident_joint: float = CONFIDENT_JOINT,
) -> np.ndarray:
    """OKS between every two poses of one image (P, 17, 2) pixels, each scaled by the mean area of the two
    persons' boxes (P, 4) x, y, w, h, COCO's per-keypoint sigmas -> (P, P), 1 on the diagonal. With the joints'
    scores (P, 17): over the joints both poses score at least `confident_joint`, where they share `SHARED_JOINTS`
    or more (all 17 otherwise; `confident_joint` 0: all 17 always)."""
    each = joint_oks(keypoints, boxes)
    if joint_scores is None:
        return np.asarray(each.mean(-1))
    sure = np.asarray(joint_scores).reshape(-1, 17) >= confident_joint
    both = sure[:, None] & sure[None, :]  # (P, P, 17)
    shared = both.sum(-1)
    over_shared = (each * both).sum(-1) / np.maximum(shared, 1)
    return np.asarray(np.where(shared >= SHARED_JOINTS, over_shared, each.mean(-1)))


def face_oks(
    keypoints: np.ndarray, boxes: np.ndarray, joint_scores: np.ndarray, confident_joint: float = CONFIDENT_JOINT
) -> np.ndarray:
    """How alike the faces of every two poses of one image are (P, P): OKS (`joint_oks`) over the `FACE_JOINTS` both
    score at least `confident_joint`; 0 where they share fewer than `SHARED_JOINTS` of them."""
    face = np.asarray(joint_scores).reshape(-1, 17)[:, :FACE_JOINTS] >= confident_joint
    both = face[:, None] & face[None, :]  # (P, P, FACE_JOINTS)
    shared = both.sum(-1)
    alike = (joint_oks(keypoints, boxes)[..., :FACE_JOINTS] * both).sum(-1) / np.maximum(shared, 1)
    return np.asarray(np.where(shared >= SHARED_JOINTS, alike, 0.0))


def same_person(
    keypoints: np.ndarray,
    boxes: np.ndarray,
    joint_scores: np.ndarray,
    max_oks: float = DUPLICATE_OKS,
    confident_joint: float = CONFIDENT_JOINT,
    same_face: bool = True,
    max_face_oks: float = SAME_FACE_OKS,
) -> np.ndarray:
    """Which two poses of one image (P, 17, 2) pixels, with boxes (P, 4) and joint scores (P, 17), are one person
    (P, P) bool: more than `max_oks` alike over the joints both are sure of (`pose_oks`), or, where `same_face`,
    their faces more than `max_face_oks` alike (`face_oks`)."""
    alike = pose_oks(keypoints, boxes, joint_scores, confident_joint) > max_oks
    if same_face:
        alike |= face_oks(keypoints, boxes, joint_scores, confident_joint) > max_face_oks
    return np.asarray(alike)


def boxes_to_read(boxes: np.ndarray, scores: np.ndarray, threshold: float, floor: float) -> np.ndarray:
    """Which of the detector's boxes (P, 4) x, y, w, h with scores (P,) the pose network reads (P,) bool: those
    scored at least `threshold`, and those from `floor` up that lie less than `PART_OF` inside one of those."""
    boxes, scores = np.asarray(boxes, dtype=np.float64).reshape(-1, 4), np.asarray(scores)
    sure = scores >= threshold
    weak = (scores >= floor) & ~sure
    if not weak.any() or not sure.any():
        return np.asarray(sure | weak)
    a = boxes[weak]
    inside = inside_share(a, boxes[sure]).max(axis=1)
    read = sure.copy()
    read[np.flatnonzero(weak)[inside < PART_OF]] = True
    return read


def confirmed(
    box_scores: np.ndarray, joint_scores: np.ndarray, threshold: float, head_confirms: bool = True
) -> np.ndarray:
    """Which persons (P,) are persons at all: the detector scored the box (P,) at least `threshold`, or the pose
    network read a confident pose in it (joint scores (P, 17): pose score at least `CONFIDENT_POSE`, or, where
    `head_confirms`, its face and shoulders' mean score at least `CONFIDENT_HEAD`)."""
    return np.asarray((np.asarray(box_scores) >= threshold) | sure_pose(joint_scores, head_confirms))


def head_score(joint_scores: np.ndarray) -> np.ndarray:
    """How sure a pose is of the face and shoulders: the mean score (...,) of its first `HEAD_AND_SHOULDERS` joints
    (joint scores (..., 17))."""
    return np.asarray(joint_scores)[..., :HEAD_AND_SHOULDERS].mean(axis=-1)


def distinct_persons(
    boxes: np.ndarray,
    keypoints: np.ndarray,
    joint_scores: np.ndarray,
    box_scores: np.ndarray,
    max_oks: float = DUPLICATE_OKS,
    confident_joint: float = CONFIDENT_JOINT,
    same_face: bool = True,
) -> np.ndarray:
    """Indices, ascending, of the persons of one image to answer: boxes (P, 4), their poses (P, 17, 2) with
    joint scores (P, 17) and the detector's box scores (P,). Best first by box score x pose score, a
    person whose pose lies within OKS `max_oks` of a kept one's (over the joints both are sure of, `pose_oks`), or
    whose face coincides with a kept one's (where `same_face`), is the same person again and is dropped
    (`same_person`)."""
    if len(boxes) < 2:
        return np.arange(len(boxes))
    keypoints = np.asarray(keypoints, dtype=np.float64)
    similar = same_person(keypoints, np.asarray(boxes), joint_scores, max_oks, confident_joint, same_face)
    kept: list[int] = []
    for i in np.argsort(-(np.asarray(box_scores) * pose_score(np.asarray(joint_scores))), kind="stable"):
        if not similar[i, kept].any():
            kept.append(int(i))
    return np.sort(np.asarray(kept, dtype=np.int64))


def outside_box_blanked(inputs: np.ndarray, boxes: np.ndarray, windows: Sequence[Box], spec: InputSpec) -> np.ndarray:
    """Network inputs (N, 3, H, W) of N crops with everything outside each crop's person box (N, 4) x, y, w, h
    image pixels set to the input's mean colour (0 once normalised: no signal), so that the network sees
    only the person inside the box; a copy."""
    out = np.zeros_like(inputs)
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    for i, ((x, y, w, h), window) in enumerate(zip(boxes, windows, strict=True)):
        rows, cols = box_in_crop((x, y, w, h), window, spec.width, spec.height)
        out[i, :, rows, cols] = inputs[i, :, rows, cols]
    return out


def box_in_crop(box: Box, window: Box, width: int, height: int) -> tuple[slice, slice]:
    """The rows and columns of a `width` x `height` crop cut from `window` (image px) that a person `box` (image
    px) covers, grown to whole pixels: what `outside_box_blanked` keeps, and training's blanked crops too."""
    x, y, w, h = box
    wx, wy, ww, wh = window
    x0, x1 = (np.array([x, x + w]) - wx) * width / ww
    y0, y1 = (np.array([y, y + h]) - wy) * height / wh
    rows = slice(max(0, int(np.floor(y0))), max(0, int(np.ceil(y1))))
    cols = slice(max(0, int(np.floor(x0))), max(0, int(np.ceil(x1))))
    return rows, cols


def crowded(boxes: np.ndarray, windows: Sequence[Box]) -> np.ndarray:
    """Which persons (P,) of one image share their crop: more than `CROWDED` of another person's box (P, 4)
    x, y, w, h image pixels lies inside their crop window (P windows x, y, w, h)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if len(boxes) < 2:
        return np.zeros(len(boxes), dtype=bool)
    inside = inside_share(boxes, windows).T  # [i, j]: the share of j in i's window
    np.fill_diagonal(inside, 0.0)
    return np.asarray((inside > CROWDED).any(axis=1))


def read_alone(
    inputs: np.ndarray, boxes: np.ndarray, windows: Sequence[Box], spec: InputSpec
) -> tuple[np.ndarray, np.ndarray]:
    """Network inputs (N, 3, H, W) of one image's N person crops, each `crowded` one blanked outside its own box
    (`outside_box_blanked`): the pose network sees that person alone (the inputs themselves when none is); and
    which rows (N,) were blanked, the `alone` of `answer_once`."""
    alone = crowded(boxes, windows)
    rows = np.flatnonzero(alone)
    if not len(rows):
        return inputs, alone
    out = inputs.copy()
    out[rows] = outside_box_blanked(inputs[rows], np.asarray(boxes)[rows], [windows[i] for i in rows], spec)
    return out, alone


Reread = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
Read = Callable[[np.ndarray, Sequence[Box]], tuple[np.ndarray, np.ndarray]]


def blanked_reread(
    inputs: np.ndarray,
    boxes: np.ndarray,
    windows: Sequence[Box],
    spec: InputSpec,
    read: Read,
    turns: np.ndarray | None = None,
) -> Reread:
    """The `reread` of `answer_once` for one image's crops: network inputs (N, 3, H, W), person boxes (N, 4)
    image pixels and crop windows; `read(inputs, windows)` runs the pose network and decodes to image pixels.
    `turns` (N,): the quarter turns each crop was read at (`read_upright`), kept when it is read again."""

    def reread(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        picked = [windows[i] for i in rows]
        blanked = outside_box_blanked(inputs[rows], np.asarray(boxes)[rows], picked, spec)
        if turns is None or not np.asarray(turns)[rows].any():
            return read(blanked, picked)
        return read_turned(read, blanked, picked, np.asarray(turns)[rows])

    return reread


def turned(inputs: np.ndarray, quarters: np.ndarray) -> np.ndarray:
    """Network inputs (N, 3, S, S), each turned its `quarters` (N,) of a turn counter-clockwise; a copy."""
    out = np.empty_like(inputs)
    for i, quarter in enumerate(np.asarray(quarters, dtype=np.int64).tolist()):
        out[i] = np.rot90(inputs[i], quarter, axes=(1, 2))
    return out


def turned_back(keypoints: np.ndarray, windows: Sequence[Box], quarters: np.ndarray) -> np.ndarray:
    """Keypoints (N, 17, 2) image pixels read on square crop windows turned `quarters` (N,) of a turn (`turned`),
    where they lie in the picture: each turned back about its window's centre."""
    w = np.asarray(windows, dtype=np.float64).reshape(-1, 1, 4)
    u, v = ((keypoints - w[..., :2]) / w[..., 2:]).transpose(2, 0, 1)  # (N, 17) each, 0-1 across the window
    for step in range(max(QUARTER_TURNS)):  # a quarter clockwise, `quarters` times: (u, v) -> (1 - v, u)
        back = np.asarray(quarters)[:, None] > step
        u, v = np.where(back, 1.0 - v, u), np.where(back, u, v)
    return np.stack([u, v], axis=-1) * w[..., 2:] + w[..., :2]


def read_turned(
    read: Read, inputs: np.ndarray, windows: Sequence[Box], quarters: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """`read(inputs, windows)` (pose network, decoded to image pixels) of square crops each turned its `quarters`
    (N,) of a turn first: poses (N, 17, 2) turned back into the picture, joint scores (N, 17)."""
    points, scores = read(turned(inputs, quarters), windows)
    return turned_back(points, windows, quarters), scores


def read_upright(
    inputs: np.ndarray,
    windows: Sequence[Box],
    keypoints: np.ndarray,
    joint_scores: np.ndarray,
    read: Read,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One image's crops (network inputs (N, 3, S, S), windows) read upright as poses (N, 17, 2) with joint scores
    (N, 17), each read under `TURN_BELOW` read again turned a quarter, a half and three quarters (`read_turned`, one
    batch): the surest turned read replaces the upright one where it is confident and surer by a margin (pose score
    at least `CONFIDENT_POSE` and `TURN_MARGIN` more, or face and shoulders at least `CONFIDENT_HEAD` and
    `TURN_HEAD_MARGIN` more with a pose score no lower): a person lying down or upside down. Returns the poses, the
    scores, the quarter turns (N,) each was read at (0: upright) and the picture's `turn_votes` (4,): how many of
    the unsure reads were surest at each turn, by `TURN_MARGIN` at least, confident or not (`picture_turn`); as
    given (no votes) where the input is not square."""
    quarters, votes = np.zeros(len(windows), dtype=np.int64), np.zeros(1 + len(QUARTER_TURNS), dtype=np.int64)
    unsure = np.flatnonzero(pose_score(joint_scores) < TURN_BELOW)
    if not len(unsure) or inputs.shape[2] != inputs.shape[3]:
        return keypoints, joint_scores, quarters, votes
    turns = np.repeat(np.asarray(QUARTER_TURNS, dtype=np.int64), len(unsure))
    rows = np.tile(unsure, len(QUARTER_TURNS))
    points, scores = read_turned(read, inputs[rows], [windows[i] for i in rows], turns)
    pose, head = (f(scores).reshape(len(QUARTER_TURNS), len(unsure)) for f in (pose_score, head_score))
    upright_pose, upright_head = pose_score(joint_scores[unsure]), head_score(joint_scores[unsure])
    surer = (pose >= np.maximum(CONFIDENT_POSE, upright_pose + TURN_MARGIN)) | (
        (head >= np.maximum(CONFIDENT_HEAD, upright_head + TURN_HEAD_MARGIN)) & (pose >= upright_pose)
    )
    surest = pose.argmax(axis=0)
    votes[1:] = np.bincount(surest[pose.max(axis=0) >= upright_pose + TURN_MARGIN], minlength=len(QUARTER_TURNS))
    best = np.where(surer, pose + head, -np.inf).argmax(axis=0)
    wins = np.flatnonzero(surer[best, np.arange(len(unsure))])
    if not len(wins):
        return keypoints, joint_scores, quarters, votes
    keypoints, joint_scores = keypoints.copy(), joint_scores.copy()
    picked = best[wins] * len(unsure) + wins
    keypoints[unsure[wins]], joint_scores[unsure[wins]] = points[picked], scores[picked]
    quarters[unsure[wins]] = turns[picked]
    return keypoints, joint_scores, quarters, votes


def sure_upright(quarters: np.ndarray, joint_scores: np.ndarray, answered: np.ndarray) -> int:
    """How many persons a picture's first look answered upright and confident: rows `answered` whose `quarters` (P,)
    is 0 (`read_upright`) and pose score, joint scores (P, 17), at least `CONFIDENT_POSE`."""
    rows = np.asarray(answered, dtype=np.int64)
    rows = rows[rows < len(quarters)]
    return int(((np.asarray(quarters)[rows] == 0) & (pose_score(joint_scores[rows]) >= CONFIDENT_POSE)).sum())


def picture_turn(votes: np.ndarray, quarters: np.ndarray, joint_scores: np.ndarray, answered: np.ndarray) -> int:
    """How many quarter turns counter-clockwise show a picture's people upright (0: as it is): the turn most of its
    unsure reads were surest at (`read_upright`'s votes (4,)), where they outnumber the persons answered upright
    and confident (`sure_upright`): a picture stored sideways or upside down, whose people the detector mostly
    misses."""
    quarter = int(np.argmax(votes))
    return quarter if votes[quarter] > sure_upright(quarters, joint_scores, answered) else 0


# A picture stored sideways or upside down where the detector finds (almost) nobody leaves no unsure reads to vote
# for a turn (`picture_turn`), and one person read upright and sure, wrongly, outvotes one read surer turned: of the
# six group photographs turned a quarter or three, the pretrained Lightning found 0-1 people in six. Looked at
# small, the detector itself tells which way up they are: at PROBE_SIDE (half its 512 input, the picture fitted
# whole, each quarter turn one image of a batch of three: 0.7x its own time on a 1920 px photograph) it is sure of
# 2-4 people at the upright turn of each of the 24 turned group pictures and of at most 1 at every other turn
# (probe /tmp/s47/q256b.py; at 192 px only 1-2 even upright). A picture is in doubt, and probed, where the
# detector's best box scored under PROBE_DOUBT and nobody was answered upright and sure, or one against a vote for a
# turn: seven of the eight turned group pictures where session 46 found at most two (best box 0.18-0.41; sample4
# turned a quarter has one person read upright and sure, wrongly, and no vote), none of the 15 real group pictures
# upright (best box 0.43 and above). Doubting every picture with at most one person sure upright found up to 9 more
# of the 66 turned people (the demo's first model 61 against 52) but probed most pictures of one person with a weak
# box: that model's drawn street traffic paid 1.31x the mean instead of 1.21x (benchmarks/turned_people.py --data).
# A picture where the detector finds no box at all, not even under its threshold, is not probed: every turned group
# picture left it at least one weak box (18 of 18, four artifacts), and the probe turned none of the 308 pictures
# with none (of 1052: the turned set, the group photographs and the drawn street scenes, four artifacts; probe
# /tmp/s48/nobox.py): pictures of nobody (half the pretrained networks' drawn street traffic) paid it for nothing.
# PROBE_DOUBT 0.5 since session 54 (0.45 before): with crops that count every pixel (`crop_images`) sample1 turned
# three quarters shows a box at 0.46, and its one vote turned it the wrong way; of 280 turned pictures (the 35
# turned group and one-person pictures, two networks, noise 0-16, two seeds; docs/detector.md) 234 turned right
# instead of 230, and no upright group picture is probed (best box 0.42-0.75, each with two people or more answered
# upright and sure).
# Since session 55 one person answered upright and sure with no vote is in doubt too where the detector left at least
# PROBE_PERSONS boxes (weak ones included): sample1 turned a quarter (Lightning, 4 of the 8 sets) and sample6 (Thunder,
# clean and one noisy set) read one person upright and sure, wrongly, beside a second weak box. Replayed on the 280:
# 241 turned right instead of 234, no upright picture changed; on drawn street traffic (200 scenes of 0-4 people,
# pretrained Lightning) 74 pictures probed instead of 62, no answer changed, the whole answer 1.04x on average and
# 1.00x at the median. Without the second box (every picture with one person sure) 253 turned right, but the median
# street picture is probed: 1.50x at the median (docs/detector.md).
PROBE_SIDE = 256
PROBE_DOUBT = 0.5
PROBE_PERSONS = 2


def sure_when_turned(
    image: Pixels, spec: InputSpec, run: Run, threshold: float, max_persons: int, kind: DetectorKind
) -> tuple[np.ndarray, np.ndarray]:
    """How many persons the detector is sure of (scored at `threshold`, at most `max_persons`) in an RGB image turned
    1, 2 and 3 quarter turns counter-clockwise (3,), and its best score there (3,): the image shrunk to fit `spec` (a
    small square, `PROBE_SIDE`), each turn one image of one batch."""
    # shrunk first, averaging: `detector_input`'s transform samples a 1920 px photograph at 256 px without it
    shrink = min(1.0, spec.width / image.width, spec.height / image.height)
    size = (max(1, round(image.width * shrink)), max(1, round(image.height * shrink)))
    batch, window = detector_input(image.resize(size, Image.Resampling.BILINEAR) if shrink < 1 else image, spec)
    maps = run(np.ascontiguousarray(np.concatenate([np.rot90(batch, k, axes=(2, 3)) for k in QUARTER_TURNS])))
    sure, best = np.zeros(len(QUARTER_TURNS), dtype=np.int64), np.zeros(len(QUARTER_TURNS))
    for i in range(len(QUARTER_TURNS)):
        one = {name: value[i : i + 1] for name, value in maps.items()}
        _, scores, _, _ = persons_from_maps(one, window, spec, threshold, max_persons, kind)
        sure[i], best[i] = len(scores), float(np.max(scores, initial=0.0))
    return sure, best


def probed_turn(
    probe: Callable[[], tuple[np.ndarray, np.ndarray]],
    box_scores: np.ndarray,
    threshold: float,
    votes: np.ndarray,
    quarters: np.ndarray,
    joint_scores: np.ndarray,
    answered: np.ndarray,
) -> int:
    """How many quarter turns counter-clockwise show the people of a picture in doubt (0: as it is, the probe not
    run where it is not in doubt): its boxes' best score (`box_scores` (N,), at least one) under `PROBE_DOUBT`, and
    nobody answered upright and sure (`sure_upright`), or one against a vote for a turn (`read_upright`'s votes (4,))
    or beside at least `PROBE_PERSONS` boxes (weak ones included; since session 55).
    `probe()`: `sure_when_turned` of the picture. The turn where the detector is sure of the most, at least
    `PROBE_PERSONS` and more than it was of at `threshold` upright and than were answered upright and sure (ties: the
    best score)."""
    if not len(box_scores):  # no box at all, not even a weak one: a picture of nobody (PROBE_DOUBT's comment)
        return 0
    upright = sure_upright(quarters, joint_scores, answered)
    doubted = upright == 0 or (upright == 1 and (bool(np.any(votes)) or len(box_scores) >= PROBE_PERSONS))
    if float(np.max(box_scores)) >= PROBE_DOUBT or not doubted:
        return 0
    sure, best = probe()
    turn = int(np.lexsort((best, sure))[-1])
    enough = max(PROBE_PERSONS, upright + 1, int((np.asarray(box_scores) >= threshold).sum()) + 1)
    return QUARTER_TURNS[turn] if sure[turn] >= enough else 0


def picture_quarters(
    votes: np.ndarray,
    quarters: np.ndarray,
    joint_scores: np.ndarray,
    answered: np.ndarray,
    box_scores: np.ndarray,
    threshold: float,
    probe: Callable[[], tuple[np.ndarray, np.ndarray]] | None,
) -> int:
    """How many quarter turns counter-clockwise show a picture's people upright (0: as it is), as the server and
    evaluation decide it: where `probe` is given and the picture is in doubt, the turn the detector looked at small
    is sure of more people at (`probed_turn`); otherwise the turn its unsure reads voted for (`picture_turn`)."""
    probed = 0 if probe is None else probed_turn(probe, box_scores, threshold, votes, quarters, joint_scores, answered)
    return probed or picture_turn(votes, quarters, joint_scores, answered)


PICTURE_TURNS = {1: Image.Transpose.ROTATE_90, 2: Image.Transpose.ROTATE_180, 3: Image.Transpose.ROTATE_270}


@overload
def turned_picture(image: Image.Image, quarters: int) -> Image.Image: ...
@overload
def turned_picture(image: Pixels, quarters: int) -> Pixels: ...
def turned_picture(image: Pixels, quarters: int) -> Pixels:
    """The picture turned `quarters` (0-3) quarter turns counter-clockwise, exactly (no resampling), as `turned` turns
    a crop; a copy."""
    return image.transpose(PICTURE_TURNS[quarters]) if quarters else image.copy()


def picture_points_back(points: np.ndarray, size: tuple[int, int], quarters: int) -> np.ndarray:
    """Points (..., 2) pixels of a picture of `size` (width, height) turned `quarters` counter-clockwise
    (`turned_picture`), where they lie in the picture as it is."""
    points = np.asarray(points, dtype=np.float64)
    x, y = points[..., 0], points[..., 1]
    width, height = size if quarters % 2 == 0 else size[::-1]  # the turned picture's
    for _ in range(quarters):  # a quarter clockwise: (x, y) -> (height - y, x), then the sides swap
        x, y = height - y, x
        width, height = height, width
    return np.stack([x, y], axis=-1)


def picture_boxes_back(boxes: np.ndarray, size: tuple[int, int], quarters: int) -> np.ndarray:
    """Boxes (P, 4) x, y, w, h pixels of a picture of `size` turned `quarters` (`turned_picture`), where they lie
    in the picture as it is."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    corners = picture_points_back(np.stack([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], axis=1), size, quarters)
    low, high = corners.min(axis=1), corners.max(axis=1)
    return np.concatenate([low, high - low], axis=1)


def sure_pose(joint_scores: np.ndarray, head_confirms: bool = True) -> np.ndarray:
    """Which poses (P,), joint scores (P, 17), the pose network is sure of: pose score at least `CONFIDENT_POSE`, or,
    where `head_confirms`, face and shoulders at least `CONFIDENT_HEAD` (what `confirmed` accepts whatever the box)."""
    joint_scores = np.asarray(joint_scores).reshape(-1, 17)
    sure = pose_score(joint_scores) >= CONFIDENT_POSE
    return np.asarray(sure | (head_score(joint_scores) >= CONFIDENT_HEAD) if head_confirms else sure)


# one picture's persons: boxes (P, 4) x, y, w, h image pixels, poses (P, 17, 2), joint scores (P, 17)
Persons = tuple[np.ndarray, np.ndarray, np.ndarray]


def joined_upright(
    answered: Persons, upright: Persons, options: FindOptions = FindOptions()
) -> tuple[np.ndarray, np.ndarray]:
    """A picture stored turned (`picture_turn`): which of its persons as answered (P,) and of those found in it
    turned upright (Q,), turned back into the picture, to answer. All those found upright, answered as the picture
    sent upright is (`answer_once`), where the pose network is sure of one of them at least (`sure_pose`): until
    session 53 only those it was sure of, which left a person a picture sent upright answers (sample5's woman on the
    left, face and shoulders 0.54 with crops that count every pixel) wherever it was sent turned; then those answered
    before that it is sure of too, that are none of them (`same_person`, as `options` say) and whose box holds less
    than `PART_OF` of any of theirs: a read it was unsure of in a turned picture was read the wrong way up, and there
    the detector draws one box around several people (a first look's box around all three of sample2 turned a
    quarter, read as one of them). Where it is sure of nobody found upright, the answers as they were."""
    if not sure_pose(upright[2]).any():
        return np.ones(len(answered[0]), dtype=bool), np.zeros(len(upright[2]), dtype=bool)
    found = np.ones(len(upright[2]), dtype=bool)
    kept = sure_pose(answered[2])
    if not kept.any():
        return kept, found
    boxes, points, scores = (np.concatenate([a[kept], u[found]]) for a, u in zip(answered, upright, strict=True))
    alike = same_person(points, boxes, scores, options.duplicate_oks, same_face=options.same_face)
    theirs = upright[0][found]
    around = inside_share(theirs, answered[0][kept]).T
    n = int(kept.sum())
    kept[np.flatnonzero(kept)] = ~alike[:n, n:].any(axis=1) & (around < PART_OF).all(axis=1)
    return kept, found


def answer_once(
    boxes: np.ndarray,
    keypoints: np.ndarray,
    joint_scores: np.ndarray,
    box_scores: np.ndarray,
    reread: Reread | None = None,
    threshold: float | None = None,
    alone: np.ndarray | None = None,
    confident_joint: float = CONFIDENT_JOINT,
    options: FindOptions = FindOptions(),
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The persons of one image to answer, one answer each: (indices ascending, keypoints, joint scores).

    `threshold`: the detector's; a box scored under it is a person only where its pose is `confirmed` (None:
    every box is one). `distinct_persons` drops a pose repeating a better one's. Most such boxes hold a person
    of their own whom the pose network did not read: it answered for the neighbour whose body centre is
    stronger in the crop. `reread(indices)` (`blanked_reread`) reads those boxes again with everything outside
    them blanked (`outside_box_blanked`) and returns their poses (n, 17, 2) image pixels with joint scores
    (n, 17); best first by box score x pose score, a pose read so that repeats no answered one's (and, under
    the threshold, is confirmed) is answered in the row of its box. Without `reread`, only the drop (serving
    until session 33). `alone` (P,): rows already read blanked outside their box (`read_alone`); read again
    they give the same pose, so they are not re-read and stay dropped. `confident_joint`: whose joints two poses
    are compared on (`pose_oks`; 0: all 17, as served until session 42). `options`: its `head_confirms` (for
    `confirmed`), `duplicate_oks` and `same_face` (when two poses are one person, `same_person`), and
    `inside_parts`: an answer that is a part of another (`parts_inside`) is left out last.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    box_scores = np.asarray(box_scores)
    every = np.ones(len(boxes), dtype=bool)
    head = options.head_confirms
    persons = np.flatnonzero(every if threshold is None else confirmed(box_scores, joint_scores, threshold, head))
    own = (boxes[persons], keypoints[persons], joint_scores[persons], box_scores[persons])
    rows = persons[distinct_persons(*own, options.duplicate_oks, confident_joint, options.same_face)]
    dropped = np.setdiff1d(persons, rows)
    if alone is not None:
        dropped = dropped[~np.asarray(alone, dtype=bool)[dropped]]
    if reread is None or not len(dropped):
        return _without_parts(rows, boxes, joint_scores, options), keypoints, joint_scores
    points, scores = reread(dropped)
    if threshold is not None:
        kept = confirmed(box_scores[dropped], scores, threshold, head)
        dropped, points, scores = dropped[kept], points[kept], scores[kept]
    keypoints, joint_scores = keypoints.copy(), joint_scores.copy()
    answered = rows.tolist()
    for j in np.argsort(-(box_scores[dropped] * pose_score(scores)), kind="stable"):
        row = int(dropped[j])
        poses = np.concatenate([keypoints[answered], points[j][None]])
        poses_scores = np.concatenate([joint_scores[answered], scores[j][None]])
        held = np.concatenate([boxes[answered], boxes[row][None]])
        similar = same_person(poses, held, poses_scores, options.duplicate_oks, confident_joint, options.same_face)
        if not similar[-1, :-1].any():
            keypoints[row], joint_scores[row] = points[j], scores[j]
            answered.append(row)
    rows = np.sort(np.asarray(answered, dtype=np.int64))
    return _without_parts(rows, boxes, joint_scores, options), keypoints, joint_scores


def parts_inside(boxes: np.ndarray, joint_scores: np.ndarray) -> np.ndarray:
    """Which answers of one image (boxes (P, 4) x, y, w, h, joint scores (P, 17)) are a part of another (P,) bool:
    the box lies at least `PART_OF` inside another answer's, and its face and shoulders (`head_score`) score under
    `PART_HEAD` and under that answer's."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if len(boxes) < 2:
        return np.zeros(len(boxes), dtype=bool)
    head = head_score(joint_scores)
    inside = inside_share(boxes, boxes)  # [i, j]: the share of i inside j
    np.fill_diagonal(inside, 0.0)
    part_of = (inside >= PART_OF) & (head[:, None] < head[None, :])
    return np.asarray(part_of.any(axis=1) & (head < PART_HEAD))


def _without_parts(rows: np.ndarray, boxes: np.ndarray, joint_scores: np.ndarray, options: FindOptions) -> np.ndarray:
    """`rows` less those that are a part of another of them (`parts_inside`), where `options.inside_parts`."""
    if not options.inside_parts or len(rows) < 2:
        return rows
    return rows[~parts_inside(boxes[rows], joint_scores[rows])]


# A person inside a box the detector drew around them and a neighbour (`answer_parts`, docs/detector.md): the pose
# network answers the neighbour, and the side of the box that answer leaves empty, at least EMPTY_SIDE of its
# width, is read as a box of its own, reaching PART_OVERLAP of the width back over the answer's edge. The answer
# needs PART_JOINTS sure joints (at least CONFIDENT_JOINT) to say where it stands. A part's read is answered from a
# pose score of PART_POSE (CONFIDENT_POSE, 0.4, until session 53): half hidden, sample4's woman reads 0.38 with crops
# that count every pixel (0.405 sampled), and the 97 marked people and the turned set, noise 0-16, gained no answer
# near nobody by it and session 54's `joined_upright` together (benchmarks/photo_noise.py). Since session 60 the
# answer's arms (ARMS) do not fill the box: a hand on a neighbour's shoulder or an elbow held out reached past
# EMPTY_SIDE and hid the neighbour (Thunder read sample4's left box around two with an elbow 115 px from its right
# edge, 117.6 needed; the neighbour, read there, is a confident pose of her own); the pretrained networks found 95 ->
# 95 (Lightning) and 93 -> 96 (Thunder) of the 97 marked people, 118 -> 120 and 120 -> 123 of the big groups' 132,
# none more near nobody or twice (benchmarks/people_found.py, benchmarks/big_groups.py).
EMPTY_SIDE = 0.4
PART_OVERLAP = 0.1
PART_JOINTS = 3
PART_POSE = 0.35
ARMS = (7, 8, 9, 10)  # elbows and wrists (posewheel.schema.KEYPOINT_NAMES)

ReadParts = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
Crop = Callable[[Sequence[Box]], tuple[np.ndarray, list[Box]]]


def empty_part(
    box: Box | np.ndarray, keypoints: np.ndarray, joint_scores: np.ndarray, past_arms: bool = True
) -> Box | None:
    """The side of a person `box` (x, y, w, h) that its answered pose (17, 2) with joint scores (17,) leaves empty,
    as a box: at least `EMPTY_SIDE` of the width beside the joints scored at least `CONFIDENT_JOINT`, but for the
    arms where `past_arms` (`ARMS`), reaching `PART_OVERLAP` of the width back over them; None where the pose fills
    the box or fewer than `PART_JOINTS` of those joints are sure."""
    sure = np.asarray(joint_scores) >= CONFIDENT_JOINT
    if past_arms:
        sure[list(ARMS)] = False
    if sure.sum() < PART_JOINTS:
        return None
    x, y, w, h = (float(v) for v in box)
    xs = np.asarray(keypoints)[sure, 0]
    left, right = float(xs.min()) - x, x + w - float(xs.max())
    if max(left, right) < EMPTY_SIDE * w:
        return None
    if left >= right:
        return (x, y, left + PART_OVERLAP * w, h)
    start = x + w - right - PART_OVERLAP * w
    return (start, y, x + w - start, h)


ReadBoxes = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


def blanked_boxes(crop: Crop, spec: InputSpec, read: Read) -> ReadBoxes:
    """Read boxes (n, 4) x, y, w, h of one image each on its own: `crop(boxes)` cuts them out of the image as a
    caller's boxes are (network inputs (n, 3, H, W), crop windows), each is blanked outside its box
    (`outside_box_blanked`, as a caller's box beside its neighbours is read), and `read(inputs, windows)` runs the
    pose network and decodes to image pixels: poses (n, 17, 2), joint scores (n, 17)."""

    def read_boxes(boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        inputs, windows = crop([(float(x), float(y), float(w), float(h)) for x, y, w, h in boxes])
        return read(outside_box_blanked(inputs, boxes, windows, spec), windows)

    return read_boxes


def blanked_parts(crop: Crop, spec: InputSpec, read: Read) -> ReadParts:
    """The `read_parts` of `answer_parts` for one image: each part read on its own (`blanked_boxes`)."""
    read_boxes = blanked_boxes(crop, spec, read)
    return lambda parents, parts: read_boxes(parts)


def with_parts(answered: np.ndarray, parents: np.ndarray, rows: int) -> np.ndarray:
    """The rows to answer, in order: each answered row (`answered`, in the detector's order) followed by the parts
    read in its box (`parents`, whose poses are rows `rows`, `rows` + 1, ... after the detector's)."""
    order: list[int] = []
    for row in np.asarray(answered).tolist():
        order += [row, *(rows + np.flatnonzero(np.asarray(parents) == row)).tolist()]
    return np.asarray(order, dtype=np.int64)


def answer_parts(
    boxes: np.ndarray,
    keypoints: np.ndarray,
    joint_scores: np.ndarray,
    box_scores: np.ndarray,
    answered: np.ndarray,
    read_parts: ReadParts,
    options: FindOptions = FindOptions(),
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The persons standing in the empty side of an answered box (`empty_part`): boxes (P, 4), poses (P, 17, 2),
    joint scores (P, 17) and box scores (P,) of one image, `answered` the rows answered (`answer_once`).
    `read_parts(parents, parts (n, 4))` reads each part in a crop of its own, blanked outside it (`blanked_parts`).
    A part's pose is answered where it is confident (pose score at least `PART_POSE`) and repeats no answered
    pose (`same_person`, as `options` say: its `duplicate_oks` and `same_face`), best first by its
    parent's box score x pose score. Returns the parents' rows (Q,), the parts' boxes (Q, 4), poses (Q, 17, 2) and
    joint scores (Q, 17); none where no box is around two."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    found = [(int(r), empty_part(boxes[r], keypoints[r], joint_scores[r], options.parts_past_arms)) for r in answered]
    parents = np.asarray([r for r, part in found if part is not None], dtype=np.int64)
    parts = np.asarray([part for _, part in found if part is not None], dtype=np.float64).reshape(-1, 4)
    none = (np.zeros(0, dtype=np.int64), np.zeros((0, 4)), np.zeros((0, 17, 2)), np.zeros((0, 17)))
    if not len(parents):
        return none
    points, scores = read_parts(parents, parts)
    confidence = pose_score(scores)
    held_boxes, held_points, held_scores = boxes[answered], keypoints[answered], joint_scores[answered]
    kept: list[int] = []
    for j in np.argsort(-(np.asarray(box_scores)[parents] * confidence), kind="stable"):
        if confidence[j] < PART_POSE:
            continue
        poses = np.concatenate([held_points, points[kept], points[j][None]])
        joint = np.concatenate([held_scores, scores[kept], scores[j][None]])
        held = np.concatenate([held_boxes, parts[kept], parts[j][None]])
        if not same_person(poses, held, joint, options.duplicate_oks, same_face=options.same_face)[-1, :-1].any():
            kept.append(int(j))
    if not kept:
        return none
    order = np.sort(np.asarray(kept, dtype=np.int64))
    return parents[order], parts[order], points[order], scores[order]


def answer_with_parts(
    boxes: np.ndarray,
    keypoints: np.ndarray,
    joint_scores: np.ndarray,
    box_scores: np.ndarray,
    answered: np.ndarray,
    read_parts: ReadParts,
    options: FindOptions = FindOptions(),
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """`answer_parts`, its persons added after the detector's rows: (rows to answer in order (`with_parts`), poses
    (P + Q, 17, 2), joint scores (P + Q, 17), the parts' parent rows (Q,) and boxes (Q, 4)); the rows, poses and
    scores as given where no part is answered. What the server and evaluation both do after `answer_once`."""
    parents, part_boxes, points, scores = answer_parts(
        boxes, keypoints, joint_scores, box_scores, answered, read_parts, options
    )
    if not len(parents):
        return answered, keypoints, joint_scores, parents, part_boxes
    return (
        with_parts(answered, parents, len(keypoints)),
        np.concatenate([keypoints, points]),
        np.concatenate([joint_scores, scores]),
        parents,
        part_boxes,
    )


# A person of a stream the detector missed in this frame, though their track saw them in the frame before, is read at
# their track's box moved on to now, blanked outside it, and answered where the read is that person again
# (`carried_persons`, since session 59; the server's streams, docs/detector.md, benchmarks/live_steadiness.py): at
# least CARRY_JOINTS joints sure both in the read and in the track's last pose, CARRY_OKS alike over them, and its face
# and shoulders at least CARRY_HEAD sure (`head_score`), repeating no answered pose. Before a still camera's noise
# the least sure people came and went between frames (at 8 grey levels the detector scored a woman of sample4 0.05 in
# 14 of 20 frames; she was answered in 6, as the empty side of a box around her and her neighbour). Reads of tracks
# lost for good (a scene cut, a person gone behind another) measured face and shoulders 0.36 at most where they read
# nobody; those that read the person lost 0.28-0.69, all but four (people half hidden behind a passer-by) 0.40 or more
# (probe /tmp/s59/probe_carry2.py).
CARRY_JOINTS = 5
CARRY_OKS = 0.5
CARRY_HEAD = 0.4
# A carried read repeats an answered pose at CARRY_REPEAT of the likeness two of the detector's answers need to be one
# person (`DUPLICATE_OKS`, `SAME_FACE_OKS`): nothing but its track vouches for it. Carried reads of a person answered
# already measured pose OKS 0.35-0.53 with that answer (Thunder on a pan: a box around one woman and its empty side
# both answered, then both tracks carried); those of a person nobody else answered 0.25 at most, faces 0 (probe
# /tmp/s59/probe_dupc.py: the pans, walks and still groups, both pretrained models).
CARRY_REPEAT = 0.5
CARRY_INSIDE = 0.5  # of a track's moved box: less inside the picture, the person has left it and is not read


def carried_boxes(boxes: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Which tracks' moved boxes (T, 4) x, y, w, h lie at least `CARRY_INSIDE` inside a picture of `width` x
    `height` (T,) bool, and all of them cut to it (T, 4)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    cut = np.asarray([clip_box(b, width, height) for b in boxes], dtype=np.float64).reshape(-1, 4)
    areas = np.maximum(boxes[:, 2] * boxes[:, 3], 1e-9)
    return np.asarray(cut[:, 2] * cut[:, 3] / areas >= CARRY_INSIDE), cut


def carried_persons(
    held: tuple[np.ndarray, np.ndarray, np.ndarray],
    tracks: tuple[np.ndarray, np.ndarray, np.ndarray],
    read: tuple[np.ndarray, np.ndarray],
    size: tuple[int, int],
    options: FindOptions = FindOptions(),
) -> tuple[np.ndarray, np.ndarray]:
    """Which lost tracks of a stream are answered in this frame, and where: indices ascending (Q,) and boxes (Q, 4)
    inside the frame's picture of `size` (width, height), as the detector's are (`clip_box`).

    `held`: the frame's answers, boxes (P, 4), poses (P, 17, 2), joint scores (P, 17). `tracks`: each lost track
    moved on to this frame, its box (T, 4), last pose (T, 17, 2) and joint scores (T, 17). `read`: the pose network's
    read of each track's box, blanked outside it (`blanked_boxes`), poses (T, 17, 2), joint scores (T, 17). A read is
    that person again where the joints sure in both (`CONFIDENT_JOINT`) number `CARRY_JOINTS` or more and lie
    `CARRY_OKS` alike on average (scaled by the track's box), and its face and shoulders score `CARRY_HEAD`; surest
    face first, it is answered where it repeats no answered pose (`same_person`, as `options` say, at `CARRY_REPEAT` of
    their likeness). Its box is the
    track's moved by how far those joints moved (the person followed, not the track's guess)."""
    held_boxes, held_points, held_scores = held
    track_boxes, track_points, track_scores = (np.asarray(a, dtype=np.float64) for a in tracks)
    points, scores = read
    both = (np.asarray(scores) >= CONFIDENT_JOINT) & (track_scores >= CONFIDENT_JOINT)  # (T, 17)
    shared = both.sum(axis=1)
    areas = np.maximum(np.prod(track_boxes[:, 2:], axis=1), 1.0)
    d2 = ((points - track_points) ** 2).sum(-1)  # (T, 17)
    each = oks_terms(d2, areas[:, None])
    alike = (each * both).sum(axis=1) / np.maximum(shared, 1)
    faces = head_score(scores)
    moved = (points - track_points) * both[..., None]
    boxes = track_boxes.copy()
    boxes[:, :2] += moved.sum(axis=1) / np.maximum(shared, 1)[:, None]
    kept: list[int] = []
    for j in np.argsort(-faces, kind="stable"):
        if shared[j] < CARRY_JOINTS or alike[j] < CARRY_OKS or faces[j] < CARRY_HEAD:
            continue
        poses = np.concatenate([held_points, points[kept], points[j][None]])
        joint = np.concatenate([held_scores, scores[kept], scores[j][None]])
        around = np.concatenate([held_boxes, boxes[kept], boxes[j][None]])
        repeats = same_person(
            poses,
            around,
            joint,
            CARRY_REPEAT * options.duplicate_oks,
            same_face=options.same_face,
            max_face_oks=CARRY_REPEAT * SAME_FACE_OKS,
        )
        if not repeats[-1, :-1].any():
            kept.append(int(j))
    order = np.sort(np.asarray(kept, dtype=np.int64))
    return order, np.asarray([clip_box(box, *size) for box in boxes[order]], dtype=np.float64).reshape(-1, 4)
