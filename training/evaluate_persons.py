"""Evaluate an artifact without ground-truth boxes: its detector finds the people, its pose network reads them.

What serves is what is measured: a request without boxes runs the card's `detector.onnx` through
`posewheel.detection.detect_persons`, then crops every box found with `crop_box`/`crop_images`/
`normalize`, runs `model.onnx` on the crops in batches and decodes with `decode_outputs`. Every
detection is a result with a score, so pycocotools charges both the persons the detector misses and
the phantoms it invents (on empty images too), which the ground-truth-box protocol of
`training/evaluate.py` cannot see. As served, a detection whose pose repeats a better one's in the same
image (one person inside two boxes) is read again with everything outside its box blanked, and dropped
when it still repeats (`posewheel.detection.answer_once`).

    from training.evaluate_persons import evaluate_without_boxes
    evaluate_without_boxes("models/production", "data/holdout/studio_groups")
    # {"oks_ap": ..., "box_ap": ..., "persons_found": ..., "true_boxes_oks_ap": ..., "oks_ap_ratio": ...}

Detection score (`PERSON_SCORE`), which orders the detections for AP: the detector's person score
times the pose's mean keypoint score (`box_x_pose`). It gave the highest OKS AP of the three
choices on both 300-image multi-person holdouts (benchmarks/multi_person.py, pretrained MoveNet
Lightning + MultiPose): studio 0.1549 vs. 0.1542 box score alone vs. 0.1521 mean keypoint score;
street 0.0439 vs. 0.0417 vs. 0.0438. The margins are small; the product keeps both the detector's
"is this a person" and the pose network's "can I read it", so a confident box with an unreadable
pose, or a readable pose in a doubtful box, ranks below a detection that is both.
"""

from __future__ import annotations

import contextlib
import io
import json
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image

from posewheel import dataset as coco
from posewheel.artifact import MODEL_FILE, load_card
from posewheel.decoding import (
    Box,
    InputSpec,
    crop_box,
    crop_images,
    decode_outputs,
    normalize,
    pose_score,
    whole_image_box,
)
from posewheel.detection import (
    CONFIDENT_JOINT,
    DUPLICATE_OKS,
    PROBE_SIDE,
    FindOptions,
    answer_once,
    answer_with_parts,
    blanked_parts,
    blanked_reread,
    confirmed,
    distinct_persons,
    joined_upright,
    person_cap,
    persons_to_read,
    picture_boxes_back,
    picture_points_back,
    picture_quarters,
    read_alone,
    read_upright,
    sure_when_turned,
    turned_picture,
)
from posewheel.imagestore import read_rgb
from posewheel.schema import KEYPOINT_NAMES, NUM_KEYPOINTS, OKS_SIGMAS, PERSON_CATEGORY_ID
from training.realphotos import (
    CHECK_SET,
    CONFIDENT,
    SERVED_SIDE,
    SMALL_PEOPLE_REFERENCE,
    small_people,
    small_people_agreement,
    summarize,
)

PersonScore = Literal["box", "pose", "box_x_pose"]
PERSON_SCORES: tuple[PersonScore, ...] = ("box", "pose", "box_x_pose")
PERSON_SCORE: PersonScore = "box_x_pose"  # the highest OKS AP of the three (module docstring)
MATCH_IOU = 0.5  # a detection whose box overlaps a true person's this much found that person


@dataclass
class DetectedPersons:
    """Every person the artifact found in the images of one dataset, in image pixels.

    image_ids (P,); boxes (P, 4) x, y, w, h from the detector; box_scores (P,) the detector's
    person scores; keypoints (P, 17, 2) and joint_scores (P, 17) from the pose network.
    """

    dataset: coco.Dataset
    image_ids: np.ndarray
    boxes: np.ndarray
    box_scores: np.ndarray
    keypoints: np.ndarray
    joint_scores: np.ndarray

    def person_scores(self, kind: PersonScore = PERSON_SCORE) -> np.ndarray:
        """One score per detection (P,): the detector's, the pose's mean keypoint score, or their product."""
        if kind == "box":
            return self.box_scores
        if kind == "pose":
            return pose_score(self.joint_scores)
        if kind == "box_x_pose":
            return self.box_scores * pose_score(self.joint_scores)
        raise ValueError(f"unknown person score {kind!r}; expected one of {PERSON_SCORES}")


