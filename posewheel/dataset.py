"""COCO keypoint datasets: load, validate, merge and save (atomically).

A dataset is a folder holding `annotations.json` (COCO keypoint format, one `person` category with
the COCO-17 keypoints) and `images/`. Keypoints are (17, 3) float arrays in pixels, v in {0,1,2}.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from posewheel import atomic
from posewheel.imagestore import frame_problem
from posewheel.schema import NUM_KEYPOINTS, PERSON_CATEGORY, PERSON_CATEGORY_ID

ANNOTATIONS_FILE = "annotations.json"
IMAGES_DIR = "images"


class DatasetError(ValueError):
    """A dataset failed to load or validate; `problems` lists every problem found."""

    def __init__(self, problems: Sequence[str]):
        self.problems = list(problems)
        shown = "\n".join(f"  - {p}" for p in self.problems[:50])
        more = f"\n  ... and {len(self.problems) - 50} more" if len(self.problems) > 50 else ""
        super().__init__(f"{len(self.problems)} problem(s) in dataset:\n{shown}{more}")


@dataclass
class ImageRecord:
    """One COCO image entry; `file_name` is relative to the dataset's `images/` folder."""

    id: int
    file_name: str
    width: int
    height: int
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class PersonAnnotation:
    """One person: keypoints (17, 3) float64 pixels with v in {0,1,2}; bbox [x, y, w, h] pixels."""

    id: int
    image_id: int
    keypoints: np.ndarray
    bbox: tuple[float, float, float, float]
    area: float | None = None
    iscrowd: int = 0
    category_id: int = PERSON_CATEGORY_ID
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def num_keypoints(self) -> int:
        return int((self.keypoints[:, 2] > 0).sum())


@dataclass
class Dataset:
    """A COCO keypoint dataset in memory; `root` is its folder when it came from disk."""

    images: list[ImageRecord]
    annotations: list[PersonAnnotation]
    root: Path | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def image_path(self, image: ImageRecord) -> Path:
        if self.root is None:
            raise ValueError("dataset has no folder; save it first")
        return self.root / IMAGES_DIR / image.file_name

    def annotations_by_image(self) -> dict[int, list[PersonAnnotation]]:
        by_image: dict[int, list[PersonAnnotation]] = {img.id: [] for img in self.images}
        for ann in self.annotations:
            by_image.setdefault(ann.image_id, []).append(ann)
        return by_image

    def to_coco(self) -> dict[str, Any]:
        """The COCO dict, deterministic (sorted by id) so identical data gives identical bytes."""
        return {
            "info": self.info,
            "images": [
                {"id": i.id, "file_name": i.file_name, "width": i.width, "height": i.height} | i.extra
                for i in sorted(self.images, key=lambda r: r.id)
            ],
            "annotations": [_annotation_to_coco(a) for a in sorted(self.annotations, key=lambda r: r.id)],
            "categories": [PERSON_CATEGORY],
        }


def _round(value: float) -> float | int:
    rounded = round(float(value), 2)
    return int(rounded) if rounded.is_integer() else rounded


def _annotation_to_coco(ann: PersonAnnotation) -> dict[str, Any]:
    kps = ann.keypoints
    flat: list[float | int] = []
    for x, y, v in kps:
        flat += [_round(x), _round(y), int(v)] if v > 0 else [0, 0, 0]
    area = ann.area if ann.area is not None else ann.bbox[2] * ann.bbox[3]
    return {
        "id": ann.id,
        "image_id": ann.image_id,
        "category_id": ann.category_id,
        "keypoints": flat,
        "num_keypoints": ann.num_keypoints,
        "bbox": [_round(v) for v in ann.bbox],
        "area": _round(area),
        "iscrowd": ann.iscrowd,
    } | ann.extra


