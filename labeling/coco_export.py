"""Export the corrected labels from Label Studio into a COCO keypoint dataset (atomic, deterministic).

    posewheel labels export --out data/feedback

Reads Label Studio's JSON export (it keeps region ids, which tie each visibility choice to its
keypoint; JSON_MIN and Label Studio's own COCO export lose that). Skipped annotations
(`was_cancelled`) are dropped; a task's newest completed annotation wins. An image the annotator
submitted with no person in it (every pre-annotated person deleted) is exported as an image with
zero annotations: a confirmed negative, which teaches the person detector. A region that cannot be
used (a field missing, not a number, outside the image, not in our config) is left out and counted;
only a task with no usable region stops the export, named. Several tasks of one image (a client
retry) become one image record (see `tasks_to_dataset` for which persons are kept). The same Label Studio
state always gives byte-identical output, so DVC sees no change when nothing new was labeled.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image

from labeling.results import PersonLabel, results_to_persons
from posewheel.boxes import iou
from posewheel.dataset import Dataset, ImageRecord, PersonAnnotation, save
from posewheel.imagestore import ImageStore, exif_orientation, upright_bytes, upright_size

if TYPE_CHECKING:
    from label_studio_sdk import LabelStudio

log = logging.getLogger(__name__)
_SAME_PERSON_IOU = 0.5  # two tasks of one image label the same person when their boxes overlap this much
_LOGGED_REGIONS = 50
_EXTENSIONS = {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp", "BMP": ".bmp", "GIF": ".gif", "TIFF": ".tif"}


class ExportError(ValueError):
    """Label Studio holds labels we cannot turn into COCO; `problems` names each task id."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        shown = "\n".join(f"  - {p}" for p in problems[:50])
        super().__init__(f"{len(problems)} problem(s) in the Label Studio export:\n{shown}")


@dataclass(frozen=True)
class ExportSummary:
    """What an export wrote: labeled images (`empty` of them with nobody in them), persons, skipped
    tasks, the folder, regions left out."""

    tasks: int
    persons: int
    skipped: int
    out_dir: Path
    bad_regions: int = 0
    empty: int = 0


def fetch_tasks(client: LabelStudio, project_id: int) -> list[dict[str, Any]]:
    """The project's annotated tasks from Label Studio's JSON export, sorted by task id."""
    raw = b"".join(client.projects.exports.download_sync(project_id, export_type="JSON", download_all_tasks=False))
    tasks = json.loads(raw)
    if not isinstance(tasks, list):
        raise ExportError([f"project {project_id}: JSON export is a {type(tasks).__name__}, expected a list"])
    return sorted(tasks, key=lambda t: int(t["id"]))


def _recency(annotation: dict[str, Any]) -> tuple[str, int]:
    """Sort key: last change time (ISO text), then annotation id."""
    ann_id = annotation.get("id")
    return (
        str(annotation.get("updated_at") or annotation.get("created_at") or ""),
        ann_id if isinstance(ann_id, int) else 0,
    )


def _chosen_annotation(task: dict[str, Any]) -> dict[str, Any] | None:
    """The task's newest completed (not skipped) annotation, or None."""
    annotations = task.get("annotations")
    done = (
        [a for a in annotations if isinstance(a, dict) and not a.get("was_cancelled")]
        if isinstance(annotations, list)
        else []
    )
    if not done:
        return None
    return max(done, key=_recency)


def _annotator(annotation: dict[str, Any], emails: dict[int, str]) -> str | int | None:
    """Who completed it: the user's email when known, else Label Studio's user id."""
    who = annotation.get("completed_by")
    if isinstance(who, dict):
        who = who.get("email") or who.get("id")
    if isinstance(who, int):
        return emails.get(who, who)
    return who if isinstance(who, str) else None


def user_emails(client: LabelStudio) -> dict[int, str]:
    """Label Studio user id -> email, to name annotators in the provenance."""
    return {int(u.id): str(u.email) for u in client.users.list() if u.id is not None and u.email}