def predict_without_boxes(
    artifact: str | Path,
    dataset: str | Path,
    batch_size: int = 64,
    score_threshold: float | None = None,
    max_persons: int | None = None,
    distinct: bool = True,
    find_options: FindOptions | None = None,
    confident_joint: float = CONFIDENT_JOINT,
) -> DetectedPersons:
    """Detect the persons of every image of `dataset` with the artifact's detector, then estimate each top-down.

    score_threshold and max_persons default to the card's detector section, and max_persons is capped by what
    the detector kind finds (`posewheel.detection.person_cap`), as in serving (serving/engine.py
    PersonDetector.find, then prepare); a score_threshold given is applied exactly (no box under it is
    confirmed). `distinct`: one answer per person, as served (`posewheel.detection.answer_once`): a pose
    repeating a better one's is read again from its box blanked outside, and dropped if it still repeats (False:
    every detection, a benchmark's baseline).
    `find_options`: how the detector finds and reads people, as served (`posewheel.detection.FindOptions`: tiles,
    boxes under the threshold answered where the pose network confirms them, a person whose crop holds another's
    box read alone; None: all on, as served by default). A benchmark's baseline switches them off.
    `confident_joint`: two poses are compared on the joints both score at least this (`posewheel.detection.pose_oks`;
    0: on all 17, as served until session 42).
    Raises ValueError when the artifact has no detector.
    """
    import onnxruntime as ort

    folder = Path(artifact)
    card = load_card(folder)
    if card.detector is None:
        raise ValueError(f"{folder / 'card.json'}: the card has no detector section; it cannot find persons itself")
    detector = card.detector
    threshold = detector.score_threshold if score_threshold is None else score_threshold
    find = find_options or FindOptions()
    exact = score_threshold is not None
    limit = person_cap(detector.kind, detector.max_persons, max_persons)
    providers = ["CPUExecutionProvider"]
    pose_session = ort.InferenceSession(str(folder / MODEL_FILE), providers=providers)
    detector_session = ort.InferenceSession(str(folder / detector.file), providers=providers)

    def run_detector(batch: np.ndarray) -> dict[str, np.ndarray]:
        maps = detector_session.run(detector.names, {detector.input_name: batch})
        return dict(zip(detector.names, maps, strict=True))

    spec, detector_spec, probe_spec = card.input_spec(), detector.input_spec(), detector.input_spec(PROBE_SIDE)
    names = card.output.names

    def run_pose(inputs: np.ndarray, windows: Sequence[Box]) -> tuple[np.ndarray, np.ndarray]:
        outputs = pose_session.run(names, {card.input.input_name: inputs})
        return decode_outputs(dict(zip(names, outputs, strict=True)), windows, spec, card.output.kind)

    ds = coco.load(dataset)
    # image id, the image, boxes (n, 4), scores: waiting for a full batch, as the server's micro-batches do
    found_in: list[tuple[int, Image.Image, np.ndarray, np.ndarray]] = []
    crops: list[np.ndarray] = []
    windows: list[Box] = []
    rows: dict[str, list[np.ndarray]] = {"image_ids": [], "boxes": [], "box_scores": [], "keypoints": [], "scores": []}
    nobody = (np.zeros((0, 4)), np.zeros(0), np.zeros((0, NUM_KEYPOINTS, 2)), np.zeros((0, NUM_KEYPOINTS)))

    def detect(image: Image.Image) -> tuple[np.ndarray, np.ndarray]:
        found, scores, read = persons_to_read(
            image, detector_spec, run_detector, threshold, limit, detector.kind, find, exact=exact
        )
        return found[read], np.asarray(scores[read], dtype=np.float64)

    def probe(image: Image.Image) -> Callable[[], tuple[np.ndarray, np.ndarray]]:
        return partial(sure_when_turned, image, probe_spec, run_detector, threshold, limit, detector.kind)

    def read_found(
        image: Image.Image, found: np.ndarray, inputs: np.ndarray, own_windows: list[Box], alone: np.ndarray,
        points: np.ndarray, scores: np.ndarray, found_scores: np.ndarray, turn_picture: bool,
    ) -> tuple[tuple[np.ndarray, ...], int]:  # fmt: skip
        """One image's persons as served (serving.engine.ServedModel.settle): boxes, box scores, poses, joint
        scores of the rows answered; and how many quarter turns show its people upright where `turn_picture` (0: as
        it is, `picture_turn`), which `with_upright` looks at."""
        boxes, box_scores = found, found_scores
        if not distinct:  # every confirmed detection, repeats too
            kept = np.flatnonzero(confirmed(found_scores, scores, threshold, find.head_confirms))
            return (boxes[kept], box_scores[kept], points[kept], scores[kept]), 0
        turns, votes = None, None
        if find.turns:  # one lying down or upside down, read turned
            points, scores, turns, votes = read_upright(inputs, own_windows, points, scores, run_pose)
        reread = blanked_reread(inputs, found, own_windows, spec, run_pose, turns)
        kept, points, scores = answer_once(
            found, points, scores, found_scores, reread, threshold, alone, confident_joint, find
        )
        quarters = 0
        if turn_picture and find.turn_picture and votes is not None and turns is not None:
            looked = probe(image) if find.probe_turn else None  # in doubt, looked at small, turned each way
            quarters = picture_quarters(votes, turns, scores, kept, found_scores, threshold, looked)
        if find.read_parts:  # a person in the empty side of a box around two, as served
            read_parts = blanked_parts(partial(crops_of, image, spec), spec, run_pose)
            kept, points, scores, parents, part_boxes = answer_with_parts(
                found, points, scores, found_scores, kept, read_parts, find
            )
            boxes = np.concatenate([found, part_boxes])
            box_scores = np.concatenate([found_scores, found_scores[parents]])
        return (boxes[kept], box_scores[kept], points[kept], scores[kept]), quarters

    def read_picture(image: Image.Image) -> tuple[np.ndarray, ...]:
        """The persons of one picture found and read alone, as `read_found` answers them (no turn of the picture)."""
        found, found_scores = detect(image)
        if not len(found):
            return nobody
        inputs, own_windows = crops_of(image, spec, [(x, y, w, h) for x, y, w, h in found.tolist()])
        alone = np.zeros(len(inputs), dtype=bool)
        if find.read_alone:
            inputs, alone = read_alone(inputs, found, own_windows, spec)
        points, scores = run_pose(inputs, own_windows)
        return read_found(image, found, inputs, own_windows, alone, points, scores, found_scores, False)[0]

    def with_upright(image: Image.Image, answered: tuple[np.ndarray, ...], quarters: int) -> tuple[np.ndarray, ...]:
        """A picture lying turned (`picture_turn`): its `answered` persons with those found in it turned `quarters`,
        turned back into it (`joined_upright`), as served (serving.engine.ServedModel.with_turned)."""
        again = read_picture(turned_picture(image, quarters))
        upright = (
            picture_boxes_back(again[0], image.size, quarters),
            again[1],
            picture_points_back(again[2], image.size, quarters),
            again[3],
        )
        own, new = joined_upright((answered[0], answered[2], answered[3]), (upright[0], upright[2], upright[3]), find)
        return tuple(np.concatenate([a[own], b[new]]) for a, b in zip(answered, upright, strict=True))

    def add(image_id: int, persons: tuple[np.ndarray, ...]) -> None:
        for name, values in zip(("boxes", "box_scores", "keypoints", "scores"), persons, strict=True):
            rows[name].append(values)
        rows["image_ids"].append(np.full(len(persons[0]), image_id, dtype=np.int64))

    def flush() -> None:
        inputs = normalize(np.stack(crops), spec)
        alone = np.zeros(len(inputs), dtype=bool)
        if find.read_alone:  # as served (serving.engine.ServedModel.find_people)
            start = 0
            for _, _, found, _ in found_in:
                own = slice(start, start + len(found))
                inputs[own], alone[own] = read_alone(inputs[own], found, windows[own], spec)
                start += len(found)
        points, scores = run_pose(inputs, windows)
        start = 0
        for image_id, image, found, found_scores in found_in:
            own = slice(start, start + len(found))
            answered, quarters = read_found(
                image, found, inputs[own], windows[own], alone[own], points[own], scores[own], found_scores, True
            )
            add(image_id, with_upright(image, answered, quarters) if quarters else answered)
            start += len(found)
        found_in.clear()
        crops.clear()
        windows.clear()

    for record in sorted(ds.images, key=lambda r: r.id):
        image = read_rgb(ds.image_path(record), (record.width, record.height))
        found, scores = detect(image)
        if not len(found):  # nobody, not even a weak box: as served, not looked at turned (`probed_turn`)
            continue
        found_in.append((record.id, image, found, scores))
        image_crops, image_windows = _served_crops(image, spec, [(x, y, w, h) for x, y, w, h in found.tolist()])
        crops += image_crops
        windows += image_windows
        if len(crops) >= batch_size:  # an image's crops all go in one batch: its persons are settled together
            flush()
    if crops:
        flush()
    k = len(KEYPOINT_NAMES)

    def joined(name: str, empty: tuple[int, ...], dtype: type = np.float64) -> np.ndarray:
        return np.concatenate(rows[name]).astype(dtype) if rows[name] else np.zeros(empty, dtype=dtype)

    return DetectedPersons(
        dataset=ds,
        image_ids=joined("image_ids", (0,), np.int64),
        boxes=joined("boxes", (0, 4)),
        box_scores=joined("box_scores", (0,)),
        keypoints=joined("keypoints", (0, k, 2)),
        joint_scores=joined("scores", (0, k)),
    )


