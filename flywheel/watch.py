"""Continuous training, opt-in: run the pipeline when enough new corrected labels are waiting.

    posewheel flywheel watch --min-labels 100 --interval 300   # poll every 5 minutes until Ctrl-C
    posewheel flywheel watch --once                            # one poll and exit (cron, tests)

A label is waiting when a task's newest completed annotation in Label Studio is not in the last
run's export (`data/feedback`, which keeps each label's task and annotation id): a new task, or a
task corrected again since. At `--min-labels` or more, the poll runs `dvc repro` exactly as
`posewheel flywheel repro` does. One run at a time: a poll holds `var/flywheel.lock` (the lock
`posewheel flywheel repro` takes too) from the count to the end of the run, and a poll that finds it
held skips. Each poll logs one line, to the terminal and to `var/log/flywheel-watch.log`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flywheel.pipeline import PipelineBusyError, PipelinePaths, pipeline_lock, repro
from posewheel.dataset import ANNOTATIONS_FILE

log = logging.getLogger("flywheel.watch")


def exported_labels(feedback: Path) -> set[tuple[int, int]]:
    """(task id, annotation id) in Label Studio of every label in the export at `feedback`."""
    path = feedback / ANNOTATIONS_FILE
    if not path.is_file():
        return set()
    dataset = json.loads(path.read_text(encoding="utf-8"))
    # a person's label sits on its annotation; an image confirmed empty has none, its label sits on the image
    sources = [*dataset["annotations"], *(i["confirmed_empty"] for i in dataset["images"] if i.get("confirmed_empty"))]
    return {
        (int(a["ls_task_id"]), int(a["ls_annotation_id"]))
        for a in sources
        if a.get("ls_task_id") is not None and a.get("ls_annotation_id") is not None
    }


def count_waiting(tasks: list[dict[str, Any]], exported: set[tuple[int, int]]) -> int:
    """Tasks whose newest completed annotation the export keeps and that is not in `exported`.

    `tasks`: Label Studio's JSON export (labeling.coco_export.fetch_tasks). The export keeps an
    annotation that places a keypoint, or one with no region at all (an image confirmed empty: a
    negative for the detector); boxes without a joint teach nothing and are never waiting.
    """
    from labeling.coco_export import _chosen_annotation as chosen_annotation  # the export's own choice

    waiting = 0
    for task in tasks:
        annotation = chosen_annotation(task)
        if annotation is None:
            continue
        result = annotation.get("result") or []
        if result and not any(r.get("type") == "keypointlabels" for r in result):
            continue
        if (int(task["id"]), int(annotation["id"])) not in exported:
            waiting += 1
    return waiting


def label_studio_counter(paths: PipelinePaths) -> Callable[[], int]:
    """Counts the labels waiting in the configured Label Studio project (one JSON export per call)."""

    def waiting() -> int:
        from labeling.coco_export import fetch_tasks
        from labeling.labelstudio_client import connect
        from labeling.project import find_project
        from labeling.settings import LabelStudioSettings

        settings = LabelStudioSettings()
        if not settings.configured:
            raise RuntimeError("Label Studio is not configured (POSEWHEEL_LABELSTUDIO_URL and its token)")
        client = connect(settings)
        project_id = find_project(client, settings.project_title)
        if project_id is None:
            return 0  # no review project yet: nothing was ever labeled
        return count_waiting(fetch_tasks(client, project_id), exported_labels(paths.feedback))

    return waiting


def _promotion_outcome(paths: PipelinePaths, before: bytes | None) -> str:
    """What the run decided, from metrics/promotion.json (unchanged: promote did not run again)."""
    after = paths.promotion.read_bytes() if paths.promotion.is_file() else None
    if after is None or after == before:
        return "no new candidate (nothing changed downstream of the export)"
    record = json.loads(after)
    if record["promoted"]:
        return f"promoted {record['candidate_version']} ({record['reason']})"
    return f"not promoted {record['candidate_version']}: {record['reason']}"


def poll(
    paths: PipelinePaths,
    waiting_labels: Callable[[], int],
    min_labels: int,
    run_pipeline: Callable[[], int],
) -> tuple[str, bool]:
    """One poll: count, decide, run when due. Returns the decision line and whether the poll went wrong.

    Logs "waiting", "running" then "done"/"failed", "busy" (another run holds the lock) or "error".
    """
    try:
        with pipeline_lock(paths):
            try:
                waiting = waiting_labels()
            except Exception as exc:  # noqa: BLE001 - any failure to count is one logged line; the next poll retries
                return _logged(f"error: cannot count the waiting labels: {exc}"), True
            if waiting < min_labels:
                return _logged(f"waiting: {waiting} new label(s) < {min_labels}, not running"), False
            _logged(f"running: {waiting} new label(s) >= {min_labels}: dvc repro")
            before = paths.promotion.read_bytes() if paths.promotion.is_file() else None
            started = time.monotonic()
            code = run_pipeline()
            minutes = (time.monotonic() - started) / 60
            if code != 0:
                return _logged(f"failed: dvc repro exited {code} after {minutes:.1f} min"), True
            return _logged(f"done in {minutes:.1f} min: {_promotion_outcome(paths, before)}"), False
    except PipelineBusyError as exc:
        return _logged(f"busy: {exc}; skipped this poll"), False


def _logged(line: str) -> str:
    log.info("%s", line)
    return line


def log_to(paths: PipelinePaths) -> Path:
    """Send the decision lines to the terminal and to var/log/flywheel-watch.log; returns the file."""
    path = paths.watch_log
    path.parent.mkdir(parents=True, exist_ok=True)
    formatter = logging.Formatter("%(asctime)s %(message)s")
    for handler in (logging.FileHandler(path, encoding="utf-8"), logging.StreamHandler()):
        handler.setFormatter(formatter)
        log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    return path


def watch(paths: PipelinePaths, min_labels: int, interval_s: float, once: bool) -> int:
    """Poll every `interval_s` seconds (or once); returns the exit code of the last poll (1: it went wrong)."""
    log_to(paths)
    waiting = label_studio_counter(paths)
    while True:
        _line, failed = poll(paths, waiting, min_labels, lambda: repro(paths.root).returncode)
        if once:
            return int(failed)
        time.sleep(interval_s)
