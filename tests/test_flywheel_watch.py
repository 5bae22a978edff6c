"""`posewheel flywheel watch` runs the pipeline only when enough new labels wait, and never twice at once."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from flywheel.pipeline import PipelinePaths
from flywheel.watch import label_studio_counter, poll
from labeling.annotator import annotate
from labeling.coco_export import export_coco
from labeling.project import ensure_project
from labeling.queue import ReviewQueue
from posewheel.imagestore import ImageStore
from posewheel.review import PredictedKeypoint, PredictedPose, ReviewItem
from posewheel.schema import KEYPOINT_NAMES, V_VISIBLE
from posewheel.truth import TruthStore
from tests.support.labelstudio import LabelStudioServer

POSEWHEEL = str(Path(sys.executable).with_name("posewheel"))


class FakePipeline:
    """Stands in for `dvc repro`: counts its runs and writes the promotion record a real run would."""

    def __init__(self, paths: PipelinePaths, code: int = 0, promoted: bool | None = True) -> None:
        self.paths, self.code, self.promoted, self.runs = paths, code, promoted, 0

    def __call__(self) -> int:
        self.runs += 1
        if self.promoted is not None:
            record = {"promoted": self.promoted, "candidate_version": f"m-{self.runs}", "reason": "the rule said so"}
            self.paths.promotion.parent.mkdir(parents=True, exist_ok=True)
            self.paths.promotion.write_text(json.dumps(record))
        return self.code


def test_fewer_new_labels_than_the_threshold_do_not_run_the_pipeline(tmp_path: Path) -> None:
    paths = PipelinePaths(tmp_path)
    pipeline = FakePipeline(paths)
    line, failed = poll(paths, lambda: 4, min_labels=5, run_pipeline=pipeline)
    assert pipeline.runs == 0 and not failed
    assert line == "waiting: 4 new label(s) < 5, not running"


def test_enough_new_labels_run_the_pipeline_once_and_say_what_it_promoted(tmp_path: Path) -> None:
    paths = PipelinePaths(tmp_path)
    pipeline = FakePipeline(paths, promoted=True)
    line, failed = poll(paths, lambda: 5, min_labels=5, run_pipeline=pipeline)
    assert pipeline.runs == 1 and not failed
    assert line.startswith("done in ") and line.endswith("promoted m-1 (the rule said so)")

    refused = FakePipeline(paths, promoted=False)
    line, _ = poll(paths, lambda: 9, min_labels=5, run_pipeline=refused)
    assert line.endswith("not promoted m-1: the rule said so")


def test_a_run_that_changes_nothing_downstream_says_so(tmp_path: Path) -> None:
    paths = PipelinePaths(tmp_path)
    poll(paths, lambda: 5, min_labels=5, run_pipeline=FakePipeline(paths))
    unchanged = FakePipeline(paths, promoted=None)  # promote did not run again: the record is as it was
    line, failed = poll(paths, lambda: 5, min_labels=5, run_pipeline=unchanged)
    assert (
        unchanged.runs == 1
        and not failed
        and line.endswith("no new candidate (nothing changed downstream of the export)")
    )


def test_a_failed_run_or_an_unreachable_label_studio_is_a_failed_poll(tmp_path: Path) -> None:
    paths = PipelinePaths(tmp_path)
    line, failed = poll(paths, lambda: 5, min_labels=5, run_pipeline=FakePipeline(paths, code=2, promoted=None))
    assert failed and line.startswith("failed: dvc repro exited 2")

    def unreachable() -> int:
        raise ConnectionError("connection refused")

    pipeline = FakePipeline(paths)
    line, failed = poll(paths, unreachable, min_labels=5, run_pipeline=pipeline)
    assert failed and pipeline.runs == 0 and line == "error: cannot count the waiting labels: connection refused"


def _env(root: Path) -> dict[str, str]:
    """A project at `root` with no Label Studio configured (whatever this shell points at)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSEWHEEL_")}
    return {**env, "POSEWHEEL_ROOT": str(root)}


HOLD_THE_LOCK = """
import sys, time
from flywheel.pipeline import PipelinePaths, pipeline_lock
with pipeline_lock(PipelinePaths.from_settings()):
    print("held", flush=True)
    time.sleep(120)
"""


