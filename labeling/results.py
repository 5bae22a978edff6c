"""Convert poses to Label Studio results and back: percent of the original image <-> pixels.

A person `k` becomes a rectangle region `p{k}-box` and one keypoint region `p{k}-{joint}` per
labeled joint, each keypoint with a per-region visibility choice under the same region id (how
Label Studio ties a `<Choices perRegion="true">` answer to its region). Regions an annotator adds
get random ids; they join the person whose box holds them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from labeling.project import BOX_LABEL, BOX_NAME, IMAGE_NAME, KEYPOINTS_NAME, OCCLUDED, VISIBILITY_NAME, VISIBLE
from posewheel.dataset import bbox_from_keypoints
from posewheel.schema import KEYPOINT_INDEX, KEYPOINT_NAMES, NUM_KEYPOINTS, V_OCCLUDED, V_VISIBLE

_REGION_RE = re.compile(r"^p(\d+)-(.+)$")
_POINT_WIDTH_PCT = 0.6  # display size of a keypoint in Label Studio, percent of the image width


class LabelError(ValueError):
    """A Label Studio result that is not one of ours (unknown label, from_name, duplicate joint)."""


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
        results.append({
            "id": f"p{person}-box", "type": "rectanglelabels", "from_name": BOX_NAME, **common,
            "value": {"x": _pct(x, width), "y": _pct(y, height), "width": _pct(w, width),
                      "height": _pct(h, height), "rotation": 0, "rectanglelabels": [BOX_LABEL]},
        })  # fmt: skip
    for j, name in enumerate(KEYPOINT_NAMES):
        x, y, v = kps[j]
        if v <= 0:
            continue
        region = f"p{person}-{name}"
        point = {"x": _pct(x, width), "y": _pct(y, height), "width": _POINT_WIDTH_PCT}
        keypoint: dict[str, Any] = {"id": region, "type": "keypointlabels", "from_name": KEYPOINTS_NAME, **common,
                                    "value": {**point, "keypointlabels": [name]}}  # fmt: skip
        if scores is not None:
            keypoint["score"] = float(scores[j])
        results.append(keypoint)
        choice = OCCLUDED if int(v) == V_OCCLUDED else VISIBLE
        results.append({"id": region, "type": "choices", "from_name": VISIBILITY_NAME, **common,
                        "value": {**point, "choices": [choice]}})  # fmt: skip
    return results


def _box_contains(box: tuple[float, float, float, float], x: float, y: float) -> bool:
    bx, by, bw, bh = box
    return bx <= x <= bx + bw and by <= y <= by + bh


def results_to_persons(results: Sequence[dict[str, Any]], where: str) -> list[PersonLabel]:
    """The persons in an annotation's `result` list, in region order; raise LabelError naming `where`.

    Keypoints come back in pixels of `original_width`/`original_height`; visibility from the
    region's choice (occluded -> 1, visible or no choice -> 2); joints without a region -> v=0.
    """
    choices: dict[str, str] = {}
    boxes: dict[str, tuple[float, float, float, float]] = {}
    points: list[tuple[str, str, float, float]] = []  # (region id, joint name, x px, y px)
    for r in results:
        rid, from_name, kind, value = str(r.get("id", "")), r.get("from_name"), r.get("type"), r.get("value", {})
        if from_name == VISIBILITY_NAME and kind == "choices":
            picked = value.get("choices", [])
            if len(picked) != 1 or picked[0] not in (VISIBLE, OCCLUDED):
                raise LabelError(f"{where}: region {rid}: visibility choice {picked!r} is not one of "
                                 f"{[VISIBLE, OCCLUDED]}")  # fmt: skip
            choices[rid] = picked[0]
        elif from_name == BOX_NAME and kind == "rectanglelabels":
            if value.get("rectanglelabels") != [BOX_LABEL]:
                raise LabelError(f"{where}: region {rid}: box label {value.get('rectanglelabels')!r} is not "
                                 f"[{BOX_LABEL!r}]")  # fmt: skip
            if float(value.get("rotation", 0) or 0) != 0:
                raise LabelError(f"{where}: region {rid}: rotated person boxes are not supported")
            w, h = float(r["original_width"]), float(r["original_height"])
            boxes[rid] = (_px(value["x"], w), _px(value["y"], h), _px(value["width"], w), _px(value["height"], h))
        elif from_name == KEYPOINTS_NAME and kind == "keypointlabels":
            names = value.get("keypointlabels", [])
            if len(names) != 1 or names[0] not in KEYPOINT_INDEX:
                raise LabelError(f"{where}: region {rid}: keypoint label {names!r} is not one COCO-17 joint name")
            w, h = float(r["original_width"]), float(r["original_height"])
            points.append((rid, names[0], _px(value["x"], w), _px(value["y"], h)))
        else:
            raise LabelError(f"{where}: region {rid}: result from_name={from_name!r} type={kind!r} "
                             f"is not part of the posewheel labeling config")  # fmt: skip
    # Group regions into persons: our own ids carry the person, an annotator's new regions join by box.
    groups: dict[str, PersonLabel] = {}

    def group(key: str) -> PersonLabel:
        if key not in groups:
            groups[key] = PersonLabel(np.zeros((NUM_KEYPOINTS, 3), dtype=np.float64), None)
        return groups[key]

    for rid, box in boxes.items():
        match = _REGION_RE.match(rid)
        group(f"p{match.group(1)}" if match else rid).bbox = box
    for rid, name, x, y in points:
        match = _REGION_RE.match(rid)
        if match:
            key = f"p{match.group(1)}"
        else:
            holders = [k for k, g in groups.items() if g.bbox is not None and _box_contains(g.bbox, x, y)]
            if holders:
                key = min(holders, key=lambda k: groups[k].box_or_from_points()[2] * groups[k].box_or_from_points()[3])
            elif len(groups) <= 1:
                key = next(iter(groups), "p0")
            else:
                raise LabelError(f"{where}: region {rid}: keypoint {name!r} lies in no person box; "
                                 f"cannot tell which of {len(groups)} persons it belongs to")  # fmt: skip
        person = group(key)
        j = KEYPOINT_INDEX[name]
        if person.keypoints[j, 2] > 0:
            raise LabelError(f"{where}: region {rid}: joint {name!r} placed twice for the same person")
        v = V_OCCLUDED if choices.get(rid) == OCCLUDED else V_VISIBLE
        person.keypoints[j] = (x, y, v)
    return list(groups.values())
