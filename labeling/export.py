"""Export the corrected labels from Label Studio into a COCO keypoint dataset (atomic, deterministic).

    posewheel labels export --out data/feedback

Reads Label Studio's JSON export (it keeps region ids, which tie each visibility choice to its
keypoint; JSON_MIN and Label Studio's own COCO export lose that). Skipped annotations
(`was_cancelled`) are dropped; a task's newest completed annotation wins. The same Label Studio
state always gives byte-identical output, so DVC sees no change when nothing new was labeled.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image

from labeling.results import LabelError, results_to_persons
from posewheel.dataset import Dataset, ImageRecord, PersonAnnotation, save
from posewheel.imagestore import ImageStore

if TYPE_CHECKING:
    from label_studio_sdk import LabelStudio

_EXTENSIONS = {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp", "BMP": ".bmp", "GIF": ".gif", "TIFF": ".tif"}


class ExportError(ValueError):
    """Label Studio holds labels we cannot turn into COCO; `problems` names each task id."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        shown = "\n".join(f"  - {p}" for p in problems[:50])
        super().__init__(f"{len(problems)} problem(s) in the Label Studio export:\n{shown}")


@dataclass(frozen=True)
class ExportSummary:
    """What an export wrote: labeled tasks (= images), persons, skipped tasks, and the folder."""

    tasks: int
    persons: int
    skipped: int
    out_dir: Path


def fetch_tasks(client: LabelStudio, project_id: int) -> list[dict[str, Any]]:
    """The project's annotated tasks from Label Studio's JSON export, sorted by task id."""
    raw = b"".join(client.projects.exports.download_sync(project_id, export_type="JSON", download_all_tasks=False))
    tasks = json.loads(raw)
    if not isinstance(tasks, list):
        raise ExportError([f"project {project_id}: JSON export is a {type(tasks).__name__}, expected a list"])
    return sorted(tasks, key=lambda t: int(t["id"]))


def _chosen_annotation(task: dict[str, Any]) -> dict[str, Any] | None:
    """The task's newest completed (not skipped) annotation, or None."""
    done = [a for a in task.get("annotations", []) if not a.get("was_cancelled")]
    if not done:
        return None
    return max(done, key=lambda a: (str(a.get("updated_at") or a.get("created_at") or ""), int(a.get("id", 0))))


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


def tasks_to_dataset(
    tasks: list[dict[str, Any]], image_store: ImageStore, emails: dict[int, str] | None = None
) -> tuple[Dataset, dict[int, Path], int, list[str]]:
    """COCO dataset from exported tasks: (dataset, image sources, skipped tasks, problems by task id)."""
    images: list[ImageRecord] = []
    annotations: list[PersonAnnotation] = []
    sources: dict[int, Path] = {}
    problems: list[str] = []
    skipped = 0
    for task in sorted(tasks, key=lambda t: int(t["id"])):
        task_id = int(task["id"])
        where = f"task {task_id}"
        annotation = _chosen_annotation(task)
        if annotation is None:
            skipped += 1
            continue
        data = task.get("data", {})
        sha = data.get("image_sha256")
        if not isinstance(sha, str):
            problems.append(f"{where}: data has no image_sha256; not a posewheel review task")
            continue
        try:
            path = image_store.path_for(sha)
            with Image.open(path) as img:
                width, height, fmt = img.width, img.height, img.format or ""
            label_where = f"{where} annotation {annotation.get('id')}"
            persons = results_to_persons(annotation.get("result", []), where=label_where)
        except LabelError as exc:
            problems.append(str(exc))
            continue
        except (ValueError, OSError) as exc:  # image missing from the store or unreadable
            problems.append(f"{where}: image {sha[:12]}: {exc}")
            continue
        persons = [p for p in persons if p.keypoints[:, 2].any()]
        if not persons:
            skipped += 1  # completed with no keypoint at all: nothing to learn from
            continue
        images.append(ImageRecord(task_id, sha + _EXTENSIONS.get(fmt, ""), width, height,
                                  {"image_sha256": sha}))  # fmt: skip
        sources[task_id] = path
        provenance = {
            "ls_task_id": task_id,
            "ls_annotation_id": annotation.get("id"),
            "annotator": _annotator(annotation, emails or {}),
            "lead_time_s": annotation.get("lead_time"),
            "request_id": data.get("request_id"),
            "model_version": data.get("model_version"),
        }
        for person in persons:
            annotations.append(PersonAnnotation(
                id=len(annotations) + 1, image_id=task_id, keypoints=person.keypoints,
                bbox=person.box_or_from_points(), extra=dict(provenance),
            ))  # fmt: skip
    info = {"description": "posewheel corrected labels exported from Label Studio"}
    return Dataset(images=images, annotations=annotations, info=info), sources, skipped, problems


def export_coco(client: LabelStudio, project_id: int, out_dir: Path, image_store: ImageStore) -> ExportSummary:
    """Write the project's completed labels as a COCO dataset at `out_dir` (atomically), images copied in.

    Raises ExportError naming the task ids when any label is not one of ours.
    """
    tasks = fetch_tasks(client, project_id)
    dataset, sources, skipped, problems = tasks_to_dataset(tasks, image_store, user_emails(client))
    if problems:
        raise ExportError(problems)
    save(dataset, out_dir, image_sources=sources)
    return ExportSummary(tasks=len(dataset.images), persons=len(dataset.annotations), skipped=skipped,
                         out_dir=Path(out_dir))  # fmt: skip