@dataclass
class _Labeled:
    """One usable task: its annotation's persons and where they came from."""

    task_id: int
    sha: str
    annotation: dict[str, Any]
    persons: list[PersonLabel]
    provenance: dict[str, Any]


def _stored_image(image_store: ImageStore, sha: str) -> tuple[Path, str, int, int, str]:
    """(path, file sha, upright width, height, format) of a stored image, turned upright if it is not.

    The server stores images upright; an older store may hold a photo whose EXIF turns it. Its
    upright copy is put into the store (content-addressed) and exported instead, so the dataset's
    pixels are the frame annotators saw (browsers apply EXIF) and the one percentages refer to.
    """
    path = image_store.path_for(sha)
    with Image.open(path) as img:
        fmt, turned = img.format or "", exif_orientation(img) != 1
        width, height = upright_size(img)
    if turned:
        sha = image_store.put(upright_bytes(path.read_bytes()))
        path = image_store.path_for(sha)
        with Image.open(path) as img:
            fmt, (width, height) = img.format or "", img.size
    return path, sha, width, height, fmt


def tasks_to_dataset(
    tasks: list[dict[str, Any]],
    image_store: ImageStore,
    emails: dict[int, str] | None = None,
    bad_regions: list[str] | None = None,
) -> tuple[Dataset, dict[int, Path], int, list[str]]:
    """COCO dataset from exported tasks: (dataset, image sources, skipped tasks, problems by task id).

    Regions that cannot be used are left out and described in `bad_regions` (when given); a task
    whose every region is unusable, or whose image is missing, is a problem naming the task.
    One image, several tasks (the same picture posted twice): one image record (id: the lowest
    task id) holding every task's persons, except that a person whose box overlaps (IoU >= 0.5)
    a person of a more recently annotated task of that image is the same person labeled twice:
    the newer annotation wins.
    """
    sources: dict[int, Path] = {}
    problems: list[str] = []
    bad = bad_regions if bad_regions is not None else []
    skipped = 0
    by_image: dict[str, list[_Labeled]] = {}
    records: dict[str, ImageRecord] = {}
    for task in sorted(tasks, key=lambda t: int(t["id"])):
        task_id = int(task["id"])
        where = f"task {task_id}"
        annotation = _chosen_annotation(task)
        if annotation is None:
            skipped += 1
            continue
        data: dict[str, Any] = task["data"] if isinstance(task.get("data"), dict) else {}
        sha = data.get("image_sha256")
        if not isinstance(sha, str):
            problems.append(f"{where}: data has no image_sha256; not a posewheel review task")
            continue
        try:
            path, file_sha, width, height, fmt = _stored_image(image_store, sha)
        except (ValueError, OSError) as exc:  # image missing from the store or unreadable
            problems.append(f"{where}: image {sha[:12]}: {exc}")
            continue
        label_where = f"{where} annotation {annotation.get('id')}"
        task_bad: list[str] = []
        persons = results_to_persons(
            annotation.get("result", []), where=label_where, bad=task_bad, size=(width, height)
        )
        bad += task_bad
        with_joints = [p for p in persons if p.keypoints[:, 2].any()]
        if not with_joints:
            if task_bad:  # it had labels, none of them usable
                problems.append(
                    f"{where}: no usable person: all {len(task_bad)} unusable region(s), first: {task_bad[0]}"
                )
                continue
            if persons:  # boxes without a joint: someone is there, but nothing to learn a pose from
                skipped += 1
                continue
        persons = with_joints  # [] for an image confirmed empty: exported with no annotation
        if file_sha not in records:  # keyed by the file exported: one record per file name
            records[file_sha] = ImageRecord(
                task_id, file_sha + _EXTENSIONS.get(fmt, ""), width, height, {"image_sha256": sha}
            )
            sources[task_id] = path
        provenance = {
            "ls_task_id": task_id,
            "ls_annotation_id": annotation.get("id"),
            "annotator": _annotator(annotation, emails or {}),
            "lead_time_s": annotation.get("lead_time"),
            "request_id": data.get("request_id"),
            "model_version": data.get("model_version"),
        }
        if data.get("source") is not None:  # `posewheel predict`: the file, or VIDEO#t=SECONDS
            provenance["source"] = data["source"]
        by_image.setdefault(file_sha, []).append(_Labeled(task_id, sha, annotation, persons, provenance))
        if not persons:  # the negative's provenance sits on the image: it has no annotation to carry it
            records[file_sha].extra["confirmed_empty"] = provenance
    images = sorted(records.values(), key=lambda r: r.id)
    annotations: list[PersonAnnotation] = []
    for record in images:
        labeled = by_image[Path(record.file_name).stem]
        kept = _without_duplicates(labeled)
        for item in labeled:
            for person in item.persons:
                if id(person) not in kept:
                    continue
                annotations.append(
                    PersonAnnotation(
                        id=len(annotations) + 1,
                        image_id=record.id,
                        keypoints=person.keypoints,
                        bbox=_inside(person, record.width, record.height),
                        extra=dict(item.provenance),
                    )
                )
    info = {"description": "posewheel corrected labels exported from Label Studio"}
    return Dataset(images=images, annotations=annotations, info=info), sources, skipped, problems


