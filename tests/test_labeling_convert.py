"""Labeling promises that need no server: exact conversions, strict validation, safe secrets."""

from __future__ import annotations

import json
import socket
import stat
import subprocess
import time

import numpy as np
import pytest
from PIL import Image

from labeling import labelstudio_process
from labeling.coco_export import tasks_to_dataset
from labeling.project import label_config
from labeling.queue import start_drainer
from labeling.results import LabelError, pose_to_results, results_to_persons
from labeling.settings import LabelStudioSettings
from posewheel.dataset import load, save
from posewheel.imagestore import ImageStore
from posewheel.review import Outbox, ReviewItem
from posewheel.schema import KEYPOINT_NAMES, V_NOT_LABELED, V_OCCLUDED, V_VISIBLE


def _pose(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    kps = np.zeros((17, 3))
    kps[:, 0] = rng.uniform(0, width, 17)
    kps[:, 1] = rng.uniform(0, height, 17)
    kps[:, 2] = rng.choice([V_NOT_LABELED, V_OCCLUDED, V_VISIBLE], 17)
    kps[0] = (0.0, height, V_VISIBLE)  # the image corners are inside
    kps[1] = (width, 0.0, V_OCCLUDED)
    return kps


def test_coco_to_label_studio_and_back_keeps_keypoints_to_a_hundredth_of_a_pixel() -> None:
    rng = np.random.default_rng(0)
    for width, height in [(640, 480), (193, 257), (1, 3000)]:
        poses = [_pose(rng, width, height) for _ in range(3)]
        results = []
        for k, kps in enumerate(poses):
            results += pose_to_results(kps, width, height, person=k, bbox=[1.5, 2.25, width / 2, height / 3])
        back = results_to_persons(json.loads(json.dumps(results)), where="task 1")
        assert len(back) == 3
        for kps, person in zip(poses, back, strict=True):
            labeled = kps[:, 2] > 0
            np.testing.assert_array_equal(person.keypoints[:, 2], kps[:, 2])
            np.testing.assert_allclose(person.keypoints[labeled, :2], kps[labeled, :2], atol=0.01)
            assert np.all(person.keypoints[~labeled] == 0)
            assert person.bbox is not None
            np.testing.assert_allclose(person.bbox, [1.5, 2.25, width / 2, height / 3], atol=0.01)


def test_label_studio_results_are_percent_of_the_original_image() -> None:
    kps = np.zeros((17, 3))
    kps[KEYPOINT_NAMES.index("left_wrist")] = (50.0, 30.0, V_OCCLUDED)
    results = pose_to_results(kps, 200, 120, scores=[0.25] * 17)
    point = next(r for r in results if r["type"] == "keypointlabels")
    assert point["value"]["x"] == pytest.approx(25.0) and point["value"]["y"] == pytest.approx(25.0)
    assert point["value"]["keypointlabels"] == ["left_wrist"] and point["score"] == 0.25
    choice = next(r for r in results if r["type"] == "choices")
    assert choice["id"] == point["id"] and choice["value"]["choices"] == ["occluded"]


def test_a_joint_the_annotator_adds_joins_the_person_whose_box_holds_it() -> None:
    a, b = np.zeros((17, 3)), np.zeros((17, 3))
    a[0], b[0] = (20, 20, V_VISIBLE), (120, 20, V_VISIBLE)
    results = pose_to_results(a, 200, 100, person=0, bbox=[0, 0, 90, 100])
    results += pose_to_results(b, 200, 100, person=1, bbox=[100, 0, 90, 100])
    added = {"id": "Xy7Kq2", "type": "keypointlabels", "from_name": "keypoints", "to_name": "image",
             "original_width": 200, "original_height": 100, "value": {"x": 75.0, "y": 50.0, "width": 0.6,
             "keypointlabels": ["right_hip"]}}  # fmt: skip
    persons = results_to_persons([*results, added], where="task 7")
    assert persons[1].keypoints[KEYPOINT_NAMES.index("right_hip")].tolist() == [150.0, 50.0, V_VISIBLE]
    assert persons[0].keypoints[KEYPOINT_NAMES.index("right_hip"), 2] == V_NOT_LABELED


def _drawn_by_hand(results: list[dict], suffix: str) -> list[dict]:
    """Regions as Label Studio saves what an annotator drew: random ids (a choice shares its keypoint's)."""
    return [{**r, "id": r["id"].replace("p0-", f"x{suffix}")} for r in results]


def test_missed_persons_drawn_as_a_box_then_their_joints_keep_them_where_boxes_overlap() -> None:
    small, large = np.zeros((17, 3)), np.zeros((17, 3))
    small[0], small[5] = (30, 30, V_VISIBLE), (35, 50, V_OCCLUDED)
    large[0], large[5], large[6] = (40, 35, V_VISIBLE), (32, 52, V_VISIBLE), (90, 60, V_VISIBLE)  # 0, 5 in both boxes
    first = _drawn_by_hand(pose_to_results(small, 200, 100, bbox=[20, 20, 30, 40]), "a")
    second = _drawn_by_hand(pose_to_results(large, 200, 100, bbox=[10, 10, 100, 80]), "b")
    persons = results_to_persons([*first, *second], where="task 8")
    assert len(persons) == 2
    np.testing.assert_allclose(persons[0].keypoints, small, atol=1e-9)
    np.testing.assert_allclose(persons[1].keypoints, large, atol=1e-9)
    # A joint nested under a box in Label Studio's outliner (parentID) joins that box's person.
    extra = _drawn_by_hand(pose_to_results(_one_joint(14, 45.0, 40.0), 200, 100), "c")
    extra = [{**r, "parentID": first[0]["id"]} for r in extra]
    persons = results_to_persons([*first, *second, *extra], where="task 8")
    assert persons[0].keypoints[14].tolist() == [45.0, 40.0, V_VISIBLE] and persons[1].keypoints[14, 2] == 0


def _one_joint(j: int, x: float, y: float) -> np.ndarray:
    kps = np.zeros((17, 3))
    kps[j] = (x, y, V_VISIBLE)
    return kps


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("keypointlabels", ["left_antenna"], "keypoint label ['left_antenna']"),
        ("from_name", "kp", "from_name='kp'"),
    ],
)
def test_export_rejects_labels_that_are_not_ours_naming_the_task(field: str, value: object, message: str) -> None:
    kps = np.zeros((17, 3))
    kps[3] = (5, 5, V_VISIBLE)
    results = pose_to_results(kps, 10, 10)
    point = next(r for r in results if r["type"] == "keypointlabels")
    if field == "from_name":
        point["from_name"] = value
    else:
        point["value"][field] = value
    with pytest.raises(LabelError, match=r"task 42") as info:
        results_to_persons(results, where="task 42")
    assert message in str(info.value)