def distinct_detections(
    pred: DetectedPersons,
    confident_joint: float = CONFIDENT_JOINT,
    duplicate_oks: float = DUPLICATE_OKS,
    same_face: bool = False,
) -> DetectedPersons:
    """Per image, a pose repeating a better one's (more than `duplicate_oks` alike) dropped (`distinct_persons`,
    comparing poses on the joints both score at least `confident_joint`; where `same_face`, a coinciding face too,
    as served since session 45) and its box not read again: what serving answered in session 31 and 32, a
    benchmark's baseline (`predict_without_boxes` re-reads it)."""
    keep = np.zeros(len(pred.image_ids), dtype=bool)
    for image_id in np.unique(pred.image_ids):
        rows = np.flatnonzero(pred.image_ids == image_id)
        kept = distinct_persons(pred.boxes[rows], pred.keypoints[rows], pred.joint_scores[rows],
                                pred.box_scores[rows], duplicate_oks, confident_joint, same_face)  # fmt: skip
        keep[rows[kept]] = True
    return replace(
        pred,
        image_ids=pred.image_ids[keep],
        boxes=pred.boxes[keep],
        box_scores=pred.box_scores[keep],
        keypoints=pred.keypoints[keep],
        joint_scores=pred.joint_scores[keep],
    )


