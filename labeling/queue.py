"""The review queue: serving's outbox drained into Label Studio, exactly once, in batches.

    drainer = start_drainer(outbox_dir)        # a thread; survives Label Studio being down
    drainer.set_model_version("v3")            # the served model changed
    drainer.stop()

A review item leaves the outbox only after Label Studio confirmed its task. Before importing, the
queue looks up which request ids the project already holds (a cache filled from the task list,
refilled after any failed call), so a crash between import and ack never duplicates a task.
Images reach Label Studio through a local-files storage over the image store, never as base64.

Several drainers of one outbox (`posewheel labels drain` while the server drains, two replicas on
one volume) take turns: each drain holds an exclusive lock on `<outbox>/.drain.lock`, and a drainer
that finds another one drained last refills its cache of known request ids first, so no item is
ever imported twice.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import numpy as np

from labeling.labelstudio_client import connect
from labeling.project import ensure_project
from labeling.project import set_model_version as set_project_model_version
from labeling.results import pose_to_results
from labeling.settings import LabelStudioSettings
from posewheel.review import Outbox, ReviewItem
from posewheel.schema import KEYPOINT_INDEX, NUM_KEYPOINTS, V_VISIBLE

if TYPE_CHECKING:
    from label_studio_sdk import LabelStudio

log = logging.getLogger(__name__)
STORAGE_TITLE = "posewheel image store"
DRAIN_LOCK = ".drain.lock"  # in the outbox folder; its content names the drainer that drained last


def item_to_task(item: ReviewItem, image_url: str) -> dict[str, Any]:
    """The Label Studio task of a review item: data (image URL, ids, score) and the prediction inline."""
    results: list[dict[str, Any]] = []
    for k, pose in enumerate(item.poses):
        kps = np.zeros((NUM_KEYPOINTS, 3), dtype=np.float64)
        scores = np.zeros(NUM_KEYPOINTS, dtype=np.float64)
        for kp in pose.keypoints:
            j = KEYPOINT_INDEX.get(kp.name)
            if j is None:
                raise ValueError(f"review item {item.request_id}: pose {k}: unknown keypoint name {kp.name!r}")
            # A prediction outside the image cannot be drawn; the annotator places that joint.
            inside = 0 <= kp.x <= item.width and 0 <= kp.y <= item.height
            kps[j] = (kp.x, kp.y, V_VISIBLE if inside else 0)
            scores[j] = kp.score
        results += pose_to_results(kps, item.width, item.height, person=k, bbox=pose.box, scores=scores.tolist())
    return {
        "data": {
            "image": image_url,
            "request_id": item.request_id,
            "image_sha256": item.image_sha256,
            "score": item.score,
            "width": item.width,
            "height": item.height,
            "reason": item.reason,
            "model_version": item.model_version,
            "created": item.created,
            **({"source": item.source} if item.source is not None else {}),
        },
        "predictions": [{"model_version": item.model_version, "score": item.score, "result": results}],
    }


class ReviewQueue:
    """Puts review items into one Label Studio project as pre-annotated tasks, never twice."""

    def __init__(self, client: LabelStudio, project_id: int, document_root: Path | None = None):
        self.client = client
        self.project_id = project_id
        self.document_root = (document_root or LabelStudioSettings().document_root).resolve()
        self._known: set[str] | None = None
        self._storages: set[Path] = set()
        self._rejected: set[str] = set()
        # The newest model version seen (ISO time, version), and the one the project was last set to.
        self._newest: tuple[str, str] | None = None
        self._applied: str | None = None

    @classmethod
    def connect(cls, settings: LabelStudioSettings | None = None) -> ReviewQueue:
        """Build the client from settings and make sure the project exists (needs Label Studio up)."""
        settings = settings or LabelStudioSettings()
        client = connect(settings)
        return cls(client, ensure_project(client, settings.project_title, settings.sampling), settings.document_root)

    def known_request_ids(self) -> set[str]:
        """Request ids of the project's tasks (cached; refilled from Label Studio after any failure)."""
        if self._known is None:
            known: set[str] = set()
            pager: Iterable[Any] = self.client.tasks.list(
                project=self.project_id, fields="task_only", include="id,data", resolve_uri=False, page_size=1000
            )
            for task in pager:
                request_id = (task.data or {}).get("request_id")
                if request_id:
                    known.add(str(request_id))
            self._known = known
        return self._known

    def image_url(self, image_path: str | Path) -> str:
        """The local-files URL of an image in the store; makes sure a storage covers its folder."""
        path = Path(image_path).resolve()
        if self.document_root not in path.parents:
            raise ValueError(f"image {path} is not under Label Studio's document root {self.document_root}")
        if not path.is_file():
            raise FileNotFoundError(f"image {path} not found in the image store")
        store_root = path.parent.parent  # ImageStore keeps root/<sha[:2]>/<sha>
        if store_root == self.document_root:
            store_root = path.parent  # a storage must be strictly below the document root
        self._ensure_storage(store_root)
        return "/data/local-files/?d=" + quote(path.relative_to(self.document_root).as_posix())

    def _ensure_storage(self, folder: Path) -> None:
        if folder in self._storages:
            return
        storages = self.client.import_storage.local.list(project=self.project_id)
        if not any(s.path and Path(s.path).resolve() == folder for s in storages):
            # Never synced: tasks are imported with their predictions; the storage only grants access.
            self.client.import_storage.local.create(
                project=self.project_id, path=str(folder), title=STORAGE_TITLE, use_blob_urls=False, regex_filter=r"^$"
            )
        self._storages.add(folder)

    def deliver(self, items: Sequence[ReviewItem]) -> list[str]:
        """Import the items not yet in the project; returns every request id now confirmed present.

        Items that can never become a task (image missing, outside the document root, bad keypoint
        names) are logged and left out of the answer, so they stay in the outbox.
        """
        try:
            known = self.known_request_ids()
            tasks: list[dict[str, Any]] = []
            fresh: list[ReviewItem] = []
            present: list[str] = []
            for item in items:
                if item.request_id in known:
                    present.append(item.request_id)
                    continue
                if any(f.request_id == item.request_id for f in fresh):
                    continue
                try:
                    task = item_to_task(item, self.image_url(item.image_path))
                except (ValueError, FileNotFoundError) as exc:
                    if item.request_id not in self._rejected:  # once, not at every poll
                        log.error("review item %s cannot become a task (left in the outbox): %s", item.request_id, exc)
                        self._rejected.add(item.request_id)
                    continue
                tasks.append(self._shown_under_project_version(task))
                fresh.append(item)
            imported = self._import(fresh, tasks)
            if imported:
                known.update(i.request_id for i in imported)
                present += [i.request_id for i in imported]
                newest = max(imported, key=lambda i: (i.created, i.request_id))
                self._note_version(newest.created, newest.model_version)
            self._apply_model_version()
        except BaseException:
            self._known = None  # the import may have landed: look again before the next one
            raise
        return present

    def _shown_under_project_version(self, task: dict[str, Any]) -> dict[str, Any]:
        """An item of an older model drained after the project moved on also carries its prediction
        under the project's version, or Label Studio would not show it (`project.set_model_version`)."""
        predictions = task.get("predictions") or []
        if (
            self._applied is None
            or not predictions
            or any(p.get("model_version") == self._applied for p in predictions)
        ):
            return task
        return {**task, "predictions": [*predictions, {**predictions[0], "model_version": self._applied}]}

    def _import(self, items: list[ReviewItem], tasks: list[dict[str, Any]]) -> list[ReviewItem]:
        """Import tasks in one request; when Label Studio refuses the batch (HTTP 400), one by one,
        so a single bad task stays in the outbox instead of blocking every other item."""
        from label_studio_sdk.core.api_error import ApiError

        if not tasks:
            return []
        try:
            self.client.projects.import_tasks(self.project_id, request=tasks)  # type: ignore[arg-type]
            return items
        except ApiError as exc:
            if exc.status_code != 400:
                raise
            if len(tasks) == 1:
                if items[0].request_id not in self._rejected:
                    log.error(
                        "Label Studio refuses review item %s (left in the outbox): %s",
                        items[0].request_id,
                        str(exc.body)[:300],
                    )
                    self._rejected.add(items[0].request_id)
                return []
        imported: list[ReviewItem] = []
        for item, task in zip(items, tasks, strict=True):
            imported += self._import([item], [task])
        return imported

    def set_model_version(self, version: str) -> None:
        """Make `version` the project's model version; open tasks of older models keep their pre-annotation.

        Applied at once when open tasks exist (they get a copy of their prediction under `version`),
        else once Label Studio holds a prediction of `version` (it refuses a version nothing predicted).
        """
        self._note_version(datetime.now(UTC).isoformat(timespec="milliseconds"), version)
        self._apply_model_version()

    def _note_version(self, created: str, version: str) -> None:
        # Older items drained late must not turn the project back to an older model.
        if self._newest is None or created >= self._newest[0]:
            self._newest = (created, version)

    def _apply_model_version(self) -> None:
        from label_studio_sdk.core.api_error import ApiError

        if self._newest is None or self._newest[1] == self._applied:
            return
        try:
            set_project_model_version(self.client, self.project_id, self._newest[1])
        except ApiError as exc:
            if exc.status_code != 400:
                raise
            return  # no task carries predictions of this version yet; retried after the next import
        self._applied = self._newest[1]