def _export_task(task_id: int, sha: str, kps: np.ndarray, cancelled: bool = False, box: bool = True) -> dict:
    results = pose_to_results(kps, 64, 48, bbox=[2, 3, 40, 40] if box else None)
    annotation = {"id": 100 + task_id, "completed_by": 1, "lead_time": 12.5, "was_cancelled": cancelled,
                  "result": [] if cancelled else results, "updated_at": "2026-01-01T00:00:00Z"}  # fmt: skip
    data = {"image_sha256": sha, "request_id": f"r{task_id}", "model_version": "m1"}
    return {"id": task_id, "data": data, "annotations": [annotation]}


def test_export_is_byte_identical_drops_skipped_tasks_and_keeps_provenance(tmp_path) -> None:
    store = ImageStore(tmp_path / "store")
    shas = []
    for n in range(3):
        path = tmp_path / f"{n}.png"
        Image.new("RGB", (64, 48), (n * 60, 10, 10)).save(path)
        shas.append(store.put(path.read_bytes()))
    kps = np.zeros((17, 3))
    kps[5], kps[6] = (10.25, 11.5, V_VISIBLE), (30.0, 12.0, V_OCCLUDED)
    tasks = [_export_task(3, shas[2], kps, box=False), _export_task(1, shas[0], kps),
             _export_task(2, shas[1], kps, cancelled=True)]  # fmt: skip
    outputs = []
    for n in range(2):
        dataset, sources, skipped, problems = tasks_to_dataset(list(reversed(tasks)) if n else tasks, store)
        assert problems == [] and skipped == 1
        save(dataset, tmp_path / f"out{n}", image_sources=sources)
        outputs.append((tmp_path / f"out{n}" / "annotations.json").read_bytes())
    assert outputs[0] == outputs[1]
    ds = load(tmp_path / "out0")
    assert [img.id for img in ds.images] == [1, 3]
    first = ds.annotations[0]
    assert first.keypoints[5].tolist() == [10.25, 11.5, 2] and first.keypoints[6].tolist() == [30, 12, 1]
    assert first.bbox == (2, 3, 40, 40)
    assert ds.annotations[1].bbox[2] > 0  # no rectangle: box from the points
    assert first.extra == {"ls_task_id": 1, "ls_annotation_id": 101, "annotator": 1, "lead_time_s": 12.5,
                           "request_id": "r1", "model_version": "m1"}  # fmt: skip
    assert (tmp_path / "out0" / "images" / f"{shas[0]}.png").read_bytes() == store.get(shas[0])