def score_without_boxes(pred: DetectedPersons, person_score: PersonScore = PERSON_SCORE) -> dict[str, float]:
    """OKS AP/AP50/AP75 of the detections, box AP/AP50/AP75 of their boxes, and person counts.

    Every image of the dataset is scored, empty ones included, so a missed person lowers recall and
    a phantom (a detection matching nobody) is a false positive. Counts: images, empty_images,
    persons_true (labeled, not crowd), persons_found, persons_matched (box IoU >= MATCH_IOU with a
    true person), persons_missed, phantoms, empty_images_with_phantom. AP is NaN when the dataset
    has no labeled person.
    """
    ds = pred.dataset
    scores = pred.person_scores(person_score)
    truth = [a for a in ds.annotations if not a.iscrowd and a.num_keypoints > 0]
    image_ids = sorted(r.id for r in ds.images)
    keypoint_results = [
        {
            "image_id": int(pred.image_ids[i]),
            "category_id": PERSON_CATEGORY_ID,
            "score": float(scores[i]),
            "keypoints": [
                float(v) for v in np.concatenate([pred.keypoints[i], pred.joint_scores[i][:, None]], 1).ravel()
            ],
        }
        for i in range(len(pred.image_ids))
    ]
    box_results = [
        {
            "image_id": int(pred.image_ids[i]),
            "category_id": PERSON_CATEGORY_ID,
            "score": float(scores[i]),
            "bbox": [float(v) for v in pred.boxes[i]],
        }
        for i in range(len(pred.image_ids))
    ]
    (oks_ap, ap50, ap75), _ = _coco_ap(ds, image_ids, keypoint_results, "keypoints", bool(truth))
    (box_ap, box_ap50, box_ap75), box_eval = _coco_ap(ds, image_ids, box_results, "bbox", bool(truth))
    matched = _matched_detections(box_eval, pred, image_ids, {a.id for a in truth})
    empty = {r.id for r in ds.images} - {a.image_id for a in truth}
    phantom_images = {int(i) for i, m in zip(pred.image_ids, matched, strict=True) if not m and int(i) in empty}
    return {
        "oks_ap": oks_ap,
        "ap50": ap50,
        "ap75": ap75,
        "box_ap": box_ap,
        "box_ap50": box_ap50,
        "box_ap75": box_ap75,
        "images": float(len(ds.images)),
        "empty_images": float(len(empty)),
        "persons_true": float(len(truth)),
        "persons_found": float(len(pred.image_ids)),
        "persons_matched": float(matched.sum()),
        "persons_missed": float(len(truth) - matched.sum()),
        "phantoms": float(len(matched) - matched.sum()),
        "empty_images_with_phantom": float(len(phantom_images)),
    }


