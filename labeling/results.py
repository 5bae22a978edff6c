"""Convert poses to Label Studio results and back: percent of the original image <-> pixels.

A person `k` becomes a rectangle region `p{k}-box` and one keypoint region `p{k}-{joint}` per
labeled joint, each keypoint with a per-region visibility choice under the same region id (how
Label Studio ties a `<Choices perRegion="true">` answer to its region). Regions an annotator adds
get random ids; they join the person whose box holds them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from labeling.project import BOX_LABEL, BOX_NAME, IMAGE_NAME, KEYPOINTS_NAME, OCCLUDED, VISIBILITY_NAME, VISIBLE
from posewheel.dataset import bbox_from_keypoints
from posewheel.schema import KEYPOINT_INDEX, KEYPOINT_NAMES, NUM_KEYPOINTS, V_OCCLUDED, V_VISIBLE

_REGION_RE = re.compile(r"^p(\d+)-(.+)$")
_POINT_WIDTH_PCT = 0.6  # display size of a keypoint in Label Studio, percent of the image width
_PCT_SLACK = 0.01  # Label Studio rounds; a point this far past an edge is on the edge


class LabelError(ValueError):
    """A Label Studio result we cannot use (not one of ours, a field missing or not a number, a duplicate joint)."""


@dataclass
class PersonLabel:
    """One person read from a result: keypoints (17, 3) float64 pixels, v in {0,1,2}; bbox [x,y,w,h] px or None."""

    keypoints: np.ndarray
    bbox: tuple[float, float, float, float] | None

    def box_or_from_points(self) -> tuple[float, float, float, float]:
        """The annotated box, else a box around the labeled keypoints (pixels)."""
        if self.bbox is not None:
            return self.bbox
        x, y, w, h = bbox_from_keypoints(self.keypoints)
        return (x, y, w, h)


def _pct(value: float, size: int) -> float:
    return float(value) / size * 100.0


def _px(value_pct: float, size: float) -> float:
    return float(value_pct) * float(size) / 100.0


def pose_to_results(
    keypoints: np.ndarray,
    width: int,
    height: int,
    person: int = 0,
    bbox: Sequence[float] | None = None,
    scores: Sequence[float] | None = None,
) -> list[dict[str, Any]]:
    """Label Studio results for one person.

    keypoints: (17, 3) pixels in the original image, v in {0,1,2} (v=0 joints are left out);
    bbox: [x, y, w, h] pixels or None; scores: (17,) per-joint confidence for predictions.
    """
    kps = np.asarray(keypoints, dtype=np.float64).reshape(NUM_KEYPOINTS, 3)
    common = {"to_name": IMAGE_NAME, "original_width": width, "original_height": height, "image_rotation": 0}
    results: list[dict[str, Any]] = []
    if bbox is not None:
        x, y, w, h = (float(v) for v in bbox)
        results.append(
            {
                "id": f"p{person}-box",
                "type": "rectanglelabels",
                "from_name": BOX_NAME,
                **common,
                "value": {
                    "x": _pct(x, width),
                    "y": _pct(y, height),
                    "width": _pct(w, width),
                    "height": _pct(h, height),
                    "rotation": 0,
                    "rectanglelabels": [BOX_LABEL],
                },
            }
        )
    for j, name in enumerate(KEYPOINT_NAMES):
        x, y, v = kps[j]
        if v <= 0:
            continue
        region = f"p{person}-{name}"
        point = {"x": _pct(x, width), "y": _pct(y, height), "width": _POINT_WIDTH_PCT}
        keypoint: dict[str, Any] = {
            "id": region,
            "type": "keypointlabels",
            "from_name": KEYPOINTS_NAME,
            **common,
            "value": {**point, "keypointlabels": [name]},
        }
        if scores is not None:
            keypoint["score"] = float(scores[j])
        results.append(keypoint)
        choice = OCCLUDED if int(v) == V_OCCLUDED else VISIBLE
        results.append(
            {
                "id": region,
                "type": "choices",
                "from_name": VISIBILITY_NAME,
                **common,
                "value": {**point, "choices": [choice]},
            }
        )
    return results


def _box_contains(box: tuple[float, float, float, float], x: float, y: float) -> bool:
    bx, by, bw, bh = box
    return bx <= x <= bx + bw and by <= y <= by + bh


def _number(container: dict[str, Any], key: str, rid: str) -> float:
    """`container[key]` as a finite float, else LabelError naming the region and field."""
    value = container.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise LabelError(f"region {rid}: field {key!r} is {value!r:.40}, not a number")
    number = float(value)
    if not math.isfinite(number):
        raise LabelError(f"region {rid}: field {key!r} is {number}, not a finite number")
    return number


def _frame(r: dict[str, Any], rid: str, size: tuple[int, int] | None) -> tuple[float, float]:
    """The pixel size that percentages refer to: the stored image's own size when known, else the region's."""
    if size is not None:
        return float(size[0]), float(size[1])
    w, h = _number(r, "original_width", rid), _number(r, "original_height", rid)
    if w <= 0 or h <= 0:
        raise LabelError(f"region {rid}: original size {w}x{h} is not positive")
    return w, h


def _percent(value: dict[str, Any], key: str, rid: str) -> float:
    """A coordinate in percent of the image, within [0, 100] (a hair outside is rounding: clamped)."""
    pct = _number(value, key, rid)
    if not -_PCT_SLACK <= pct <= 100.0 + _PCT_SLACK:
        raise LabelError(f"region {rid}: {key}={pct:.4g}% lies outside the image")
    return min(max(pct, 0.0), 100.0)


@dataclass
class _Region:
    """One usable result: a visibility `choice`, a person `box` (x, y, w, h px) or a joint `point` (name, x, y px)."""

    rid: str
    choice: str | None = None
    box: tuple[float, float, float, float] | None = None
    point: tuple[str, float, float] | None = None


def _read_region(r: object, size: tuple[int, int] | None) -> _Region:
    """One result read and checked; raises LabelError (without `where`) when it cannot be used."""
    if not isinstance(r, dict):
        raise LabelError(f"result {r!r:.60} is not an object")
    rid, from_name, kind, value = str(r.get("id", "")), r.get("from_name"), r.get("type"), r.get("value")
    if not isinstance(value, dict):
        raise LabelError(f"region {rid}: field 'value' is missing or not an object")
    if from_name == VISIBILITY_NAME and kind == "choices":
        picked = value.get("choices")
        if not isinstance(picked, list) or len(picked) != 1 or picked[0] not in (VISIBLE, OCCLUDED):
            raise LabelError(f"region {rid}: visibility choice {picked!r:.60} is not one of {[VISIBLE, OCCLUDED]}")
        return _Region(rid, choice=str(picked[0]))
    if from_name == BOX_NAME and kind == "rectanglelabels":
        if value.get("rectanglelabels") != [BOX_LABEL]:
            raise LabelError(f"region {rid}: box label {value.get('rectanglelabels')!r:.60} is not [{BOX_LABEL!r}]")
        rotation = value.get("rotation", 0) or 0
        if not isinstance(rotation, int | float) or float(rotation) != 0:
            raise LabelError(f"region {rid}: rotated person boxes are not supported")
        w, h = _frame(r, rid, size)
        x0, y0 = _number(value, "x", rid), _number(value, "y", rid)
        bw, bh = _number(value, "width", rid), _number(value, "height", rid)
        if bw <= 0 or bh <= 0:
            raise LabelError(f"region {rid}: person box of {bw}% x {bh}% has no area")
        return _Region(rid, box=(_px(x0, w), _px(y0, h), _px(bw, w), _px(bh, h)))
    if from_name == KEYPOINTS_NAME and kind == "keypointlabels":
        names = value.get("keypointlabels")
        if not isinstance(names, list) or len(names) != 1 or names[0] not in KEYPOINT_INDEX:
            raise LabelError(f"region {rid}: keypoint label {names!r:.60} is not one COCO-17 joint name")
        w, h = _frame(r, rid, size)
        return _Region(rid, point=(str(names[0]), _px(_percent(value, "x", rid), w), _px(_percent(value, "y", rid), h)))
    raise LabelError(
        f"region {rid}: result from_name={from_name!r:.40} type={kind!r:.40} "
        f"is not part of the posewheel labeling config"
    )


def results_to_persons(
    results: object, where: str, bad: list[str] | None = None, size: tuple[int, int] | None = None
) -> list[PersonLabel]:
    """The persons in an annotation's `result` list, in region order (see `person_groups`)."""
    return list(person_groups(results, where, bad, size).values())


