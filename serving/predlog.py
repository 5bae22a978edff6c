"""The durable prediction log and the review outbox, written by one background thread.

A request only puts a record on an in-memory queue bounded by count and by bytes (never blocks,
never raises); the
writer stores the image once by content hash, appends the record to
`<predictions_dir>/YYYY-MM-DD.jsonl` (flush + fsync per group of records; a partial last line left
by a crash is ended first, never continued) and, for predictions
the review policy picked, puts a `ReviewItem` into the outbox. A full disk or a missing folder
costs log lines and a counter, never a failed or slower prediction.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import orjson

from posewheel.imagestore import ImageStore, upright_bytes
from posewheel.review import Outbox, PredictedPose, ReviewItem
from serving.prometheus import ServingMetrics

log = logging.getLogger(__name__)


@dataclass
class PredictionRecord:
    """One answered prediction; `image` is the request's bytes (stored by hash, upright: see `_store_image`)."""

    request_id: str
    model_version: str
    image: bytes
    width: int
    height: int
    poses: list[dict[str, Any]]  # PredictedPose-shaped
    review_reason: str | None = None
    latency_ms: float | None = None
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="milliseconds"))
    upright: bool = False  # `image` already holds the upright bytes
    source: str | None = None  # `posewheel predict`: the file, or VIDEO#t=SECONDS for a video frame


