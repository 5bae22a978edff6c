"""The simulated annotator: corrects review tasks in the real Label Studio from synthetic ground truth.

    posewheel labels annotate --limit 50 --noise-px 1.5 --skip-rate 0.05

For demos, tests and benchmarks. Like a person, it takes the least confident unlabeled tasks first,
looks at the image (here: its ground truth, found by the image's content hash), moves each joint
to where it is with a little hand jitter (`noise_px`, pixels, Gaussian), marks occluded joints,
and sometimes skips a task (`skip_rate`, saved as `was_cancelled`). Seeded per task, so the same
seed gives the same labels whatever the order.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from labeling.results import pose_to_results
from posewheel.schema import NUM_KEYPOINTS
from posewheel.truth import TruthStore

if TYPE_CHECKING:
    from label_studio_sdk import LabelStudio

SECONDS_PER_JOINT = 1.8  # simulated lead time per placed joint, plus a few seconds to look


@dataclass(frozen=True)
class AnnotateSummary:
    """What one session did: tasks annotated, skipped (was_cancelled), and without ground truth."""

    annotated: int
    skipped: int
    no_truth: int


def open_tasks(client: LabelStudio, project_id: int) -> list[Any]:
    """The project's tasks without any annotation, least confident (lowest data.score) first."""
    pager: Iterable[Any] = client.tasks.list(project=project_id, fields="all", resolve_uri=False, page_size=1000)
    tasks = [t for t in pager if not (t.total_annotations or 0) and not (t.cancelled_annotations or 0)]
    return sorted(tasks, key=lambda t: (float((t.data or {}).get("score", 1.0)), int(t.id)))


def noisy_results(
    persons: list[dict[str, Any]], width: int, height: int, noise_px: float, rng: np.random.Generator
) -> list[dict[str, Any]]:
    """Label Studio results for the true persons with Gaussian jitter of `noise_px` pixels, kept in the image."""
    results: list[dict[str, Any]] = []
    for k, person in enumerate(persons):
        kps = np.asarray(person["keypoints"], dtype=np.float64).reshape(NUM_KEYPOINTS, 3).copy()
        labeled = kps[:, 2] > 0
        kps[:, :2] += rng.normal(0.0, noise_px, size=(NUM_KEYPOINTS, 2)) * labeled[:, None]
        kps[:, 0] = np.clip(kps[:, 0], 0.0, width)
        kps[:, 1] = np.clip(kps[:, 1], 0.0, height)
        x, y, w, h = (float(v) for v in person["bbox"])
        x0, y0 = max(0.0, x), max(0.0, y)
        box = (x0, y0, min(float(width), x + w) - x0, min(float(height), y + h) - y0)
        results += pose_to_results(kps, width, height, person=k, bbox=box if box[2] > 0 and box[3] > 0 else None)
    return results


def _prediction_id(task: Any) -> int | None:
    for prediction in task.predictions or []:
        pid = prediction.get("id") if isinstance(prediction, dict) else getattr(prediction, "id", None)
        if pid is not None:
            return int(pid)
    return None


def annotate(
    client: LabelStudio,
    project_id: int,
    truth: TruthStore,
    noise_px: float = 1.5,
    skip_rate: float = 0.05,
    seed: int = 0,
    limit: int | None = None,
) -> AnnotateSummary:
    """Annotate up to `limit` open tasks through the Label Studio API, least confident first."""
    if noise_px < 0 or not 0.0 <= skip_rate <= 1.0:
        raise ValueError(f"noise_px must be >= 0 and skip_rate in [0, 1], got {noise_px} and {skip_rate}")
    annotated = skipped = no_truth = 0
    for task in open_tasks(client, project_id):
        if limit is not None and annotated + skipped >= limit:
            break
        data = task.data or {}
        persons = truth.get(str(data.get("image_sha256", ""))) if data.get("image_sha256") else None
        if persons is None:
            no_truth += 1
            continue
        rng = np.random.default_rng([seed, int(task.id)])
        if rng.random() < skip_rate:
            client.annotations.create(int(task.id), result=[], was_cancelled=True, lead_time=float(rng.uniform(2, 6)))
            skipped += 1
            continue
        width, height = _task_size(task)
        results = noisy_results(persons, width, height, noise_px, rng)
        joints = sum(1 for r in results if r["type"] == "keypointlabels")
        client.annotations.create(
            int(task.id),
            result=results,
            lead_time=round(3.0 + SECONDS_PER_JOINT * joints * float(rng.uniform(0.7, 1.3)), 3),
            parent_prediction=_prediction_id(task),
        )
        annotated += 1
    return AnnotateSummary(annotated=annotated, skipped=skipped, no_truth=no_truth)


def _task_size(task: Any) -> tuple[int, int]:
    """The original image size in pixels: from the task data, else from its prediction's regions."""
    data = task.data or {}
    if "width" in data and "height" in data:
        return int(data["width"]), int(data["height"])
    for prediction in task.predictions or []:
        result = prediction.get("result") if isinstance(prediction, dict) else getattr(prediction, "result", None)
        for region in result or []:
            if "original_width" in region:
                return int(region["original_width"]), int(region["original_height"])
    raise ValueError(f"task {task.id}: no prediction carries original_width/original_height")
