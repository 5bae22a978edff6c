"""After a promotion, open review tasks still open with a pre-annotation (the real Label Studio of the session).

Label Studio shows an annotator only the predictions of the project's model_version (see
`labeling.project.set_model_version`); these tests load tasks the way the labeling UI does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from labeling.project import set_model_version
from labeling.queue import OutboxDrainer, ReviewQueue
from posewheel.imagestore import ImageStore
from posewheel.review import Outbox, ReviewItem
from posewheel.truth import TruthStore
from tests.support.labelstudio import LabelStudioServer
from tests.test_labeling import _review_item

pytestmark = pytest.mark.labelstudio


def _next_task(labelstudio: LabelStudioServer, project_id: int) -> dict[str, Any]:
    """The task the label stream ("Label All Tasks") opens next, with the predictions it shows."""
    auth = {"Authorization": f"Token {labelstudio.settings.credentials().token}"}
    reply = httpx.get(f"{labelstudio.settings.base_url}/api/projects/{project_id}/next", headers=auth)
    reply.raise_for_status()
    task: dict[str, Any] = reply.json()
    return task


def _task_id(labelstudio: LabelStudioServer, project_id: int, item: ReviewItem) -> int:
    tasks = labelstudio.client.tasks.list(project=project_id, fields="task_only", resolve_uri=False)
    return next(int(t.id) for t in tasks if t.data["request_id"] == item.request_id)


def _regions(prediction: dict[str, Any]) -> list[tuple[str, str]]:
    return sorted((r["id"], r["type"]) for r in prediction["result"])


def test_an_open_task_keeps_its_pre_annotation_after_a_promotion(
    labelstudio: LabelStudioServer, tmp_path: Path
) -> None:
    client, project_id = labelstudio.client, labelstudio.new_project("promotion", "uncertainty")
    store, truth, outbox = ImageStore(labelstudio.image_root), TruthStore(tmp_path / "truth"), Outbox(tmp_path / "ob")
    drainer = OutboxDrainer(outbox, ReviewQueue(client, project_id, labelstudio.document_root))
    open_a = _review_item(store, truth, 51, 0.2, version="model-a")  # least confident: opened first
    done_a = _review_item(store, truth, 52, 0.1, version="model-a")
    for item in (open_a, done_a):
        outbox.put(item)
    drainer.drain_once()
    client.annotations.create(_task_id(labelstudio, project_id, done_a), result=[], lead_time=1.0)

    drainer.set_model_version("model-b")  # the server swapped in the promoted model
    drainer.drain_once()
    assert client.projects.get(project_id).model_version == "model-b"
    late_a = _review_item(store, truth, 53, 0.3, version="model-a")  # queued before the swap, drained after
    new_b = _review_item(store, truth, 54, 0.6, version="model-b")
    for item in (late_a, new_b):
        outbox.put(item)
    drainer.drain_once()

    # The label stream opens the open tasks least confident first, each with a pose to correct:
    # model A's own pose on A's tasks, model B's on B's.
    for item in (open_a, late_a, new_b):
        task = _next_task(labelstudio, project_id)
        assert task["data"]["request_id"] == item.request_id
        [shown] = task["predictions"]
        assert shown["model_version"] == "model-b" and shown["score"] == pytest.approx(item.score)
        [own] = [p for p in client.tasks.get(task["id"]).predictions if p.model_version == item.model_version]
        assert shown["result"] == own.result and ("p0-box", "rectanglelabels") in _regions(shown)
        assert task["data"]["model_version"] == item.model_version  # provenance: who really predicted it
        client.annotations.create(task["id"], result=[], lead_time=1.0)
    done = client.tasks.get(_task_id(labelstudio, project_id, done_a))
    assert [p.model_version for p in done.predictions] == ["model-a"]  # nobody opens a done task again


def test_moving_a_project_with_no_open_task_is_refused_until_the_new_model_predicts(
    labelstudio: LabelStudioServer, tmp_path: Path
) -> None:
    client, project_id = labelstudio.client, labelstudio.new_project("promotion-empty")
    store, truth = ImageStore(labelstudio.image_root), TruthStore(tmp_path / "truth")
    queue = ReviewQueue(client, project_id, labelstudio.document_root)
    item = _review_item(store, truth, 61, 0.4, version="model-a")
    queue.deliver([item])
    client.annotations.create(_task_id(labelstudio, project_id, item), result=[], lead_time=1.0)
    queue.set_model_version("model-b")  # nothing open to carry, nothing of B yet: Label Studio says 400
    assert client.projects.get(project_id).model_version == "model-a"
    queue.deliver([_review_item(store, truth, 62, 0.4, version="model-b")])
    assert client.projects.get(project_id).model_version == "model-b"
    set_model_version(client, project_id, "model-b")  # already there: no copies, no change
    assert len(client.tasks.get(_task_id(labelstudio, project_id, item)).predictions) == 1
