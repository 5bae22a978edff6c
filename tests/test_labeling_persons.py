"""Several persons through the real Label Studio: a phantom deleted, missed persons added, empty images kept.

A 3-person synthetic scene is pre-annotated with one of its persons and a phantom; the simulated
annotator corrects it through Label Studio's API the way the project's instructions say (delete the
phantom's box and joints, draw each missed person's box, then its joints) and the COCO export must
hold exactly the true persons. A browser test does the same by hand in Label Studio's editor, as
the instructions tell a person to.
"""

from __future__ import annotations

import contextlib
import io
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from labeling.annotator import annotate
from labeling.coco_export import export_coco
from labeling.project import INSTRUCTIONS
from labeling.queue import ReviewQueue
from labeling.results import person_groups
from posewheel.dataset import load
from posewheel.imagestore import ImageStore
from posewheel.review import PredictedKeypoint, PredictedPose, ReviewItem
from posewheel.schema import KEYPOINT_NAMES
from posewheel.synth import DOMAINS, render_group
from posewheel.truth import TruthStore
from tests.support.labelstudio import LabelStudioServer
from tests.test_labeling import _review_item, _wait

pytestmark = pytest.mark.labelstudio
SIZE = 256
Box = tuple[float, float, float, float]


def _iou(a: Box, b: Box) -> float:
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def _pose(keypoints: np.ndarray, box: Box, rng: np.random.Generator) -> PredictedPose:
    """A model's pose: every joint a few pixels off (unlabeled ones guessed inside the box)."""
    x, y, w, h = box
    predicted = []
    for name, (kx, ky, v) in zip(KEYPOINT_NAMES, keypoints, strict=True):
        if v == 0:
            kx, ky = rng.uniform(x, x + w), rng.uniform(y, y + h)
        px, py = np.clip([kx + rng.normal(0, 3), ky + rng.normal(0, 3)], 0, SIZE)
        predicted.append(PredictedKeypoint(name=name, x=float(px), y=float(py), score=float(rng.uniform(0.2, 0.9))))
    return PredictedPose(box=box, score=0.5, keypoints=predicted)


def _phantom(truth_boxes: list[Box], rng: np.random.Generator) -> PredictedPose:
    """A pose where nobody is: the 40 x 80 px box overlapping the true persons least."""
    candidates = [(float(x), float(y), 40.0, 80.0) for x in range(0, SIZE - 40, 8) for y in range(0, SIZE - 80, 8)]
    box = min(candidates, key=lambda c: max((_iou(c, t) for t in truth_boxes), default=0.0))
    assert max((_iou(box, t) for t in truth_boxes), default=0.0) < 0.1
    x, y, w, h = box
    keypoints = np.c_[rng.uniform(x, x + w, 17), rng.uniform(y, y + h, 17), np.full(17, 2.0)]
    return _pose(keypoints, box, rng)


def _scene_item(store: ImageStore, truth: TruthStore, index: int, persons: int, predicted: list[int]) -> ReviewItem:
    """A synthetic studio scene stored with its truth, pre-annotated with the `predicted` true persons and a phantom."""
    scene = render_group(DOMAINS["studio"], seed=0, index=index, size=SIZE, persons=(persons, persons))
    assert len(scene.persons) == persons
    buffer = io.BytesIO()
    scene.image.save(buffer, format="PNG")
    sha = store.put(buffer.getvalue())
    truth.put(sha, [{"keypoints": p.keypoints.tolist(), "bbox": list(p.bbox)} for p in scene.persons])
    rng = np.random.default_rng(index)
    poses = [_pose(scene.persons[k].keypoints, scene.persons[k].bbox, rng) for k in predicted]
    poses.append(_phantom([p.bbox for p in scene.persons], rng))
    return ReviewItem(
        request_id=f"req-{uuid.uuid4().hex[:12]}", image_sha256=sha, image_path=str(store.path_for(sha)),
        width=SIZE, height=SIZE, model_version="m1", score=0.3, reason="person_count", poses=poses,
    )  # fmt: skip