def evaluate_without_boxes(
    artifact: str | Path, dataset: str | Path, batch_size: int = 64, true_boxes: bool = True
) -> dict[str, float]:
    """The artifact on `dataset` as served without boxes (score_without_boxes' keys, PERSON_SCORE).

    With `true_boxes`, also `true_boxes_oks_ap` (training.evaluate.evaluate_artifact: the same
    network given the ground-truth boxes) and `oks_ap_ratio` = oks_ap / true_boxes_oks_ap.
    """
    values = score_without_boxes(predict_without_boxes(artifact, dataset, batch_size))
    if true_boxes:
        from training.evaluate import evaluate_artifact

        given = evaluate_artifact(Path(artifact), Path(dataset), batch_size)["oks_ap"]
        values["true_boxes_oks_ap"] = given
        values["oks_ap_ratio"] = values["oks_ap"] / given if given > 0 else float("nan")
    return values


def crops_of(image: Image.Image, spec: InputSpec, boxes: Sequence[Box]) -> tuple[np.ndarray, list[Box]]:
    """Person boxes (image pixels) cut out of `image` as the server cuts them (serving/engine.py `prepare`): network
    inputs (n, 3, H, W) float32 and crop windows."""
    crops, windows = _served_crops(image, spec, boxes)
    return normalize(np.stack(crops), spec), windows


def _served_crops(image: Image.Image, spec: InputSpec, boxes: Sequence[Box]) -> tuple[list[np.ndarray], list[Box]]:
    """Each person box's crop window (`_served_box`, `crop_box`) and its pixels (`crop_images`), not yet normalised."""
    windows = [crop_box(_served_box(box, image, spec), spec) for box in boxes]
    return list(crop_images(image, windows, spec)), windows


def _served_box(box: Box, image: Image.Image, spec: InputSpec) -> Box:
    """The box the pose network is given for a detection: serving.engine.prepare reads a box covering the
    whole image as "the whole image is the person" and crops it with the card's whole_image_padding."""
    if box == (0.0, 0.0, float(image.width), float(image.height)):
        return whole_image_box(image.width, image.height, spec)
    return box


