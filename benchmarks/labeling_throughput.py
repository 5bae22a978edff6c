"""Labeling throughput against a real Label Studio started for the run (from the test template).

    .venv/bin/python benchmarks/labeling_throughput.py [--items 1000] [--baseline-items 100]

Prints one JSON line per figure, each with a baseline measured in the same run:
- drain_items_per_s: review items moved from the outbox into Label Studio by `OutboxDrainer`
  in batches of 100, against one task per import request.
- export_1000_tasks_s: `export_coco` of 1,000 annotated tasks (fetch, convert, validate, save),
  against Label Studio's own JSON export download alone.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from labeling.coco_export import export_coco, fetch_tasks
from labeling.queue import OutboxDrainer, ReviewQueue, item_to_task
from labeling.results import pose_to_results
from posewheel.imagestore import ImageStore
from posewheel.review import Outbox, PredictedKeypoint, PredictedPose, ReviewItem
from posewheel.schema import KEYPOINT_NAMES
from tests.support.figures import emit
from tests.support.labelstudio import LabelStudioServer, running_labelstudio

W, H = 192, 256


def make_items(store: ImageStore, count: int, seed: int) -> list[ReviewItem]:
    """`count` review items, each with its own small PNG in the store and one predicted person."""
    rng = np.random.default_rng(seed)
    items = []
    for n in range(count):
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (H // 4, W // 4, 3), dtype=np.uint8)).resize((W, H)).save(buffer, "PNG")
        sha = store.put(buffer.getvalue())
        xy = rng.uniform(10, [W - 10, H - 10], size=(17, 2))
        kps = [
            PredictedKeypoint(name=name, x=float(x), y=float(y), score=float(rng.uniform(0.1, 0.9)))
            for name, (x, y) in zip(KEYPOINT_NAMES, xy, strict=True)
        ]
        score = float(rng.uniform(0.05, 0.6))
        pose = PredictedPose(box=(5, 5, W - 10, H - 10), score=score, keypoints=kps)
        items.append(
            ReviewItem(
                request_id=f"bench-{seed}-{n}",
                image_sha256=sha,
                image_path=str(store.path_for(sha)),
                width=W,
                height=H,
                model_version="bench-1",
                score=score,
                reason="low_confidence",
                poses=[pose],
            )
        )
    return items


def drain_rate(
    server: LabelStudioServer, items: list[ReviewItem], outbox_dir: Path, batch_size: int
) -> tuple[float, int]:
    """Items per second drained into a fresh project; returns (rate, project id)."""
    project_id = server.new_project(f"bench-drain-b{batch_size}")
    outbox = Outbox(outbox_dir)
    for item in items:
        outbox.put(item)
    drainer = OutboxDrainer(outbox, ReviewQueue(server.client, project_id, server.document_root), batch_size=batch_size)
    start = time.perf_counter()
    report = drainer.drain_once()
    elapsed = time.perf_counter() - start
    if report.delivered != len(items) or report.pending:
        raise RuntimeError(f"drained {report.delivered} of {len(items)} items, {report.pending} pending")
    return len(items) / elapsed, project_id


def annotated_project(server: LabelStudioServer, items: list[ReviewItem], rng: np.random.Generator) -> int:
    """A project holding `items` as tasks with one completed annotation each (imported inline, fast)."""
    project_id = server.new_project("bench-export")
    queue = ReviewQueue(server.client, project_id, server.document_root)
    tasks = []
    for item in items:
        task = item_to_task(item, queue.image_url(item.image_path))
        kps = np.array([[k.x + rng.normal(0, 2), k.y + rng.normal(0, 2), 2] for k in item.poses[0].keypoints])
        kps[:, 0], kps[:, 1] = kps[:, 0].clip(0, W), kps[:, 1].clip(0, H)
        kps[rng.random(17) < 0.2, 2] = 1
        task["annotations"] = [{"result": pose_to_results(kps, W, H, bbox=item.poses[0].box), "lead_time": 20.0}]
        tasks.append(task)
    for start in range(0, len(tasks), 250):
        server.client.projects.import_tasks(project_id, request=tasks[start : start + 250])
    return project_id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--baseline-items", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-labeling-") as tmp, running_labelstudio(Path(tmp), 18085) as server:
        store = ImageStore(server.image_root)
        items = make_items(store, args.items, seed=1)
        baseline_items = make_items(store, args.baseline_items, seed=2)
        base_rate, _ = drain_rate(server, baseline_items, Path(tmp) / f"ob-{uuid.uuid4().hex}", batch_size=1)
        rate, _ = drain_rate(server, items, Path(tmp) / f"ob-{uuid.uuid4().hex}", batch_size=args.batch_size)
        emit(
            "drain_items_per_s",
            value=round(rate, 1),
            unit="items/s",
            items=len(items),
            batch_size=args.batch_size,
            baseline={
                "name": "one task per import request",
                "value": round(base_rate, 1),
                "items": len(baseline_items),
            },
            speedup=round(rate / base_rate, 2),
        )

        project_id = annotated_project(server, items, np.random.default_rng(3))
        start = time.perf_counter()
        raw = fetch_tasks(server.client, project_id)
        fetch_s = time.perf_counter() - start
        start = time.perf_counter()
        summary = export_coco(server.client, project_id, Path(tmp) / "export", store)
        export_s = time.perf_counter() - start
        if summary.tasks != len(items) or len(raw) != len(items):
            raise RuntimeError(f"exported {summary.tasks} of {len(items)} tasks")
        emit(
            f"export_{len(items)}_tasks_s",
            value=round(export_s, 2),
            unit="s",
            tasks=summary.tasks,
            persons=summary.persons,
            baseline={"name": "Label Studio JSON export download alone", "value": round(fetch_s, 2)},
            overhead_s=round(export_s - fetch_s, 2),
        )


if __name__ == "__main__":
    main()
