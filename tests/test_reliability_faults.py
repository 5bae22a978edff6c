"""Faults against the real components: Label Studio stopped, the API server and the label export killed
with SIGKILL, a broken model promoted, two `dvc repro` at once. Nothing is lost, nothing duplicated.

Larger versions run in benchmarks/ (fault_labelstudio.py: 500 predictions; fault_server.py: 500).
"""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest

from flywheel.pipeline import dvc_command, venv_environ
from labeling.project import ensure_project
from labeling.queue import OutboxDrainer, item_to_task
from posewheel import atomic
from posewheel.artifact import promote
from posewheel.imagestore import ImageStore
from posewheel.review import Outbox, PredictedKeypoint, PredictedPose, ReviewItem
from posewheel.schema import KEYPOINT_NAMES
from tests.support.faults import run_fault
from tests.support.flywheel import make_project
from tests.support.labelstudio import LabelStudioServer
from tests.support.onnx_models import MakeArtifact, spot_image
from tests.support.server import StartServer
from tests.support.server_process import distinct_images, predict_images, project_request_ids
from tests.support.waiting import wait_for


def _metric(url: str, name: str) -> float:
    for line in httpx.get(url + "/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


@pytest.mark.labelstudio
def test_label_studio_stopped_while_predictions_arrive_every_item_reaches_it_exactly_once(
    labelstudio: LabelStudioServer, start_server: StartServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    title = f"outage-{uuid.uuid4().hex[:8]}"
    for key, value in labelstudio.env(project_title=title).items():
        monkeypatch.setenv(key, value)
    server = start_server(
        review_drain=True, review_threshold=1.0, review_random_fraction=1.0, review_cap_per_hour=1_000_000,
        image_store_dir=labelstudio.image_root,
    )  # fmt: skip
    outbox = Outbox(tmp_path / "var" / "outbox")
    images = distinct_images(60, seed=17)
    answers = predict_images(server.url, images[:20])
    wait_for(lambda: outbox.delivered() == 20, 60, "the first 20 items to reach Label Studio")
    labelstudio.stop()
    try:
        answers += predict_images(server.url, images[20:40])  # served while Label Studio is down
        assert all(a["review"]["queued"] for a in answers)
        wait_for(lambda: outbox.depth() == 20, 30, "the 20 items of the outage to wait in the outbox")
        drainer = server.service.drainer
        assert isinstance(drainer, OutboxDrainer)  # Label Studio's ReviewDrainer
        wait_for(lambda: drainer.failures >= 1, 30, "the drainer to notice the outage")
    finally:
        labelstudio.start()
    answers += predict_images(server.url, images[40:])
    wait_for(lambda: outbox.delivered() == 60 and outbox.depth() == 0, 120, "the outbox to drain after the restart")
    held = project_request_ids(labelstudio.client, title)
    assert held == Counter({a["request_id"]: 1 for a in answers})


@pytest.mark.labelstudio
def test_api_server_killed_while_draining_loses_and_duplicates_no_review_item(
    labelstudio: LabelStudioServer, tmp_path: Path
) -> None:
    result = run_fault(labelstudio, tmp_path, count=150, kills=1)
    assert result["kills"] == 1, f"the drain finished before the kill: {result}"
    assert 0 < result["acked_at_kill"][0] < 150
    assert (result["tasks"], result["missing"], result["duplicated"]) == (150, 0, 0), result


def test_broken_models_flipped_into_production_are_refused_logged_and_counted_while_v1_serves(
    start_server: StartServer, make_artifact: MakeArtifact, production_model: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """tests/test_serving_engine.py covers garbage ONNX and a wrong output shape; these are the other ways."""
    models = production_model.parent
    server = start_server(reload_poll_s=0.1)
    truncated = make_artifact("truncated")
    data = (truncated / "model.onnx").read_bytes()
    (truncated / "model.onnx").write_bytes(data[: len(data) // 2])  # a copy that stopped half way
    bad_card = make_artifact("badcard")
    (bad_card / "card.json").write_text('{"version": "badcard", "input": ')  # promote() would refuse: flip by hand
    other_schema = make_artifact("otherschema")  # loads and runs, but its joints are not COCO-17
    card = json.loads((other_schema / "card.json").read_text())
    card["keypoint_names"] = [f"joint{i}" for i in range(17)]
    (other_schema / "card.json").write_text(json.dumps(card))
    flips: list[tuple[str, Callable[[], object]]] = [
        ("truncated", lambda: promote(models, "truncated")),
        ("otherschema", lambda: atomic.point_symlink(models / "production", "otherschema")),
        ("badcard", lambda: atomic.point_symlink(models / "production", "badcard")),
        ("missing", lambda: atomic.point_symlink(models / "production", "no-such-version")),
    ]
    caplog.set_level(logging.ERROR, logger="serving.reload")
    for n, (name, flip) in enumerate(flips, start=1):
        flip()
        refused = lambda: _metric(server.url, "posewheel_model_reload_failures_total") >= n  # noqa: B023, E731
        wait_for(refused, 15, f"{name} to be refused")
        assert _metric(server.url, "posewheel_model_reload_failures_total") == n
        ready = httpx.get(server.url + "/readyz")
        assert ready.status_code == 200 and ready.json()["model_version"] == "v1", name
        r = httpx.post(server.url + "/v1/predict", files={"image": ("s.png", spot_image(64, 64, (32, 32)))})
        assert r.status_code == 200 and r.json()["model_version"] == "v1", name
        refusals = [rec.getMessage() for rec in caplog.records if "model refused, still serving v1" in rec.getMessage()]
        assert len(refusals) == n, f"{name}: {refusals}"
    assert 'posewheel_model_info{version="v1"} 1.0' in httpx.get(server.url + "/metrics").text
    time.sleep(0.5)  # the watcher keeps polling: a refused artifact is not retried (no new count) until it changes
    assert _metric(server.url, "posewheel_model_reload_failures_total") == len(flips)


def _annotated_tasks(client_store: ImageStore, project_store: ImageStore, count: int, seed: int) -> list[dict]:
    """`count` Label Studio tasks that already carry a completed annotation (the prediction, accepted)."""
    rng = np.random.default_rng(seed)
    tasks = []
    for n in range(count):
        data = spot_image(96, 128, (int(rng.integers(10, 86)), int(rng.integers(10, 118))), size=8 + n % 5)
        sha = client_store.put(data)
        project_store.put(data)
        keypoints = [PredictedKeypoint(name=name, x=float(rng.uniform(5, 90)), y=float(rng.uniform(5, 120)),
                                       score=0.9) for name in KEYPOINT_NAMES]  # fmt: skip
        item = ReviewItem(request_id=f"req-{seed}-{n}", image_sha256=sha, image_path=str(client_store.path_for(sha)),
                          width=96, height=128, model_version="v1", score=0.9, reason="random",
                          poses=[PredictedPose(box=(2, 2, 90, 120), score=0.9, keypoints=keypoints)])  # fmt: skip
        task = item_to_task(item, f"/data/local-files/?d=images/{sha[:2]}/{sha}")
        task["annotations"] = [{"result": task["predictions"][0]["result"]}]
        tasks.append(task)
    return tasks


def _snapshot(folder: Path) -> tuple[bytes, frozenset[str]]:
    """The feedback dataset as (annotations.json bytes, image file names); asserts it is self-consistent."""
    text = (folder / "annotations.json").read_bytes()
    files = frozenset(p.name for p in (folder / "images").iterdir())
    referenced = {img["file_name"] for img in json.loads(text)["images"]}
    assert referenced == set(files), f"{folder}: images and annotations disagree (a mix of two exports)"
    return text, files


@pytest.mark.labelstudio
@pytest.mark.slow
def test_label_export_killed_half_way_leaves_the_old_or_the_new_snapshot_and_the_next_repro_succeeds(
    labelstudio: LabelStudioServer, tmp_path: Path
) -> None:
    project = make_project(tmp_path / "project")
    title = f"export-{uuid.uuid4().hex[:8]}"
    env = {**project.env, **labelstudio.env(project_title=title)}
    project_id = ensure_project(labelstudio.client, title)
    stores = ImageStore(labelstudio.image_root), ImageStore(project.root / "var" / "images")
    import_tasks = labelstudio.client.projects.import_tasks
    import_tasks(project_id, request=_annotated_tasks(*stores, 40, seed=1))  # type: ignore[arg-type]

    def repro() -> subprocess.Popen[str]:
        return subprocess.Popen(dvc_command("repro", "labels"), cwd=project.root, env=venv_environ(env), text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip

    first = repro()
    out, _ = first.communicate(timeout=180)
    assert first.returncode == 0, out
    feedback = project.root / "data" / "feedback"
    old = _snapshot(feedback)
    import_tasks(project_id, request=_annotated_tasks(*stores, 300, seed=2))  # type: ignore[arg-type]

    seen, killed_mid_swap = [], 0
    rng = random.Random(0)

    def stages() -> set[str]:
        return {p.name for p in feedback.parent.iterdir() if p.name.startswith(".feedback.stage-")}

    for _attempt in range(4):
        earlier = stages()  # half-built folders of earlier kills
        proc = repro()
        deadline = time.monotonic() + 180
        while proc.poll() is None and time.monotonic() < deadline:
            if stages() - earlier:
                time.sleep(rng.uniform(0.0, 0.01))  # somewhere inside the staging of the new folder
                break
            time.sleep(0.001)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            killed_mid_swap += 1
        proc.communicate(timeout=30)
        seen.append(_snapshot(feedback))
        if seen[-1] != old:
            break  # the kill came after the swap: the new snapshot is there whole
    # A kill inside the staging leaves its half-built folder beside data/feedback: proof it landed half way.
    left_behind = sorted(stages())
    last = repro()
    out, _ = last.communicate(timeout=180)
    assert last.returncode == 0, f"the repro after the kill failed:\n{out}"
    new = _snapshot(feedback)
    assert new != old and len(new[1]) == 340
    assert set(seen) <= {old, new}, "a killed export left a snapshot that is neither the old nor the new one"
    assert killed_mid_swap >= 1, "no kill landed while the export was running"
    print(f"snapshots seen after kills: {[s == old for s in seen]} (True = old); half-built folders: {left_behind}")
    assert left_behind, "no kill landed inside the staging of the new snapshot"
    assert not stages(), "the next export did not clear the half-built folders of killed ones"
    status = subprocess.run(dvc_command("status", "labels"), cwd=project.root, env=venv_environ(env), text=True,
                            capture_output=True, check=False)  # fmt: skip
    assert status.returncode == 0, status.stdout + status.stderr


def test_two_dvc_repro_at_once_the_second_stops_on_the_lock_and_the_first_finishes(tmp_path: Path) -> None:
    small = {"synth": {"seed_count": 300, "holdout_count": 60, "scenes_count": 30}}
    project = make_project(tmp_path / "project", small)
    env = venv_environ(project.env)
    first = subprocess.Popen(dvc_command("repro", "synth"), cwd=project.root, env=env, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        # The stage writes its truth store first: from then on the first repro holds the lock.
        wait_for(lambda: (project.root / "var").exists() or first.poll() is not None, 60, "the synth stage to start")
        assert first.poll() is None, "the first repro ended before the second could start"
        second = subprocess.run(dvc_command("repro", "synth"), cwd=project.root, env=env, text=True,
                                capture_output=True, check=False, timeout=120)  # fmt: skip
    finally:
        out, _ = first.communicate(timeout=180)
    assert second.returncode != 0
    # DVC frees its repo lock while a stage command runs; the stage's read/write lock on its outputs stops the second.
    assert "is busy, it is being blocked by" in second.stderr and f"(PID {first.pid})" in second.stderr, second.stderr
    assert "Traceback" not in second.stderr
    assert first.returncode == 0, out
    status = subprocess.run(dvc_command("status"), cwd=project.root, env=env, text=True, capture_output=True)
    assert "synth" not in status.stdout, status.stdout  # the first run's outputs are complete and recorded
