"""Several drainers and several replicas against one Label Studio: the CLI drain while the server
drains, two replicas starting together. Every review item becomes exactly one task, in one project."""

from __future__ import annotations

import io
import threading
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from labeling.labelstudio_client import connect
from labeling.project import ensure_project, find_project
from labeling.queue import OutboxDrainer, ReviewQueue
from posewheel.imagestore import ImageStore
from posewheel.review import Outbox, PredictedKeypoint, PredictedPose, ReviewItem
from posewheel.schema import KEYPOINT_NAMES
from tests.support.labelstudio import LabelStudioServer

pytestmark = pytest.mark.labelstudio


def _item(store: ImageStore, seed: int) -> ReviewItem:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(buffer, "PNG")
    sha = store.put(buffer.getvalue())
    kps = [PredictedKeypoint(name=n, x=5.0 + j, y=5.0 + j, score=0.4) for j, n in enumerate(KEYPOINT_NAMES)]
    return ReviewItem(
        request_id=f"req-{uuid.uuid4().hex[:12]}", image_sha256=sha, image_path=str(store.path_for(sha)),
        width=32, height=32, model_version="m1", score=0.4, reason="low_confidence",
        poses=[PredictedPose(box=(1.0, 1.0, 30.0, 30.0), score=0.4, keypoints=kps)],
    )  # fmt: skip


def _at_once(jobs: list[Any]) -> list[Any]:
    """Run the callables in threads released together; their results (or exceptions), in order."""
    barrier, results = threading.Barrier(len(jobs)), list[Any]([None] * len(jobs))

    def run(n: int) -> None:
        barrier.wait()
        try:
            results[n] = jobs[n]()
        except Exception as exc:  # noqa: BLE001 - handed to the test, which fails on it
            results[n] = exc

    threads = [threading.Thread(target=run, args=(n,)) for n in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return results


def test_two_drainers_of_one_outbox_import_every_item_exactly_once(
    labelstudio: LabelStudioServer, tmp_path: Path
) -> None:
    project_id = labelstudio.new_project("two-drainers")
    store, outbox = ImageStore(labelstudio.image_root), Outbox(tmp_path / "outbox")
    all_items: list[ReviewItem] = []
    for round_ in range(3):
        items = [_item(store, 100 * round_ + n) for n in range(12)]
        for item in items:
            outbox.put(item)
        all_items += items
        # The server's drainer and `posewheel labels drain`: two processes, two clients, one outbox.
        drainers = [
            OutboxDrainer(Outbox(outbox.root), ReviewQueue(connect(labelstudio.settings), project_id,
                                                           labelstudio.document_root), batch_size=5)
            for _ in range(2)
        ]  # fmt: skip
        reports = _at_once([d.drain_once for d in drainers])
        assert not any(isinstance(r, Exception) for r in reports), reports
        assert outbox.depth() == 0
    tasks: Any = labelstudio.client.tasks.list(project=project_id, fields="task_only", resolve_uri=False)
    counts = Counter(str(t.data["request_id"]) for t in tasks)
    assert counts == Counter({i.request_id: 1 for i in all_items}), [r for r, c in counts.items() if c > 1]


def test_replicas_starting_together_agree_on_one_project(labelstudio: LabelStudioServer) -> None:
    for attempt in range(3):
        title = f"replicas-{attempt}-{uuid.uuid4().hex[:8]}"
        clients = [connect(labelstudio.settings) for _ in range(4)]
        ids = _at_once([lambda c=c, t=title: ensure_project(c, t) for c in clients])
        assert not any(isinstance(i, Exception) for i in ids), [f"{i!r}: {i}" for i in ids]
        listed: Any = labelstudio.client.projects.list(title=title)
        projects = [p.id for p in listed if p.title == title]
        assert len(projects) == 1, f"{len(projects)} projects titled {title!r}"
        assert set(ids) == {find_project(labelstudio.client, title)}