_IMAGE_KEYS = {"id", "file_name", "width", "height"}
_ANN_KEYS = {"id", "image_id", "category_id", "keypoints", "num_keypoints", "bbox", "area", "iscrowd"}


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_int(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and float(value).is_integer()


def parse_coco(coco: dict[str, Any], source: str = ANNOTATIONS_FILE) -> tuple[Dataset, list[str]]:
    """Build a Dataset from a COCO dict; returns it with the structural problems found."""
    problems: list[str] = []
    for key in ("images", "annotations", "categories"):
        if not isinstance(coco.get(key, []), list) or not all(isinstance(r, dict) for r in coco.get(key, [])):
            problems.append(f"{source}: field '{key}' must be a list of objects")
            coco = {**coco, key: []}
    person_ids = _person_category_ids(coco.get("categories", []), source, problems)
    images = [
        image
        for n, record in enumerate(coco.get("images", []))
        if (image := _parse_image(record, f"{source}: image id={record.get('id', f'#{n}')}", problems)) is not None
    ]
    annotations = [
        annotation
        for n, record in enumerate(coco.get("annotations", []))
        if (
            annotation := _parse_annotation(
                record, f"{source}: annotation id={record.get('id', f'#{n}')}", person_ids, problems
            )
        )
        is not None
    ]
    info = coco.get("info", {}) if isinstance(coco.get("info"), dict) else {}
    return Dataset(images=images, annotations=annotations, info=info), problems


def _person_category_ids(categories: list[dict[str, Any]], source: str, problems: list[str]) -> set[Any]:
    """Ids of the `person` categories; a person category with a wrong keypoint list is a problem."""
    for c in categories:
        if c.get("name") == "person" and len(c.get("keypoints", [])) not in (0, NUM_KEYPOINTS):
            problems.append(
                f"{source}: category id={c.get('id')}: field 'keypoints' lists "
                f"{len(c['keypoints'])} names, expected {NUM_KEYPOINTS}"
            )
    return {c.get("id") for c in categories if c.get("name") == "person"}


def _parse_image(img: dict[str, Any], where: str, problems: list[str]) -> ImageRecord | None:
    """One `images` record, or None with the problem appended."""
    missing = [k for k in ("id", "file_name", "width", "height") if k not in img]
    if missing:
        problems.append(f"{where}: missing field(s) {', '.join(missing)}")
        return None
    bad = [k for k in ("id", "width", "height") if not _is_int(img[k])]
    if bad:
        problems.append(
            f"{where}: field(s) {', '.join(repr(k) for k in bad)} must be integers, got {[img[k] for k in bad]}"
        )
        return None
    extra = {k: v for k, v in img.items() if k not in _IMAGE_KEYS}
    return ImageRecord(int(img["id"]), str(img["file_name"]), int(img["width"]), int(img["height"]), extra)


def _annotation_problem(ann: dict[str, Any], person_ids: set[Any]) -> str | None:
    """What makes an `annotations` record unusable (the field and what it held), or None."""
    missing = [k for k in ("id", "image_id", "keypoints") if k not in ann]
    if missing:
        return f"missing field(s) {', '.join(missing)}"
    if ann.get("category_id", PERSON_CATEGORY_ID) not in person_ids:
        return f"field 'category_id' is {ann.get('category_id')!r}, not a person category {sorted(person_ids)}"
    raw = ann["keypoints"]
    if not isinstance(raw, list) or len(raw) != NUM_KEYPOINTS * 3:
        count = len(raw) if isinstance(raw, list) else type(raw).__name__
        return f"field 'keypoints' has {count} values, expected {NUM_KEYPOINTS * 3} (17 x [x, y, v])"
    if not all(_is_number(v) for v in raw):
        return f"field 'keypoints' holds non-numbers {[v for v in raw if not _is_number(v)][:5]!r}"
    if not _is_int(ann["id"]) or not _is_int(ann["image_id"]):
        return f"fields 'id'/'image_id' must be integers, got {ann['id']!r}/{ann['image_id']!r}"
    bbox = ann.get("bbox")
    if bbox is not None and (
        not isinstance(bbox, list | tuple) or len(bbox) != 4 or not all(_is_number(v) for v in bbox)
    ):
        return f"field 'bbox' must be [x, y, w, h] numbers, got {bbox!r}"
    if "area" in ann and not _is_number(ann["area"]):
        return f"field 'area' must be a number, got {ann['area']!r}"
    return None


def _parse_annotation(
    ann: dict[str, Any], where: str, person_ids: set[Any], problems: list[str]
) -> PersonAnnotation | None:
    """One `annotations` record, or None with the problem appended (the bbox defaults to the keypoints' box)."""
    problem = _annotation_problem(ann, person_ids)
    if problem is not None:
        problems.append(f"{where}: {problem}")
        return None
    kps = np.asarray(ann["keypoints"], dtype=np.float64).reshape(NUM_KEYPOINTS, 3)
    bbox = ann.get("bbox")
    if bbox is None:
        bbox = bbox_from_keypoints(kps)
    return PersonAnnotation(
        id=int(ann["id"]),
        image_id=int(ann["image_id"]),
        keypoints=kps,
        bbox=(float(bbox[0]), float(bbox[1]), float(bbox[2]), float(bbox[3])),
        area=float(ann["area"]) if "area" in ann else None,
        iscrowd=int(ann.get("iscrowd", 0)),
        category_id=PERSON_CATEGORY_ID,
        extra={k: v for k, v in ann.items() if k not in _ANN_KEYS},
    )


def validate(dataset: Dataset, source: str = ANNOTATIONS_FILE, check_files: bool = True) -> list[str]:
    """Every problem in `dataset`, each naming the file, the image/annotation id and the field."""
    problems: list[str] = []
    images: dict[int, ImageRecord] = {}
    for img in dataset.images:
        where = f"{source}: image id={img.id}"
        if img.id in images:
            problems.append(f"{where}: field 'id' is a duplicate image id")
        images[img.id] = img
        if img.width <= 0 or img.height <= 0:
            problems.append(f"{where}: fields 'width'/'height' must be positive, got {img.width}x{img.height}")
        if check_files and dataset.root is not None:
            path = dataset.image_path(img)
            if not path.is_file():
                problems.append(f"{where}: field 'file_name' {img.file_name!r}: file not found at {path}")
            elif (problem := frame_problem(path, img.width, img.height)) is not None:
                problems.append(f"{where}: field 'file_name' {img.file_name!r}: {problem}")
    seen: set[int] = set()
    for ann in dataset.annotations:
        where = f"{source}: annotation id={ann.id}"
        if ann.id in seen:
            problems.append(f"{where}: field 'id' is a duplicate annotation id")
        seen.add(ann.id)
        owner = images.get(ann.image_id)
        if owner is None:
            problems.append(f"{where}: field 'image_id' {ann.image_id} names no image")
            continue
        img = owner
        kps = ann.keypoints
        if not np.all(np.isfinite(kps)):
            problems.append(f"{where}: field 'keypoints' holds NaN or infinite values")
            continue
        bad_v = [i for i, v in enumerate(kps[:, 2]) if v not in (0, 1, 2)]
        if bad_v:
            problems.append(
                f"{where}: field 'keypoints' visibility at joint(s) {bad_v} "
                f"is {[float(kps[i, 2]) for i in bad_v]}, must be 0, 1 or 2"
            )
        for j, (x, y, v) in enumerate(kps):
            if v > 0 and not (0 <= x <= img.width and 0 <= y <= img.height):
                problems.append(
                    f"{where}: field 'keypoints' joint {j} at ({x:g}, {y:g}) lies "
                    f"outside image {img.id} ({img.width}x{img.height})"
                )
        x, y, w, h = ann.bbox
        if not all(math.isfinite(v) for v in ann.bbox) or w <= 0 or h <= 0:
            problems.append(f"{where}: field 'bbox' {list(ann.bbox)} must have positive size")
        elif x < -0.5 or y < -0.5 or x + w > img.width + 0.5 or y + h > img.height + 0.5:
            problems.append(
                f"{where}: field 'bbox' {list(ann.bbox)} lies outside image {img.id} ({img.width}x{img.height})"
            )
    return problems


def load(root: str | os.PathLike[str], check_files: bool = True) -> Dataset:
    """Load and validate the dataset in folder `root` (or a COCO json file); raise DatasetError."""
    path = Path(root)
    ann_file = path if path.is_file() else path / ANNOTATIONS_FILE
    folder = ann_file.parent if path.is_file() else path
    if not ann_file.is_file():
        raise DatasetError([f"{ann_file}: file not found (a dataset folder holds {ANNOTATIONS_FILE})"])
    try:
        coco = json.loads(ann_file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DatasetError([f"{ann_file}: not valid JSON: {exc}"]) from exc
    if not isinstance(coco, dict):
        raise DatasetError([f"{ann_file}: top level must be a JSON object"])
    dataset, problems = parse_coco(coco, source=str(ann_file))
    # COCO's own files keep images beside the json, not in images/: accept both layouts.
    dataset.root = folder if (folder / IMAGES_DIR).is_dir() or not path.is_file() else None
    problems += validate(dataset, source=str(ann_file), check_files=check_files)
    if problems:
        raise DatasetError(problems)
    return dataset


def save(dataset: Dataset, root: str | os.PathLike[str], image_sources: dict[int, Path] | None = None) -> Dataset:
    """Write `dataset` as folder `root` atomically: the old folder or the new one, never a mix.

    Images are hard-linked (or copied) from `image_sources[image_id]`, else from the dataset's own
    folder. Returns the dataset rooted at `root`.
    """
    problems = validate(dataset, check_files=False)
    if problems:
        raise DatasetError(problems)
    target = Path(root)
    with atomic.staged_dir(target) as stage:
        (stage / IMAGES_DIR).mkdir()
        for img in dataset.images:
            src = image_sources[img.id] if image_sources and img.id in image_sources else dataset.image_path(img)
            dst = stage / IMAGES_DIR / img.file_name
            dst.parent.mkdir(parents=True, exist_ok=True)
            _link_or_copy(Path(src), dst)
        text = json.dumps(dataset.to_coco(), separators=(",", ":"), ensure_ascii=False) + "\n"
        (stage / ANNOTATIONS_FILE).write_text(text, encoding="utf-8")
    return Dataset(images=dataset.images, annotations=dataset.annotations, root=target, info=dataset.info)


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def merge(datasets: Iterable[Dataset], info: dict[str, Any] | None = None) -> tuple[Dataset, dict[int, Path]]:
    """Concatenate datasets with fresh ids; file names are prefixed by source index.

    Returns the merged dataset and the image sources to pass to `save`.
    """
    images: list[ImageRecord] = []
    annotations: list[PersonAnnotation] = []
    sources: dict[int, Path] = {}
    for n, ds in enumerate(datasets):
        image_map: dict[int, int] = {}
        for img in ds.images:
            new_id = len(images) + 1
            image_map[img.id] = new_id
            images.append(ImageRecord(new_id, f"{n:02d}/{img.file_name}", img.width, img.height, dict(img.extra)))
            sources[new_id] = ds.image_path(img)
        for ann in ds.annotations:
            annotations.append(
                PersonAnnotation(
                    id=len(annotations) + 1,
                    image_id=image_map[ann.image_id],
                    keypoints=ann.keypoints.copy(),
                    bbox=ann.bbox,
                    area=ann.area,
                    iscrowd=ann.iscrowd,
                    extra=dict(ann.extra),
                )
            )
    return Dataset(images=images, annotations=annotations, info=info or {}), sources


def bbox_from_keypoints(keypoints: np.ndarray, margin: float = 0.1) -> list[float]:
    """A box around the labeled keypoints, grown by `margin` of its size on each side; [x, y, w, h]."""
    labeled = keypoints[keypoints[:, 2] > 0, :2]
    if len(labeled) == 0:
        return [0.0, 0.0, 1.0, 1.0]
    x0, y0 = labeled.min(axis=0)
    x1, y1 = labeled.max(axis=0)
    w, h = max(x1 - x0, 1.0), max(y1 - y0, 1.0)
    return [float(x0 - margin * w), float(y0 - margin * h), float(w * (1 + 2 * margin)), float(h * (1 + 2 * margin))]