def test_an_image_confirmed_empty_exports_with_no_annotation_and_a_box_alone_is_left_out(tmp_path) -> None:
    store = ImageStore(tmp_path / "store")
    shas = []
    for n in range(2):
        path = tmp_path / f"{n}.png"
        Image.new("RGB", (64, 48), (n * 90, 10, 10)).save(path)
        shas.append(store.put(path.read_bytes()))
    empty = _export_task(1, shas[0], np.zeros((17, 3)), box=False)  # every pre-annotated person deleted
    box_alone = _export_task(2, shas[1], np.zeros((17, 3)))  # someone is there, no joint placed
    assert empty["annotations"][0]["result"] == [] and box_alone["annotations"][0]["result"]
    dataset, _, skipped, problems = tasks_to_dataset([empty, box_alone], store)
    assert problems == [] and skipped == 1
    assert [img.id for img in dataset.images] == [1] and dataset.annotations == []
    assert dataset.images[0].extra["confirmed_empty"]["ls_annotation_id"] == 101  # whose label says so


def test_labeling_config_names_the_17_coco_joints_with_their_index() -> None:
    config = label_config()
    for i, name in enumerate(KEYPOINT_NAMES):
        assert f'<Label value="{name}" model_index="{i}"' in config
    assert 'perRegion="true"' in config


def test_generated_secrets_are_private_short_enough_and_never_printed(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("POSEWHEEL_LABELSTUDIO_URL", raising=False)
    settings = LabelStudioSettings(secrets_file=tmp_path / "s.json", password=None, token=None, url=None)
    assert not settings.configured
    creds = settings.credentials(create=True)
    assert settings.configured
    assert stat.S_IMODE((tmp_path / "s.json").stat().st_mode) == 0o600
    assert len(creds.token) <= 40 and creds.password
    assert settings.credentials() == creds  # generated once, then read back
    again = LabelStudioSettings(secrets_file=tmp_path / "s.json", password="pw-from-env", token=creds.token, url=None)
    assert again.credentials().password == "pw-from-env"
    assert creds.token not in repr(again) and "pw-from-env" not in f"{again}"


def test_start_refuses_a_busy_port_instead_of_drifting_to_the_next(tmp_path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        settings = LabelStudioSettings(host="127.0.0.1", port=port, url=None, data_dir=tmp_path,
                                       secrets_file=tmp_path / "s.json")  # fmt: skip
        with pytest.raises(labelstudio_process.LabelStudioServiceError, match=f"{port} is already in use"):
            labelstudio_process.start(settings)


def test_drainer_started_while_label_studio_is_down_keeps_items_and_retries(tmp_path, monkeypatch) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("POSEWHEEL_LABELSTUDIO_URL", f"http://127.0.0.1:{port}")
    settings = LabelStudioSettings(token="t" * 40, secrets_file=tmp_path / "none.json")
    assert settings.configured  # pointed to by URL, no secrets file needed
    outbox = Outbox(tmp_path / "outbox")
    outbox.put(ReviewItem(request_id="r1", image_sha256="0" * 64, image_path=str(tmp_path / "x"), width=4, height=4,
                          model_version="m", poses=[], score=0.1, reason="random"))  # fmt: skip
    drainer = start_drainer(tmp_path / "outbox", settings, poll_interval_s=0.05, backoff_initial_s=0.05,
                            backoff_max_s=0.1)  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while drainer.failures < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert drainer.failures >= 3 and "ConnectError" in (drainer.last_error or "")
        assert drainer._thread is not None and drainer._thread.is_alive()
    finally:
        drainer.stop()
    assert outbox.depth() == 1


def test_start_fails_when_label_studio_drifts_to_another_port(tmp_path) -> None:
    settings = LabelStudioSettings(host="127.0.0.1", port=18999, url=None, data_dir=tmp_path,
                                   secrets_file=tmp_path / "s.json", start_timeout_s=10)  # fmt: skip
    settings.log_file.write_bytes(b"old run: Starting development server at http://127.0.0.1:18999/\n")
    offset = settings.log_file.stat().st_size
    with open(settings.log_file, "ab") as log:  # what Label Studio prints after a silent port change
        log.write(b"*** WARNING! ***\nStarting development server at http://127.0.0.1:19000/\n")
    process = subprocess.Popen(["sleep", "30"])
    try:
        with pytest.raises(labelstudio_process.LabelStudioServiceError, match="it moved to port 19000"):
            labelstudio_process._wait_started(settings, process, offset)
    finally:
        process.kill()
        process.wait()