def _coco_ap(
    ds: coco.Dataset, image_ids: Sequence[int], results: list[dict[str, Any]], iou_type: str, any_truth: bool
) -> tuple[tuple[float, float, float], Any]:
    """(AP, AP50, AP75) of `results` over all of `image_ids` with COCOeval (COCO OKS sigmas for keypoints),
    and the COCOeval (None when there was nothing to evaluate)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    if not any_truth:
        return (float("nan"),) * 3, None
    if not results:  # loadRes cannot take an empty list; nothing found means every person missed
        return (0.0, 0.0, 0.0), None
    gt = COCO()
    gt.dataset = ds.to_coco()
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        dt = gt.loadRes(results)
        ev = COCOeval(gt, dt, iouType=iou_type)
        ev.params.imgIds = list(image_ids)
        if iou_type == "keypoints":
            ev.params.kpt_oks_sigmas = np.asarray(OKS_SIGMAS, dtype=np.float64)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return (float(ev.stats[0]), float(ev.stats[1]), float(ev.stats[2])), ev


def _matched_detections(
    box_eval: Any, pred: DetectedPersons, image_ids: Sequence[int], truth_ids: set[int]
) -> np.ndarray:
    """(P,) bool: detection i matched a person of `truth_ids` at box IoU MATCH_IOU (pycocotools' greedy matching).

    A detection matched to an unscored annotation (crowd, no labeled joint) counts as unmatched."""
    matched = np.zeros(len(pred.image_ids), dtype=bool)
    if box_eval is None:
        return matched
    t = int(np.argmin(np.abs(box_eval.params.iouThrs - MATCH_IOU)))
    matched_ids: set[int] = set()
    # evalImgs is laid out [category][area range][image]; area range 0 is "all"
    for entry in box_eval.evalImgs[: len(image_ids)]:
        if entry is None:
            continue
        for dt_id, gt_id in zip(entry["dtIds"], entry["dtMatches"][t], strict=True):
            if int(gt_id) in truth_ids:
                matched_ids.add(int(dt_id))
    # loadRes numbers results 1.. in the order given, which is the order of pred's rows
    for i in range(len(matched)):
        matched[i] = (i + 1) in matched_ids
    return matched


def served_small_people_errors(artifact: Path, check_set: Path = CHECK_SET) -> dict[str, np.ndarray]:
    """Per small-people picture of the real-photo check set (`training.realphotos.small_people`, at 512 px as a user
    sends them), as served: the artifact's detector finds the people and the pose network reads each one's crop
    (`predict_without_boxes`, the server's reading); the distance of each of the original's confident keypoints from
    the found person who answers them best, as a fraction of the side. A picture where nobody is found counts each of
    its keypoints as missed (distance 1). Raises ValueError for an artifact without a person detector."""
    recorded = json.loads((check_set / SMALL_PEOPLE_REFERENCE).read_text(encoding="utf-8"))["keypoints"]
    pictures = small_people(check_set, side=SERVED_SIDE)
    names = list(pictures)
    with tempfile.TemporaryDirectory(prefix="posewheel-small-people-") as scratch:
        sources = {}
        for index, name in enumerate(names):
            sources[index + 1] = Path(scratch) / f"{index:02d}.png"
            pictures[name].save(sources[index + 1])
        images = [
            coco.ImageRecord(id=image_id, file_name=path.name, width=SERVED_SIDE, height=SERVED_SIDE)
            for image_id, path in sources.items()
        ]
        folder = Path(scratch) / "pictures"
        coco.save(coco.Dataset(images=images, annotations=[]), folder, image_sources=sources)
        found = predict_without_boxes(artifact, folder)
    errors = {}
    for index, name in enumerate(names):
        kps = np.asarray(recorded[name])
        sure = kps[:, 2] > CONFIDENT
        truth = kps[sure][:, [1, 0]] * SERVED_SIDE
        persons = found.keypoints[found.image_ids == index + 1][:, sure]  # (P, C, 2)
        if not len(persons):
            errors[name] = np.ones(int(sure.sum()))
            continue
        distances = np.linalg.norm(persons - truth, axis=2) / SERVED_SIDE
        errors[name] = distances[int(np.argmin(distances.mean(axis=1)))]
    return errors


def small_people_figures(artifact: Path) -> dict[str, float]:
    """The small-people figures of an artifact: read whole (`training.realphotos.small_people_agreement`) and, where
    it has a person detector, as served (`served_small_people_agreement`)."""
    figures = small_people_agreement(artifact)
    if load_card(artifact).detector is not None:
        figures |= served_small_people_agreement(artifact)
    return figures


def served_small_people_agreement(artifact: Path, check_set: Path = CHECK_SET) -> dict[str, float]:
    """`training.realphotos.agreement` on the small-people pictures as served (`served_small_people_errors`):
    {"small_people_served_agreement@0.05", ..._median_error, ..._keypoints}."""
    figures = summarize(np.concatenate(list(served_small_people_errors(artifact, check_set).values())))
    return {f"small_people_served_{k}": v for k, v in figures.items()}
