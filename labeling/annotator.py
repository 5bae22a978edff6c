"""The simulated annotator: corrects review tasks in the real Label Studio from synthetic ground truth.

    posewheel labels annotate --limit 50 --noise-px 1.5 --skip-rate 0.05

For demos, tests and benchmarks. Like a person in the project's label stream, it takes the open tasks
in the project's order (`POSEWHEEL_LABELSTUDIO_SAMPLING`: at random, seeded, by default; or the least
confident first), looks at the image (here: its ground truth, found by the image's content hash) and corrects the
pre-annotation the way the project's instructions say: a predicted person who is there keeps its
regions, each joint moved to where it is with a little hand jitter (`noise_px`, pixels, Gaussian)
and occluded joints marked; a phantom person is deleted; a missed person is added as a new box,
then its joints. An image with nobody in it is submitted with no region. Sometimes it skips a task
(`skip_rate`, saved as `was_cancelled`). Seeded per task, so the same seed gives the same labels
whatever the order.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from labeling.project import SAMPLING
from labeling.results import person_groups, pose_to_results
from posewheel.boxes import best_pairs, iou
from posewheel.schema import NUM_KEYPOINTS
from posewheel.truth import TruthStore

if TYPE_CHECKING:
    from label_studio_sdk import LabelStudio

    from labeling.settings import Sampling

SECONDS_PER_JOINT = 1.8  # simulated lead time per placed joint, plus a few seconds to look
MATCH_IOU = 0.3  # a predicted person whose box overlaps a true person's this much is that person
_OWN_PERSON = re.compile(r"^p\d+$")  # the key of a predicted person (labeling.results.person_groups)
_ID_CHARS = string.ascii_letters + string.digits


@dataclass(frozen=True)
class AnnotateSummary:
    """What one session did: tasks annotated, skipped (was_cancelled), and without ground truth; and the
    persons in the annotated tasks (a label is a person: the training set counts them)."""

    annotated: int
    skipped: int
    no_truth: int
    persons: int = 0


def open_tasks(client: LabelStudio, project_id: int, sampling: Sampling = "uniform", seed: int = 0) -> list[Any]:
    """The project's tasks without any annotation, in the order of Label Studio's `sampling`:
    'uniform' shuffles them (seeded: the same seed and tasks give the same order), 'uncertainty'
    puts the least confident (lowest data.score) first."""
    pager: Iterable[Any] = client.tasks.list(project=project_id, fields="all", resolve_uri=False, page_size=1000)
    tasks = sorted(
        (t for t in pager if not (t.total_annotations or 0) and not (t.cancelled_annotations or 0)),
        key=lambda t: int(t.id),
    )
    if sampling not in SAMPLING:
        raise ValueError(f"sampling must be one of {sorted(SAMPLING)}, got {sampling!r}")
    if sampling == "uncertainty":
        return sorted(tasks, key=lambda t: (float((t.data or {}).get("score", 1.0)), int(t.id)))
    return [tasks[i] for i in np.random.default_rng(seed).permutation(len(tasks))]


def noisy_results(
    persons: list[dict[str, Any]], width: int, height: int, noise_px: float, rng: np.random.Generator
) -> list[dict[str, Any]]:
    """Label Studio results for the true persons with Gaussian jitter of `noise_px` pixels, kept in the image."""
    results: list[dict[str, Any]] = []
    for k, (kps, box) in enumerate(noisy_persons(persons, width, height, noise_px, rng)):
        results += pose_to_results(kps, width, height, person=k, bbox=box)
    return results


def corrected_results(
    prediction: list[dict[str, Any]] | None,
    persons: list[dict[str, Any]],
    width: int,
    height: int,
    noise_px: float,
    rng: np.random.Generator,
) -> list[dict[str, Any]]:
    """The pre-annotation `prediction` (Label Studio results) corrected to the true `persons`.

    A predicted person whose box overlaps a true person's (IoU >= MATCH_IOU, best pairs first) keeps
    its region ids, as in Label Studio's editor, with the true joints (jittered by `noise_px`) and box;
    a predicted person matching nobody is deleted; a true person nobody predicted is added after
    them with new random region ids, its box first, then its joints.
    """
    labeled = noisy_persons(persons, width, height, noise_px, rng)
    predicted = person_groups(prediction or [], where="prediction", bad=[], size=(width, height))
    boxes = {key: p.box_or_from_points() for key, p in predicted.items() if _OWN_PERSON.match(key)}
    keys = sorted(boxes)  # ties between pairs go to the later key, then the later true person
    overlaps = [[iou(boxes[key], true_box) if true_box is not None else 0.0 for _, true_box in labeled] for key in keys]
    kept = {t: keys[k] for k, t in best_pairs(overlaps, MATCH_IOU).items()}  # true person -> predicted person key
    results: list[dict[str, Any]] = []
    for t, key in sorted(kept.items(), key=lambda pair: int(pair[1][1:])):
        kps, box = labeled[t]
        results += pose_to_results(kps, width, height, person=int(key[1:]), bbox=box)
    unused = 1 + max((int(key[1:]) for key in boxes), default=-1)  # a person index no predicted person has
    for t, (kps, box) in enumerate(labeled):
        if t in kept:
            continue
        added = pose_to_results(kps, width, height, person=unused + t, bbox=box)
        # Drawn by hand: fresh ids, the joints find their person by its box (without one, keep ours).
        results += _with_new_ids(added, rng) if box is not None else added
    return results


def noisy_persons(
    persons: list[dict[str, Any]], width: int, height: int, noise_px: float, rng: np.random.Generator
) -> list[tuple[np.ndarray, tuple[float, float, float, float] | None]]:
    """(keypoints (17, 3) px, box [x, y, w, h] px or None) per true person: joints jittered by
    `noise_px` and kept in the image, the box clipped to it."""
    labeled: list[tuple[np.ndarray, tuple[float, float, float, float] | None]] = []
    for person in persons:
        kps = np.asarray(person["keypoints"], dtype=np.float64).reshape(NUM_KEYPOINTS, 3).copy()
        visible = kps[:, 2] > 0
        kps[:, :2] += rng.normal(0.0, noise_px, size=(NUM_KEYPOINTS, 2)) * visible[:, None]
        kps[:, 0] = np.clip(kps[:, 0], 0.0, width)
        kps[:, 1] = np.clip(kps[:, 1], 0.0, height)
        x, y, w, h = (float(v) for v in person["bbox"])
        x0, y0 = max(0.0, x), max(0.0, y)
        box = (x0, y0, min(float(width), x + w) - x0, min(float(height), y + h) - y0)
        labeled.append((kps, box if box[2] > 0 and box[3] > 0 else None))
    return labeled


def _with_new_ids(results: list[dict[str, Any]], rng: np.random.Generator) -> list[dict[str, Any]]:
    """The regions of one person under fresh random ids, as Label Studio gives regions drawn by hand
    (a keypoint's visibility choice keeps sharing its keypoint's id)."""
    fresh: dict[str, str] = {}
    for r in results:
        if r["id"] not in fresh:
            fresh[r["id"]] = "".join(rng.choice(list(_ID_CHARS), size=10))
    return [{**r, "id": fresh[r["id"]]} for r in results]


def _field(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)


def shown_prediction(task: Any, model_version: str | None) -> tuple[int | None, list[dict[str, Any]] | None]:
    """(id, result) of the prediction Label Studio shows on the task: the one of the project's
    `model_version` (see `labeling.project.set_model_version`), else the task's newest; (None, None)."""
    predictions = [p for p in task.predictions or [] if isinstance(_field(p, "result"), list)]
    shown = [p for p in predictions if _field(p, "model_version") == model_version] or predictions
    if not shown:
        return None, None
    newest = max(shown, key=lambda p: (str(_field(p, "created_at") or ""), _field(p, "id") or 0))
    pid = _field(newest, "id")
    return (int(pid) if pid is not None else None), _field(newest, "result")


