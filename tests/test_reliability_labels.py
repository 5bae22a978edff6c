"""The label export never stops the loop on what Label Studio can hold: one image in several tasks,
partial or malformed regions, photos whose EXIF turns them. Bad regions are left out and counted;
only a task with nothing usable stops the export, and the message names it."""

from __future__ import annotations

import copy
import io
import uuid
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from labeling.coco_export import ExportError, export_coco, tasks_to_dataset
from labeling.queue import ReviewQueue
from labeling.results import pose_to_results
from posewheel.dataset import load, save
from posewheel.imagestore import ImageStore
from posewheel.review import Outbox, PredictedKeypoint, PredictedPose, ReviewItem
from posewheel.schema import KEYPOINT_NAMES, V_OCCLUDED, V_VISIBLE
from tests.support.labelstudio import LabelStudioServer

W, H = 64, 48


def _png(seed: int, size: tuple[int, int] = (W, H)) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _pose(x0: float, y0: float) -> np.ndarray:
    kps = np.zeros((17, 3))
    kps[5], kps[6], kps[11] = (x0, y0, V_VISIBLE), (x0 + 8, y0, V_OCCLUDED), (x0 + 2, y0 + 12, V_VISIBLE)
    return kps


def _task(task_id: int, sha: str, results: list[dict[str, Any]], updated: str = "2026-01-01T00:00:00Z") -> dict:
    annotation = {"id": 100 + task_id, "completed_by": 1, "was_cancelled": False, "result": results,
                  "updated_at": updated}  # fmt: skip
    return {"id": task_id, "data": {"image_sha256": sha, "request_id": f"r{task_id}"}, "annotations": [annotation]}


def test_the_same_image_in_several_tasks_exports_one_image_with_every_person(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "store")
    sha, other = store.put(_png(1)), store.put(_png(2))
    left = pose_to_results(_pose(5, 5), W, H, person=0, bbox=[2, 2, 24, 30])
    right = pose_to_results(_pose(40, 10), W, H, person=0, bbox=[36, 6, 24, 30])
    right_again = pose_to_results(_pose(41, 11), W, H, person=0, bbox=[37, 7, 24, 30])
    tasks = [
        _task(4, sha, left),  # a client retry: the same picture, another task, another person boxed
        _task(9, sha, right, updated="2026-01-02T00:00:00Z"),
        _task(11, other, left),
        _task(12, sha, right_again, updated="2026-01-03T00:00:00Z"),  # the right person corrected again
    ]
    dataset, sources, skipped, problems = tasks_to_dataset(tasks, store)
    assert problems == [] and skipped == 0
    save(dataset, tmp_path / "out", image_sources=sources)  # crashed with SameFileError before
    ds = load(tmp_path / "out")
    assert [(img.id, img.file_name.split(".")[0]) for img in ds.images] == [(4, sha), (11, other)]
    on_shared = [a for a in ds.annotations if a.image_id == 4]
    # Every person of the image is kept; the one labeled twice counts once, the newer label wins.
    assert sorted(a.extra["ls_task_id"] for a in on_shared) == [4, 12]
    newest = next(a for a in on_shared if a.extra["ls_task_id"] == 12)
    assert newest.keypoints[5].tolist() == pytest.approx([41, 11, V_VISIBLE], abs=0.01)


def _break(results: list[dict[str, Any]], how: str) -> list[dict[str, Any]]:
    broken = copy.deepcopy(results)
    point = next(r for r in broken if r["type"] == "keypointlabels")
    box = next(r for r in broken if r["type"] == "rectanglelabels")
    if how == "point without x":
        del point["value"]["x"]
    elif how == "box without original size":
        del box["original_width"], box["original_height"]
        del box["value"]["width"]
    elif how == "point x is a list":
        point["value"]["x"] = [12.5]
    elif how == "point y is NaN":
        point["value"]["y"] = float("nan")
    elif how == "value is null":
        point["value"] = None
    elif how == "point outside the image":
        point["value"]["x"] = 250.0
    elif how == "unknown joint":
        point["value"]["keypointlabels"] = ["left_antenna"]
    elif how == "region not an object":
        broken.append("oops")  # type: ignore[arg-type]
    elif how == "unknown tool":
        broken.append({"id": "z", "type": "polygonlabels", "from_name": "poly", "value": {}})
    return broken