def test_a_deleted_phantom_and_added_missed_persons_export_exactly_the_true_persons(
    labelstudio: LabelStudioServer, tmp_path: Path
) -> None:
    client, project_id = labelstudio.client, labelstudio.new_project("persons")
    store, truth = ImageStore(labelstudio.image_root), TruthStore(tmp_path / "truth")
    # Scene 9: the model found the near person (2) and a phantom; it missed persons 0 and 1, whose
    # boxes overlap (person 1's joints also lie in person 0's smaller box).
    crowd = _scene_item(store, truth, index=9, persons=3, predicted=[2])
    empty = _scene_item(store, truth, index=0, persons=0, predicted=[])  # nobody there, only a phantom
    ReviewQueue(client, project_id, labelstudio.document_root).deliver([crowd, empty])

    assert annotate(client, project_id, truth, noise_px=0.0, skip_rate=0.0).annotated == 2

    tasks = {t.data["request_id"]: t for t in client.tasks.list(project=project_id, fields="all", resolve_uri=False)}
    [corrected] = tasks[crowd.request_id].annotations
    ids = [r["id"] for r in corrected["result"]]
    assert not any(i.startswith("p1-") for i in ids)  # the phantom (person 1 of the prediction) is deleted
    assert any(i.startswith("p0-") for i in ids)  # the found person keeps its regions, joints moved
    groups = person_groups(corrected["result"], where="crowd")
    added = [key for key in groups if not key.startswith("p")]
    assert len(added) == 2  # two persons drawn by hand: new region ids, each a box then its joints
    assert tasks[empty.request_id].annotations[0]["result"] == []

    summary = export_coco(client, project_id, tmp_path / "feedback", store)
    assert (summary.tasks, summary.persons, summary.empty) == (2, 3, 1)
    dataset = load(tmp_path / "feedback")
    by_image = dataset.annotations_by_image()
    image_of = {img.extra["image_sha256"]: img for img in dataset.images}
    assert by_image.get(image_of[empty.image_sha256].id, []) == []  # a confirmed negative, kept
    assert image_of[empty.image_sha256].extra["confirmed_empty"]["request_id"] == empty.request_id
    exported = by_image[image_of[crowd.image_sha256].id]
    true_persons = truth.get(crowd.image_sha256)
    assert true_persons is not None and len(exported) == len(true_persons) == 3
    for person in true_persons:
        [match] = [a for a in exported if _iou(tuple(a.bbox), tuple(person["bbox"])) > 0.99]
        np.testing.assert_allclose(match.keypoints, np.asarray(person["keypoints"]), atol=0.01)
        np.testing.assert_allclose(match.bbox, person["bbox"], atol=0.01)
        assert match.extra["request_id"] == crowd.request_id


def test_the_instructions_say_how_to_add_a_missed_person_and_delete_a_phantom(labelstudio: LabelStudioServer) -> None:
    project = labelstudio.client.projects.get(labelstudio.new_project("instructions"))
    shown = project.expert_instruction or ""
    assert project.show_instruction and shown.strip() == INSTRUCTIONS.strip()
    # What the UI test below does, and what results.person_groups relies on: a box, then its joints.
    assert "A missed person:" in shown and "draw a box around them first" in shown and "Alt+H" in shown
    assert "Joints belong to the box drawn just before them" in shown
    assert "A person who is not there:" in shown and "every joint of theirs" in shown and "Backspace" in shown
    assert "nobody in it: delete every region" in shown


