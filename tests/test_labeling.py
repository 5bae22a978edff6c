"""Labeling promises against the real Label Studio of the test session (tests/support/labelstudio.py)."""

from __future__ import annotations

import io
import json
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest
import typer
from PIL import Image
from typer.testing import CliRunner

from labeling import queue as queue_module
from labeling.annotator import annotate, open_tasks
from labeling.cli import register
from labeling.coco_export import export_coco
from labeling.project import VIEW_TITLE, ensure_project, find_project, label_config
from labeling.queue import OutboxDrainer, ReviewQueue
from labeling.settings import LabelStudioSettings
from posewheel.dataset import load
from posewheel.imagestore import ImageStore
from posewheel.review import Outbox, PredictedKeypoint, PredictedPose, ReviewItem
from posewheel.schema import KEYPOINT_NAMES, V_OCCLUDED, V_VISIBLE
from posewheel.truth import TruthStore
from tests.support.labelstudio import LabelStudioServer

pytestmark = pytest.mark.labelstudio
W, H = 96, 128


def _review_item(store: ImageStore, truth: TruthStore, seed: int, score: float, version: str = "m1") -> ReviewItem:
    """A synthetic image with known truth, and a prediction a few pixels off it."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 255, (H, W, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    sha = store.put(buffer.getvalue())
    kps = np.zeros((17, 3))
    kps[:, 0], kps[:, 1] = rng.uniform(10, W - 10, 17), rng.uniform(10, H - 10, 17)
    kps[:, 2] = np.where(rng.random(17) < 0.3, V_OCCLUDED, V_VISIBLE)
    kps[16] = 0  # one joint nobody can place
    truth.put(sha, [{"keypoints": kps.tolist(), "bbox": [5.0, 5.0, W - 10.0, H - 10.0]}])
    predicted = [PredictedKeypoint(name=name, x=float(x + rng.normal(0, 4)), y=float(y + rng.normal(0, 4)),
                                   score=float(rng.uniform(0.1, 0.9)))
                 for name, (x, y, _) in zip(KEYPOINT_NAMES, kps, strict=True)]  # fmt: skip
    return ReviewItem(
        request_id=f"req-{uuid.uuid4().hex[:12]}", image_sha256=sha, image_path=str(store.path_for(sha)),
        width=W, height=H, model_version=version, score=score, reason="low_confidence",
        poses=[PredictedPose(box=(4.0, 4.0, W - 8.0, H - 8.0), score=score, keypoints=predicted)],
    )  # fmt: skip


def _request_ids(labelstudio: LabelStudioServer, project_id: int) -> Counter[str]:
    tasks = labelstudio.client.tasks.list(project=project_id, fields="task_only", resolve_uri=False)
    return Counter(str(t.data["request_id"]) for t in tasks)


def _wait(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.2)


def test_project_setup_is_idempotent(labelstudio: LabelStudioServer) -> None:
    title = f"idempotent-{uuid.uuid4().hex[:8]}"
    first = ensure_project(labelstudio.client, title)
    assert ensure_project(labelstudio.client, title) == first
    assert find_project(labelstudio.client, title) == first
    projects = [p for p in labelstudio.client.projects.list(title=title) if p.title == title]
    assert len(projects) == 1
    project = labelstudio.client.projects.get(first)
    assert project.label_config.strip() == label_config().strip()
    assert project.sampling == "Uniform sampling" and project.expert_instruction  # the default: at random
    views = [v for v in labelstudio.client.views.list(project=first) if v.data.get("title") == VIEW_TITLE]
    assert len(views) == 1 and views[0].data["ordering"] == ["tasks:predictions_score"]
    # The setting decides, also for a project that exists: least confident first, then at random again.
    assert ensure_project(labelstudio.client, title, "uncertainty") == first
    assert labelstudio.client.projects.get(first).sampling == "Uncertainty sampling"
    assert ensure_project(labelstudio.client, title, "uniform") == first
    assert labelstudio.client.projects.get(first).sampling == "Uniform sampling"
    with pytest.raises(ValueError, match="sampling must be one of"):
        ensure_project(labelstudio.client, title, "newest")


def test_the_settings_a_caller_passes_decide_the_projects_sampling(
    labelstudio: LabelStudioServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    title = f"passed-{uuid.uuid4().hex[:8]}"
    for key, value in labelstudio.env(project_title=title).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("POSEWHEEL_ROOT", str(tmp_path))
    queue = ReviewQueue.connect(LabelStudioSettings(sampling="uncertainty"))  # the environment's is uniform
    assert labelstudio.client.projects.get(queue.project_id).sampling == "Uncertainty sampling"
    app = typer.Typer()
    register(app)
    result = CliRunner().invoke(app, ["labels", "setup"])  # the environment's settings: uniform again
    assert result.exit_code == 0 and f"is id {queue.project_id}" in result.output, result.output
    assert labelstudio.client.projects.get(queue.project_id).sampling == "Uniform sampling"


def test_prediction_becomes_a_corrected_coco_label_that_matches_ground_truth(
    labelstudio: LabelStudioServer, tmp_path: Path
) -> None:
    client, project_id = labelstudio.client, labelstudio.new_project("roundtrip", "uncertainty")
    store, truth = ImageStore(labelstudio.image_root), TruthStore(tmp_path / "truth")
    items = [_review_item(store, truth, seed, score) for seed, score in [(1, 0.9), (2, 0.2), (3, 0.6)]]
    queue = ReviewQueue(client, project_id, labelstudio.document_root)
    assert sorted(queue.deliver(items)) == sorted(i.request_id for i in items)

    tasks = {t.data["request_id"]: t for t in client.tasks.list(project=project_id, resolve_uri=False)}
    task = tasks[items[0].request_id]
    assert task.data["image"].startswith("/data/local-files/?d=")  # a URL, never base64
    auth = {"Authorization": f"Token {labelstudio.settings.credentials().token}"}
    image = httpx.get(labelstudio.settings.base_url + task.data["image"], headers=auth)
    assert image.status_code == 200 and image.content == store.get(items[0].image_sha256)
    prediction = task.predictions[0]
    assert prediction.model_version == "m1" and prediction.score == pytest.approx(0.9)
    assert all("score" in r for r in prediction.result if r["type"] == "keypointlabels")
    assert client.projects.get(project_id).model_version == "m1"

    # Least confident first, for a person in the Label Studio UI (the project's next-task queue) ...
    following = httpx.get(f"{labelstudio.settings.base_url}/api/projects/{project_id}/next", headers=auth)
    assert following.status_code == 200 and following.json()["id"] == tasks[items[1].request_id].id
    # ... and for the simulated annotator: one annotation lands on the 0.2 task, one skip on the 0.6 task.
    first = annotate(client, project_id, truth, noise_px=0.5, skip_rate=0.0, seed=1, limit=1, sampling="uncertainty")
    assert first.annotated == 1
    assert annotate(client, project_id, truth, skip_rate=1.0, seed=1, limit=1, sampling="uncertainty").skipped == 1
    labeled = {rid for rid, t in ((r, client.tasks.get(tasks[r].id)) for r in tasks) if t.annotations}
    assert labeled == {items[1].request_id, items[2].request_id}
    assert annotate(client, project_id, truth, noise_px=0.5, skip_rate=0.0, seed=1).annotated == 1

    summary = export_coco(client, project_id, tmp_path / "feedback", store)
    assert (summary.tasks, summary.persons, summary.skipped) == (2, 2, 1)
    first_bytes = (tmp_path / "feedback" / "annotations.json").read_bytes()
    dataset = load(tmp_path / "feedback")
    by_request = {a.extra["request_id"]: a for a in dataset.annotations}
    assert set(by_request) == {items[0].request_id, items[1].request_id}  # the skipped one is dropped
    for item in (items[0], items[1]):
        ann, true = by_request[item.request_id], np.asarray(truth.get(item.image_sha256)[0]["keypoints"])
        np.testing.assert_array_equal(ann.keypoints[:, 2], true[:, 2])
        labeled_joints = true[:, 2] > 0
        error = np.linalg.norm(ann.keypoints[labeled_joints, :2] - true[labeled_joints, :2], axis=1)
        assert error.max() < 2.5, error  # 0.5 px hand noise, nothing else
        assert ann.extra["model_version"] == "m1" and ann.extra["lead_time_s"] > 0
        assert ann.extra["annotator"] == labelstudio.settings.username
    export_coco(client, project_id, tmp_path / "feedback", store)
    assert (tmp_path / "feedback" / "annotations.json").read_bytes() == first_bytes  # nothing new: no change


def test_the_default_order_is_at_random_seeded_and_not_by_confidence(
    labelstudio: LabelStudioServer, tmp_path: Path
) -> None:
    """Random picks taught as much as the least confident (docs/flywheel.md): the default stream is uniform."""
    client, project_id = labelstudio.client, labelstudio.new_project("uniform")
    store, truth = ImageStore(labelstudio.image_root), TruthStore(tmp_path / "truth")
    items = [_review_item(store, truth, 300 + n, score=0.05 * (n + 1)) for n in range(12)]
    ReviewQueue(client, project_id, labelstudio.document_root).deliver(items)
    by_id = {int(t.id): str(t.data["request_id"]) for t in client.tasks.list(project=project_id, resolve_uri=False)}
    least_first = [i.request_id for i in items]  # scores ascend with n

    orders = {seed: [by_id[int(t.id)] for t in open_tasks(client, project_id, "uniform", seed)] for seed in (0, 1)}
    assert sorted(orders[0]) == sorted(least_first) and orders[0] != least_first and orders[0] != orders[1]
    assert [by_id[int(t.id)] for t in open_tasks(client, project_id, "uniform", 0)] == orders[0]  # seeded
    assert [by_id[int(t.id)] for t in open_tasks(client, project_id, "uncertainty")] == least_first

    # The simulated annotator takes its seed's order: the first three of it, whatever their scores.
    assert annotate(client, project_id, truth, noise_px=0.5, skip_rate=0.0, seed=1, limit=3).annotated == 3
    labeled = {by_id[int(t.id)] for t in client.tasks.list(project=project_id, fields="all") if t.annotations}
    assert labeled == set(orders[1][:3])
    with pytest.raises(ValueError, match="sampling must be"):
        open_tasks(client, project_id, "newest")


def test_label_studio_down_loses_and_duplicates_no_review_item(labelstudio: LabelStudioServer, tmp_path: Path) -> None:
    client, project_id = labelstudio.client, labelstudio.new_project("outage")
    store, truth, outbox = ImageStore(labelstudio.image_root), TruthStore(tmp_path / "truth"), Outbox(tmp_path / "ob")
    items = [_review_item(store, truth, 100 + n, 0.5) for n in range(9)]
    for item in items[:4]:
        outbox.put(item)
    # A crash between import and ack: Label Studio has two tasks whose outbox items were never acked.
    ReviewQueue(client, project_id, labelstudio.document_root).deliver(items[:2])
    drainer = OutboxDrainer(outbox, ReviewQueue(client, project_id, labelstudio.document_root), batch_size=2,
                            poll_interval_s=0.2, backoff_initial_s=0.2, backoff_max_s=1.0).start()  # fmt: skip
    try:
        _wait(lambda: outbox.depth() == 0, 30, "the first items to drain")
        labelstudio.stop()
        for item in items[4:]:
            outbox.put(item)
        drainer.wake()
        _wait(lambda: drainer.failures >= 2, 30, "the drainer to notice Label Studio is down")
        assert outbox.depth() == 5
        labelstudio.start()
        _wait(lambda: outbox.depth() == 0, 60, "the outbox to drain after the restart")
    finally:
        drainer.stop()
        labelstudio.start()  # the session's server stays up for the next test
    assert _request_ids(labelstudio, project_id) == Counter({i.request_id: 1 for i in items})
    assert outbox.delivered() == 9


def test_project_model_version_follows_the_served_model(labelstudio: LabelStudioServer, tmp_path: Path) -> None:
    client, project_id = labelstudio.client, labelstudio.new_project("version")
    store, truth = ImageStore(labelstudio.image_root), TruthStore(tmp_path / "truth")
    queue = ReviewQueue(client, project_id, labelstudio.document_root)
    queue.deliver([_review_item(store, truth, 7, 0.4, version="m1")])
    queue.set_model_version("m2")  # the open m1 task keeps its pose under m2 (tests/test_labeling_promotion.py)
    assert client.projects.get(project_id).model_version == "m2"
    queue.deliver([_review_item(store, truth, 8, 0.4, version="m3")])  # a newer model's item
    assert client.projects.get(project_id).model_version == "m3"


def test_cli_drains_annotates_and_exports(labelstudio: LabelStudioServer, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    title = f"cli-{uuid.uuid4().hex[:8]}"
    for key, value in labelstudio.env(project_title=title).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("POSEWHEEL_ROOT", str(tmp_path))  # var/outbox, var/truth, var/images under tmp_path
    truth, outbox = TruthStore(tmp_path / "var" / "truth"), Outbox(tmp_path / "var" / "outbox")
    served = _review_item(ImageStore(labelstudio.image_root), truth, 21, 0.3)
    ImageStore(tmp_path / "var" / "images").put(ImageStore(labelstudio.image_root).get(served.image_sha256))
    stray = _review_item(ImageStore(tmp_path / "elsewhere"), truth, 22, 0.3)  # outside the document root
    outbox.put(served)
    outbox.put(stray)
    app = typer.Typer()
    register(app)
    runner = CliRunner()
    result = runner.invoke(app, ["labels", "drain"])
    assert result.exit_code == 1, result.output
    assert "1 review item(s) delivered to Label Studio, 1 still pending" in result.output
    assert [i.request_id for i in outbox.pending()] == [stray.request_id]  # kept, not lost
    result = runner.invoke(app, ["labels", "export", "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert load(tmp_path / "out").images == []  # nothing annotated yet: an empty, valid dataset
    result = runner.invoke(app, ["labels", "annotate", "--noise-px", "0", "--skip-rate", "0"])
    assert result.exit_code == 0 and "annotated 1 task(s)" in result.output, result.output
    result = runner.invoke(app, ["labels", "export", "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    [annotation] = load(tmp_path / "out").annotations
    true = np.asarray(truth.get(served.image_sha256)[0]["keypoints"])
    np.testing.assert_allclose(annotation.keypoints, true, atol=0.01)  # no hand noise: the truth itself


@pytest.mark.slow
def test_a_person_marks_a_joint_occluded_in_the_label_studio_ui_and_export_says_v1(
    labelstudio: LabelStudioServer, tmp_path: Path
) -> None:
    client, project_id = labelstudio.client, labelstudio.new_project("ui")
    store = ImageStore(labelstudio.image_root)
    item = _review_item(store, TruthStore(tmp_path / "truth"), 31, 0.2)
    ReviewQueue(client, project_id, labelstudio.document_root).deliver([item])
    task_id = next(iter(client.tasks.list(project=project_id, fields="task_only"))).id
    with labelstudio.editor(project_id, task_id) as page:
        page.get_by_text("nose", exact=True).last.click()  # the region in the outliner, not the label button
        page.locator("label", has_text="occluded").first.click()  # the per-region visibility choice
        page.get_by_role("button", name="Submit").click()
        _wait(lambda: bool(client.tasks.get(task_id).annotations), 30, "the submitted annotation")
    export_coco(client, project_id, tmp_path / "ui", store)
    [annotation] = load(tmp_path / "ui").annotations
    predicted = {k.name: k for k in item.poses[0].keypoints}
    assert annotation.keypoints[KEYPOINT_NAMES.index("nose"), 2] == V_OCCLUDED
    assert annotation.keypoints[KEYPOINT_NAMES.index("left_eye"), 2] == V_VISIBLE
    nose = annotation.keypoints[KEYPOINT_NAMES.index("nose")]
    assert nose[:2].tolist() == pytest.approx([predicted["nose"].x, predicted["nose"].y], abs=0.01)


def test_a_task_label_studio_refuses_stays_queued_without_blocking_the_batch(
    labelstudio: LabelStudioServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, project_id = labelstudio.client, labelstudio.new_project("refused")
    store, truth = ImageStore(labelstudio.image_root), TruthStore(tmp_path / "truth")
    items = [_review_item(store, truth, 40 + n, 0.5) for n in range(3)]
    real_item_to_task = queue_module.item_to_task

    def without_image_for_the_middle_one(item: ReviewItem, image_url: str) -> dict:
        task = real_item_to_task(item, image_url)
        if item.request_id == items[1].request_id:
            del task["data"]["image"]  # Label Studio answers 400 for the whole request
        return task

    monkeypatch.setattr(queue_module, "item_to_task", without_image_for_the_middle_one)
    queue = ReviewQueue(client, project_id, labelstudio.document_root)
    confirmed = [items[0].request_id, items[2].request_id]
    assert queue.deliver(items) == confirmed
    assert queue.deliver(items) == confirmed  # retried later: still refused, the others not duplicated
    assert _request_ids(labelstudio, project_id) == Counter(confirmed)


def test_a_videos_frames_reach_label_studio_pre_annotated_and_come_back_as_coco(
    labelstudio: LabelStudioServer, pretrained_artifact: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`posewheel predict clip.mp4 --review`, `labels drain`, `annotate`, `export`: each sampled frame of a
    video of real people becomes a Label Studio task showing that frame with the model's persons on it and
    saying where it came from (VIDEO#t=SECONDS), and the corrected persons come back as COCO labels on the
    frame that say so too."""
    from posewheel.artifact import production_dir
    from serving.cli import register as register_serving
    from tests.support.moving_people import crossing_clips, write_video

    for key, value in labelstudio.env(project_title=f"video-{uuid.uuid4().hex[:8]}").items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("POSEWHEEL_ROOT", str(tmp_path))  # var/outbox, var/truth under tmp_path
    monkeypatch.setenv("POSEWHEEL_IMAGE_STORE_DIR", str(labelstudio.image_root))  # where Label Studio serves from
    monkeypatch.setenv("POSEWHEEL_REVIEW_THRESHOLD", "1.0")  # every frame with a person is queued
    monkeypatch.setenv("POSEWHEEL_REVIEW_RANDOM_FRACTION", "0")
    clip = crossing_clips()[1]
    write_video(clip.frames, tmp_path / "walk.mp4")
    app = typer.Typer()
    register_serving(app)
    register(app)
    runner = CliRunner()
    model = str(production_dir(pretrained_artifact.parent))
    args = ["predict", str(tmp_path / "walk.mp4"), "--model", model, "--fps", "1", "--review", "--no-progress"]
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "walk.json")])
    assert result.exit_code == 0, result.output
    answered = json.loads((tmp_path / "walk.json").read_text())
    frames = sorted({r["frame_index"] for r in answered})
    assert frames == [0, 25, 50, 75]  # 4 s at 1 frame a second, each with someone in it

    items = Outbox(tmp_path / "var" / "outbox").pending()
    assert len(items) == len(frames) and {(i.width, i.height) for i in items} == {clip.frames[0].size}
    assert sorted(i.source or "" for i in items) == [f"{tmp_path / 'walk.mp4'}#t={f / 25:.3f}" for f in frames]
    truth = TruthStore(tmp_path / "var" / "truth")
    for item in items:  # the annotator's corrections: every joint 3 px right of the prediction, all visible
        truth.put(item.image_sha256, [
            {"keypoints": [[k.x + 3.0, k.y, V_VISIBLE] for k in pose.keypoints], "bbox": list(pose.box)}
            for pose in item.poses
        ])  # fmt: skip
    result = runner.invoke(app, ["labels", "drain"])
    assert result.exit_code == 0 and f"{len(items)} review item(s) delivered" in result.output, result.output

    settings = LabelStudioSettings()
    project_id = find_project(labelstudio.client, settings.project_title)
    assert project_id is not None
    tasks = list(labelstudio.client.tasks.list(project=project_id, resolve_uri=False))
    auth = {"Authorization": f"Token {labelstudio.settings.credentials().token}"}
    by_request = {i.request_id: i for i in items}
    for task in tasks:
        item = by_request[task.data["request_id"]]
        assert task.data["source"] == item.source  # which video, which moment: shown in the data manager
        shown = httpx.get(labelstudio.settings.base_url + task.data["image"], headers=auth)
        with Image.open(io.BytesIO(shown.content)) as frame:
            assert frame.size == clip.frames[0].size  # the frame, upright, not the video
        nose = next(r for r in task.predictions[0].result if r["type"] == "keypointlabels")["value"]
        assert (nose["x"] * item.width / 100, nose["y"] * item.height / 100) == pytest.approx(
            (item.poses[0].keypoints[0].x, item.poses[0].keypoints[0].y), abs=0.01
        )

    result = runner.invoke(app, ["labels", "annotate", "--noise-px", "0", "--skip-rate", "0"])
    assert result.exit_code == 0 and f"annotated {len(items)} task(s)" in result.output, result.output
    result = runner.invoke(app, ["labels", "export", "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    exported = load(tmp_path / "out")
    assert len(exported.images) == len(items)
    assert {(im.width, im.height) for im in exported.images} == {clip.frames[0].size}
    assert len(exported.annotations) == sum(len(i.poses) for i in items)
    for annotation in exported.annotations:  # each exported person is one the annotator corrected on that frame
        assert annotation.extra["source"] == by_request[annotation.extra["request_id"]].source
        corrected = truth.get(by_request[annotation.extra["request_id"]].image_sha256)
        assert any(np.allclose(annotation.keypoints, person["keypoints"], atol=0.01) for person in corrected)