def _inside(person: PersonLabel, width: int, height: int) -> tuple[float, float, float, float]:
    """The person's box clipped to the image; a box with nothing inside gives way to one around the points."""
    x, y, w, h = person.box_or_from_points()
    x0, y0 = min(max(x, 0.0), width), min(max(y, 0.0), height)
    x1, y1 = min(max(x + w, 0.0), width), min(max(y + h, 0.0), height)
    if x1 > x0 and y1 > y0:
        return (x0, y0, x1 - x0, y1 - y0)
    return _inside(PersonLabel(person.keypoints, None), width, height) if person.bbox is not None else (x, y, w, h)


def _without_duplicates(labeled: list[_Labeled]) -> set[int]:
    """ids of the persons kept from the tasks of one image: newest annotation first, overlaps dropped."""
    newest_first = sorted(labeled, key=lambda item: _recency(item.annotation), reverse=True)
    kept: list[tuple[int, PersonLabel]] = []  # (task id, person)
    for item in newest_first:
        for person in item.persons:
            box = person.box_or_from_points()
            if any(t != item.task_id and iou(box, p.box_or_from_points()) >= _SAME_PERSON_IOU for t, p in kept):
                continue
            kept.append((item.task_id, person))
    return {id(person) for _, person in kept}


def export_coco(client: LabelStudio, project_id: int, out_dir: Path, image_store: ImageStore) -> ExportSummary:
    """Write the project's completed labels as a COCO dataset at `out_dir` (atomically), images copied in.

    Unusable regions are left out, counted and logged; raises ExportError naming the task ids
    when a whole task is unusable (no usable region, image missing, not a posewheel task).
    """
    tasks = fetch_tasks(client, project_id)
    bad: list[str] = []
    dataset, sources, skipped, problems = tasks_to_dataset(tasks, image_store, user_emails(client), bad)
    for line in bad[:_LOGGED_REGIONS]:
        log.warning("label export: region left out: %s", line)
    if len(bad) > _LOGGED_REGIONS:
        log.warning("label export: %d more unusable region(s) left out", len(bad) - _LOGGED_REGIONS)
    if problems:
        raise ExportError(problems)
    save(dataset, out_dir, image_sources=sources)
    with_persons = {a.image_id for a in dataset.annotations}
    return ExportSummary(
        tasks=len(dataset.images),
        persons=len(dataset.annotations),
        empty=sum(1 for image in dataset.images if image.id not in with_persons),
        skipped=skipped,
        out_dir=Path(out_dir),
        bad_regions=len(bad),
    )