@pytest.mark.slow
def test_a_person_deletes_a_phantom_and_adds_a_missed_person_in_the_label_studio_ui(
    labelstudio: LabelStudioServer, tmp_path: Path
) -> None:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    client, project_id = labelstudio.client, labelstudio.new_project("persons-ui")
    store = ImageStore(labelstudio.image_root)
    item = _review_item(store, TruthStore(tmp_path / "truth"), 71, 0.2)  # a 96 x 128 px image
    rng = np.random.default_rng(0)
    found = np.c_[rng.uniform(5, 38, 17), rng.uniform(5, 58, 17), np.full(17, 2.0)]
    phantom = np.c_[rng.uniform(58, 88, 17), rng.uniform(8, 42, 17), np.full(17, 2.0)]
    poses = [_pose(found, (2.0, 2.0, 40.0, 60.0), rng), _pose(phantom, (55.0, 5.0, 35.0, 40.0), rng)]
    item = item.model_copy(update={"poses": poses})
    ReviewQueue(client, project_id, labelstudio.document_root).deliver([item])
    task_id = next(iter(client.tasks.list(project=project_id, fields="task_only"))).id
    with labelstudio.editor(project_id, task_id) as page:
        image = page.locator("img[src^=blob]")
        page.get_by_text("nose", exact=True).last.wait_for()  # the pre-annotation is drawn
        time.sleep(1.0)  # the layout settles (the image is fitted to the panel)

        def at(x: float, y: float) -> tuple[float, float]:  # image pixels -> page pixels (the page scrolls)
            box = image.bounding_box()
            assert box is not None
            return box["x"] + x * box["width"] / 96, box["y"] + y * box["height"] / 128

        def drag(start: tuple[float, float], end: tuple[float, float]) -> None:
            page.mouse.move(*at(*start))
            page.mouse.down()
            page.mouse.move(*at(*end), steps=10)
            page.mouse.up()

        def pick(label: str) -> None:
            page.keyboard.press("Escape")  # nothing selected: a label click must not relabel a region
            page.locator(".lsf-label", has_text=label).first.click()

        # The phantom: with the move tool, drag a selection over its box and joints, then Backspace.
        # The region panel then lists the selected regions by id ("p1-box", ...).
        selected = page.get_by_text("p1-box", exact=True)
        for _ in range(3):  # the editor may still be settling and miss the first drag
            page.keyboard.press("Escape")
            page.keyboard.press("v")
            drag((52.0, 2.5), (93.0, 47.0))
            with contextlib.suppress(PlaywrightTimeout):
                selected.wait_for(timeout=3000)
                break
        assert page.get_by_text("p1-right_ankle", exact=True).count() == 1  # the joints are selected too
        page.keyboard.press("Backspace")
        selected.wait_for(state="detached", timeout=5000)
        # The missed person: a box, hidden (Alt+H) so that clicks inside it place joints, then its joints.
        pick("person")
        drag((50.0, 70.0), (90.0, 120.0))
        page.keyboard.press("Escape")
        page.mouse.click(*at(85.0, 115.0))  # selects the new box
        page.keyboard.press("Alt+h")
        for name, (x, y) in {"left_wrist": (60.0, 80.0), "right_wrist": (80.0, 110.0)}.items():
            pick(name)
            page.mouse.click(*at(x, y))
        page.get_by_role("button", name="Submit").click()
        _wait(lambda: bool(client.tasks.get(task_id).annotations), 30, "the submitted annotation")

    [annotation] = client.tasks.get(task_id).annotations
    ids = sorted({r["id"] for r in annotation["result"]})
    assert not [i for i in ids if i.startswith("p1-")], ids  # every region of the phantom deleted
    summary = export_coco(client, project_id, tmp_path / "ui", store)
    assert (summary.persons, summary.bad_regions) == (2, 0), ids
    kept, added = load(tmp_path / "ui").annotations
    assert kept.bbox == pytest.approx((2.0, 2.0, 40.0, 60.0), abs=0.01)
    assert (kept.keypoints[:, 2] > 0).sum() == 17  # the found person, untouched
    assert added.bbox == pytest.approx((50.0, 70.0, 40.0, 50.0), abs=1.5)
    wrists = [KEYPOINT_NAMES.index("left_wrist"), KEYPOINT_NAMES.index("right_wrist")]
    np.testing.assert_allclose(added.keypoints[wrists], [[60, 80, 2], [80, 110, 2]], atol=1.5)
    assert (added.keypoints[:, 2] > 0).sum() == 2


def test_a_budget_in_persons_stops_before_the_task_that_would_pass_it(
    labelstudio: LabelStudioServer, tmp_path: Path
) -> None:
    """The demo's label budget counts persons: a 2-person task fits in 4, the 3-person task after it does not."""
    client, project_id = labelstudio.client, labelstudio.new_project("person-budget", "uncertainty")
    store, truth = ImageStore(labelstudio.image_root), TruthStore(tmp_path / "truth")
    pair = _scene_item(store, truth, index=3, persons=2, predicted=[0]).model_copy(update={"score": 0.1})
    crowd = _scene_item(store, truth, index=9, persons=3, predicted=[2]).model_copy(update={"score": 0.2})
    ReviewQueue(client, project_id, labelstudio.document_root).deliver([crowd, pair])

    summary = annotate(client, project_id, truth, noise_px=0.0, skip_rate=0.0, person_limit=4, sampling="uncertainty")
    assert (summary.annotated, summary.persons) == (1, 2)
    tasks = {t.data["request_id"]: t for t in client.tasks.list(project=project_id, fields="all", resolve_uri=False)}
    assert tasks[pair.request_id].annotations and not tasks[crowd.request_id].annotations