def annotate(
    client: LabelStudio,
    project_id: int,
    truth: TruthStore,
    noise_px: float = 1.5,
    skip_rate: float = 0.05,
    seed: int = 0,
    limit: int | None = None,
    person_limit: int | None = None,
    sampling: Sampling = "uniform",
) -> AnnotateSummary:
    """Annotate up to `limit` open tasks through the Label Studio API, in `sampling` order (`open_tasks`); with
    `person_limit`, stop before a task whose people would take the persons labeled past it (a budget
    in labels, which on images of several people runs out before a budget in tasks)."""
    if noise_px < 0 or not 0.0 <= skip_rate <= 1.0:
        raise ValueError(f"noise_px must be >= 0 and skip_rate in [0, 1], got {noise_px} and {skip_rate}")
    annotated = skipped = no_truth = labeled = 0
    model_version = client.projects.get(project_id).model_version
    for task in open_tasks(client, project_id, sampling, seed):
        if limit is not None and annotated + skipped >= limit:
            break
        data = task.data or {}
        persons = truth.get(str(data.get("image_sha256", ""))) if data.get("image_sha256") else None
        if persons is None:
            no_truth += 1
            continue
        if person_limit is not None and labeled + len(persons) > person_limit:
            break
        rng = np.random.default_rng([seed, int(task.id)])
        if rng.random() < skip_rate:
            client.annotations.create(int(task.id), result=[], was_cancelled=True, lead_time=float(rng.uniform(2, 6)))
            skipped += 1
            continue
        width, height = _task_size(task)
        prediction_id, prediction = shown_prediction(task, model_version)
        results = corrected_results(prediction, persons, width, height, noise_px, rng)
        joints = sum(1 for r in results if r["type"] == "keypointlabels")
        client.annotations.create(
            int(task.id),
            result=results,
            lead_time=round(3.0 + SECONDS_PER_JOINT * joints * float(rng.uniform(0.7, 1.3)), 3),
            parent_prediction=prediction_id,
        )
        annotated += 1
        labeled += len(persons)
    return AnnotateSummary(annotated=annotated, skipped=skipped, no_truth=no_truth, persons=labeled)


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