class PredictionLog:
    """Background writer of prediction records, image store entries and review items."""

    def __init__(
        self,
        log_dir: Path,
        image_store: ImageStore,
        outbox: Outbox,
        metrics: ServingMetrics,
        max_queue: int = 10_000,
        on_review_queued: Callable[[], object] | None = None,
        file_tag: str = "",
        max_queue_bytes: int = 256 * 1024 * 1024,
    ) -> None:
        self.log_dir = log_dir
        self.file_tag = file_tag  # "" or ".<pid>": each worker process appends to its own file
        self.on_review_queued = on_review_queued
        self.image_store = image_store
        self.outbox = outbox
        self.metrics = metrics
        self._queue: queue.Queue[PredictionRecord | None] = queue.Queue(maxsize=max_queue)
        # Records hold their request's image: bound the queue by bytes too (10,000 x 10 MiB is 100 GiB).
        self.max_queue_bytes = max_queue_bytes
        self._queued_bytes = 0
        self._bytes_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="posewheel-predlog", daemon=True)
        self._file: IO[bytes] | None = None
        self._file_day: str | None = None

    def start(self) -> None:
        self._thread.start()

    def submit(self, record: PredictionRecord) -> bool:
        """Hand a record to the writer; False (and a counted drop) when its queue is full, by count or bytes."""
        size = len(record.image)
        with self._bytes_lock:
            if self._queued_bytes + size > self.max_queue_bytes:
                self.metrics.predlog_dropped.inc()
                return False
            self._queued_bytes += size
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            self._release(size)
            self.metrics.predlog_dropped.inc()
            return False
        self.metrics.predlog_backlog.set(self._queue.qsize())
        return True

    def _release(self, size: int) -> None:
        with self._bytes_lock:
            self._queued_bytes -= size

    def stop(self, timeout_s: float = 10.0) -> None:
        """Write what is queued, then stop the thread (waits at most `timeout_s` seconds)."""
        if self._thread.is_alive():
            with contextlib.suppress(queue.Full):
                self._queue.put(None, timeout=timeout_s)
            self._thread.join(timeout_s)
        self._close()

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait until every submitted record is written (tests and shutdown); False on timeout."""
        done = threading.Event()

        def wait_all() -> None:
            self._queue.join()
            done.set()

        threading.Thread(target=wait_all, daemon=True).start()
        return done.wait(timeout_s)

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < 256:  # group records that arrived together into one fsync
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stop = any(r is None for r in batch)
            records = [r for r in batch if r is not None]
            queued_bytes = sum(len(r.image) for r in records)  # as submitted (the writer may turn images upright)
            try:
                self._write(records)
            except Exception:  # the writer must outlive any one bad record
                log.exception("prediction log writer failed on %d records", len(records))
                self.metrics.predlog_errors.inc(len(records))
            finally:
                self._release(queued_bytes)
                for _ in batch:
                    self._queue.task_done()
                self.metrics.predlog_backlog.set(self._queue.qsize())
            if stop:
                return

    def _store_image(self, record: PredictionRecord) -> str:
        """Store the image in the frame the prediction was made in (upright); return its hash.

        A photo whose EXIF turns it is stored as its upright pixels without EXIF, once: the record
        then holds those bytes, so its review item and its log line name the same image.
        """
        if not record.upright:
            try:
                record.image = upright_bytes(record.image)
            except Exception as exc:  # noqa: BLE001 - decoded once, but Pillow may fail again: keep the bytes as sent
                log.warning("prediction %s: image kept as sent, not turned upright: %s", record.request_id, exc)
            record.upright = True
        return self.image_store.put(record.image)

    def _write(self, records: list[PredictionRecord]) -> None:
        lines, reviews = [], []
        for record in records:
            try:
                sha = self._store_image(record)
            except (OSError, ValueError) as exc:
                log.error("prediction %s: image not stored in %s: %s", record.request_id, self.image_store.root, exc)
                self.metrics.predlog_errors.inc()
                continue
            lines.append(orjson.dumps(_log_line(record, sha), option=orjson.OPT_APPEND_NEWLINE))
            if record.review_reason is not None:
                reviews.append((record, sha))
        if lines:
            try:
                handle = self._open_today()
                handle.write(b"".join(lines))
                handle.flush()
                os.fsync(handle.fileno())
                self.metrics.predlog_written.inc(len(lines))
            except (OSError, ValueError) as exc:
                log.error("%d predictions not logged in %s: %s", len(lines), self.log_dir, exc)
                self.metrics.predlog_errors.inc(len(lines))
                self._close()
        queued = sum(self._queue_review(record, sha) for record, sha in reviews)
        if queued and self.on_review_queued is not None:
            self.on_review_queued()

    def queue_review_now(self, record: PredictionRecord) -> bool:
        """Store the image and put the review item in the outbox now (durable); False if that failed.

        The background writer later logs the record as usual; its own outbox put is then a no-op
        (the outbox is keyed by request id), so the item is queued exactly once. A failure here is
        only logged: the writer tries again and counts what it cannot write, once per prediction.
        """
        try:
            sha = self._store_image(record)
            queued = self.outbox.put(self._review_item(record, sha))
        except (OSError, ValueError) as exc:
            log.warning(
                "prediction %s: review item not queued before answering (the writer retries): %s",
                record.request_id,
                exc,
            )
            return False
        if queued and self.on_review_queued is not None:
            self.on_review_queued()
        return queued

    def _review_item(self, record: PredictionRecord, sha: str) -> ReviewItem:
        return ReviewItem(
            request_id=record.request_id,
            image_sha256=sha,
            image_path=str(self.image_store.path_for(sha).resolve()),
            width=record.width,
            height=record.height,
            model_version=record.model_version,
            poses=[PredictedPose.model_validate(p) for p in record.poses],
            score=min((p["score"] for p in record.poses), default=0.0),  # nobody found: an image to look at
            reason=record.review_reason or "",
            source=record.source,
        )

    def _queue_review(self, record: PredictionRecord, sha: str) -> bool:
        try:
            return self.outbox.put(self._review_item(record, sha))
        except (OSError, ValueError) as exc:
            log.error("prediction %s: review item not queued in %s: %s", record.request_id, self.outbox.root, exc)
            self.metrics.predlog_errors.inc()
            return False

    def _open_today(self) -> IO[bytes]:
        day = datetime.now(UTC).strftime("%Y-%m-%d")
        if self._file is None or self._file_day != day:
            self._close()
            self.log_dir.mkdir(parents=True, exist_ok=True)
            path = self.log_dir / f"{day}{self.file_tag}.jsonl"
            self._file = open(path, "ab")  # noqa: SIM115 - kept open
            self._file_day = day
            _end_partial_line(path, self._file)
        return self._file

    def _close(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None


def _end_partial_line(path: Path, handle: IO[bytes]) -> None:
    """A crash mid-write leaves a last line without its newline: end it, so the next record starts on
    a line of its own (the broken line stays one unreadable line, instead of spoiling a good one)."""
    if handle.tell() == 0:
        return
    with open(path, "rb") as reader:
        reader.seek(-1, os.SEEK_END)
        if reader.read(1) == b"\n":
            return
    handle.write(b"\n")
    handle.flush()
    log.warning("prediction log %s ended in a partial line (a crash while writing?); it is left as it is", path)


def _log_line(record: PredictionRecord, sha: str) -> dict[str, Any]:
    line = {
        "request_id": record.request_id,
        "created": record.created,
        "model_version": record.model_version,
        "image_sha256": sha,
        "width": record.width,
        "height": record.height,
        "poses": record.poses,
        "scores": [p["score"] for p in record.poses],
        "review": record.review_reason,
        "latency_ms": record.latency_ms,
    }
    if record.source is not None:
        line["source"] = record.source
    return line