@dataclass
class DrainReport:
    """What one drain did: items confirmed in Label Studio and items still waiting."""

    delivered: int
    pending: int


class OutboxDrainer:
    """A thread draining an Outbox into a ReviewQueue; Label Studio down or slow means retry with backoff.

    `queue` may be a factory: it is called (and retried) until Label Studio answers, so the drainer
    can start before Label Studio does.
    """

    def __init__(
        self,
        outbox: Outbox,
        queue: ReviewQueue | Callable[[], ReviewQueue],
        batch_size: int = 100,
        poll_interval_s: float = 1.0,
        backoff_initial_s: float = 1.0,
        backoff_max_s: float = 60.0,
        lock_timeout_s: float = 120.0,
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.outbox = outbox
        self._queue: ReviewQueue | None = queue if isinstance(queue, ReviewQueue) else None
        self._queue_factory = None if isinstance(queue, ReviewQueue) else queue
        self.batch_size = batch_size
        self.poll_interval_s = poll_interval_s
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.failures = 0  # consecutive failed drains
        self.last_error: str | None = None
        self._wanted_version: str | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.lock_timeout_s = lock_timeout_s
        self._id = uuid.uuid4().hex  # written into the drain lock: "I drained last"
        self._last_holder: str | None = None

    @property
    def queue(self) -> ReviewQueue:
        """The review queue, built on first use when a factory was given (raises if Label Studio is down)."""
        if self._queue is None:
            assert self._queue_factory is not None
            self._queue = self._queue_factory()
        return self._queue

    def set_model_version(self, version: str) -> None:
        """The served model changed: the project's model_version follows at the next drain."""
        self._wanted_version = version
        self._wake.set()

    def drain_once(self) -> DrainReport:
        """Deliver everything pending in batches; ack what Label Studio confirmed. Raises on failure.

        Waits (up to `lock_timeout_s`) while another drainer of the same outbox is draining.
        """
        delivered = 0
        with self._lock, self._outbox_lock():
            queue = self.queue
            if self._last_holder != self._id:
                queue._known = None  # someone else drained since we looked: what Label Studio holds changed
            if self._wanted_version is not None:
                queue.set_model_version(self._wanted_version)
                self._wanted_version = None
            items = self.outbox.pending()
            for start in range(0, len(items), self.batch_size):
                for request_id in queue.deliver(items[start : start + self.batch_size]):
                    self.outbox.ack(request_id)
                    delivered += 1
        return DrainReport(delivered=delivered, pending=self.outbox.depth())

    @contextlib.contextmanager
    def _outbox_lock(self) -> Iterator[None]:
        """Hold `<outbox>/.drain.lock` exclusively (flock: other processes and other drainers alike)."""
        self.outbox.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.outbox.root / DRAIN_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            deadline = time.monotonic() + self.lock_timeout_s
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise TimeoutError(
                            f"another drainer has held {self.outbox.root / DRAIN_LOCK} for {self.lock_timeout_s:.0f} s"
                        ) from None
                    time.sleep(0.05)
            self._last_holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
            try:
                yield
            finally:
                os.ftruncate(fd, 0)
                os.pwrite(fd, self._id.encode("ascii"), 0)
        finally:
            os.close(fd)  # releases the flock

    def start(self) -> OutboxDrainer:
        """Run the drain loop in a daemon thread; returns self."""
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="labeling-outbox-drainer", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        """Ask the loop to end and wait up to `timeout_s` for the current batch to finish."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def wake(self) -> None:
        """Drain now instead of at the next poll (e.g. right after an item was queued)."""
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                report = self.drain_once()
            # The thread must outlive any failure (connection refused, timeouts, 5xx, a disk error):
            # items stay in the outbox and the next try comes after a growing pause.
            except Exception as exc:  # noqa: BLE001
                self.failures += 1
                self.last_error = f"{type(exc).__name__}: {str(exc)[:300]}"
                delay = min(self.backoff_max_s, self.backoff_initial_s * 2 ** (self.failures - 1))
                delay *= random.uniform(0.8, 1.2)
                log.warning(
                    "review drain failed (%d in a row), retrying in %.1f s: %s", self.failures, delay, self.last_error
                )
                self._sleep(delay)
                continue
            if self.failures:
                log.info("review drain recovered after %d failures", self.failures)
            self.failures, self.last_error = 0, None
            if report.delivered:
                log.info("review drain: %d delivered, %d pending", report.delivered, report.pending)
            self._sleep(self.poll_interval_s)

    def _sleep(self, seconds: float) -> None:
        self._wake.wait(seconds)
        self._wake.clear()


def start_drainer(outbox_dir: str | Path, settings: LabelStudioSettings | None = None, **kwargs: Any) -> OutboxDrainer:
    """Start draining `outbox_dir` into the configured Label Studio; never fails because it is down."""
    settings = settings or LabelStudioSettings()
    return OutboxDrainer(Outbox(outbox_dir), lambda: ReviewQueue.connect(settings), **kwargs).start()