@pytest.mark.parametrize(
    "how",
    ["point without x", "box without original size", "point x is a list", "point y is NaN", "value is null",
     "point outside the image", "unknown joint", "region not an object", "unknown tool"],
)  # fmt: skip
def test_a_bad_region_is_left_out_and_counted_while_the_rest_exports(tmp_path: Path, how: str) -> None:
    store = ImageStore(tmp_path / "store")
    sha, other = store.put(_png(1)), store.put(_png(2))
    good = pose_to_results(_pose(5, 5), W, H, person=0, bbox=[2, 2, 24, 30])
    tasks = [_task(1, sha, _break(good, how)), _task(2, other, good)]
    dataset, sources, _, problems = tasks_to_dataset(tasks, store)  # KeyError or a problem before
    assert problems == [], problems
    save(dataset, tmp_path / "out", image_sources=sources)
    ds = load(tmp_path / "out")
    assert [img.id for img in ds.images] == [1, 2] and len(ds.annotations) == 2
    bad: list[str] = []
    tasks_to_dataset(tasks, store, bad_regions=bad)
    assert len(bad) == 1 and bad[0].startswith("task 1 annotation 101: "), bad


def test_a_task_with_no_usable_region_stops_the_export_naming_it(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "store")
    sha = store.put(_png(1))
    results = pose_to_results(_pose(5, 5), W, H, person=0)
    for r in results:
        r.pop("original_width")
        r["value"].pop("x", None)
    _, _, _, problems = tasks_to_dataset([_task(7, sha, results), _task(8, sha, [])], store)
    assert len(problems) == 1 and problems[0].startswith("task 7: no usable person"), problems


def _item(store: ImageStore, data: bytes, x: float) -> ReviewItem:
    sha = store.put(data)
    kps = [PredictedKeypoint(name=n, x=x + j, y=10.0 + j, score=0.3) for j, n in enumerate(KEYPOINT_NAMES)]
    return ReviewItem(
        request_id=f"req-{uuid.uuid4().hex[:12]}", image_sha256=sha, image_path=str(store.path_for(sha)),
        width=W, height=H, model_version="m1", score=0.3, reason="low_confidence",
        poses=[PredictedPose(box=(x - 2, 4.0, 24.0, 36.0), score=0.3, keypoints=kps)],
    )  # fmt: skip


@pytest.mark.labelstudio
def test_label_studio_export_survives_a_retried_image_and_a_partial_region(
    labelstudio: LabelStudioServer, tmp_path: Path
) -> None:
    client, project_id = labelstudio.client, labelstudio.new_project("retry")
    store = ImageStore(labelstudio.image_root)
    data = _png(77)
    first, retry = _item(store, data, 6.0), _item(store, data, 36.0)  # one picture posted twice
    assert sorted(ReviewQueue(client, project_id, labelstudio.document_root).deliver([first, retry])) == sorted(
        [first.request_id, retry.request_id]
    )
    tasks: Any = client.tasks.list(project=project_id, fields="task_only", resolve_uri=False)
    for task in tasks:
        prediction: Any = (client.tasks.get(task.id).predictions or [None])[0]
        results: Any = copy.deepcopy(prediction["result"] if isinstance(prediction, dict) else prediction.result)
        if task.data["request_id"] == retry.request_id:
            point = next(r for r in results if r["type"] == "keypointlabels")
            del point["original_width"]
            del point["value"]["x"]  # a partial region, as an older Label Studio front end may save
        client.annotations.create(int(task.id), result=results, lead_time=3.0)
    summary = export_coco(client, project_id, tmp_path / "feedback", store)
    assert (summary.tasks, summary.persons, summary.bad_regions) == (1, 2, 1)
    ds = load(tmp_path / "feedback")
    assert len(ds.images) == 1 and {a.extra["request_id"] for a in ds.annotations} == {
        first.request_id, retry.request_id,
    }  # fmt: skip