def person_groups(
    results: object, where: str, bad: list[str] | None = None, size: tuple[int, int] | None = None
) -> dict[str, PersonLabel]:
    """The persons in an annotation's `result` list by key, in region order: `p{k}` for a person of
    ours (a prediction's, kept by the annotator), the box's region id for a person the annotator added.

    Keypoints come back in pixels: percent of `size` (the stored image's width, height) when given,
    else of each region's `original_width`/`original_height`; visibility from the region's choice
    (occluded -> 1, visible or no choice -> 2); joints without a region -> v=0.

    A joint the annotator placed (a region id not of ours) joins, in this order: the box its
    `parentID` names (a region nested under a box in Label Studio's outliner); the latest box before
    it in the result that the annotator drew and that holds it (Label Studio keeps regions in the
    order they were drawn, and the instructions add a missed person as a box, then its joints); the
    smallest box that holds it; the only person there is.

    A region that cannot be used (a field missing or not a number, outside the image, a label or
    from_name not in our config, a joint placed twice, a joint in no person's box) is left out and
    described in `bad` ("<where>: region <id>: <why>"); without `bad` the first one raises LabelError.
    """

    def reject(message: str) -> None:
        if bad is None:
            raise LabelError(f"{where}: {message}")
        bad.append(f"{where}: {message}")

    if not isinstance(results, list):
        reject(f"field 'result' is a {type(results).__name__}, not a list")
        return {}
    choices: dict[str, str] = {}
    boxes: dict[str, tuple[float, float, float, float]] = {}  # region id -> box, in result order
    points: list[tuple[str, str, float, float, str | None, list[str]]] = []  # id, joint, x, y px, parent, boxes before
    for r in results:
        try:
            region = _read_region(r, size)
        except LabelError as exc:
            reject(str(exc))
            continue
        if region.choice is not None:
            choices[region.rid] = region.choice
        elif region.box is not None:
            boxes[region.rid] = region.box
        elif region.point is not None:
            parent = r.get("parentID") if isinstance(r, dict) else None
            points.append((region.rid, *region.point, parent if isinstance(parent, str) else None, list(boxes)))
    groups: dict[str, PersonLabel] = {}

    def key_of(rid: str) -> str:
        match = _REGION_RE.match(rid)
        return f"p{match.group(1)}" if match else rid

    def group(key: str) -> PersonLabel:
        if key not in groups:
            groups[key] = PersonLabel(np.zeros((NUM_KEYPOINTS, 3), dtype=np.float64), None)
        return groups[key]

    for rid, box in boxes.items():
        group(key_of(rid)).bbox = box
    for rid, name, x, y, parent, boxes_before in points:
        key = _owner(rid, x, y, parent, boxes_before, boxes, groups, key_of)
        if key is None:
            reject(
                f"region {rid}: keypoint {name!r} lies in no person box; "
                f"cannot tell which of {len(groups)} persons it belongs to"
            )
            continue
        person = group(key)
        j = KEYPOINT_INDEX[name]
        if person.keypoints[j, 2] > 0:
            reject(f"region {rid}: joint {name!r} placed twice for the same person")
            continue
        v = V_OCCLUDED if choices.get(rid) == OCCLUDED else V_VISIBLE
        person.keypoints[j] = (x, y, v)
    return groups


def _owner(
    rid: str,
    x: float,
    y: float,
    parent: str | None,
    boxes_before: list[str],
    boxes: dict[str, tuple[float, float, float, float]],
    groups: dict[str, PersonLabel],
    key_of: Callable[[str], str],
) -> str | None:
    """The key of the person a joint belongs to (see `person_groups`), or None when no rule tells."""
    if _REGION_RE.match(rid):
        return key_of(rid)
    if parent is not None and parent in boxes:
        return key_of(parent)
    for box_id in reversed(boxes_before):
        if not _REGION_RE.match(box_id) and _box_contains(boxes[box_id], x, y):  # a box the annotator drew
            return key_of(box_id)
    holders = [k for k, g in groups.items() if g.bbox is not None and _box_contains(g.bbox, x, y)]
    if holders:
        return min(holders, key=lambda k: groups[k].box_or_from_points()[2] * groups[k].box_or_from_points()[3])
    if len(groups) <= 1:
        return next(iter(groups), "p0")
    return None