@pytest.mark.timeout(120)
def test_a_second_run_exits_with_a_clear_message_while_one_holds_the_lock(tmp_path: Path) -> None:
    """Real processes: one holds var/flywheel.lock as a run does; `watch` and `repro` refuse to start beside it."""
    env = _env(tmp_path)
    holder = subprocess.Popen([sys.executable, "-c", HOLD_THE_LOCK], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        watcher = subprocess.run(
            [POSEWHEEL, "flywheel", "watch", "--once", "--min-labels", "1"],
            env=env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        busy = f"a pipeline run is already under way (pid {holder.pid} since "
        assert watcher.returncode == 0 and busy in watcher.stderr and "skipped this poll" in watcher.stderr
        log_lines = (tmp_path / "var" / "log" / "flywheel-watch.log").read_text().splitlines()
        assert len(log_lines) == 1 and busy in log_lines[0]

        manual = subprocess.run(
            [POSEWHEEL, "flywheel", "repro"], env=env, capture_output=True, text=True, timeout=60, check=False
        )
        assert manual.returncode == 1 and f"not started: {busy}" in manual.stderr

        status = subprocess.run([POSEWHEEL, "flywheel", "status"], env=env, capture_output=True, text=True, check=True)
        assert f"pipeline: running, pid {holder.pid} since " in status.stdout
        assert "last watch poll: " in status.stdout and busy in status.stdout
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()

    # Killed mid-run, the holder leaves no stale lock: the next poll gets past it (and, with no Label
    # Studio configured here, says it cannot count).
    after = subprocess.run(
        [POSEWHEEL, "flywheel", "watch", "--once"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert after.returncode == 1 and "error: cannot count the waiting labels: Label Studio is not configured" in (
        after.stderr
    )
    status = subprocess.run([POSEWHEEL, "flywheel", "status"], env=env, capture_output=True, text=True, check=True)
    assert "pipeline: no run under way" in status.stdout


def _review_item(store: ImageStore, truth: TruthStore, seed: int) -> ReviewItem:
    """A synthetic image with known truth, predicted a few pixels off."""
    rng = np.random.default_rng(seed)
    width, height = 96, 128
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8)).save(buffer, format="PNG")
    sha = store.put(buffer.getvalue())
    points = np.column_stack(
        [rng.uniform(10, width - 10, 17), rng.uniform(10, height - 10, 17), np.full(17, V_VISIBLE)]
    )
    truth.put(sha, [{"keypoints": points.tolist(), "bbox": [5.0, 5.0, width - 10.0, height - 10.0]}])
    predicted = [
        PredictedKeypoint(name=name, x=float(x + 3), y=float(y - 3), score=0.5)
        for name, (x, y, _) in zip(KEYPOINT_NAMES, points, strict=True)
    ]
    return ReviewItem(
        request_id=f"req-{uuid.uuid4().hex[:12]}", image_sha256=sha, image_path=str(store.path_for(sha)),
        width=width, height=height, model_version="m1", score=0.1 * (seed + 1), reason="low_confidence",
        poses=[PredictedPose(box=(4.0, 4.0, width - 8.0, height - 8.0), score=0.5, keypoints=predicted)],
    )  # fmt: skip


@pytest.mark.labelstudio
def test_the_waiting_count_is_the_labels_the_last_export_does_not_hold(
    labelstudio: LabelStudioServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, title = labelstudio.client, f"watch-{uuid.uuid4().hex[:8]}"
    project_id = ensure_project(client, title)
    for key, value in labelstudio.env(project_title=title).items():
        monkeypatch.setenv(key, value)
    paths = PipelinePaths(tmp_path)
    waiting = label_studio_counter(paths)
    store, truth = ImageStore(labelstudio.image_root), TruthStore(tmp_path / "truth")
    ReviewQueue(client, project_id, labelstudio.document_root).deliver(
        [_review_item(store, truth, s) for s in range(4)]
    )
    assert waiting() == 0  # tasks, no labels yet

    assert annotate(client, project_id, truth, noise_px=0.5, skip_rate=0.0, limit=2).annotated == 2
    assert annotate(client, project_id, truth, skip_rate=1.0, limit=1).skipped == 1
    assert waiting() == 2  # a skipped task is no label

    export_coco(client, project_id, paths.feedback, store)  # what the pipeline's labels stage does
    assert waiting() == 0

    tasks: list[Any] = list(client.tasks.list(project=project_id))
    open_task = next(t for t in tasks if not t.annotations)
    assert annotate(client, project_id, truth, noise_px=0.5, skip_rate=0.0).annotated == 1
    tasks = list(client.tasks.list(project=project_id))
    exported_task = next(
        t for t in tasks if t.id != open_task.id and any(not a["was_cancelled"] for a in t.annotations)
    )
    result = next(a for a in exported_task.annotations if not a["was_cancelled"])["result"]
    client.annotations.create(int(exported_task.id), result=result, lead_time=3.0)  # corrected again
    assert waiting() == 2  # one new task, one task whose newest annotation is not the exported one


def test_an_image_confirmed_empty_is_a_waiting_label_until_exported(tmp_path: Path) -> None:
    from flywheel.watch import count_waiting, exported_labels

    joint = {"type": "keypointlabels", "value": {"x": 1, "y": 1, "keypointlabels": ["nose"]}}
    box = {"type": "rectanglelabels", "value": {"x": 1, "y": 1, "width": 5, "height": 5}}
    tasks = [
        {"id": 1, "annotations": [{"id": 11, "result": [joint]}]},
        {"id": 2, "annotations": [{"id": 21, "result": []}]},  # every person deleted: a negative
        {"id": 3, "annotations": [{"id": 31, "result": [box]}]},  # a box without joints: never exported
    ]
    assert count_waiting(tasks, set()) == 2
    feedback = tmp_path / "feedback"
    feedback.mkdir()
    dataset = {
        "images": [{"id": 2, "confirmed_empty": {"ls_task_id": 2, "ls_annotation_id": 21}}, {"id": 1}],
        "annotations": [{"image_id": 1, "ls_task_id": 1, "ls_annotation_id": 11}],
    }
    (feedback / "annotations.json").write_text(json.dumps(dataset))
    assert exported_labels(feedback) == {(1, 11), (2, 21)}
    assert count_waiting(tasks, exported_labels(feedback)) == 0