def test_export_error_names_every_unusable_task() -> None:
    error = ExportError(["task 3: no usable person", "task 9: image 0123: missing"])
    assert "task 3" in str(error) and "task 9" in str(error)


def _rotated_photo() -> tuple[bytes, dict[str, tuple[int, int]]]:
    """A JPEG stored 64x48 with EXIF orientation 6 (upright 48x64, as a phone writes a portrait shot),
    and where its coloured 'body parts' are in the upright image: joint name -> (x, y) pixels."""
    upright = Image.new("RGB", (48, 64), (128, 128, 128))
    parts = {
        "nose": ((10, 8), (255, 0, 0)),
        "left_ankle": ((36, 54), (0, 0, 255)),
        "right_wrist": ((8, 40), (0, 255, 0)),
    }
    for (x, y), colour in parts.values():
        upright.paste(colour, (x - 4, y - 4, x + 5, y + 5))
    raw = upright.transpose(Image.Transpose.ROTATE_90)  # what exif_transpose (ROTATE_270) turns upright again
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    raw.save(buffer, "JPEG", quality=95, exif=exif.tobytes())
    return buffer.getvalue(), {name: xy for name, (xy, _) in parts.items()}


@pytest.mark.labelstudio
def test_a_rotated_photo_keeps_one_frame_from_the_server_through_label_studio_to_the_training_image(
    labelstudio: LabelStudioServer, start_server: Any, tmp_path: Path
) -> None:
    data, where = _rotated_photo()
    server = start_server(image_store_dir=labelstudio.image_root, review_threshold=1.0,
                          review_random_fraction=1.0)  # fmt: skip
    r = httpx.post(server.url + "/v1/predict", files={"image": ("phone.jpg", data, "image/jpeg")})
    assert r.status_code == 200 and r.json()["review"]["queued"], r.text
    assert (r.json()["width"], r.json()["height"]) == (48, 64)  # upright
    client, project_id = labelstudio.client, labelstudio.new_project("rotated")
    outbox = Outbox(server.settings.resolved_outbox_dir())
    [item] = outbox.pending()
    assert (item.width, item.height) == (48, 64)
    with Image.open(item.image_path) as stored:  # the store holds the frame the item speaks of
        assert stored.size == (48, 64) and stored.getexif().get(0x0112, 1) == 1
    assert ReviewQueue(client, project_id, labelstudio.document_root).deliver([item]) == [item.request_id]
    # An annotator puts each joint on its coloured part, in the image Label Studio shows (upright).
    kps = np.zeros((17, 3))
    for name, (x, y) in where.items():
        kps[KEYPOINT_NAMES.index(name)] = (x + 0.5, y + 0.5, V_VISIBLE)
    listed: Any = client.tasks.list(project=project_id, fields="task_only", resolve_uri=False)
    [task] = list(listed)
    client.annotations.create(int(task.id), result=pose_to_results(kps, 48, 64, bbox=[1, 1, 46, 62]), lead_time=5.0)
    export_coco(client, project_id, tmp_path / "feedback", ImageStore(labelstudio.image_root))
    ds = load(tmp_path / "feedback")  # validated: every joint inside its image
    [record], [annotation] = ds.images, ds.annotations
    assert (record.width, record.height) == (48, 64)
    with Image.open(ds.image_path(record)) as raw:  # as training reads it: no EXIF applied
        image = raw.convert("RGB")
    assert image.size == (48, 64)
    colours = {"nose": 0, "left_ankle": 2, "right_wrist": 1}  # the channel each part is painted in
    for name, channel in colours.items():
        x, y, v = annotation.keypoints[KEYPOINT_NAMES.index(name)]
        pixel: Any = image.getpixel((int(x), int(y)))
        assert v == V_VISIBLE and pixel[channel] > 180 and sum(pixel) - pixel[channel] < 150, (name, pixel)
