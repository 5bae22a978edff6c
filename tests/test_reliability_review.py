"""One bad file in the review outbox never blocks delivery: it is moved to failed/, logged and
counted, and every valid item behind it still reaches Label Studio."""

from __future__ import annotations

import io
import logging
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from labeling.queue import OutboxDrainer, ReviewQueue
from posewheel.imagestore import ImageStore
from posewheel.review import Outbox, PredictedKeypoint, PredictedPose, ReviewItem
from posewheel.schema import KEYPOINT_NAMES
from tests.support.labelstudio import LabelStudioServer


def _item(store: ImageStore, seed: int) -> ReviewItem:
    buffer = io.BytesIO()
    pixels = np.random.default_rng(seed).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(buffer, format="PNG")
    sha = store.put(buffer.getvalue())
    kps = [PredictedKeypoint(name=n, x=10.0 + j, y=10.0 + j, score=0.3) for j, n in enumerate(KEYPOINT_NAMES)]
    return ReviewItem(
        request_id=f"req-{uuid.uuid4().hex[:12]}", image_sha256=sha, image_path=str(store.path_for(sha)),
        width=64, height=48, model_version="m1", score=0.3, reason="low_confidence",
        poses=[PredictedPose(box=(2.0, 2.0, 40.0, 40.0), score=0.3, keypoints=kps)],
    )  # fmt: skip


def _poison(outbox: Outbox, valid: ReviewItem) -> list[str]:
    """Every kind of file that is not a deliverable item, in the pending folder; returns their names."""
    pending = outbox.pending_dir
    good = valid.model_dump_json()
    files = {
        "truncated.json": good[: len(good) // 2].encode(),
        "empty.json": b"",
        "not-utf8.json": b"\xff\xfe\x00garbage",
        "wrong-schema.json": b'{"request_id": "wrong-schema", "width": "wide"}',
        "a-list.json": b"[1, 2, 3]",
        "renamed-copy.json": good.encode(),  # a valid item under another item's file name
    }
    for name, data in files.items():
        (pending / name).write_bytes(data)
    (pending / "a-folder.json").mkdir()
    return sorted([*files, "a-folder.json"])


def test_invalid_outbox_files_are_quarantined_and_the_valid_ones_still_come_out(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store, outbox = ImageStore(tmp_path / "images"), Outbox(tmp_path / "outbox")
    items = [_item(store, n) for n in range(3)]
    for item in items:
        assert outbox.put(item)
    bad = _poison(outbox, items[0])
    with caplog.at_level(logging.ERROR, logger="posewheel.review"):
        pending = outbox.pending()  # raised ValidationError on the first bad file before
    assert sorted(i.request_id for i in pending) == sorted(i.request_id for i in items)
    assert sorted(p.name for p in outbox.failed_dir.iterdir()) == bad
    assert outbox.quarantined == len(bad) and outbox.failed() == len(bad)
    assert outbox.depth() == len(items)
    assert sum("moved to" in r.getMessage() for r in caplog.records) == len(bad)
    assert outbox.pending() == pending  # quarantined once, not at every poll


@pytest.mark.labelstudio
def test_a_bad_outbox_file_does_not_block_delivery_to_label_studio(
    labelstudio: LabelStudioServer, tmp_path: Path
) -> None:
    client, project_id = labelstudio.client, labelstudio.new_project("poison")
    store, outbox = ImageStore(labelstudio.image_root), Outbox(tmp_path / "outbox")
    items = [_item(store, 10 + n) for n in range(3)]
    for item in items:
        outbox.put(item)
    _poison(outbox, items[1])
    drainer = OutboxDrainer(outbox, ReviewQueue(client, project_id, labelstudio.document_root), batch_size=2)
    report = drainer.drain_once()
    assert (report.delivered, report.pending) == (3, 0)
    tasks: Any = client.tasks.list(project=project_id, fields="task_only", resolve_uri=False)
    assert Counter(str(t.data["request_id"]) for t in tasks) == Counter({i.request_id: 1 for i in items})
    assert outbox.failed() == 7
